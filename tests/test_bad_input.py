"""Every class of bad input: one clear line naming file, location and cause; exit 2; nothing left behind."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import darkweights as dw
from darkweights.cli import main
from darkweights.export import export_arrays
from darkweights.synth import init

from .conftest import DATA, write_cfg

TINY = """[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=4
size=1
activation=linear
"""


@pytest.fixture
def model(tmp_path):
    cfg = write_cfg(tmp_path, TINY, "tiny.cfg")
    weights = tmp_path / "tiny.weights"
    init(dw.load(cfg), weights, seed=1)
    return cfg, weights


def listing(path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def run_fail(capsys, args, *patterns):
    """Run the CLI, expect exit 2 and a one-line message matching every pattern."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    errors = [line for line in err if line.startswith("darkweights: error:")]
    assert len(errors) == 1, err
    for pat in patterns:
        assert pat in errors[0], (pat, errors[0])
    return errors[0]


def test_truncated_weights(tmp_path, model, capsys):
    cfg, weights = model
    data = weights.read_bytes()
    weights.write_bytes(data[:300])
    before = listing(tmp_path)
    run_fail(
        capsys,
        ["extract", cfg, weights, "-o", tmp_path / "o.npz"],
        "tiny.weights, byte 300, layer 0 [convolutional]",
        "array weights (8, 3, 3, 3)",
        "missing",
        "truncated download",
    )
    assert listing(tmp_path) == before  # no output, inputs unchanged


def test_oversized_weights(tmp_path, model, capsys):
    cfg, weights = model
    with open(weights, "ab") as f:
        f.write(b"\0" * 12)
    run_fail(capsys, ["inspect", cfg, weights], "tiny.weights", "12 trailing bytes", "does not belong")


def test_mismatched_pair_names_first_misfit(tmp_path, model, capsys):
    cfg, weights = model
    other = write_cfg(tmp_path, TINY.replace("filters=8", "filters=16"), "other.cfg")
    # filters=16 doubles layer 0: the file runs out inside it
    msg = run_fail(
        capsys,
        ["inspect", other, weights],
        "tiny.weights",
        "layer 0 [convolutional]",
        "array weights (16, 3, 3, 3)",
        "missing",
    )
    assert "cfg line" in msg


def test_classes_changed(tmp_path, capsys, quiet):
    net = dw.load(DATA / "yolov4-tiny.cfg", width=64, height=64)
    w = tmp_path / "coco.weights"
    init(net, w, seed=0)
    voc = write_cfg(
        tmp_path,
        (DATA / "yolov4-tiny.cfg").read_text().replace("classes=80", "classes=20").replace("filters=255", "filters=75"),
        "voc.cfg",
    )
    run_fail(
        capsys,
        ["inspect", voc, w],
        "trailing bytes",
        "classes=/filters=",
        "These weights fit this cfg with classes=80 (filters=255 in the [convolutional] before each head)",
    )


@pytest.mark.parametrize(
    "content, what",
    [
        (b"<!DOCTYPE html><html><head><title>Sign in</title>", "HTML page"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n", "Git LFS pointer"),
        (b"[net]\nwidth=16\n", "cfg text"),
        (b"\0\0\0", "shorter than the 12-byte"),
        (b"\xff\xff\xff\x7f" * 5, "implausible version"),
    ],
)
def test_not_a_weights_file(tmp_path, model, capsys, content, what):
    cfg, weights = model
    weights.write_bytes(content)
    run_fail(capsys, ["inspect", cfg, weights], "tiny.weights", what)


@pytest.mark.parametrize(
    "text, pattern",
    [
        (TINY.replace("[maxpool]", "[maxpol]"), "tiny.cfg:13, layer 1: unknown section [maxpol]"),
        (
            TINY.replace("activation=leaky", "activation=Leaky"),
            "tiny.cfg:11, layer 0 [convolutional]: unknown activation",
        ),
        (TINY.replace("size=1", "size1"), "tiny.cfg:19, layer 2 [convolutional]: malformed line"),
        (TINY + "[shortcut]\nfrom=-1\nweights_type=per_pixel\n", "tiny.cfg:23, layer 3 [shortcut]: weights_type"),
        (TINY + "[route]\nlayers=-9\n", "tiny.cfg:22, layer 3 [route]: layers refers to layer -9"),
        (
            TINY.replace("pad=1", "pad=0").replace("width=16", "width=2"),
            "tiny.cfg:6, layer 0 [convolutional]: kernel 3 with padding 0 and stride 1x1 leaves no output",
        ),
    ],
)
def test_bad_cfg(tmp_path, capsys, text, pattern):
    cfg = write_cfg(tmp_path, text, "tiny.cfg")
    before = listing(tmp_path)
    run_fail(capsys, ["init", cfg, "-o", tmp_path / "x.weights"], pattern)
    assert listing(tmp_path) == before


def _export(tmp_path, model):
    cfg, weights = model
    arrays = dict(dw.load(cfg, weights).arrays(copy=True))
    return cfg, arrays


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda a: a.__setitem__("layer_000.scales", np.full(8, np.nan, "f4")), "layer_000.scales contains 8 NaN/Inf"),
        (
            lambda a: a.__setitem__("layer_002.weights", np.zeros((4, 8), "f4")),
            "layer_002.weights has shape (4, 8), expected (4, 8, 1, 1)",
        ),
        (lambda a: a.pop("layer_002.biases"), "array layer_002.biases (shape (4,)) is missing"),
        (lambda a: a.__setitem__("layer_000.biases", np.array(["a"] * 8)), "dtype <U1, expected float32"),
    ],
)
def test_pack_rejects_bad_arrays(tmp_path, model, capsys, edit, pattern):
    cfg, arrays = _export(tmp_path, model)
    edit(arrays)
    src = tmp_path / "edited.npz"
    np.savez(src, **arrays)
    before = listing(tmp_path)
    run_fail(capsys, ["pack", cfg, src, "-o", tmp_path / "out.weights"], pattern)
    assert listing(tmp_path) == before  # no out.weights, no temp file


