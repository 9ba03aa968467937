"""Atomic outputs: killed, interrupted or terminated mid-write, a disk that fills up, an output that
exists or is an input: nothing partial ever appears, inputs never change."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import darkweights as dw
from darkweights import atomic
from darkweights.atomic import atomic_output
from darkweights.errors import DarkweightsError, OutputError
from darkweights.synth import init

from .conftest import DATA

REPO = Path(__file__).resolve().parents[1]

# The child runs the real CLI; its writes are slowed (and copy_file_range disabled, so the
# safetensors copy goes through write() too) so that the signal lands mid-write for certain.
CHILD = r"""
import contextlib, os, signal, sys, time
# a shell running us in the background sets SIGINT to "ignore", inherited by the child: restore
# what an interactive run has, KeyboardInterrupt
signal.signal(signal.SIGINT, signal.default_int_handler)
import darkweights.atomic as A, darkweights.weightsfile as W, darkweights.export as E
real = A.atomic_output

class Slow:
    def __init__(self, f):
        self.f, self.n = f, 0
    def write(self, b):
        n = self.f.write(b)
        self.f.flush()
        self.n += 1
        if self.n == 2:
            print("writing", flush=True)
        time.sleep(0.2)
        return n
    def __getattr__(self, k):
        return getattr(self.f, k)

@contextlib.contextmanager
def slow(*a, **k):
    with real(*a, **k) as f:
        yield Slow(f)

W.atomic_output = E.atomic_output = slow
def no_copy(*a):
    raise OSError("disabled")
os.copy_file_range = no_copy
from darkweights.cli import main
sys.exit(main(sys.argv[1:]))
"""


def listing(path: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """yolov3-tiny at full size: a 35 MB weights file from a seed."""
    d = tmp_path_factory.mktemp("big")
    cfg = d / "model.cfg"
    cfg.write_bytes((DATA / "yolov3-tiny.cfg").read_bytes())
    init(dw.load(cfg), d / "model.weights", seed=3)
    return cfg, d / "model.weights"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["KILL", "INT", "TERM"])
@pytest.mark.parametrize("what", ["weights", "safetensors"])
def test_signal_mid_write_leaves_nothing(big, sig, what, tmp_path):
    cfg, weights = big
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "model.cfg").write_bytes(cfg.read_bytes())
    (out_dir / "model.weights").write_bytes(weights.read_bytes())
    before = listing(out_dir)
    if what == "weights":
        args = ["init", out_dir / "model.cfg", "-o", out_dir / "new.weights"]
    else:
        args = ["extract", out_dir / "model.cfg", out_dir / "model.weights", "-o", out_dir / "new.safetensors"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        # the partial output exists now, as an open file of the child
        sizes = (
            [
                os.stat(f"/proc/{proc.pid}/fd/{fd}").st_size
                for fd in os.listdir(f"/proc/{proc.pid}/fd")
                if os.path.realpath(f"/proc/{proc.pid}/fd/{fd}").startswith(str(out_dir))
            ]
            if os.path.isdir(f"/proc/{proc.pid}/fd")
            else [1]
        )
        assert max(sizes) > 0
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err
    assert "Traceback" not in err
    assert listing(out_dir) == before  # no output, no temporary file, inputs unchanged


@pytest.fixture(params=["O_TMPFILE", "named temporary"])
def mode(request, monkeypatch):
    if request.param == "named temporary":
        monkeypatch.setattr(atomic, "_open_anonymous", lambda directory: None)
    elif atomic._open_anonymous(".") is None:
        pytest.skip("this filesystem has no O_TMPFILE")
    return request.param


def test_exception_and_interrupt_leave_nothing(tmp_path, mode):
    target = tmp_path / "x.weights"
    target.write_bytes(b"old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt(), atomic.Terminated()):
        with pytest.raises(type(exc)):
            with atomic_output(target) as f:
                f.write(b"new partial data" * 1000)
                raise exc
        assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["x.weights"]
    with atomic_output(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["x.weights"]
    assert (target.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_disk_full_is_one_clear_error(tmp_path, mode, monkeypatch):
    """ENOSPC (simulated: a file object whose writes fail once 1 MB is written, as on a full tmpfs)."""
    import io

    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, fd):
            self.raw = real_fdopen(fd, "wb", buffering=0)
            self.written = 0

        def writable(self):
            return True

        def write(self, b):
            if self.written + len(b) > 1 << 20:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(b)
            return self.raw.write(b)

        def fileno(self):
            return self.raw.fileno()

        def close(self):
            self.raw.close()
            super().close()

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode="wb": io.BufferedWriter(Full(fd)))
    cfg = tmp_path / "m.cfg"
    cfg.write_bytes((DATA / "yolov3-tiny.cfg").read_bytes())
    out = tmp_path / "m.weights"
    with pytest.raises(OutputError, match="disk full") as info:
        init(dw.load(cfg), out)
    assert info.value.file == str(out)
    assert sorted(os.listdir(tmp_path)) == ["m.cfg"]
    from darkweights.cli import main

    assert main(["init", str(cfg), "-o", str(out)]) == 2
    assert sorted(os.listdir(tmp_path)) == ["m.cfg"]


def test_existing_output_needs_force_and_inputs_are_refused(tmp_path, capsys):
    from darkweights.cli import main

    cfg = tmp_path / "m.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n")
    w = tmp_path / "m.weights"
    assert main(["init", str(cfg), "-o", str(w)]) == 0
    data = w.read_bytes()
    for argv in (
        ["init", str(cfg), "-o", str(w), "--seed", "4"],
        ["extract", str(cfg), str(w), "-o", str(tmp_path / "m.npz")],
    ):
        capsys.readouterr()
        if argv[0] == "extract":
            (tmp_path / "m.npz").write_bytes(b"keep")
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "exists: pass --force" in err
    assert w.read_bytes() == data and (tmp_path / "m.npz").read_bytes() == b"keep"
    assert main(["init", str(cfg), "-o", str(w), "--seed", "4", "--force"]) == 0
    assert w.read_bytes() != data
    capsys.readouterr()
    for argv in (
        ["init", str(cfg), "-o", str(cfg), "--force"],
        ["extract", str(cfg), str(w), "-o", str(w), "--force"],
        ["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.npz"), "--force"],
    ):
        assert main(argv) == 2
        assert "one of the inputs" in capsys.readouterr().err
    with pytest.raises(OutputError, match="one of the inputs"):
        dw.load(cfg, w).save_weights(w)
    assert issubclass(OutputError, DarkweightsError) and issubclass(OutputError, OSError)


def test_sigterm_handler_is_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with atomic_output(tmp_path / "a.json", "w") as f:
        assert signal.getsignal(signal.SIGTERM) is not before
        f.write("{}")
    assert signal.getsignal(signal.SIGTERM) is before
    assert (tmp_path / "a.json").read_text() == "{}"


# -- SIGINT at every stage of export; no-clobber as one link -----------------------------------------------

STAGE_CHILD = r"""
import os, signal, sys
# as in a script's background job: SIGINT inherited as ignored (darkweights installs its own handler)
signal.signal(signal.SIGINT, signal.SIG_IGN)
stage, swallow, args = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
import importlib
module, name = {
    "load": ("darkweights.network", "load"),
    "build": ("darkweights.torch", "build"),
    "trace": ("darkweights.onnx.trace", "trace_model"),
    "check": ("onnx.checker", "check_model"),
    "write": ("darkweights.onnx.writer", "write_model"),
}[stage]
mod = importlib.import_module(module)
real = getattr(mod, name)
def interrupted(*a, **k):
    os.kill(os.getpid(), signal.SIGINT)
    if swallow:  # library code that catches everything (as torch's tracer may): the signal must still count
        try:
            for _ in range(10**6):
                pass
        except KeyboardInterrupt:
            pass
    return real(*a, **k)
