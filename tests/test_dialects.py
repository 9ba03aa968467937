"""Where the three forks store or accept things differently (spec §0.4, §2.4-2.11)."""

from __future__ import annotations

import pytest

import darkweights as dw
from darkweights.weightsfile import Header

from .conftest import write_cfg

IMG = "[net]\nwidth=4\nheight=4\nchannels=2\n"
FLAT = "[net]\ninputs=6\n"


def layout(tmp_path, text, dialect):
    net = dw.load(write_cfg(tmp_path, text), dialect=dialect)
    return [(p.name, p.shape) for p in net.layout()]


def test_batchnorm_arrays(tmp_path):
    text = IMG + "[batchnorm]\n"
    assert layout(tmp_path, text, "alexeyab") == [
        ("biases", (2,)),
        ("scales", (2,)),
        ("rolling_mean", (2,)),
        ("rolling_variance", (2,)),
    ]
    assert layout(tmp_path, text, "pjreddie") == [("scales", (2,)), ("rolling_mean", (2,)), ("rolling_variance", (2,))]
    with pytest.raises(dw.CfgError, match="not supported by hank-ai"):
        layout(tmp_path, text, "hankai")


def test_gru_order(tmp_path):
    text = FLAT + "[gru]\noutput=3\n"
    ab = [n for n, s in layout(tmp_path, text, "alexeyab") if n.endswith("weights")]
    pj = [n for n, s in layout(tmp_path, text, "pjreddie") if n.endswith("weights")]
    assert ab == [f"{k}_{g}_layer.weights" for k in ("input", "state") for g in "zrh"]
    assert pj == [f"{k}_{g}_layer.weights" for k in ("state", "input") for g in "zrh"]
    shapes = dict(layout(tmp_path, text, "alexeyab"))
    assert shapes["input_z_layer.weights"] == (3, 6) and shapes["state_z_layer.weights"] == (3, 3)


def test_lstm_order(tmp_path):
    text = FLAT + "[lstm]\noutput=3\nbatch_normalize=1\n"
    ab = [n.split(".")[0] for n, s in layout(tmp_path, text, "alexeyab") if n.endswith("weights")]
    pj = [n.split(".")[0] for n, s in layout(tmp_path, text, "pjreddie") if n.endswith("weights")]
    assert ab == ["wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"]
    assert pj == ["wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug"]
    names = [n for n, s in layout(tmp_path, text, "alexeyab")][:5]
    assert names == ["wf.biases", "wf.weights", "wf.scales", "wf.rolling_mean", "wf.rolling_variance"]


def test_rnn_hidden(tmp_path):
    text = FLAT + "[rnn]\noutput=3\nhidden=5\n"
    ab = dict(layout(tmp_path, text, "alexeyab"))
    assert ab["input_layer.weights"] == (5, 6) and ab["output_layer.weights"] == (3, 5)
    with pytest.warns(dw.DarkweightsWarning, match="unused option hidden=5"):
        pj = dict(layout(tmp_path, text, "pjreddie"))
    assert pj["input_layer.weights"] == (3, 6) and pj["self_layer.weights"] == (3, 3)


def test_crnn_option_names(tmp_path):
    pj = dict(layout(tmp_path, IMG + "[crnn]\nhidden_filters=4\noutput_filters=3\n", "pjreddie"))
    assert pj["input_layer.weights"] == (4, 2, 3, 3) and pj["output_layer.weights"] == (3, 4, 3, 3)
    ab = dict(layout(tmp_path, IMG + "[crnn]\nhidden=4\noutput=3\nsize=1\n", "alexeyab"))
    assert ab["input_layer.weights"] == (4, 2, 1, 1)


def test_weighted_shortcut(tmp_path):
    base = IMG + "[convolutional]\nfilters=2\nactivation=linear\n[convolutional]\nfilters=2\nactivation=linear\n"
    text = base + "[shortcut]\nfrom=-2,-1\nweights_type=per_layer\nweights_normalization=relu\n"
    assert dict(layout(tmp_path, text, "alexeyab"))["weights"] == (3,)
    with pytest.raises(dw.CfgError, match="weights_type='per_layer'"):
        layout(tmp_path, text, "hankai")
    with pytest.raises(dw.CfgError, match="weights_normalization='none'"):
        # AB aborts: with weights the normalisation must be relu/avg_relu/softmax
        layout(tmp_path, base + "[shortcut]\nfrom=-2\nweights_type=per_channel\n", "alexeyab")
    net = dw.load(write_cfg(tmp_path, base + "[shortcut]\nfrom=-2\nalpha=0.5\nbeta=2\n"), dialect="pjreddie")
    assert (net.layers[2].alpha, net.layers[2].beta) == (0.5, 2.0)
    assert net.layers[2].arrays() == []


def test_header_written_per_dialect():
    assert Header.for_dialect("alexeyab").to_bytes() == bytes([0, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0]) + bytes(8)
    assert Header.for_dialect("hankai").to_bytes()[:12] == Header.for_dialect("alexeyab").to_bytes()[:12]
    assert Header.for_dialect("pjreddie").to_bytes() == bytes([0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]) + bytes(8)


def test_route_groups_are_ab_only(tmp_path):
    text = IMG + "[convolutional]\nfilters=4\nactivation=linear\n[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
    assert dw.load(write_cfg(tmp_path, text)).layers[1].output.c == 2
    with pytest.warns(dw.DarkweightsWarning) as caught:
        net = dw.load(write_cfg(tmp_path, text), dialect="pjreddie")
    messages = " ".join(str(w.message) for w in caught)
    assert "unused option groups=2" in messages and "unused option group_id=1" in messages
    assert net.layers[1].output.c == 4  # pjreddie ignores groups: its shapes and offsets differ from here on


def test_pjreddie_cross_resolution_shortcut(tmp_path):
    text = IMG + (
        "[convolutional]\nfilters=4\nactivation=linear\n[convolutional]\nfilters=8\nsize=3\nstride=2\n"
        "pad=1\nactivation=linear\n[shortcut]\nfrom=-2\n"
    )
    with pytest.raises(dw.ShapeError, match="--dialect pjreddie"):
        dw.load(write_cfg(tmp_path, text), dialect="alexeyab")
    net = dw.load(write_cfg(tmp_path, text), dialect="pjreddie")
    assert net.layers[2].output.chw == (8, 2, 2)
    auto = dw.load(write_cfg(tmp_path, text))  # only pjreddie accepts it: auto says why
    assert auto.dialect.name == "pjreddie" and auto.layers[2].output.chw == (8, 2, 2)
    assert (
        "pjreddie (auto: not AlexeyAB or hank-ai: [shortcut] at line 14 across resolutions)"
        in auto.dialect_choice.describe()
    )


def test_hankai_refuses_detectors_whose_input_is_not_a_multiple_of_32(tmp_path):
    """hank-ai's create_network aborts for a [yolo]/[region] network at, e.g., 64x48 (AB and pjreddie run it)."""
    body = (
        "[convolutional]\nfilters=18\nsize=1\nactivation=linear\n\n[yolo]\nmask=0,1,2\n"
        "anchors=4,6, 8,10, 12,8\nclasses=1\nnum=3\n"
    )
    cfg = write_cfg(tmp_path, "[net]\nbatch=1\nwidth=64\nheight=48\nchannels=3\n\n" + body)
    with pytest.raises(dw.CfgError, match="multiples of 32") as err:
        dw.load(cfg, dialect="hankai")
    assert err.value.line == 1
    assert dw.load(cfg).layers[-1].type == "yolo"  # AlexeyAB builds it
    assert dw.load(cfg, dialect="hankai", height=64).height == 64
