"""`darkweights verify` from the command line: table, JSON, exit status."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [torch] extra is not installed")

from darkweights.cli import main

from .conftest import FIXTURES, need_shared


def test_verify_fixture_passes(capsys):
    d = need_shared(FIXTURES / "yolov4-tiny")
    assert main(["verify", "--fixture", str(d), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and len(report["rows"]) == 38


def test_verify_names_the_first_diverging_layer(tmp_path, capsys):
    src = need_shared(FIXTURES / "yolov3-tiny")
    d = tmp_path / "case"
    shutil.copytree(src, d)
    (d / "model.weights").chmod(0o644)
    import darkweights as dw

    net = dw.load(d / "model.cfg", d / "model.weights")
    p = next(p for p in net.params() if p.layer == 4 and p.name == "weights")
    data = bytearray((d / "model.weights").read_bytes())
    value = np.frombuffer(bytes(data[p.offset : p.offset + 4]), "<f4")[0]
    data[p.offset : p.offset + 4] = np.float32(value + 0.5).tobytes()  # one weight of layer 4
    (d / "model.weights").write_bytes(bytes(data))
    assert main(["verify", "--fixture", str(d)]) == 1
    out = capsys.readouterr().out
    assert "first diverging layer: 4 [convolutional]" in out


@pytest.mark.parametrize("direct", [False, True])
def test_verify_against_opencv_with_and_without_winograd(tmp_path, capsys, direct):
    pytest.importorskip("cv2", reason="the [verify] extra (opencv-python-headless) is not installed")
    import darkweights as dw
    from darkweights.synth import init

    from .conftest import DATA

    cfg = DATA / "yolov4-tiny.cfg"
    weights = tmp_path / "r.weights"
    init(dw.load(cfg), weights, seed=2)
    args = ["verify", str(cfg), str(weights), "--against", "opencv", "--width", "96", "--height", "96", "--json"]
    assert main(args + (["--direct"] if direct else [])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and len(report["rows"]) >= 30


def test_verify_float64(capsys):
    d = need_shared(FIXTURES / "yolov4-tiny")
    assert main(["verify", "--fixture", str(d), "--float64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["meta"]["float64"] is True
    assert main(["verify", "x.cfg", "x.weights", "--against", "opencv", "--float64"]) == 2
    assert "--float64 applies to --fixture" in capsys.readouterr().err
