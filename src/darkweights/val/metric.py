"""AlexeyAB's ``validate_detector_map`` arithmetic (``AB:src/detector.c``): AP per class, mAP, and the counts at a
confidence threshold, from each image's post-NMS detections and its labels.

Per image (:meth:`MapAccumulator.add`), in Darknet's order (detections in their post-NMS array order, classes
inside each): every (detection, class) with ``prob > 0`` becomes one entry. It is matched to the truth of its
class with the highest ``box_iou`` above ``iou_thresh`` (the first such truth on a tie); unmatched entries that
overlap a *difficult* truth of their class (``difficult=`` in the ``.data``) are dropped. At ``prob > thresh``
an entry is a true positive when matched to a truth that no earlier entry *of this image* (at any probability)
was matched to, else a false positive; the average IoU sums the true positives' IoUs in float32 and divides by
TP + FP (not TP: Darknet's definition). A dropped difficult entry above ``thresh`` still counts as a false
positive there (it leaves the list after the match, before the count).

Over all images (:meth:`MapAccumulator.result`): entries sorted by probability, highest first (glibc's ``qsort``
is a merge sort: ties keep their order); walking the ranks, an entry is a TP of its class when it is the first to
reach its truth. For each class, precision and recall (doubles) at every rank, then AP:

* ``points=0``: from the last rank down, ``(recall[r+1] - recall[r]) * max(precision[r:])``, plus
  ``recall[0] * max(precision)``: the area under the curve at each unique recall;
* ``points=N``: the mean over ``N`` recall levels ``k/(N-1)`` of the highest precision at a recall ``>=`` it
  (11: VOC2007, 101: COCO).

mAP is the mean over *all* classes, those without truths included (their AP is 0). Precision, recall and F1 at
``thresh`` are float32 and NaN where Darknet divides 0 by 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..detect.nms import box_iou

F32 = np.float32


@dataclass
class ClassResult:
    """One class's line of ``detector map``: AP and the TP/FP at the confidence threshold."""

    class_id: int
    name: str
    ap: float
    tp: int
    fp: int
    truths: int
    detections: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "name": self.name,
            "ap": self.ap,
            "tp": self.tp,
            "fp": self.fp,
            "truths": self.truths,
            "detections": self.detections,
        }


@dataclass
class MapResult:
    """What ``darknet detector map`` prints, as numbers (fractions, not percents)."""

    map: float
    iou_thresh: float
    points: int
    conf_thresh: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    average_iou: float
    classes: list[ClassResult]
    detections: int
    truths: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (NaN as ``None``)."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else v

        out = {
            "map": self.map,
            "iou_thresh": self.iou_thresh,
            "points": self.points,
            "conf_thresh": self.conf_thresh,
            "precision": num(self.precision),
            "recall": num(self.recall),
            "f1": num(self.f1),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "average_iou": num(self.average_iou),
            "detections": self.detections,
            "truths": self.truths,
            "classes": [c.to_dict() for c in self.classes],
        }
        out.update(self.extra)
        return out


def printout(record: Mapping[str, Any]) -> list[str]:
    """The lines ``detector map`` prints for a result record (:meth:`MapResult.to_dict`), character for character:
    ``printf``'s rounding of the same float32/double values, ``-nan`` where Darknet divides 0 by 0."""
    f32 = F32
    lines = [f" detections_count = {record['detections']}, unique_truth_count = {record['truths']}  "]
    for c in record["classes"]:
        lines.append(
            f"class_id = {c['class_id']}, name = {c['name']}, ap = {_pct(c['ap'] * 100)}%   \t "
            f"(TP = {c['tp']}, FP = {c['fp']}) "
        )
    thresh, iou = record["conf_thresh"], record["iou_thresh"]
    avg_iou = record["average_iou"]
    lines += [
        "",
        f" for conf_thresh = {_c(thresh)}, precision = {_c(record['precision'])}, recall = "
        f"{_c(record['recall'])}, F1-score = {_c(record['f1'])} ",
        f" for conf_thresh = {_c(thresh)}, TP = {record['tp']}, FP = {record['fp']}, FN = {record['fn']}, "
        f"average IoU = {_pct(None if avg_iou is None else float(f32(avg_iou) * f32(100)))} % ",
        "",
        f" IoU threshold = {_c(float(f32(iou) * f32(100)), 0).rjust(2)} %, "
        + (
            f"used {record['points']} Recall-points "
            if record["points"]
            else "used Area-Under-Curve for each unique Recall "
        ),
        f" mean average precision (mAP@{_c(iou)}) = {_c(record['map'], 6)}, or {_pct(record['map'] * 100)} % ",
    ]
    return lines