def test_inf_in_state_dict_like_mapping(tmp_path, model):
    cfg, arrays = _export(tmp_path, model)
    arrays["layer_002.weights"][0, 0, 0, 0] = np.inf
    with pytest.raises(dw.ArrayError, match="layer_002.weights contains 1 NaN/Inf"):
        dw.save_weights(arrays, tmp_path / "o.weights", cfg=cfg)
    assert not (tmp_path / "o.weights").exists()


def test_hostile_safetensors(tmp_path, model, capsys):
    cfg, weights = model
    st = tmp_path / "a.safetensors"
    export_arrays(dw.load(cfg, weights), st)
    raw = bytearray(st.read_bytes())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 1 << 60) + raw[8:])
    run_fail(capsys, ["pack", cfg, bad, "-o", tmp_path / "o.weights"], "header length", "exceeds the file")
    bad.write_bytes(raw[:-40])  # data cut short: offsets point past the end
    run_fail(capsys, ["pack", cfg, bad, "-o", tmp_path / "o.weights"], "do not fit shape")
    assert not (tmp_path / "o.weights").exists()


def test_missing_files(tmp_path, capsys):
    run_fail(capsys, ["inspect", tmp_path / "nope.cfg"], "nope.cfg", "cannot read cfg")
    run_fail(
        capsys, ["inspect", DATA / "yolov3-tiny.cfg", tmp_path / "nope.weights"], "nope.weights", "cannot read weights"
    )


def test_unwritable_output(tmp_path, model, capsys):
    cfg, weights = model
    run_fail(capsys, ["init", cfg, "-o", tmp_path / "no" / "such" / "dir" / "x.weights"], "cannot write here")


def test_no_traceback_from_the_console_script(tmp_path, model):
    cfg, weights = model
    weights.write_bytes(weights.read_bytes()[:100])
    proc = subprocess.run(
        [sys.executable, "-m", "darkweights", "inspect", str(cfg), str(weights)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("darkweights: error: ") and "tiny.weights" in proc.stderr


def test_inputs_are_never_modified(tmp_path, model):
    cfg, weights = model
    before = listing(tmp_path)
    stat = os.stat(weights)
    net = dw.load(cfg, weights)
    for a in net.arrays().values():
        a[...] = 0  # copy-on-write views: writes never reach the file
    assert main(["extract", str(cfg), str(weights), "-o", str(tmp_path / "x.npz")]) == 0
    after = listing(tmp_path)
    after.pop("x.npz")
    assert after == before and os.stat(weights).st_mtime_ns == stat.st_mtime_ns


def test_absurd_cfg_sizes_fail_cleanly(tmp_path, capsys):
    over = write_cfg(
        tmp_path,
        "[net]\nwidth=8\nheight=8\nchannels=3\n[connected]\noutput=999999999999\nactivation=linear\n",
        "over.cfg",
    )
    run_fail(capsys, ["init", over, "-o", tmp_path / "huge.weights"], "over.cfg:6", "layer 0", "32-bit int")
    # every array within Darknet's int, 40 of them 8 GB each: more than any disk here has free
    cfg = write_cfg(
        tmp_path, "[net]\ninputs=46000\n" + "[connected]\noutput=46000\nactivation=linear\n" * 40, "huge.cfg"
    )
    run_fail(capsys, ["init", cfg, "-o", tmp_path / "huge.weights"], "huge.weights", "bytes are free")
    assert not (tmp_path / "huge.weights").exists()
    weights = tmp_path / "small.weights"
    weights.write_bytes(bytes(20) + bytes(400))
    # the cfg's size is never allocated: the file is checked against it first
    run_fail(capsys, ["extract", cfg, weights, "-o", tmp_path / "x.npz"], "small.weights", "missing")
