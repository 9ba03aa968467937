"""Darknet NMS (do_nms_sort / diounms_sort) on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest

from darkweights import detect as B

F32 = np.float32


def _dets(boxes, probs, objectness=None) -> B.Detections:
    boxes = np.asarray(boxes, F32)
    probs = np.asarray(probs, F32)
    obj = np.ones(len(boxes), F32) if objectness is None else np.asarray(objectness, F32)
    return B.Detections(boxes, obj, probs)


def _by_objectness(d: B.Detections) -> dict[float, list[float]]:
    """Map a detection (identified by its unique objectness) to its probs."""
    return {round(float(o), 4): [round(float(p), 4) for p in row] for o, row in zip(d.objectness, d.probs)}


def test_iou_and_diou_values() -> None:
    a = np.array([0.3, 0.5, 0.4, 0.4], F32)
    b = np.array([0.42, 0.5, 0.4, 0.4], F32)
    # overlap 0.28 x 0.4 = 0.112, union 0.16 + 0.16 - 0.112 = 0.208
    assert float(B.box_iou(a, b)) == pytest.approx(0.112 / 0.208, rel=1e-6)
    # enclosing box 0.52 x 0.4, centre distance 0.12
    penalty = (0.12**2 / (0.52**2 + 0.4**2)) ** 0.6
    assert float(B.box_diou(a, b)) == pytest.approx(0.112 / 0.208 - penalty, rel=1e-5)
    assert float(B.box_diounms(a, b, 1.0)) == pytest.approx(0.112 / 0.208 - penalty ** (1 / 0.6), rel=1e-5)
    # disjoint and touching boxes have IoU 0
    assert float(B.box_iou(a, np.array([0.9, 0.9, 0.1, 0.1], F32))) == 0.0
    assert float(B.box_iou(a, np.array([0.7, 0.5, 0.4, 0.4], F32))) == 0.0


def test_do_nms_sort_suppresses_lower_overlapping_box() -> None:
    d = _dets(
        [[0.5, 0.5, 0.4, 0.4], [0.52, 0.5, 0.4, 0.4], [0.1, 0.1, 0.1, 0.1]],
        [[0.8], [0.9], [0.7]],
        objectness=[0.1, 0.2, 0.3],
    )
    out = B.do_nms_sort(d, 0.45)
    assert _by_objectness(out) == {0.1: [0.0], 0.2: [0.9], 0.3: [0.7]}
    # the input is not modified
    assert d.probs[0, 0] == F32(0.8)


def test_nms_is_per_class() -> None:
    same = [0.5, 0.5, 0.4, 0.4]
    d = _dets([same, same, same], [[0.9, 0.0], [0.0, 0.8], [0.7, 0.6]], objectness=[0.1, 0.2, 0.3])
    out = B.do_nms_sort(d, 0.45)
    # class 0: .9 beats .7; class 1: .8 beats .6; a box only suppresses its own class
    assert _by_objectness(out) == {0.1: [0.9, 0.0], 0.2: [0.0, 0.8], 0.3: [0.0, 0.0]}


def test_greedy_diou_keeps_boxes_that_plain_iou_suppresses() -> None:
    # IoU 0.538 > 0.45, but DIoU = IoU - (d^2/c^2)^0.6 = 0.408 < 0.45
    d = _dets([[0.3, 0.5, 0.4, 0.4], [0.42, 0.5, 0.4, 0.4]], [[0.9], [0.8]], objectness=[0.1, 0.2])
    assert _by_objectness(B.nms(d, 0.45, "default")) == {0.1: [0.9], 0.2: [0.0]}
    assert _by_objectness(B.nms(d, 0.45, "greedynms")) == {0.1: [0.9], 0.2: [0.8]}
    assert _by_objectness(B.nms(d, 0.45, "cornersnms")) == {0.1: [0.9], 0.2: [0.0]}  # plain IoU
    # beta_nms matters only for diounms: exponent 1 -> penalty 0.033 -> 0.505 > 0.45
    assert _by_objectness(B.nms(d, 0.45, "diounms", beta_nms=0.6)) == {0.1: [0.9], 0.2: [0.8]}
    assert _by_objectness(B.nms(d, 0.45, "diounms", beta_nms=1.0)) == {0.1: [0.9], 0.2: [0.0]}
    assert _by_objectness(B.nms(d, 0.45, "greedynms", beta_nms=1.0)) == {0.1: [0.9], 0.2: [0.8]}


def test_output_order_is_darknets_array_order() -> None:
    far = [[0.1, 0.1, 0.05, 0.05], [0.5, 0.5, 0.05, 0.05], [0.9, 0.9, 0.05, 0.05]]
    d = _dets(far, [[0.3, 0.6], [0.9, 0.0], [0.5, 0.6]], objectness=[0.1, 0.2, 0.3])
    out = B.do_nms_sort(d, 0.45)
    # class 0 sort -> [1, 2, 0]; class 1 sort is stable -> the .6 tie keeps 2 before 0 -> [2, 0, 1]
    np.testing.assert_array_equal(out.objectness, np.array([0.3, 0.1, 0.2], F32))
    np.testing.assert_array_equal(out.probs, d.probs[[2, 0, 1]])


def test_tie_goes_to_the_box_first_in_the_previous_class_order() -> None:
    same = [0.5, 0.5, 0.4, 0.4]
    # class 0 orders det 1 before det 0; in class 1 both score .5, so det 1 (first) wins
    d = _dets([same, same], [[0.8, 0.5], [0.9, 0.5]], objectness=[0.1, 0.2])
    out = B.do_nms_sort(d, 0.45)
    assert _by_objectness(out) == {0.1: [0.0, 0.0], 0.2: [0.9, 0.5]}
    # with only the tied class, input order decides
    d1 = _dets([same, same], [[0.5], [0.5]], objectness=[0.1, 0.2])
    assert _by_objectness(B.do_nms_sort(d1, 0.45)) == {0.1: [0.5], 0.2: [0.0]}


def test_zero_objectness_moved_to_the_end_by_swaps() -> None:
    boxes = [[0.1 * (i + 1), 0.5, 0.01, 0.01] for i in range(5)]
    obj = [0.0, 0.5, 0.6, 0.0, 0.7]
    probs = np.zeros((5, 1), F32)
    out = B.do_nms_sort(_dets(boxes, probs, obj), 0.45)
    # Darknet's swap loop: [4, 1, 2 | 3, 0] (not a stable partition)
    np.testing.assert_array_equal(out.boxes[:, 0], np.array([0.5, 0.2, 0.3, 0.4, 0.1], F32))


def test_suppressed_box_does_not_suppress_others() -> None:
    # A (.9) suppresses B (.8); B overlaps C (.7) but A does not, so C survives
    d = _dets(
        [[0.30, 0.5, 0.2, 0.2], [0.36, 0.5, 0.2, 0.2], [0.42, 0.5, 0.2, 0.2]],
        [[0.9], [0.8], [0.7]],
        objectness=[0.1, 0.2, 0.3],
    )
    assert float(B.box_iou(d.boxes[0], d.boxes[2])) < 0.45 < float(B.box_iou(d.boxes[1], d.boxes[2]))
    assert _by_objectness(B.do_nms_sort(d, 0.45)) == {0.1: [0.9], 0.2: [0.0], 0.3: [0.7]}


def test_nms_kind_from_cfg(tmp_path) -> None:
    """The catalogue reads nms_kind as Darknet's parser does; detect uses the last head's."""
    import darkweights as dw

    def kind(section: str, value: str = "") -> str:
        line = f"nms_kind={value}\n" if value else ""
        cfg = tmp_path / "h.cfg"
        cfg.write_text(
            f"[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters={3 * 14 if 'G' in section else 3 * 10}\n"
            f"activation=linear\n[{section}]\nclasses=5\nnum=3\n{line}"
        )
        return dw.load(cfg).layers[1].nms_kind

    assert kind("yolo") == "default"
    assert kind("yolo", "greedynms") == "greedynms"
    assert kind("yolo", "cornersnms") == "default"  # parse_yolo does not know it
    assert kind("Gaussian_yolo", "cornersnms") == "cornersnms"
    assert kind("yolo", "typo") == "default"
    with pytest.raises(ValueError):
        B.diounms_sort(_dets([[0.5, 0.5, 0.1, 0.1]], [[0.5]]), 0.45, "default")


def test_empty_input() -> None:
    empty = B.Detections.empty(3)
    assert len(B.nms(empty, 0.45, "greedynms")) == 0
    assert B.to_records(empty, ["a", "b", "c"], 10, 10) == []