def _c(v: float | None, digits: int = 2) -> str:
    """``printf("%.Nf")`` of a float promoted to double; ``None`` is NaN (glibc prints the default NaN as
    ``-nan``)."""
    if v is None or math.isnan(v):
        return "-nan"
    return f"{float(v):.{digits}f}"


def _pct(v: float | None) -> str:
    """``printf("%2.2f")``."""
    return _c(v, 2).rjust(2)


class MapAccumulator:
    """``validate_detector_map``'s bookkeeping, fed one image at a time (see the module notes)."""

    def __init__(self, classes: int, *, iou_thresh: float = 0.5, thresh: float = 0.25) -> None:
        self.classes = int(classes)
        self.iou_thresh = F32(iou_thresh)  # const float in Darknet
        self.thresh = F32(thresh)
        self.images = 0
        self.entries = 0  # (detection, class) pairs kept so far
        self._prob: list[np.ndarray] = []
        self._cls: list[np.ndarray] = []
        self._truth: list[np.ndarray] = []  # unique truth index, -1 when unmatched
        self.truth_count = np.zeros(self.classes, np.int64)
        self.unique_truths = 0
        self.avg_iou = F32(0.0)
        self.tp_thresh = np.zeros(self.classes, np.int64)
        self.fp_thresh = np.zeros(self.classes, np.int64)

    def add(
        self,
        boxes: np.ndarray,
        probs: np.ndarray,
        truth_ids: np.ndarray,
        truth_boxes: np.ndarray,
        difficult_ids: np.ndarray | None = None,
        difficult_boxes: np.ndarray | None = None,
    ) -> None:
        """One image: its detections (``boxes (N, 4)`` relative ``x, y, w, h`` and ``probs (N, classes)``, Darknet's
        post-NMS array) and its truths (class ids, relative boxes); optionally its difficult truths."""
        boxes = np.asarray(boxes, F32).reshape(-1, 4)
        probs = np.asarray(probs, F32)
        truth_ids = np.asarray(truth_ids, np.int64).reshape(-1)
        truth_boxes = np.asarray(truth_boxes, F32).reshape(-1, 4)
        det, cls = np.nonzero(probs > 0)  # row-major: detection by detection, classes inside
        p = probs[det, cls]
        best, best_iou = _match(boxes[det], cls, truth_boxes, truth_ids, self.iou_thresh)
        dropped = np.zeros(p.shape[0], bool)
        if difficult_ids is not None and len(difficult_ids):
            d_ids = np.asarray(difficult_ids, np.int64).reshape(-1)
            d_iou = box_iou(boxes[det][:, None, :], np.asarray(difficult_boxes, F32).reshape(-1, 4)[None, :, :])
            hit = (d_iou > self.iou_thresh) & (cls[:, None] == d_ids[None, :])
            dropped = (best < 0) & hit.any(axis=1)
        # at the confidence threshold: a TP when matched to a truth no earlier kept entry of this image reached
        first = np.zeros(p.shape[0], bool)
        kept = np.flatnonzero(~dropped & (best >= 0))
        if kept.size:
            _, at = np.unique(best[kept], return_index=True)
            first[kept[at]] = True
        above = p > self.thresh
        tp = above & first
        for k in np.flatnonzero(tp):  # float32, in Darknet's order
            self.avg_iou = F32(self.avg_iou + best_iou[k])
        np.add.at(self.tp_thresh, cls[tp], 1)
        np.add.at(self.fp_thresh, cls[above & ~tp], 1)
        keep = ~dropped
        unique = np.where(best >= 0, best + self.unique_truths, -1)
        self.entries += int(keep.sum())
        self._prob.append(p[keep])
        self._cls.append(cls[keep])
        self._truth.append(unique[keep])
        self.truth_count += np.bincount(truth_ids, minlength=self.classes)[: self.classes]
        self.unique_truths += int(truth_ids.shape[0])
        self.images += 1

    def result(self, points: int = 0, names: list[str] | None = None) -> MapResult:
        """AP per class and mAP with ``points`` recall points (0: area under the curve), and the counts at the
        threshold."""
        if points < 0:
            raise ValueError(f"points must be 0 (area under the curve) or a number of recall points, not {points}")
        names = list(names) if names is not None else [str(i) for i in range(self.classes)]
        prob = np.concatenate(self._prob) if self._prob else np.zeros(0, F32)
        cls = np.concatenate(self._cls) if self._cls else np.zeros(0, np.int64)
        truth = np.concatenate(self._truth) if self._truth else np.zeros(0, np.int64)
        order = np.argsort(-prob, kind="stable")  # qsort by p descending; glibc's merge sort keeps ties in order
        cls, truth = cls[order], truth[order]
        is_tp = np.zeros(order.shape[0], bool)
        matched = np.flatnonzero(truth >= 0)
        if matched.size:
            _, at = np.unique(truth[matched], return_index=True)
            is_tp[matched[at]] = True  # the first rank to reach each truth
        classes = []
        total = 0.0
        for c in range(self.classes):
            mine = cls == c
            ap = average_precision(is_tp[mine], int(self.truth_count[c]), points)
            total += ap  # double, class by class as Darknet sums
            classes.append(
                ClassResult(
                    c,
                    names[c] if c < len(names) else str(c),
                    ap,
                    int(self.tp_thresh[c]),
                    int(self.fp_thresh[c]),
                    int(self.truth_count[c]),
                    int(mine.sum()),
                )
            )
        tp, fp = int(self.tp_thresh.sum()), int(self.fp_thresh.sum())
        fn = self.unique_truths - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = F32(tp) / (F32(tp) + F32(fp))
            recall = F32(tp) / (F32(tp) + F32(fn))
            f1 = F32(2.0) * precision * recall / (precision + recall)
            avg_iou = self.avg_iou / F32(tp + fp) if tp + fp > 0 else self.avg_iou
        return MapResult(
            map=total / self.classes if self.classes else 0.0,
            iou_thresh=float(self.iou_thresh),
            points=int(points),
            conf_thresh=float(self.thresh),
            precision=float(precision),
            recall=float(recall),
            f1=float(f1),
            tp=tp,
            fp=fp,
            fn=fn,
            average_iou=float(avg_iou),
            classes=classes,
            detections=int(order.shape[0]),
            truths=self.unique_truths,
        )


