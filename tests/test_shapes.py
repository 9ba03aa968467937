"""Shape inference against Darknet's own layer table, and the geometry rules of spec §3."""

from __future__ import annotations

import json
import warnings

import pytest

import darkweights as dw
from darkweights.cli import main
from darkweights.report import inspect_report

from .conftest import DATA, SHARED_CFG, darknet_shapes, need_shared, shipped_cfgs, write_cfg

NET = "[net]\nwidth={w}\nheight={h}\nchannels={c}\n"


def _load_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        return dw.load(path, **kw)


@pytest.mark.parametrize("cfg", shipped_cfgs() or ["(shared cfgs absent)"])
def test_every_shipped_cfg_matches_darknet(cfg):
    """inspect --json equals Darknet's layer table and file size, layer for layer."""
    need_shared(SHARED_CFG / cfg)
    ref = darknet_shapes(cfg)
    if "error" in ref:
        if "parse_shortcut" in ref["error"]:
            # AB asserts on cross-resolution shortcuts; so do we, naming the layer; pjreddie's rule builds them
            with pytest.raises(dw.ShapeError, match=r"layer 17 \[shortcut\].*pjreddie"):
                _load_quiet(SHARED_CFG / cfg, dialect="alexeyab")
            net = _load_quiet(SHARED_CFG / cfg, dialect="pjreddie")
            assert len(net.layers) > 17
            auto = _load_quiet(SHARED_CFG / cfg)  # only pjreddie builds it: auto picks it and says why
            assert auto.dialect.name == "pjreddie" and auto.weights_bytes() == net.weights_bytes()
            assert "not AlexeyAB or hank-ai: [shortcut] at line " in auto.dialect_choice.describe()
        else:
            # Darknet divides by zero on all-flat recurrent nets; the layout itself is well defined
            net = _load_quiet(SHARED_CFG / cfg)
            assert net.weights_bytes() > 20
        return
    net = _load_quiet(SHARED_CFG / cfg)
    assert net.dialect.name == "alexeyab", net.dialect_choice.describe()  # auto: every cfg AB accepts is AB's
    report = inspect_report(net)
    keys = ("index", "type", "out_c", "out_h", "out_w", "outputs")
    got = [{k: L[k] for k in keys} for L in report["layers"]]
    want = [{k: L[k] for k in keys} for L in ref["layers"]]
    assert got == want
    assert report["weights_bytes"] == ref["weights_bytes"]
    assert report["params"] == ref["params"]


def test_official_file_sizes():
    """The sizes of the official released yolov3.weights and yolov4.weights."""
    assert dw.load(DATA / "yolov4.cfg").weights_bytes() == 257_717_640
    assert dw.load(DATA / "yolov4-tiny.cfg").weights_bytes() == 24_251_276
    assert dw.load(DATA / "yolov3-tiny.cfg").weights_bytes() == 35_434_956


