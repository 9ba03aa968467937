"""``darkweights detect`` (dialect alexeyab) = AlexeyAB Darknet's ``detector test``, end to end.

References in tests/data/oracle/alexeyab_detections (README there): tools/darknet_oracle/detect_alexeyab.c ran
AlexeyAB's own pipeline (``test_detector``: resize or letterbox per the cfg, fused BN, ``get_network_boxes``,
``do_nms_sort`` / ``diounms_sort`` with the last detection layer's ``nms_kind`` and ``beta_nms``) with random-weight
detectors on the sample photos: the shared fixtures' [region], [Gaussian_yolo] and [yolo] models (new_coords,
scale_x_y, letter_box, greedynms, diounms), which skip without ../shared, and tests/data/oracle/alexeyab_detector
(letterboxed non-square input, a [Gaussian_yolo] head with yolo_point and scale_x_y, a new_coords [yolo] head,
diounms with beta_nms 0.8), whose dog.jpg case always runs.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [torch] extra is not installed")

import darkweights as dw
from darkweights import DarkweightsWarning
from darkweights.cli import main
from darkweights.detect.boxes import head_detections
from darkweights.detect.nms import nms
from darkweights.detect.run import Detector

from .conftest import FIXTURES, REPO, need_shared
from .detect_reference import DOG, differences, record_order, reference_image

REFS = REPO / "tests" / "data" / "oracle" / "alexeyab_detections"
CASES = sorted(p.stem for p in REFS.glob("*.json"))
OWN = "alexeyab_detector"  # the model in tests/data/oracle: its cases need nothing from ../shared
SHARED_MODELS = {"yolov3-tiny", "yolov2", "Gaussian_yolov3_BDD", "yolov4-tiny", "yolov4-csp", "yolov7-tiny", "yolov7"}

# Boxes: |ours - Darknet| / max(1, |Darknet|) in image-relative coordinates (random-weight boxes can be hundreds
# of image widths wide, where float32 itself cannot resolve 1e-4 of the image). The forward's float rounding is
# all that differs (decoding Darknet's own head outputs gives its detections bit for bit); these two models are
# the shared fixtures' most rounding-sensitive (float_sensitivity 2.1e-4 and 8.4e-4), and Darknet unfused vs
# fused moves the same boxes by 1.9e-4 .. 3.5e-4 (README).
BOX_TOL = {"yolov4-csp": 3e-4, "yolov7": 3e-4}


def _ref(name: str) -> dict:
    return json.loads((REFS / f"{name}.json").read_text())


def _model(ref: dict) -> str:
    return Path(ref["cfg"]).parent.name


def _model_dir(model: str) -> Path:
    if model == OWN:
        return REPO / "tests" / "data" / "oracle" / OWN
    return need_shared(FIXTURES / model)


@cache
def _detector(model: str) -> Detector:
    d = _model_dir(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        return Detector(dw.load(d / "model.cfg", d / "model.weights"))


@cache
def _forward(model: str, image: Path):
    return _detector(model).forward(image)


def _run(ref: dict, **kw):
    """Our Detections array and records for a reference's model, image and thresholds."""
    model = _model(ref)
    det = _detector(model)
    outs, w, h = _forward(model, reference_image(ref))
    assert (w, h) == (ref["im_w"], ref["im_h"])
    opts = dict(thresh=ref["thresh"], nms_thresh=ref["nms"])
    opts.update(kw)
    return det.boxes(outs, w, h, **opts), det.decode(outs, w, h, **opts)


def _compare(records: list[dict], ref: dict) -> dict:
    """Same detections as Darknet: count, array order and classes exact; prob and objectness within 1e-4
    relative; boxes within BOX_TOL (default 1e-4, see there). Returns the largest differences."""
    ours, theirs, prob, obj = differences(records, ref)
    box = np.abs(ours[:, 3:7] - theirs[:, 3:7]) / np.maximum(1.0, np.abs(theirs[:, 3:7]))
    worst = {
        "prob": float(prob.max(initial=0)),
        "objectness": float(obj.max(initial=0)),
        "box": float(box.max(initial=0)),
    }
    assert worst["prob"] <= 1e-4 and worst["objectness"] <= 1e-4, worst
    assert worst["box"] <= BOX_TOL.get(_model(ref), 1e-4), worst
    return worst


def test_the_references_are_there() -> None:
    assert len(CASES) >= 45
    assert {_model(_ref(c)) for c in CASES} == SHARED_MODELS | {OWN}
    assert f"{OWN}_dog" in CASES and _ref(f"{OWN}_dog")["image"] == "src/darkweights/data/dog.jpg"


@pytest.mark.parametrize("case", CASES)
def test_same_detections_as_alexeyab(case: str) -> None:
    ref = _ref(case)
    det = _detector(_model(ref))
    # the settings test_detector took from the cfg: letterbox from [net], NMS from the last detection layer
    assert det.letterbox == bool(ref["letter_box"])
    last = det.heads[-1]
    assert (last.index, last.nms_kind, last.classes) == (ref["nms_layer"], ref["nms_kind"], ref["nms_classes"])
    if last.nms_kind == "diounms":  # the only kind that reads beta_nms ([region]'s is 0 in Darknet, unused)
        assert np.float32(last.beta_nms) == np.float32(ref["beta_nms"])
    dets, records = _run(ref)
    assert len(dets) == ref["nboxes"]  # get_network_boxes' count: objectness > thresh, region w*h*n
    assert 4 <= len(records) <= 40
    _compare(records, ref)
    # records are sorted by probability, as Darknet's array order sorted stably
    assert [(r["det_index"], r["class_id"]) for r in records] == record_order(ref["detections"])