def _match(
    boxes: np.ndarray, cls: np.ndarray, truth_boxes: np.ndarray, truth_ids: np.ndarray, iou_thresh: np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """For each entry, the index of the truth it matches (``-1``: none) and that IoU (0 when none): the truth of
    its class with ``box_iou > iou_thresh`` and the highest IoU, the first on a tie (``current_iou > max_iou``
    from 0)."""
    n = boxes.shape[0]
    if n == 0 or truth_ids.shape[0] == 0:
        return np.full(n, -1, np.int64), np.zeros(n, F32)
    iou = box_iou(boxes[:, None, :], truth_boxes[None, :, :])
    ok = (iou > iou_thresh) & (iou > 0) & (cls[:, None] == truth_ids[None, :])
    masked = np.where(ok, iou, F32(-1.0))
    best = np.argmax(masked, axis=1)  # the first maximum
    found = ok[np.arange(n), best]
    return np.where(found, best, -1), np.where(found, iou[np.arange(n), best], F32(0.0)).astype(F32)


def average_precision(is_tp: np.ndarray, truths: int, points: int = 0) -> float:
    """One class's AP from its entries in rank order (``True``: a true positive) and its number of truths, as
    ``validate_detector_map`` computes it (the ranks of other classes change neither its precision nor its recall,
    so walking only its own ranks gives the same sums in the same order)."""
    if is_tp.size == 0:
        return 0.0
    tp = np.cumsum(is_tp, dtype=np.int64).astype(np.float64)
    fp = np.cumsum(~is_tp, dtype=np.int64).astype(np.float64)
    precision = tp / (tp + fp)
    recall = tp / truths if truths > 0 else np.zeros_like(tp)
    if points == 0:
        # from the last rank down: delta recall times the best precision at this rank or later, then the rest
        best = np.maximum.accumulate(precision[::-1])[::-1]
        terms = np.empty(precision.size)
        terms[:-1] = ((recall[1:] - recall[:-1]) * best[:-1])[::-1]
        terms[-1] = recall[0] * best[0]
        return float(np.cumsum(terms)[-1])  # sequential, in Darknet's order
    total = 0.0
    for point in range(points):
        level = point / (points - 1) if points > 1 else math.nan  # 0/0 in Darknet for one point
        reach = precision[recall >= level]
        total += float(reach.max()) if reach.size else 0.0
    return total / points
