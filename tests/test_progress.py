"""Progress bars: drawn by tqdm on a terminal, silent on a pipe, with --quiet or without tqdm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from darkweights import progress

from .conftest import write_cfg
from .test_diff import CFG


def test_silent_off_a_terminal_and_when_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DARKWEIGHTS_PROGRESS", raising=False)
    assert not progress.enabled()  # pytest's stderr is not a terminal
    assert list(progress.bar(range(3))) == [0, 1, 2]
    monkeypatch.setenv("DARKWEIGHTS_PROGRESS", "1")
    if progress.enabled():
        progress.set_quiet()
        try:
            assert not progress.enabled()
        finally:
            progress.set_quiet(False)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed: silent, same interface
    assert not progress.enabled()
    with progress.bar(total=10, unit="B", unit_scale=True) as b:
        b.update(5)


def _init(tmp_path: Path, *flags: str, env: dict) -> str:
    cfg = write_cfg(tmp_path, CFG)
    src = str(Path(__file__).resolve().parents[1] / "src")
    res = subprocess.run(
        [sys.executable, "-m", "darkweights", "init", str(cfg), "-o", str(tmp_path / "o.weights"), "--force", *flags],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src, **env},
    )
    return res.stderr


def test_cli_bar_forced_and_quiet(tmp_path: Path) -> None:
    pytest.importorskip("tqdm", reason="bars need tqdm (the [progress] extra)")
    err = _init(tmp_path, env={"DARKWEIGHTS_PROGRESS": "1"})
    assert "init:" in err and "B/s" in err and "wrote" in err  # tqdm's "init: 100%|...| 2.3k/2.3k [...]"
    assert _init(tmp_path, "--quiet", env={"DARKWEIGHTS_PROGRESS": "1"}) == ""
    assert "init:" not in _init(tmp_path, env={"DARKWEIGHTS_PROGRESS": "0"})


def test_every_subcommand_takes_quiet() -> None:
    from darkweights.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert any("--quiet" in a.option_strings for a in p._actions), name
