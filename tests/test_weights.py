"""The .weights file: header rules, exact layout, zero-copy reading, byte-exact writing."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings

import numpy as np
import pytest

import darkweights as dw
from darkweights.synth import init
from darkweights.weightsfile import Header

from .conftest import DATA, FIXTURES, MODELS, SHARED_CFG, fixture_cases, need_shared, shipped_cfgs, write_cfg

NET = "[net]\nwidth=8\nheight=8\nchannels=2\n"


def sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize(
    "major, minor, dialect, width",
    [
        (0, 1, "alexeyab", 4),
        (0, 2, "alexeyab", 8),
        (1, 0, "alexeyab", 8),
        (0, 1000, "alexeyab", 8),
        (0, 1001, "pjreddie", 4),
        (1001, 0, "pjreddie", 4),
        (0, 2, "pjreddie", 8),
        (0, 1, "pjreddie", 4),
    ],
)
def test_seen_width(major, minor, dialect, width):
    assert Header.seen_width(major, minor, dialect) == width


def test_conv_block_order_and_offsets(tmp_path):
    """biases, scales, rolling_mean, rolling_variance, weights (§2.1.1), offsets from the 20-byte header."""
    cfg = write_cfg(
        tmp_path,
        NET + "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
        "[connected]\noutput=3\nbatch_normalize=1\nactivation=linear\n",
    )
    net = dw.load(cfg)
    layout = [(p.key, p.shape, p.offset) for p in net.layout()]
    assert layout == [
        ("layer_000.biases", (4,), 20),
        ("layer_000.scales", (4,), 36),
        ("layer_000.rolling_mean", (4,), 52),
        ("layer_000.rolling_variance", (4,), 68),
        ("layer_000.weights", (4, 2, 3, 3), 84),
        ("layer_001.biases", (3,), 372),
        ("layer_001.weights", (3, 256), 384),  # connected: BN after the weights
        ("layer_001.scales", (3,), 3456),
        ("layer_001.rolling_mean", (3,), 3468),
        ("layer_001.rolling_variance", (3,), 3480),
    ]
    assert net.weights_bytes() == 3492
    # the data really sits there: write a file with known values and read it back
    body = np.arange((3492 - 20) // 4, dtype="<f4")
    f = tmp_path / "w.weights"
    f.write_bytes(Header().to_bytes() + body.tobytes())
    net.load_weights(f)
    arrays = net.arrays()
    assert arrays["layer_000.scales"].tolist() == [4, 5, 6, 7]
    assert arrays["layer_001.weights"][1, 0] == (384 - 20) // 4 + 256
    assert isinstance(arrays["layer_000.weights"].base, np.ndarray)  # a view of the memmap, not a copy
    assert np.shares_memory(arrays["layer_000.weights"], net.arrays()["layer_000.weights"])


def test_legacy_header_and_transpose(tmp_path):
    """0.1 files have a 16-byte header; major/minor > 1000 store connected weights transposed (§1.3-1.4)."""
    cfg = write_cfg(tmp_path, NET + "[connected]\noutput=3\nactivation=linear\n")
    net = dw.load(cfg)
    w = np.arange(3 * 128, dtype="<f4").reshape(3, 128)
    old = tmp_path / "old.weights"
    old.write_bytes(struct.pack("<iiiI", 0, 1, 0, 7) + np.zeros(3, "<f4").tobytes() + w.tobytes())
    net.load_weights(old)
    assert net.header.size == 16 and net.header.seen == 7
    assert np.array_equal(net.arrays()["layer_000.weights"], w)
    tr = tmp_path / "tr.weights"  # AB rule: minor 1001 >= 2 -> 8-byte seen
    tr.write_bytes(struct.pack("<iiiQ", 0, 1001, 0, 0) + np.zeros(3, "<f4").tobytes() + w.T.copy().tobytes())
    net.load_weights(tr)
    assert net.header.transpose and net.header.size == 20
    assert np.array_equal(net.arrays()["layer_000.weights"], w)  # logical (outputs, inputs): a zero-copy .T
    out = tmp_path / "tr2.weights"
    dw.save_weights(net, out)
    assert out.read_bytes() == tr.read_bytes()  # header preserved, written transposed again
    pj = dw.load(cfg, dialect="pjreddie")
    with pytest.raises(dw.WeightsError, match="4 trailing bytes"):
        pj.load_weights(tr)  # pjreddie reads a 4-byte seen when minor > 1000
    tr.write_bytes(struct.pack("<iiiI", 0, 1001, 0, 0) + np.zeros(3, "<f4").tobytes() + w.T.copy().tobytes())
    pj.load_weights(tr)
    assert pj.header.size == 16 and np.array_equal(pj.arrays()["layer_000.weights"], w)


def test_storage_asymmetries(tmp_path):
    text = NET + (
        "[convolutional]\nfilters=2\nsize=1\nactivation=linear\ndontload=1\n"
        "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nactivation=linear\ndontloadscales=1\n"
        "[shortcut]\nfrom=-2\nweights_type=per_channel\nweights_normalization=softmax\n"
        "[maxpool]\nsize=2\nstride=2\nantialiasing=1\n"
        "[convolutional]\nfilters=2\nsize=1\nactivation=linear\nshare_index=1\n"
        "[implicit]\nfilters=3\n"
    )
    net = dw.load(write_cfg(tmp_path, text))
    load = [p.key for p in net.layout(mode="load")]
    save = [p.key for p in net.layout(mode="save")]
    assert load == ["layer_001.biases", "layer_001.weights", "layer_002.weights", "layer_005.weights"]
    assert save == [
        "layer_000.biases",
        "layer_000.weights",
        "layer_001.biases",
        "layer_001.scales",
        "layer_001.rolling_mean",
        "layer_001.rolling_variance",
        "layer_001.weights",
        "layer_002.weights",
        "layer_005.weights",
    ]
    assert net.layers[2].arrays()[0].shape == (2, 2)  # (from count + 1) x channels


@pytest.mark.parametrize("case", fixture_cases() or ["(fixtures absent)"])
def test_fixture_weights_roundtrip(case, tmp_path, quiet):
    """Every weights file Darknet wrote reads with exact size accounting and re-writes byte-identically."""
    d = need_shared(FIXTURES / case)
    net = dw.load(d / "model.cfg", d / "model.weights")
    assert net.params()[-1].end == (d / "model.weights").stat().st_size
    out = tmp_path / "out.weights"
    dw.save_weights(net, out)
    assert sha(out) == sha(d / "model.weights")


@pytest.mark.parametrize("model", ["yolo-fastest-1.1", "yolo-fastest-1.1-xl"])
def test_real_models(model, tmp_path):
    d = need_shared(MODELS / model)
    net = dw.load(d / f"{model}.cfg", d / f"{model}.weights")
    assert net.header.seen > 0 and net.cutoff is None
    var = [a for k, a in net.arrays().items() if k.endswith("rolling_variance")]
    assert var and all((v > 0).all() for v in var)
    out = tmp_path / "out.weights"
    dw.save_weights(net, out)
    assert sha(out) == sha(d / f"{model}.weights")


def test_bundled_model_roundtrip(tmp_path):
    m = dw.default_model()
    net = dw.load(m.cfg, m.weights)
    assert len(net.layers) == 131 and net.weights_bytes() == m.weights.stat().st_size == 1_384_268
    out = tmp_path / "b.weights"
    dw.save_weights(net, out)
    assert out.read_bytes() == m.weights.read_bytes()


def test_partial_file_detected(tmp_path):
    net = dw.load(DATA / "yolov3-tiny.cfg")
    full = tmp_path / "full.weights"
    init(net, full, seed=3)
    cut = net.layout(cutoff=9)[-1].end
    part = tmp_path / "yolov3-tiny.conv.9"
    part.write_bytes(full.read_bytes()[:cut])
    # layer 9 is a maxpool (no weights), so the file holds layers 0..9: Darknet's .conv.9 and .conv.10 are equal
    with pytest.warns(dw.DarkweightsWarning, match=r"partial weights file: holds layers 0..9 .*\.conv\.10"):
        net2 = dw.load(DATA / "yolov3-tiny.cfg", part)
    assert net2.cutoff == 10 and max(p.layer for p in net2.params()) == 8
    out = tmp_path / "again.conv.9"
    dw.save_weights(net2, out)
    assert out.read_bytes() == part.read_bytes()
    # an explicit cutoff reads only the first layers of a file, like darknet's load_weights_upto
    net3 = dw.load(DATA / "yolov3-tiny.cfg", part, cutoff=9)
    assert net3.cutoff == 9
    net4 = dw.load(DATA / "yolov3-tiny.cfg", full, cutoff=9)
    assert net4.cutoff == 9 and net4.params()[-1].end == cut
    out4 = tmp_path / "cut4.conv.9"
    dw.save_weights(net4, out4)
    assert out4.read_bytes() == part.read_bytes()  # = darknet partial cfg weights out 9


def test_init_values_are_sensible(tmp_path):
    net = dw.load(DATA / "yolov4-tiny.cfg", width=96, height=96)
    f = tmp_path / "r.weights"
    assert init(net, f, seed=1) == f.stat().st_size == net.weights_bytes()
    net.load_weights(f)
    a = net.arrays()
    assert all((v > 0).all() for k, v in a.items() if k.endswith(("rolling_variance", "scales")))
    w = a["layer_000.weights"]
    assert np.abs(w).max() <= np.sqrt(3 / 27) and w.std() > 0.1
    g = tmp_path / "r2.weights"
    init(net, g, seed=1)
    assert f.read_bytes() == g.read_bytes()  # deterministic for a seed


def _roundtrip_ids() -> list[str]:
    return shipped_cfgs() or ["(shared cfgs absent)"]


@pytest.mark.parametrize("cfg", _roundtrip_ids())
def test_init_read_write_is_byte_identical(cfg):
    """init -> read -> write gives the same bytes for every cfg Darknet accepts (and the pjreddie ResNets)."""
    path = need_shared(SHARED_CFG / cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        try:
            net = dw.load(path)
        except dw.ShapeError:
            net = dw.load(path, dialect="pjreddie")  # cross-resolution ResNet shortcuts
        # classifiers with [connected] layers: a small input keeps the file small
        if any(L.type in ("connected", "local") for L in net.layers) and net.width >= 64:
            try:
                net = dw.load(path, width=64, height=64, dialect=net.dialect)
            except dw.ShapeError:
                pass
    # in memory: the biggest cfgs need 1.1 GB files, more than a CI machine's disk may have free
    src = io.BytesIO()
    n = init(net, src, seed=7)
    assert n == src.tell() == net.weights_bytes()
    data = src.getbuffer()
    net.load_weights(data)
    out = io.BytesIO()
    assert dw.save_weights(net, out) == n
    assert np.array_equal(np.frombuffer(out.getbuffer(), np.uint8), np.frombuffer(data, np.uint8))
    del data


def test_file_ending_inside_a_layer_is_not_partial(tmp_path):
    net = dw.load(DATA / "yolov3-tiny.cfg")
    full = tmp_path / "full.weights"
    init(net, full, seed=3)
    biases_end = net.layout()[0].end  # after layer 0's biases, before its BN arrays
    cut = tmp_path / "cut.weights"
    cut.write_bytes(full.read_bytes()[:biases_end])
    with pytest.raises(dw.WeightsError, match="file ends inside array scales"):
        dw.load(DATA / "yolov3-tiny.cfg", cut)


def test_weights_in_memory_are_viewed_read_only_and_written_to_open_files(tmp_path):
    """load(weights=bytes) views the caller's buffer without copying or modifying it; saving to an open file."""
    net = dw.load(DATA / "yolov3-tiny.cfg", width=96, height=96)
    f = tmp_path / "a.weights"
    init(net, f, seed=5)
    data = bytearray(f.read_bytes())
    before = bytes(data)
    mem = dw.load(DATA / "yolov3-tiny.cfg", data, width=96, height=96)
    assert mem.weights_path is None and mem.has_weights
    arrays = mem.arrays()
    w = arrays["layer_000.weights"]
    assert np.shares_memory(w, np.frombuffer(data, np.uint8))  # zero-copy
    assert not w.flags.writeable
    with pytest.raises(ValueError):
        w[0, 0, 0, 0] = 1.0
    disk = dw.load(DATA / "yolov3-tiny.cfg", f, width=96, height=96).arrays()
    assert all(np.array_equal(disk[k], v) for k, v in arrays.items())
    # writing to an open binary file (stdout, BytesIO ...) gives the same bytes as writing to a path
    out = io.BytesIO()
    assert dw.save_weights(mem, out) == len(data)
    assert out.getvalue() == before
    with open(tmp_path / "b.weights", "wb") as g:
        dw.save_weights(mem, g)
    assert (tmp_path / "b.weights").read_bytes() == before
    assert bytes(data) == before


def test_in_memory_errors_name_the_buffer():
    net = dw.load(DATA / "yolov3-tiny.cfg")
    buf = io.BytesIO()
    init(net, buf, seed=1)
    with pytest.raises(dw.WeightsError, match=r"<\d[\d,]* bytes in memory>.*file ends inside array"):
        net.load_weights(buf.getvalue()[:-8])
    with pytest.raises(dw.WeightsError, match="HTML page"):
        net.load_weights(b"<!DOCTYPE html><html>" + b" " * 64)
    with pytest.raises(dw.WeightsError, match="path or a bytes-like object, not int"):
        net.load_weights(42)
