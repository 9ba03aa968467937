"""``net[i]``: layers by index with their arrays as zero-copy attributes; len, iteration, slices."""

from __future__ import annotations

import io

import numpy as np
import pytest

import darkweights
from darkweights.synth import init

from .conftest import DATA


@pytest.fixture(scope="module")
def net():
    m = darkweights.default_model()
    return darkweights.load(m.cfg, m.weights)


def test_index_len_iteration_slices(net):
    assert len(net) == len(net.layers) == 131
    assert [v.index for v in net] == list(range(131))
    assert net[-1].index == 130 and net[-1].type == "yolo" and net[-1].layer is net.layers[-1]
    assert [v.index for v in net[2:8:3]] == [2, 5]
    with pytest.raises(IndexError, match="131 layers"):
        net[131]
    assert net[0].filters == 8 and net[0].activation == "leaky"  # options read through


def test_arrays_are_zero_copy_views_of_the_file(net):
    arrays = net.arrays()
    w = net[0].weights
    assert w.shape == (8, 3, 3, 3) and w.dtype == np.float32
    assert np.shares_memory(w, arrays["layer_000.weights"])
    bn = net[0].batchnorm
    for name in ("scales", "biases", "rolling_mean", "rolling_variance"):
        assert np.array_equal(getattr(bn, name), arrays[f"layer_000.{name}"])
    assert net[0].biases is bn.biases or np.shares_memory(net[0].biases, bn.biases)
    # a layer storing nothing
    route = next(v for v in net if v.type == "route")
    assert route.weights is None and route.batchnorm is None and route.params == 0
    assert "no stored arrays" in repr(route)
    assert "line 22" in repr(net[0]) and "weights (8, 3, 3, 3)" in repr(net[0]) and "248 params" in repr(net[0])
    assert "yolo-fastest-1.1.weights" in repr(net)


def test_connected_weights_are_outputs_by_inputs():
    cfg = (DATA / "alexnet.cfg").read_text()
    lay = darkweights.load("alexnet.cfg", cfg_text=cfg)
    i = next(L.index for L in lay.layers if L.type == "connected")
    buf = io.BytesIO()
    init(lay, buf, seed=3)
    net = darkweights.load("alexnet.cfg", buf.getvalue(), cfg_text=cfg)
    w = net[i].weights
    assert w.shape == (net.layers[i].outputs, net.layers[i].input.size)
    assert net[i].batchnorm is None and net[i].biases.shape == (net.layers[i].outputs,)


def test_summary_and_save(net, tmp_path):
    text = net.summary()
    assert text.splitlines()[0].startswith("layer") and "Total BFLOPS 0.252" in text
    out = tmp_path / "copy.weights"
    assert net.save(out) == out.stat().st_size
    assert out.read_bytes() == darkweights.default_model().weights.read_bytes()


def test_no_weights_says_so():
    net = darkweights.load("yolov4")
    assert net[0].shapes["weights"] == (32, 3, 3, 3)
    with pytest.raises(darkweights.WeightsError, match="no weights loaded"):
        _ = net[0].weights
