"""``darkweights detect --dialect pjreddie`` = pjreddie Darknet's ``detector test``.

References in tests/data/oracle/pjreddie_detections (README there): tools/darknet_oracle/detect_pjreddie.c
ran pjreddie's own pipeline (``test_detector``: letterbox, ``get_network_boxes``, ``do_nms_sort`` over the
last layer's classes) with the pjreddie oracle models on the sample photos. dog.jpg is the bundled copy,
so those cases always run; the other photos come from ../shared/images.
"""

from __future__ import annotations

import copy
import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [torch] extra is not installed")

import darkweights as dw
from darkweights import DarkweightsWarning, UnsupportedError, dialects
from darkweights.cli import main
from darkweights.detect.run import PIPELINES, Detector

from .conftest import DATA
from .detect_reference import DOG, differences, record_order, reference_image

ORACLE = DATA / "oracle"
REFS = ORACLE / "pjreddie_detections"
CASES = sorted(p.stem for p in REFS.glob("*.json"))


def _ref(name: str) -> dict:
    return json.loads((REFS / f"{name}.json").read_text())


def _model_dir(ref: dict) -> Path:
    return ORACLE / Path(ref["cfg"]).parent.name


@cache
def _detector(model: str, dialect: str = "pjreddie") -> Detector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        net = dw.load(ORACLE / model / "model.cfg", ORACLE / model / "model.weights", dialect=dialect)
        return Detector(net)


@cache
def _forward(model: str, image: Path, dialect: str = "pjreddie"):
    return _detector(model, dialect).forward(image)


def _run(ref: dict, dialect: str = "pjreddie", **kw):
    """Our Detections array and records for a reference's model, image and thresholds."""
    det = _detector(_model_dir(ref).name, dialect)
    outs, w, h = _forward(_model_dir(ref).name, reference_image(ref), dialect)
    assert (w, h) == (ref["im_w"], ref["im_h"])
    opts = dict(thresh=ref["thresh"], nms_thresh=ref["nms"])
    opts.update(kw)
    return det.boxes(outs, w, h, **opts), det.decode(outs, w, h, **opts)


def _compare(records: list[dict], ref: dict) -> dict:
    """Same detections as pjreddie: count, array order and classes exact; prob/objectness within 1e-4
    relative, boxes within 1e-4 (relative coordinates) and 1 px. Returns the largest differences."""
    ours, theirs, prob, obj = differences(records, ref)
    box = np.abs(ours[:, 3:7] - theirs[:, 3:7])
    px = box * np.array([ref["im_w"], ref["im_h"], ref["im_w"], ref["im_h"]])
    worst = {
        "prob": float(prob.max(initial=0)),
        "objectness": float(obj.max(initial=0)),
        "box": float(box.max(initial=0)),
        "px": float(px.max(initial=0)),
    }
    assert worst["prob"] <= 1e-4 and worst["objectness"] <= 1e-4, worst
    assert worst["box"] <= 1e-4 and worst["px"] <= 1.0, worst
    return worst


def test_the_references_are_there() -> None:
    assert len(CASES) >= 18
    models = {_model_dir(_ref(c)).name for c in CASES}
    assert models == {"pjreddie_detector", "pjreddie_image", "pjreddie_heads"}


@pytest.mark.parametrize("case", CASES)
def test_same_detections_as_pjreddie(case: str) -> None:
    ref = _ref(case)
    dets, records = _run(ref)
    assert len(dets) == ref["nboxes"]  # get_network_boxes' count: yolo objectness > thresh, region w*h*n
    if not case.endswith("_all"):
        assert records, "the reference's thresholds should leave detections"
    worst = _compare(records, ref)
    assert worst["prob"] <= 1e-5 and worst["box"] <= 1e-5, worst  # measured: <= 5e-7 and 3.1e-6 (float32 noise)
    # records are sorted by probability, as pjreddie's array order sorted stably
    assert [(r["det_index"], r["class_id"]) for r in records] == record_order(ref["detections"])


def test_region_objectness_zeroing_and_nms_partition() -> None:
    """pjreddie's get_region_detections keeps objectness only above thresh (AB: always 1); do_nms_sort then
    swaps the zero ones to the end of the array. The whole array, in pjreddie's order."""
    ref = _ref("pjreddie_image_dog_all")
    dets, records = _run(ref)
    boxes = np.array(ref["boxes"], dtype=np.float64)
    assert records == [] and len(dets) == len(boxes) == 192
    assert (boxes[:, 0] == np.arange(192)).all()
    zero = boxes[:, 1] == 0
    assert 0 < zero.sum() < 192 and not zero[: (~zero).sum()].any()  # a partition: zeros at the end
    assert ((dets.objectness == 0) == zero).all()
    np.testing.assert_allclose(dets.objectness, boxes[:, 1], rtol=1e-6)
    np.testing.assert_allclose(dets.boxes, boxes[:, 2:], rtol=0, atol=2e-6)