def test_inspect_json_cli(capsys):
    assert main(["inspect", str(DATA / "yolov4-tiny.cfg"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights_bytes"] == 24_251_276
    assert report["layers"][3] | {} == report["layers"][3]
    route = report["layers"][3]
    assert (route["type"], route["out_c"], route["out_h"], route["out_w"]) == ("route", 32, 104, 104)
    assert report["layers"][30]["type"] == "yolo" and report["layers"][30]["out_c"] == 255
    # first conv: biases at 20, BN arrays, then weights
    arrays = report["layers"][0]["arrays"]
    assert [(a["name"], a["offset"]) for a in arrays] == [
        ("biases", 20),
        ("scales", 148),
        ("rolling_mean", 276),
        ("rolling_variance", 404),
        ("weights", 532),
    ]


@pytest.mark.parametrize(
    "w, size, stride, padding, expect",
    [
        (13, 2, 2, None, 7),
        (26, 2, 2, None, 13),
        (13, 2, 1, None, 13),
        (13, 3, 2, None, 7),
        (26, 3, 2, None, 13),
        (13, 5, 1, None, 13),
        (13, 13, 1, None, 13),
        (10, 3, 2, 0, 4),
        (10, 4, 3, None, 4),
    ],
)
def test_maxpool_geometry(tmp_path, w, size, stride, padding, expect):
    pad = "" if padding is None else f"padding={padding}\n"
    cfg = write_cfg(tmp_path, NET.format(w=w, h=w, c=2) + f"[maxpool]\nsize={size}\nstride={stride}\n{pad}")
    assert dw.load(cfg).layers[0].output.chw == (2, expect, expect)


def test_geometry_rules(tmp_path):
    text = (
        NET.format(w=64, h=48, c=5)
        + """
[convolutional]
filters=8
size=3
stride_x=2
stride_y=1
pad=1
activation=linear
[upsample]
stride=-4
[convolutional]
filters=8
size=2
pad=1
activation=linear
[route]
layers=0,-3
[route]
layers=0
groups=2
group_id=1
[reorg3d]
stride=2
[maxpool]
maxpool_depth=1
out_channels=3
[convolutional]
filters=4
size=7
stride=1
activation=linear
[avgpool]
[connected]
output=10
activation=linear
[softmax]
groups=2
"""
    )
    net = dw.load(write_cfg(tmp_path, text))
    shapes = [L.output.chw for L in net.layers]
    assert shapes[0] == (8, 48, 32)  # stride_x=2, stride_y=1
    assert shapes[1] == (8, 12, 8)  # downsample by 4 (sum pooling)
    assert shapes[2] == (8, 13, 9)  # even kernel, pad=1 -> size/2 = 1 per side
    assert net.layers[3].output.size == 8 * 48 * 32 * 2 and shapes[3] == (16, 48, 32)
    assert shapes[4] == (4, 48, 32)  # second half of the channels
    assert shapes[5] == (16, 24, 16)
    assert shapes[6] == (3, 24, 16)
    assert shapes[7] == (4, 18, 10)
    assert shapes[8] == (4, 1, 1)
    assert net.layers[9].arrays()[1].shape == (10, 4)  # connected inputs = previous outputs
    assert net.layers[10].output.size == 10 and not net.layers[10].output.is_image
    assert net.layers[0].arrays()[-1].shape == (8, 5, 3, 3)  # 5 input channels


def test_kernel_larger_than_input_uses_c_division(tmp_path):
    # (3 + 0 - 5) / 1 + 1: C truncation gives 0 + 1 = 1 row? no: -2/1 = -2 -> -1 rows -> error
    cfg = write_cfg(tmp_path, NET.format(w=3, h=3, c=1) + "[convolutional]\nfilters=1\nsize=5\nactivation=linear\n")
    with pytest.raises(dw.ShapeError, match=r"t.cfg:5, layer 0 \[convolutional\]: kernel 5 .*leaves no output"):
        dw.load(cfg)
    # (3 + 2 - 4)/2 + 1 = 1 (C truncation of 1/2)
    cfg = write_cfg(
        tmp_path,
        NET.format(w=3, h=3, c=1) + "[convolutional]\nfilters=1\nsize=4\nstride=2\npadding=1\nactivation=linear\n",
    )
    assert dw.load(cfg).layers[0].output.chw == (1, 1, 1)


def test_impossible_geometry_names_layer(tmp_path):
    cfg = write_cfg(
        tmp_path,
        NET.format(w=32, h=32, c=3) + "[convolutional]\nfilters=30\nsize=1\nactivation=linear\n"
        "[yolo]\nclasses=80\nmask=0,1,2\nnum=3\n",
    )
    with pytest.raises(dw.ShapeError) as err:
        dw.load(cfg)
    msg = str(err.value)
    assert "t.cfg:9, layer 1 [yolo]" in msg and "filters=255" in msg and "30x32x32" in msg
    cfg = write_cfg(
        tmp_path, NET.format(w=32, h=32, c=3) + "[convolutional]\nfilters=4\nactivation=linear\n[route]\nlayers=-1,5\n"
    )
    with pytest.raises(dw.ShapeError, match="layers refers to layer 5 -> 5, which is not an earlier layer"):
        dw.load(cfg)


def test_route_many_inputs_and_absolute_indexes():
    net = dw.load(DATA / "yolov4.cfg")
    spp = net.layers[113]  # layers=-1,-3,-5,-6 -> 4 inputs
    assert spp.type == "route" and spp.reads() == [112, 110, 108, 107] and spp.output.c == 2048
    assert net.layers[119].reads() == [85] and net.layers[129].reads() == [54]  # positive index = absolute


def test_antialiasing_and_share_index():
    net = _load_quiet(DATA / "synth_geometry.cfg")
    aa = [L for L in net.layers if getattr(L, "antialiasing", 0)]
    assert aa, "synth_geometry has antialiased layers"
    for L in aa:
        assert L.next_input != L.output  # Darknet reports the stride-1 geometry
        assert all("blur" not in s.name for s in L.arrays())
    shared = [L for L in net.layers if getattr(L, "share_index", None) is not None]
    assert shared and all(L.arrays() == [] for L in shared)
    trident = dw.load(DATA / "resnet152_trident.cfg")
    assert sum(1 for L in trident.layers if getattr(L, "share_index", None) is not None) == 54
