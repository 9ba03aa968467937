"""`darkweights diff`: per-layer change between two weights of one cfg, exit 0 / 1 / 2 like diff."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import darkweights
from darkweights import DarkweightsError
from darkweights.cli import main
from darkweights.compare import diff_report, open_weights
from darkweights.export import export_arrays
from darkweights.synth import init

from .conftest import write_cfg

CFG = """[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-2
activation=linear

[maxpool]
size=2
stride=2

[convolutional]
filters=4
size=1
stride=1
pad=1
activation=linear

[connected]
output=5
activation=linear
"""


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A cfg, random weights A, and B = A with layer 4's weights and layer 1's BN means changed."""
    cfg = write_cfg(tmp_path, CFG)
    a = tmp_path / "a.weights"
    init(darkweights.load(cfg), a, seed=3)
    net = darkweights.load(cfg, a)
    arrays = net.arrays(copy=True)
    arrays["layer_004.weights"][1, 0, 0, 0] += 0.5
    arrays["layer_004.weights"][2] *= 3.0
    arrays["layer_001.rolling_mean"][0] -= 1e-3
    b = tmp_path / "b.weights"
    darkweights.save_weights(arrays, b, net=net)
    return cfg, a, b


def test_identical_files_report_identical(pair, capsys) -> None:
    cfg, a, _ = pair
    table = diff_report(open_weights(a, cfg), open_weights(a, cfg))
    assert table.data["identical"] and table.data["first_changed"] is None
    assert [r["index"] for r in table.rows] == [0, 1, 4, 5]  # layers with stored arrays, in order
    assert all(r["max_abs"] == 0 and r["rel_l2"] == 0 and r["cosine"] == pytest.approx(1) for r in table.rows)
    assert main(["diff", str(a), str(a), "--cfg", str(cfg)]) == 0
    assert "identical" in capsys.readouterr().out


def test_changed_layers_named_with_exact_figures(pair, capsys) -> None:
    cfg, a, b = pair
    A, B = darkweights.load(cfg, a).arrays(), darkweights.load(cfg, b).arrays()
    table = diff_report(open_weights(a, cfg), open_weights(b, cfg))
    rows = {r["index"]: r for r in table.rows}
    assert not table.data["identical"]
    assert table.data["first_changed"] == 1 and table.data["most_changed"] == 4
    assert not rows[0]["changed"] and not rows[5]["changed"]
    assert rows[1]["changed_arrays"] == "rolling_mean" and rows[4]["changed_arrays"] == "weights"
    # layer 4's figures, recomputed here over all of its arrays (biases, weights) in float64
    x = np.concatenate([A[k].astype(np.float64).ravel() for k in ("layer_004.biases", "layer_004.weights")])
    y = np.concatenate([B[k].astype(np.float64).ravel() for k in ("layer_004.biases", "layer_004.weights")])
    assert rows[4]["max_abs"] == pytest.approx(np.abs(y - x).max())
    assert rows[4]["rel_l2"] == pytest.approx(np.linalg.norm(y - x) / np.linalg.norm(x))
    assert rows[4]["cosine"] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert rows[1]["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    by_change = diff_report(open_weights(a, cfg), open_weights(b, cfg), order="change")
    assert [r["index"] for r in by_change.rows][:2] == [4, 1]
    assert main(["diff", str(a), str(b), "--cfg", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "first changed: layer 1 [convolutional]" in out and "most changed: layer 4 [convolutional]" in out
    assert main(["diff", str(a), str(b), "--cfg", str(cfg), "--json", "--sort", "change"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["most_changed"] == 4 and data["layers"][0]["index"] == 4 and data["order"] == "change"


def test_exports_carry_their_cfg(pair, tmp_path: Path, capsys) -> None:
    cfg, a, b = pair
    sa, nb = tmp_path / "a.safetensors", tmp_path / "b.npz"
    export_arrays(darkweights.load(cfg, a), sa)
    export_arrays(darkweights.load(cfg, b), nb)
    assert main(["diff", str(sa), str(a), "--cfg", str(cfg)]) == 0
    assert main(["diff", str(sa), str(nb)]) == 1
    assert "most changed: layer 4" in capsys.readouterr().out


def test_different_layouts_and_user_errors(pair, tmp_path: Path, capsys) -> None:
    cfg, a, _ = pair
    other = write_cfg(tmp_path, CFG.replace("filters=4", "filters=6"), "other.cfg")
    o = tmp_path / "o.weights"
    init(darkweights.load(other), o, seed=3)
    sa, so = tmp_path / "a.safetensors", tmp_path / "o.safetensors"
    export_arrays(darkweights.load(cfg, a), sa)
    export_arrays(darkweights.load(other, o), so)
    layouts = r"different layouts from layer 4 on.*layer_004.biases \(4,\).*layer_004.biases \(6,\)"
    with pytest.raises(DarkweightsError, match=layouts):
        diff_report(open_weights(sa), open_weights(so))
    assert main(["diff", str(sa), str(so)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different layouts" in err
    assert main(["diff", str(a), str(a)]) == 2  # a .weights file without --cfg
    assert "--cfg" in capsys.readouterr().err
