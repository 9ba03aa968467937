"""BFLOPs per layer and in total equal what a real AlexeyAB build prints when it loads the cfg.

The tables in tests/data/darknet_tables/ were printed by AlexeyAB Darknet (see the README there);
the cfgs are the bundled copies, so this always runs.
"""

from __future__ import annotations

import re

import pytest

import darkweights
from darkweights.flops import f32, layer_bflops, network_bflops
from darkweights.report import inspect

from .conftest import DATA

TABLES = DATA / "darknet_tables"
CASES = ["yolov4", "yolov4-tiny", "yolov7", "yolov3", "darknet19"]  # the last two are pjreddie's cfgs
LINE = re.compile(r"^\s*(\d+) (\S+).*?(\d+\.\d+) BF\s*$", re.M)


def darknet_table(name: str) -> tuple[dict[int, str], str, str]:
    text = (TABLES / f"{name}.txt").read_text()
    per = {int(m.group(1)): m.group(3) for m in LINE.finditer(text)}
    total = re.search(r"^Total BFLOPS\s+(\S+)", text, re.M).group(1)
    return per, total, text


@pytest.mark.parametrize("name", CASES)
def test_bflops_equal_alexeyab_printout(name):
    per, total, text = darknet_table(name)
    net = darkweights.load(name, dialect="alexeyab")
    assert len(per) > 20 and f"{len(net) - 1:4d} " in text  # the table covers the whole network
    ours, ours_total = network_bflops(net)
    printed = {i: f"{v:5.3f}".strip() for i, v in enumerate(ours) if v is not None}
    assert printed == per
    assert f"{ours_total:5.3f}" == total
    table = inspect(net)  # the report carries the same numbers, in the text and the JSON
    assert f"Total BFLOPS {total}" in table.to_text()
    assert f"{table.data['bflops']:5.3f}" == total
    assert {e["index"]: f"{e['bflops']:5.3f}".strip() for e in table.data["layers"] if e["bflops"] is not None} == per


def test_total_is_a_float32_sum():
    net = darkweights.load("yolov4", dialect="alexeyab")
    per, total = network_bflops(net)
    assert total == f32(total)
    assert abs(total - sum(v for v in per if v)) < 1e-3  # float32 accumulation, not an exact sum
    assert layer_bflops(net.layers[1]) == f32(2.0 * 3 * 3 * 32 * 64 * 304 * 304 / 1e9)  # conv 64 3x3/2 from 608x608x32


def test_weighted_shortcut_and_xnor_rules():
    cfg = """[net]
width=32
height=32
channels=4
[convolutional]
filters=4
size=3
pad=1
xnor=1
[convolutional]
filters=4
size=1
[shortcut]
from=-2
weights_type=per_channel
weights_normalization=relu
[maxpool]
size=2
stride=2
"""
    net = darkweights.load("x.cfg", cfg_text=cfg, dialect="alexeyab")
    conv, _, short, pool = network_bflops(net)[0]
    assert conv == f32(2.0 * 4 * 4 * 9 * 32 * 32 / 1e9 / 32)
    assert short == f32(32 * 32 * 4 * 1 / 1e9 * 2)
    assert pool == f32(2 * 2 * 4 * 16 * 16 / 1e9)


def test_recurrent_layers_add_their_sub_convolutions():
    per, total, _ = darknet_table("recurrent")
    net = darkweights.load(str(TABLES / "recurrent.cfg"), dialect="alexeyab")
    ours, ours_total = network_bflops(net)
    assert {i: f"{ours[i]:5.3f}".strip() for i in per} == per
    assert [L.type for L in net.layers[1:4]] == ["crnn", "conv_lstm", "conv_lstm"]
    assert f"{ours_total:5.3f}" == total == "1.677"