def test_the_dialect_switch_matters() -> None:
    """The same network outputs decoded the AlexeyAB way give other detections."""
    ref = _ref("pjreddie_image_dog")  # a [region] head in pjreddie's (n, coords+1+classes, H, W) layout
    det = _detector("pjreddie_image")
    outs, w, h = _forward("pjreddie_image", DOG)
    ab = Detector.__new__(Detector)
    # the heads as AlexeyAB's [region] family describes them (its layout and decode), AlexeyAB's pipeline
    layers = [copy.copy(det.net.layers[h.index]) for h in det.heads]
    for L in layers:
        L.dialect = dialects.ALEXEYAB
    heads = [L.head() for L in layers]
    ab.__dict__.update(
        det.__dict__, heads=heads, pipeline=PIPELINES["alexeyab"], nms=PIPELINES["alexeyab"].nms(det.net, heads)
    )
    ab_records = ab.decode(outs, w, h, thresh=ref["thresh"])
    with pytest.raises(AssertionError):
        _compare(ab_records, ref)
    assert {r["objectness"] for r in ab_records} == {1.0}  # AB's region decoder sets objectness 1
    # AB reads the buffer as rows of (x, y, w, h, obj, classes) per cell: not a single box is the same
    ours = np.array([r["bbox_relative"] for r in det.decode(outs, w, h, thresh=ref["thresh"])])
    theirs = np.array([r["bbox_relative"] for r in ab_records])
    assert not (np.abs(theirs[:, None, :] - ours[None, :, :]).max(axis=-1) < 1e-3).any()

    # a [yolo] model loaded as AlexeyAB: no letterbox unless the cfg asks, BN with sqrt(var + 1e-5)
    ref = _ref("pjreddie_detector_dog")
    with pytest.raises(AssertionError):
        _compare(_run(ref, dialect="alexeyab")[1], ref)


def test_cli_uses_pjreddies_default_threshold(capsys) -> None:
    """No --thresh with --dialect pjreddie: 0.5, as pjreddie's `detector test -thresh` (AB: 0.25)."""
    ref = _ref("pjreddie_detector_dog_default")
    assert ref["thresh"] == 0.5 and ref["nms"] == pytest.approx(0.45)
    d = _model_dir(ref)
    base = ["detect", str(d / "model.cfg"), str(d / "model.weights"), str(DOG), "--dialect", "pjreddie", "--json"]
    assert main(base) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed) == len(ref["detections"]) == 16
    rows = np.array(ref["detections"], dtype=np.float64)
    order = sorted(range(len(rows)), key=lambda i: -rows[i][2])
    for r, i in zip(printed, order):
        _, cls, prob, x, y, w, h, _ = rows[i]
        assert r["class_id"] == int(cls) and r["prob"] == pytest.approx(prob, rel=1e-4)
        size = np.array([ref["im_w"], ref["im_h"], ref["im_w"], ref["im_h"]])
        assert np.abs(np.array([r["x"], r["y"], r["w"], r["h"]]) - np.array([x, y, w, h]) * size).max() <= 1.0
    # explicit thresholds still win; AB's default would have given the 0.45 reference's 29 and more
    assert main(base + ["--thresh", "0.45"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(_ref("pjreddie_detector_dog")["detections"]) == 29
    assert _detector("pjreddie_detector").thresh == 0.5


def test_last_layer_without_classes_warns() -> None:
    """pjreddie_heads ends in a [softmax]: pjreddie's test_detector runs NMS (and draws) over its 0 classes."""
    cfg, weights = ORACLE / "pjreddie_heads" / "model.cfg", ORACLE / "pjreddie_heads" / "model.weights"
    net = dw.load(cfg, weights, dialect="pjreddie")
    with pytest.warns(DarkweightsWarning, match="last layer"):
        Detector(net)
    assert _ref("pjreddie_heads_dog")["nms_classes"] == 0


def test_unsupported_pjreddie_cases() -> None:
    rec = ORACLE / "pjreddie_recurrent"  # ends in a YOLOv1 [detection] head
    with pytest.raises(UnsupportedError, match=r"\[detection\]"):
        Detector(dw.load(rec / "model.cfg", rec / "model.weights", dialect="pjreddie"))
    d = ORACLE / "pjreddie_detector"
    net = dw.load(d / "model.cfg", d / "model.weights", dialect="pjreddie")
    with pytest.raises(UnsupportedError, match="always letterboxes"):
        Detector(net, letterbox=False)
    assert Detector(net, letterbox=True).letterbox and Detector(net).letterbox  # the cfg has no letter_box
