"""The README's and the docs' examples run as written, and the CLI reference is the parser's.

Conventions in the Markdown files:

* every ```python block runs, in order, in one namespace per file, in a fresh working directory
  per file (so a block can use the files an earlier block or command made);
* an ```sh block right after ``<!-- run -->`` runs too (``darkweights`` is this checkout's CLI);
* a ```text block right after ``<!-- stdout -->`` must equal what the python block before it printed;
* a block right after ``<!-- no-run: why -->`` is shown, not run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(
    r"(?:<!--\s*(?P<mark>[a-z-]+)(?::[^>]*)?\s*-->\s*\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```", re.S | re.M
)


def blocks(path: Path) -> list[tuple[str, str, str]]:
    """``(lang, mark, body)`` of each fenced block, in order."""
    return [(m["lang"], m["mark"] or "", m["body"]) for m in FENCE.finditer(path.read_text())]


def run_sh(body: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    prelude = f'darkweights() {{ {shlex.quote(sys.executable)} -m darkweights "$@"; }}\nset -e\n'
    proc = subprocess.run(["bash", "-c", prelude + body], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{body}\n--- stderr:\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    last_stdout = None
    ran = 0
    for lang, mark, body in blocks(path):
        if mark == "no-run":
            continue
        if lang == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"{path.name}:python", "exec"), namespace)
            last_stdout = out.getvalue()
            ran += 1
        elif lang == "sh" and mark == "run":
            run_sh(body, tmp_path)
            ran += 1
        elif lang == "text" and mark == "stdout":
            assert last_stdout is not None and last_stdout.strip() == body.strip(), path.name
    assert ran or path.name == "cli.md", f"{path.name} has no runnable example"


def first_python(path: Path) -> str:
    return next(body for lang, _, body in blocks(path) if lang == "python")


@pytest.mark.parametrize("name", ["README.md", "docs/python.md"])
def test_the_seed_question_is_the_first_python_example(name):
    code = [line for line in first_python(REPO / name).splitlines() if line.strip()]
    assert len(code) == 3, code
    assert code[0] == "import darkweights" and "darkweights.load(" in code[1] and "].weights" in code[2]


def test_setup_commands_unchanged():
    text = (REPO / "README.md").read_text()
    assert (
        "python3 -m pip install -c constraints.txt '.[torch,detect]' && darkweights detect --sample -o dog.png" in text
    )
    assert "python3 -m pip install -c constraints.txt -e '.[test]' && python3 -m pytest -q" in text
    assert "-c constraints.txt -e '.[test]'" in (REPO / ".ci" / "run").read_text()  # CI runs the same


def test_cli_reference_is_the_parser():
    gen = runpy.run_path(str(REPO / "tools" / "gen_cli_docs.py"))
    doc = (REPO / "docs" / "cli.md").read_text()
    made = gen["render"]()
    if f"(Python {sys.version_info[0]}.{sys.version_info[1]} argparse layout.)" in doc:
        assert doc == made, "docs/cli.md is stale: run PYTHONPATH=src python tools/gen_cli_docs.py"
    # whatever the Python version's layout: every command, option and help text is in it
    import argparse

    from darkweights import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flat = " ".join(doc.split())
    for name, p in sub.choices.items():
        assert f"## darkweights {name}" in doc
        for a in p._actions:
            for opt in a.option_strings:
                assert opt in doc, (name, opt)
            if a.help and a.help != argparse.SUPPRESS and a.dest != "help":  # --debug is hidden
                assert " ".join(a.help.split())[:40] in flat, (name, a.dest)


def test_dependencies_are_ranges_and_the_pin_is_the_lowest_torch():
    """pyproject.toml declares ranges (installing darkweights keeps a torch in range); constraints.txt pins the
    exact CPU build CI tests, which must be the lowest torch the range allows."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    assert not [s for s in specs if "==" in s], "exact pins belong in constraints.txt"
    assert all(re.search(r">=[\d.]+", s) for s in specs), specs
    torch = {s for s in specs if s.startswith("torch")}
    assert len(torch) == 1
    lowest = re.search(r">=([\d.]+)", torch.pop()).group(1)
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch==")]
    assert len(pins) == 1 and pins[0].removeprefix("torch==").startswith(lowest + "."), (lowest, pins)
