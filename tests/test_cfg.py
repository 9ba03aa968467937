"""cfg text parsing: the lenient AlexeyAB/pjreddie syntax and hank-ai's strict one (spec §6)."""

from __future__ import annotations

import pytest

import darkweights as dw
from darkweights.cfg import read_cfg

from .conftest import DATA, write_cfg

NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"


def test_lenient_syntax(tmp_path):
    text = (
        "# comment\r\n[net]\r\n width = 32 \r\nheight=32\r\nchannels=3\r\n\r\n; other comment\r\n"
        "[conv]\r\nfilters = 8\r\nsize=3\r\npad=1\r\nacti vation = le aky\r\n"
        "[max]\r\nsize=2\r\nstride=2\r\n[avg]\r\n[soft]\r\n"
    )
    net = dw.load(write_cfg(tmp_path, text))
    assert [L.type for L in net.layers] == ["convolutional", "maxpool", "avgpool", "softmax"]
    conv = net.layers[0]
    assert (conv.filters, conv.size, conv.padding, conv.activation) == (8, 3, 1, "leaky")
    assert net.layers[1].output.chw == (8, 16, 16)
    assert net.layers[0].line == 8


def test_inline_comment_on_string_warns(tmp_path):
    cfg = write_cfg(tmp_path, NET + "[convolutional]\nfilters=4 # four\nactivation=leaky # slope 0.1\n")
    with pytest.warns(dw.DarkweightsWarning, match="leaky#slope0.1"):
        net = dw.load(cfg, dialect="alexeyab")
    assert net.layers[0].filters == 4 and net.layers[0].activation == "leaky"
    # auto: only hank-ai strips inline comments, so it is taken, and a warning says what the others read
    with pytest.warns(dw.DarkweightsWarning, match="AlexeyAB and pjreddie would read them into the value"):
        net = dw.load(cfg)
    assert net.dialect.name == "hankai" and net.layers[0].activation == "leaky"


def test_first_duplicate_wins_and_rest_is_reported(tmp_path):
    cfg = write_cfg(tmp_path, NET + "[convolutional]\nfilters=4\nfilters=8\nactivation=linear\n")
    with pytest.warns(dw.DarkweightsWarning, match=r"t.cfg:7: layer 0 \[convolutional\]: unused option filters=8"):
        net = dw.load(cfg)
    assert net.layers[0].filters == 4


def test_unused_option_warns_like_darknet(tmp_path):
    cfg = write_cfg(tmp_path, NET + "[maxpool]\nsize=2\nstride=2\nfliters=3\n")
    with pytest.warns(dw.DarkweightsWarning, match="unused option fliters=3"):
        dw.load(cfg)


def test_atoi_semantics_and_trailing_comma(tmp_path):
    cfg = write_cfg(
        tmp_path, NET + "[convolutional]\nfilters=16.7\nsize=3\nstride=1\nactivation=linear\n[route]\nlayers=-1,\n"
    )
    with pytest.warns(dw.DarkweightsWarning, match="trailing comma"):
        net = dw.load(cfg)
    assert net.layers[0].filters == 16  # atoi("16.7")
    assert net.layers[1].reads() == [0, 0]  # Darknet reads "-1," as [-1, 0]
    assert net.layers[1].output.c == 32


def test_unknown_section_names_file_line_and_known_kinds(tmp_path):
    cfg = write_cfg(tmp_path, NET + "[convolutional]\nfilters=4\nactivation=linear\n\n[upsampel]\nstride=2\n")
    with pytest.raises(dw.CfgError) as err:
        dw.load(cfg)
    msg = str(err.value)
    assert "t.cfg:9" in msg and "[upsampel]" in msg and "[upsample]" in msg and "layer 1" in msg


def test_section_not_in_fork(tmp_path):
    cfg = write_cfg(tmp_path, NET + "[convolutional]\nfilters=4\nactivation=linear\n[sam]\nfrom=-1\n")
    with pytest.raises(dw.CfgError, match=r"\[sam\] is not supported by pjreddie"):
        dw.load(cfg, dialect="pjreddie")


def test_unknown_activation_is_an_error(tmp_path):
    cfg = write_cfg(tmp_path, NET + "[convolutional]\nfilters=4\nactivation=leakyrelu\n")
    with pytest.raises(dw.CfgError, match=r"t.cfg:7.*unknown activation 'leakyrelu'.*leaky"):
        dw.load(cfg)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "no sections"),
        ("[convolutional]\nfilters=3\n", "first section must be"),
        ("filters=3\n[net]\n", "before the first"),
        (NET + "[convolutional]\nfilters\n", r"t.cfg:6, layer 0 \[convolutional\]: malformed line"),
        (NET + "[convolutional]\nfilters=\n", r"t.cfg:6, layer 0 \[convolutional\]: option 'filters' has no value"),
        (NET + "[convolutional]\nfilters=abc\nactivation=linear\n", r"t.cfg:6.*filters='abc': expected an integer"),
        (NET + "[route\nlayers=-1\n", "malformed section header"),
        ("[net]\nbatch=1\n[convolutional]\n", "no input size"),
    ],
)
def test_malformed_cfg(tmp_path, text, match):
    with pytest.raises(dw.CfgError, match=match):
        dw.load(write_cfg(tmp_path, text))


def test_binary_file_as_cfg(tmp_path):
    p = tmp_path / "x.cfg"
    p.write_bytes(b"\0\0\0\0\2\0\0\0")
    with pytest.raises(dw.CfgError, match="binary file"):
        dw.load(p)


def test_strict_hankai(tmp_path):
    base = NET + "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky # inline comments are fine\n"
    net = dw.load(write_cfg(tmp_path, base), dialect="hankai")
    assert net.layers[0].activation == "leaky"
    with pytest.raises(dw.CfgError, match="duplicate key 'filters' at lines 6 and 10"):
        dw.load(write_cfg(tmp_path, base + "filters=8\n"), dialect="hankai")
    with pytest.raises(dw.CfgError, match="unused or invalid"):
        dw.load(write_cfg(tmp_path, base + "fliters=8\n"), dialect="hankai")
    with pytest.raises(dw.CfgError, match="hank-ai accepts only"):
        dw.load(write_cfg(tmp_path, NET + "[convolutional]\nfilters=1e1\nactivation=linear\n"), dialect="hankai")
    with pytest.raises(dw.CfgError, match="not supported by hank-ai"):
        dw.load(write_cfg(tmp_path, NET + "[local]\nfilters=2\nactivation=linear\n"), dialect="hankai")


def test_net_overrides(tmp_path):
    net = dw.load(DATA / "yolov4-tiny.cfg", width=320, height=256)
    assert net.input.chw == (3, 256, 320)
    assert net.layers[30].output.chw == (255, 8, 10)
    # channels != 3 changes the first conv's weights
    net1 = dw.load(DATA / "yolov4-tiny.cfg", channels=1)
    assert net1.layout()[-1].shape != () and net1.layers[0].arrays()[-1].shape == (32, 1, 3, 3)
    assert net1.weights_bytes() == net.weights_bytes() - 32 * 2 * 9 * 4


def test_read_cfg_keeps_text_and_lines():
    cfg = read_cfg(DATA / "yolov3-tiny.cfg")
    assert cfg.text.startswith("[net]") and cfg.net.name == "net"
    assert all(s.line > 0 for s in cfg.sections)
