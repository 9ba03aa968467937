"""The CLI contract: a user error is one line ``darkweights: error: ...`` and exit 2, a verification
failure exit 1, ``| head`` a quiet 141, ``--debug`` the traceback; for every subcommand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import darkweights as dw
from darkweights.synth import init

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}

TINY = "[net]\nwidth=16\nheight=16\nchannels=3\n[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"


def cli(*args, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "darkweights", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=120
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "ok.cfg").write_text(TINY)
    init(dw.load(d / "ok.cfg"), d / "ok.weights", seed=0)
    (d / "bad.cfg").write_text(TINY.replace("filters=4", "filters=abc"))
    (d / "short.weights").write_bytes((d / "ok.weights").read_bytes()[:50])
    (d / "page.weights").write_bytes(b"<!DOCTYPE html><html>404</html>")
    (d / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + bytes(40))
    (d / "ramp.cfg").write_text(TINY.replace("leaky", "ramp"))
    init(dw.load(d / "ramp.cfg"), d / "ramp.weights", seed=0)
    (d / "flat.cfg").write_text("[net]\ninputs=12\n[connected]\noutput=5\nactivation=leaky\n[softmax]\n")
    init(dw.load(d / "flat.cfg"), d / "flat.weights", seed=0)
    fx = d / "fixture"
    fx.mkdir()
    (fx / "layers.json").write_text("{}")
    (fx / "model.cfg").write_text(TINY)
    (fx / "model.weights").write_bytes((d / "ok.weights").read_bytes())
    (fx / "input.npy").write_bytes(b"\x80\x04garbage")  # a pickle, never loaded
    return d


def bad_invocations(d: Path) -> list[list]:
    return [
        ["inspect", d / "bad.cfg"],
        ["inspect", d / "ok.cfg", d / "short.weights"],
        ["inspect", d / "missing.cfg"],
        ["extract", d / "ok.cfg", d / "page.weights", "-o", d / "x.npz"],
        ["extract", d / "ok.cfg", d / "ok.weights", "-o", d / "x.txt"],
        ["extract", d / "ok.cfg", d / "ok.weights", "-o", d / "x.npz", "--layers", "a-b"],
        ["pack", d / "bad.npz", "-o", d / "x.weights"],
        ["pack", d / "ok.cfg", d / "bad.npz", "-o", d / "x.weights", "--header", "1,two,3"],
        ["init", d / "bad.cfg", "-o", d / "x.weights"],
        ["init", d / "ok.cfg", "-o", d / "no" / "dir" / "x.weights"],
        ["verify", d / "ok.cfg"],
        ["verify", d / "ok.cfg", d / "short.weights", "--against", "opencv"],
        ["verify", "--fixture", d / "nowhere"],
        ["verify", "--fixture", d / "fixture"],
        ["verify", d / "ramp.cfg", d / "ramp.weights", "--against", "opencv"],
        ["detect", d / "ok.cfg", d / "ok.weights", d / "bad.jpg"],
        ["detect", d / "missing.jpg"],
    ]


def run(capsys, *args) -> tuple[int, str, str]:
    """In-process (an exception escaping ``main`` fails the test: that would be a traceback)."""
    from darkweights.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_subcommand_fails_in_one_line(files, capsys):
    for args in bad_invocations(files):
        code, _, err = run(capsys, *args)
        where = " ".join(map(str, args))
        assert code == 2, (where, err)
        lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("darkweights: error: "), (where, err)
    assert sorted(p.name for p in files.iterdir() if p.name.startswith("x")) == []
    proc = cli(*bad_invocations(files)[1])  # and through the console entry point
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_opencv_unsupported_and_flat_input(files, capsys):
    pytest.importorskip("cv2")
    pytest.importorskip("torch")
    code, _, err = run(capsys, "verify", files / "ramp.cfg", files / "ramp.weights", "--against", "opencv")
    assert code == 2 and "OpenCV" in err and "ramp" in err and err.count("\n") == 1, err
    # a cfg giving only inputs= (pjreddie's gru/rnn style) runs, layer by layer
    code, out, err = run(capsys, "verify", files / "flat.cfg", files / "flat.weights", "--against", "opencv")
    assert code == 0, err
    assert "OK, 2 layers compared" in out


def test_broken_pipe_is_quiet(files):
    cmd = (
        f"{sys.executable} -m darkweights inspect {files / 'ok.cfg'} {files / 'ok.weights'} --json --stats | head -c 10"
    )
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True, env=ENV)
    assert len(proc.stdout) == 10
    assert proc.stderr == "" and proc.returncode in (0, 141), proc.stderr


def test_debug_shows_the_traceback(files):
    for args in (["--debug", "inspect", files / "bad.cfg"], ["inspect", files / "bad.cfg", "--debug"]):
        proc = cli(*args)
        assert proc.returncode != 0 and "Traceback" in proc.stderr and "CfgError" in proc.stderr
    proc = cli("inspect", files / "bad.cfg")
    assert "Traceback" not in proc.stderr


def test_internal_errors_are_one_line_too(monkeypatch, capsys, files):
    from darkweights import cli as cli_module

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(cli_module.command("inspect"), "run", boom)
    assert cli_module.main(["inspect", str(files / "ok.cfg")]) == cli_module.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error KeyError" in err and "--debug" in err