@pytest.mark.parametrize("case", CASES)
def test_thresholds_keep_clear_of_the_scores(case: str) -> None:
    """No objectness or class score within 1e-4 (relative) of the case's threshold, so that float rounding in
    the forward cannot change which boxes and scores Darknet keeps (measured: >= 1.48e-4, README)."""
    ref = _ref(case)
    model = _model(ref)
    outs, w, h = _forward(model, reference_image(ref))
    every = _detector(model).boxes(outs, w, h, thresh=-1.0, nms_thresh=0)  # all boxes, all scores
    t = np.float32(ref["thresh"])
    obj = every.objectness
    if not (obj == 1).all():  # [region]: objectness is 1, only the class scores are thresholded
        assert np.abs(obj / t - 1).min() > 1e-4
    assert np.abs(every.probs[obj > t] / t - 1).min() > 1e-4


@pytest.mark.parametrize("case", [c for c in CASES if "_nms" in c])
def test_nms_kind_decides(case: str) -> None:
    """The cases run with a lower NMS threshold: their greedynms / diounms keeps other detections than
    do_nms_sort would (at 0.45 the shared models' boxes of one class rarely overlap)."""
    ref = _ref(case)
    assert ref["nms_kind"] in ("greedynms", "diounms") and ref["nms"] < 0.45
    dets, records = _run(ref)
    _compare(records, ref)
    raw, _ = _run(ref, nms_thresh=0)
    kept = int((nms(raw, ref["nms"], "default").probs > 0).sum())
    assert kept < len(ref["detections"]) < int((raw.probs > 0).sum())


def test_own_model_exercises_its_heads_letterbox_and_nms() -> None:
    """The always-run case: both heads contribute, and neither the letterbox nor the NMS flavour is idle."""
    ref = _ref(f"{OWN}_dog")
    det = _detector(OWN)
    assert [L.type for L in det.heads] == ["gaussian_yolo", "yolo"]
    g, y = det.heads
    assert (g.yolo_point, g.scale_x_y, g.nms_kind) == ("left_top", pytest.approx(1.1), "greedynms")
    assert (y.new_coords, y.scale_x_y, y.nms_kind, y.beta_nms) == (1, 2.0, "diounms", pytest.approx(0.8))
    assert det.letterbox and (det.net.width, det.net.height) == (96, 64)
    dets, records = _run(ref)
    _compare(records, ref)

    # some of the detections come from the [Gaussian_yolo] head, the others from the [yolo] one
    outs, w, h = _forward(OWN, DOG)
    first = head_detections(
        g, outs[g.index][0].numpy(), net_w=det.net.width, net_h=det.net.height, thresh=ref["thresh"]
    )
    first.boxes = det.pipeline.correct(g, first.boxes, w, h, det.net.width, det.net.height, det.letterbox)
    gaussian = {tuple(b) for b in first.boxes.tolist()}
    from_first = [r for r in records if tuple(np.float32(r["bbox_relative"]).tolist()) in gaussian]
    assert 0 < len(from_first) < len(records)

    # NMS removed some: without it there are more; any other NMS flavour keeps another set
    raw = det.boxes(outs, w, h, thresh=ref["thresh"], nms_thresh=0)
    assert (raw.probs > 0).sum() > len(ref["detections"])
    for kind, beta in (("default", 0.6), ("greedynms", 0.6), ("diounms", 0.6)):
        other = nms(raw, ref["nms"], kind, beta)
        assert (other.probs > 0).sum() != len(ref["detections"]), (kind, beta)

    # the letterbox correction matters: decoded as if the input had been stretched, the boxes are not Darknet's
    with pytest.raises(AssertionError):
        _compare(_plain(det).decode(outs, w, h, thresh=ref["thresh"]), ref)


def _plain(det: Detector) -> Detector:
    """The same detector decoding without the letterbox correction."""
    other = Detector.__new__(Detector)
    other.__dict__.update(det.__dict__, letterbox=False)
    return other


def test_cli_detect_matches(capsys) -> None:
    """``darkweights detect CFG WEIGHTS IMAGE --thresh T --json``: the cfg's letter_box and last-head NMS apply."""
    ref = _ref(f"{OWN}_dog")
    d = _model_dir(OWN)
    args = [
        "detect",
        str(d / "model.cfg"),
        str(d / "model.weights"),
        str(DOG),
        "--thresh",
        str(ref["thresh"]),
        "--json",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    rows = np.array(ref["detections"], dtype=np.float64)
    order = sorted(range(len(rows)), key=lambda i: -rows[i][2])
    assert len(printed) == len(rows) == 25
    size = np.array([ref["im_w"], ref["im_h"], ref["im_w"], ref["im_h"]])
    for r, i in zip(printed, order):
        _, cls, prob, x, y, w, h, _ = rows[i]
        assert r["class_id"] == int(cls) and r["prob"] == pytest.approx(prob, rel=1e-4)
        ours, theirs = np.array([r["x"], r["y"], r["w"], r["h"]]), np.array([x, y, w, h]) * size
        assert (np.abs(ours - theirs) <= 1e-4 * np.maximum(size, np.abs(theirs))).all()
