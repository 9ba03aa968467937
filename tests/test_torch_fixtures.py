"""Every Darknet fixture: each layer teacher-forced within 1e-5, end to end within the documented rule.

The fixtures are AlexeyAB Darknet CPU outputs (``../shared/fixtures/README.md``). A summary table
(fixture, worst layer teacher-forced and end to end) is printed by ``test_zz_summary``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import darkweights  # noqa: E402
from darkweights import verify  # noqa: E402
from darkweights.torch import build  # noqa: E402

from .conftest import SHARED  # noqa: E402

FIXTURES = Path(os.environ.get("DARKWEIGHTS_FIXTURES", SHARED / "fixtures"))
NAMES = sorted(p.parent.name for p in FIXTURES.glob("*/layers.json")) if FIXTURES.is_dir() else []
needs_fixtures = pytest.mark.skipif(not NAMES, reason=f"fixture directory {FIXTURES} is absent")

RESULTS: dict[tuple[str, str], verify.Report] = {}


def run(name: str, teacher_forcing: bool) -> verify.Report:
    key = (name, "tf" if teacher_forcing else "e2e")
    if key not in RESULTS:
        RESULTS[key] = verify.compare_with_fixture(FIXTURES / name, teacher_forcing=teacher_forcing)
    return RESULTS[key]


def saved_layers(name: str) -> list[int]:
    meta = json.loads((FIXTURES / name / "layers.json").read_text())
    return [l["index"] for l in meta["layers"] if l.get("saved", True)]


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_teacher_forced(name: str) -> None:
    report = run(name, teacher_forcing=True)
    assert [r.index for r in report.rows] == saved_layers(name)
    assert all(r.tolerance == verify.TEACHER_FORCED_TOLERANCE for r in report.rows)
    assert report.ok, report.to_table(only_failures=True)


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_end_to_end(name: str) -> None:
    report = run(name, teacher_forcing=False)
    assert [r.index for r in report.rows] == saved_layers(name)
    meta = json.loads((FIXTURES / name / "layers.json").read_text())
    sens = (meta.get("float_sensitivity") or {}).get("fused_vs_plain_worst_layer_rel")
    expected = verify.FUSED_E2E_TOLERANCE if meta["fuse"] or sens is None else max(1e-5, 4 * sens)
    assert report.rows[0].tolerance == pytest.approx(expected)
    assert report.ok, report.to_table(only_failures=True)


def _calibrated() -> str:
    for name in ("yolov4-tiny", "yolov3-tiny", "yolov4"):
        if name in NAMES:
            return name
    pytest.skip("no calibrated-BN fixture")


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_wrong_bn_epsilon_is_caught() -> None:
    """The comparison can fail: OpenCV's BN epsilon (1e-6) must be far outside the tolerance."""
    name = _calibrated()
    net, meta, _, _ = verify.load_fixture(FIXTURES / name)
    model = build(net)
    changed = 0
    for m in model.modules():
        if hasattr(m, "running_var") and hasattr(m, "eps"):
            m.eps = 1e-6
            changed += 1
    assert changed
    report = verify.compare_with_fixture(FIXTURES / name, model=model)
    assert not report.ok
    assert report.first_divergence is not None and report.first_divergence.index == 0


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_perturbed_weight_diverges_at_that_layer() -> None:
    name = "yolov4-tiny" if "yolov4-tiny" in NAMES else NAMES[0]
    net, _, _, _ = verify.load_fixture(FIXTURES / name)
    model = build(net)
    target = next(i for i, l in enumerate(net.layers) if l.type == "convolutional" and i > 3)
    with torch.no_grad():
        model.layers[target].conv.weight.data = model.layers[target].conv.weight.data.clone()
        model.layers[target].conv.weight.data.view(-1)[0] += 0.5
    for tf in (True, False):
        report = verify.compare_with_fixture(FIXTURES / name, teacher_forcing=tf, model=model)
        assert report.first_divergence is not None and report.first_divergence.index == target


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", [n for n in ("yolov4", "yolov3-tiny", "features", "synth_geometry") if n in NAMES])
def test_fuse_bn_stays_within_darknets_own_fusion_error(name: str) -> None:
    """fuse_bn folds like fuse_conv_batchnorm: vs the unfused fixture it moves outputs by about
    Darknet's own fused-vs-plain difference (float_sensitivity), never by a BN-sized error."""
    net, meta, _, _ = verify.load_fixture(FIXTURES / name)
    report = verify.compare_with_fixture(FIXTURES / name, model=build(net, fuse_bn=True))
    assert report.ok, report.to_table(only_failures=True)


@needs_fixtures
def test_zz_summary(capsys: pytest.CaptureFixture) -> None:
    """Print the per-fixture worst layers (teacher-forced and end to end)."""
    lines = [
        f"{'fixture':<31} {'TF worst layer':<22} {'TF rel':>9}  {'E2E worst layer':<22} {'E2E rel':>9} "
        f"{'E2E tol':>8} {'sens':>8}"
    ]
    for name in NAMES:
        tf, e2e = run(name, True), run(name, False)
        wt, we = max(tf.rows, key=lambda r: r.rel), max(e2e.rows, key=lambda r: r.rel)
        sens = e2e.meta.get("float_sensitivity")
        lines.append(
            f"{name:<31} {f'{wt.index} {wt.type}':<22} {wt.rel:>9.2e}  {f'{we.index} {we.type}':<22} "
            f"{we.rel:>9.2e} {we.tolerance:>8.1e} {sens if sens is not None else float('nan'):>8.1e}"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert all(run(n, True).ok and run(n, False).ok for n in NAMES)


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_winograd_on_every_eligible_layer_meets_darknets_tolerances(name: str, monkeypatch) -> None:
    """The fixtures are too narrow for the Winograd path to engage by itself (128 channels): force it onto
    every 3x3 stride-1 convolution and hold it to the same teacher-forced and end-to-end tolerances."""
    from darkweights.torch import winograd

    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    d = FIXTURES / name
    meta = json.loads((d / "layers.json").read_text())
    net = darkweights.load(d / "model.cfg", d / "model.weights")
    model = build(net, fuse_bn=bool(meta.get("fuse")))
    eligible = sum(u.winograd for u in model._conv_units())
    for tf in (True, False):
        report = verify.compare_with_fixture(d, teacher_forcing=tf, model=model)
        assert report.ok, report.to_table(only_failures=True)
    if name in ("yolov4", "yolov3-tiny", "yolov4-tiny", "yolov7"):
        assert eligible > 0


@needs_fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_float64_model_meets_the_tolerances_and_shows_darknets_own_rounding(name: str) -> None:
    """``model.double()`` runs every layer type; exact arithmetic lands as close to Darknet as the float32
    model does. Where float32 drifts past 1e-4 end to end, Darknet's own float32 result is at least half
    that far from the exact one: summation order, not a divergence, explains the drift."""
    tf = verify.compare_with_fixture(FIXTURES / name, teacher_forcing=True, float64=True)
    assert tf.ok, tf.to_table(only_failures=True)
    exact = verify.compare_with_fixture(FIXTURES / name, float64=True)
    assert exact.ok, exact.to_table(only_failures=True)
    ours = run(name, teacher_forcing=False)
    if ours.max_rel > 1e-4:
        assert exact.max_rel >= 0.5 * ours.max_rel, (exact.max_rel, ours.max_rel)