setattr(mod, name, interrupted)
from darkweights.cli import main
sys.exit(main(args))
"""


@pytest.mark.parametrize("swallow", [False, True], ids=["raised", "swallowed"])
@pytest.mark.parametrize("stage", ["load", "build", "trace", "check", "write"])
def test_sigint_at_every_export_stage(stage, swallow, tmp_path):
    """A SIGINT at any stage of `export` (also one that library code swallows, also when the process started
    with SIGINT ignored): exit 130, the old output intact, no temporary file."""
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    cfg = tmp_path / "m.cfg"
    cfg.write_text(
        "[net]\nwidth=16\nheight=16\nchannels=3\n[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
        "[maxpool]\nsize=2\nstride=2\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
    )
    init(dw.load(cfg), tmp_path / "m.weights")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"the old output")
    before = listing(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    args = ["export", str(cfg), str(tmp_path / "m.weights"), "-o", str(out), "--force"]
    proc = subprocess.run(
        [sys.executable, "-c", STAGE_CHILD, stage, "1" if swallow else "0", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "darkweights: interrupted"
    assert listing(tmp_path) == before


RACE_CHILD = r"""
import sys, time
import darkweights.weightsfile as W
real = W.atomic_output
import contextlib
@contextlib.contextmanager
def slow(*a, **k):
    with real(*a, **k) as f:
        yield f
        time.sleep(float(sys.argv[1]))  # both writers are past the early check now
W.atomic_output = slow
from darkweights.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_no_clobber_is_one_link(tmp_path):
    """Two writers without --force to the same new path: one wins, the other exits 2 ('exists') and the
    winner's file is whole (the name is given by a link that fails if it exists, not a check then a rename)."""
    cfg = tmp_path / "m.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n")
    out = tmp_path / "new.weights"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_CHILD, delay, "init", str(cfg), "-o", str(out), "--seed", seed],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for delay, seed in (("1.0", "1"), ("2.0", "2"))
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 2], results
    assert "exists: pass --force" in results[1][1]
    buf = io.BytesIO()
    init(dw.load(cfg), buf, seed=1)
    assert out.read_bytes() == buf.getvalue()  # the first writer's file, whole
    assert sorted(os.listdir(tmp_path)) == ["m.cfg", "new.weights"]
    # with --force the later writer replaces it (atomically)
    with atomic.overwriting(True), atomic_output(out) as f:
        f.write(b"replaced")
    assert out.read_bytes() == b"replaced"
    with atomic.overwriting(False), pytest.raises(OutputError, match="exists"):
        with atomic_output(out) as f:
            f.write(b"not this")
    assert out.read_bytes() == b"replaced"
