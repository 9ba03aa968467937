"""What the shared fixtures do not cover, checked against the real Darknet: fixtures in
tests/data/oracle/ made by tools/darknet_oracle (CPU builds of the three forks' Darknet run on
our cfg, our ``init`` weights and a seeded input; Darknet re-saved the weights byte for byte). Same
layout as ../shared/fixtures, so they always run, with or without shared/:
``synth_conv_lstm`` ([conv_lstm], [history]), ``pjreddie_image`` (pjreddie BN, [deconvolutional],
strided [shortcut] with alpha/beta, [batchnorm], [l2norm], [reorg], [logistic], [region]),
``pjreddie_recurrent`` ([crnn] with its swapped width/height, [rnn], [gru], [lstm], [detection]),
``pjreddie_heads`` ([crop], [normalization], [local], [yolo], [avgpool], [softmax]), ``xnor_fused`` and
``xnor_unfused`` (both AlexeyAB xnor CPU paths: channels a multiple of 32 or not), ``hankai_tiny``
(hank-ai's strict dialect: route groups, mish/swish, two [yolo] heads, one with new_coords),
``pjreddie_detector``, ``alexeyab_darknet9000`` and ``alexeyab_yolo9000`` (YOLO9000's tree= in
[softmax] and [region], synthetic 9418-node trees, weights regenerated from the seed by verify.load_fixture),
``pjreddie_tree`` (pjreddie numload, [softmax] tree= with a temperature), ``alexeyab_binary`` (binary=1
convolutions, which AlexeyAB's CPU build computes with their weights as stored). The detector pipelines are
checked in test_detect_alexeyab.py and test_detect_pjreddie.py."""

from __future__ import annotations

import json
import warnings

import pytest

torch = pytest.importorskip("torch", reason="the [torch] extra is not installed")

import darkweights  # noqa: E402
from darkweights import verify  # noqa: E402
from darkweights.cli import main  # noqa: E402

from .conftest import DATA  # noqa: E402

ORACLE = DATA / "oracle"
CASES = sorted(p.parent.name for p in ORACLE.glob("*/layers.json"))
# unfused xnor: Darknet's CPU path skips the BN normalisation, which only bug_compatible reproduces
OPTIONS = {"xnor_unfused": {"bug_compatible": True}}


def model_for(d):
    from darkweights.torch import build

    net, meta, _, _ = verify.load_fixture(d)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*numload=", category=darkweights.DarkweightsWarning)
        return build(net, fuse_bn=bool(meta["fuse"]), **OPTIONS.get(d.name, {}))


def test_the_oracle_cases_are_there() -> None:
    assert {
        "synth_conv_lstm",
        "pjreddie_image",
        "pjreddie_recurrent",
        "pjreddie_heads",
        "xnor_fused",
        "xnor_unfused",
        "hankai_tiny",
        "alexeyab_darknet9000",
        "alexeyab_yolo9000",
        "pjreddie_tree",
    } <= set(CASES)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_matches_darknet(name: str, teacher_forcing: bool) -> None:
    d = ORACLE / name
    report = verify.compare_with_fixture(d, teacher_forcing=teacher_forcing, model=model_for(d))
    meta = json.loads((ORACLE / name / "layers.json").read_text())
    assert [r.index for r in report.rows] == [l["index"] for l in meta["layers"] if l.get("saved", True)]
    assert report.ok, report.to_table(only_failures=True)
    assert report.max_rel <= 1e-5  # these shallow nets stay within the per-layer tolerance end to end


@pytest.mark.parametrize("name", CASES)
def test_float64_and_weights_round_trip(name: str, tmp_path) -> None:
    d = ORACLE / name
    model = model_for(d).double()
    assert verify.compare_with_fixture(d, teacher_forcing=True, model=model, float64=True).ok
    net, meta, _, _ = verify.load_fixture(d)
    loaded = bytes(net.weights_source) if not meta.get("weights_stored", True) else (d / "model.weights").read_bytes()
    if (d / "darknet_resaved.weights").exists():
        # numload: Darknet's saver writes every filter, so the way back is the model's full state_dict
        darkweights.save_weights(model_for(d).state_dict(), tmp_path / "w", net=net)
        assert (tmp_path / "w").read_bytes() == (d / "darknet_resaved.weights").read_bytes()
        return
    darkweights.save_weights(net, tmp_path / "w")
    assert (tmp_path / "w").read_bytes() == loaded


def test_fixtures_without_stored_weights_or_trees_verify_from_the_command_line(capsys) -> None:
    """``verify --fixture`` remakes what a case does not store (weights from its seed, synthetic trees)."""
    for name in ("alexeyab_yolo9000", "alexeyab_darknet9000"):
        meta = json.loads((ORACLE / name / "layers.json").read_text())
        assert not meta["weights_stored"] and not (ORACLE / name / "model.weights").exists()
        assert not (ORACLE / name / "model.tree").exists()
        assert main(["verify", "--fixture", str(ORACLE / name), "--teacher-forcing"]) == 0
    assert "OK" in capsys.readouterr().out


def test_conv_lstm_and_history_are_what_darknet_computes(capsys) -> None:
    """The layers this fixture exists for, by type, from the command line."""
    assert main(["verify", "--fixture", str(ORACLE / "synth_conv_lstm"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    types = {r["type"] for r in rows}
    assert {"conv_lstm", "history"} <= types


def test_unfused_xnor_differs_unless_bug_compatible() -> None:
    """By default the model normalises, as the layer means to; Darknet's unfused CPU path does not."""
    from darkweights.torch import build

    net, _, _, _ = verify.load_fixture(ORACLE / "xnor_unfused")
    report = verify.compare_with_fixture(ORACLE / "xnor_unfused", teacher_forcing=True, model=build(net))
    assert not report.ok and report.first_divergence.index == 1


def test_binary_convolutions_compute_with_the_stored_weights() -> None:
    """AlexeyAB's CPU forward_convolutional_layer binarizes weights for xnor=1 only: its binary=1 layers
    (alexeyab_binary) compute with the weights as stored, as the model does (it warns that the GPU build
    binarizes). Binarized weights (sign(w) * mean|w| per filter) would be far off."""
    import numpy as np

    net, _, x, ref = verify.load_fixture(ORACLE / "alexeyab_binary")
    assert [L.binary for L in net.layers] == [1, 1, 0]
    with pytest.warns(darkweights.DarkweightsWarning, match="binary=1 binarizes the weights only in Darknet's GPU"):
        model = model_for(ORACLE / "alexeyab_binary")
    report = verify.compare_with_fixture(ORACLE / "alexeyab_binary", teacher_forcing=True, model=model)
    assert report.ok and report.max_rel < 1e-6, report.to_table()
    w = model.layers[1].unit.conv.weight
    with torch.no_grad():
        mean = w.abs().reshape(w.shape[0], -1).mean(dim=1).view(-1, 1, 1, 1)
        w.copy_(torch.where(w > 0, mean, -mean))
    out = model(torch.from_numpy(np.ascontiguousarray(x))[None], all_outputs=True)
    assert verify.compare_arrays(out[1].numpy(), ref["layer_001"])[2] > 0.1
