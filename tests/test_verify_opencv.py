"""Cross-check with OpenCV's independent Darknet importer on random-BN-statistics weights.

OpenCV's BN epsilon is 1e-6 (Darknet 1e-5): our Darknet-faithful model is held to 2e-4 per layer,
and the same model with OpenCV's epsilon to 1e-5 (fixtures README, "Cross-checking with OpenCV").
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

import darkweights  # noqa: E402
from darkweights import verify  # noqa: E402
from darkweights.torch import build  # noqa: E402

from .conftest import SHARED  # noqa: E402

CFG_DIR = Path(os.environ.get("DARKWEIGHTS_CFGS", SHARED / "cfg"))
CASES = [("yolov4-tiny", 128), ("yolov4", 96), ("yolov7-tiny", 128), ("efficientnet_b0", 128), ("yolov2", 96)]
REPORTS: dict[tuple[str, str], verify.Report] = {}


def random_net(name: str, size: int):
    from darkweights.synth import init

    cfg = CFG_DIR / f"{name}.cfg"
    if not cfg.exists():
        pytest.skip(f"{cfg} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = darkweights.load(cfg, width=size, height=size)
        weights = io.BytesIO()  # in memory: yolov4 is 258 MB, more than a CI machine's disk may spare
        init(net, weights, seed=1)  # BN variances 0.5..1.5: random statistics, as the README asks
        return darkweights.load(cfg, weights.getbuffer(), width=size, height=size)


@pytest.mark.parametrize("name,size", CASES)
def test_matches_opencv(name: str, size: int) -> None:
    net = random_net(name, size)
    x = np.random.default_rng(0).random((3, size, size), dtype=np.float32)
    model = build(net)
    for eps in ("darknet", "opencv"):
        report = verify.compare_with_opencv(net, x, bn_eps=eps, model=model if eps == "darknet" else None)
        REPORTS[(f"{name} {size}px", eps)] = report
        assert report.ok, report.to_table(only_failures=True)
        compared = {r.index for r in report.rows}
        # every layer OpenCV materialises is compared, heads included (decoded form)
        assert len(compared) >= 0.9 * len(net.layers)
        heads = [l.index for l in net.layers if l.type in ("yolo", "region")]
        assert set(heads) <= compared
    tight = REPORTS[(f"{name} {size}px", "opencv")]
    assert tight.max_rel <= verify.OPENCV_MATCHED_EPS_TOLERANCE


def test_opencv_comparison_can_fail() -> None:
    net = random_net("yolov4-tiny", 96)
    model = build(net)
    i = next(i for i, l in enumerate(net.layers) if l.type == "convolutional" and i > 2)
    with torch.no_grad():
        model.layers[i].bn.running_mean.add_(0.05)
    x = np.random.default_rng(1).random((3, 96, 96), dtype=np.float32)
    report = verify.compare_with_opencv(net, x, model=model)
    assert not report.ok and report.first_divergence.index == i


YOLOV3_FAMILY = [("yolov3-tiny", 128), ("yolov3", 128)]


@pytest.mark.parametrize("name,size", YOLOV3_FAMILY)
def test_yolov3_family_heads_compared_where_well_conditioned(name: str, size: int) -> None:
    """Random weights drive the [yolo] box logits to ~20, exp() of which reaches 1e8: compared raw, the
    heads failed (rel 2.5e-3) although every layer before them matched; compared as log sizes and
    logistic parts, they match like the rest of the network."""
    net = random_net(name, size)
    x = np.random.default_rng(0).random((3, size, size), dtype=np.float32)
    report = verify.compare_with_opencv(net, x)
    assert report.ok, report.to_table(only_failures=True)
    heads = [r for r in report.rows if r.type == "yolo"]
    assert heads and all("wh (log)" in r.note for r in heads)
    before = {r.index: r.rel for r in report.rows}
    for r in heads:  # a head is no worse conditioned than the convolution feeding it
        assert r.rel <= 2 * before[r.index - 1] + 1e-6, report.to_table()


def test_wrong_box_sizes_still_fail() -> None:
    """Only the box-size logits (tw, th) of one head wrong by 0.02: the head row must fail."""
    net = random_net("yolov3-tiny", 128)
    model = build(net)
    head = next(l for l in net.layers if l.type == "yolo")
    conv = model.layers[head.index - 1].conv
    n, k = len(head.mask), head.classes
    with torch.no_grad():
        for a in range(n):
            conv.bias[a * (5 + k) + 2 : a * (5 + k) + 4] += 0.02
    x = np.random.default_rng(0).random((3, 128, 128), dtype=np.float32)
    report = verify.compare_with_opencv(net, x, model=model)
    row = next(r for r in report.rows if r.index == head.index)
    assert not row.ok and "worst part wh (log)" in row.note, report.to_table()


def test_layer_name_mapping() -> None:
    names = [
        "conv_0",
        "bn_0",
        "leaky_1",
        "pool_1",
        "conv_2",
        "bn_2",
        "leaky_3",
        "slice_3",
        "conv_4",
        "logistic_5",
        "scale_channels_5",
        "shortcut_6",
        "mish_7",
        "conv_7",
        "permute_8",
        "yolo_8",
        "identity_9",
        "conv_10",
        "permute_11",
        "detection_out",
    ]
    m = verify.opencv_layer_map(names)
    assert m == {
        0: "leaky_1",
        1: "pool_1",
        2: "leaky_3",
        3: "slice_3",
        4: "logistic_5",
        5: "scale_channels_5",
        6: "mish_7",
        7: "conv_7",
        8: "yolo_8",
        9: "identity_9",
        10: "conv_10",
        11: "detection_out",
    }


def test_zz_summary(capsys: pytest.CaptureFixture) -> None:
    if not REPORTS:
        pytest.skip("no OpenCV comparison ran")
    lines = [f"{'network':<24} {'BN eps':<8} {'layers':>6} {'worst layer':<24} {'max rel':>9} {'tol':>7}"]
    for (name, eps), r in REPORTS.items():
        w = max(r.rows, key=lambda row: row.rel)
        lines.append(
            f"{name:<24} {eps:<8} {len(r.rows):>6} {f'{w.index} {w.type}':<24} {w.rel:>9.2e} {w.tolerance:>7.0e}"
        )
    with capsys.disabled():
        print("\nOpenCV cross-check\n" + "\n".join(lines))
