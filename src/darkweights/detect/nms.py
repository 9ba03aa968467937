"""Darknet's non-maximum suppression and its IoU family, in NumPy (float32 as Darknet computes them).

``do_nms_sort`` / ``diounms_sort`` -> :func:`do_nms_sort`, :func:`diounms_sort` (or :func:`nms`, which
dispatches on the cfg's ``nms_kind``); pjreddie's ``do_nms_sort`` over a class count ->
:func:`do_nms_sort_pjreddie`. Darknet's ``qsort`` calls are reproduced as stable sorts: glibc's ``qsort``
is a merge sort whenever it can allocate its buffer, so ties keep their previous order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ArgumentError
from .boxes import F32, Detections

__all__ = [
    "NMS_KINDS",
    "box_iou",
    "box_diou",
    "box_diounms",
    "do_nms_sort",
    "diounms_sort",
    "do_nms_sort_pjreddie",
    "nms",
]

NMS_KINDS = ("default", "greedynms", "diounms", "cornersnms")

# --------------------------------------------------------------------------- IoU family


def _split(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    b = np.asarray(b, dtype=F32)
    return b[..., 0], b[..., 1], b[..., 2], b[..., 3]


def _overlap(x1: np.ndarray, w1: np.ndarray, x2: np.ndarray, w2: np.ndarray) -> np.ndarray:
    half = F32(2.0)
    left = np.maximum(x1 - w1 / half, x2 - w2 / half)
    right = np.minimum(x1 + w1 / half, x2 + w2 / half)
    return right - left


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``AB:src/box.c:box_iou`` in float32, broadcasting ``(…, 4)`` boxes ``(x, y, w, h)``.

    Returns 0 when the intersection or the union is 0 (also for touching boxes).
    """
    ax, ay, aw, ah = _split(a)
    bx, by, bw, bh = _split(b)
    iw = _overlap(ax, aw, bx, bw)
    ih = _overlap(ay, ah, by, bh)
    inter = np.where((iw < 0) | (ih < 0), F32(0.0), iw * ih)
    union = aw * ah + bw * bh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((inter == 0) | (union == 0), F32(0.0), inter / union)
    return iou.astype(F32)


def _diou_generic(a: np.ndarray, b: np.ndarray, beta: np.float64) -> np.ndarray:
    ax, ay, aw, ah = _split(a)
    bx, by, bw, bh = _split(b)
    half = F32(2.0)
    # box_c: the smallest box enclosing both
    top = np.minimum(ay - ah / half, by - bh / half)
    bot = np.maximum(ay + ah / half, by + bh / half)
    left = np.minimum(ax - aw / half, bx - bw / half)
    right = np.maximum(ax + aw / half, bx + bw / half)
    cw = right - left
    ch = bot - top
    c = cw * cw + ch * ch
    iou = box_iou(a, b)
    dx = ax - bx
    dy = ay - by
    d = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (d / c).astype(np.float64)
        u = np.power(ratio, beta).astype(F32)  # pow() in double, stored as float
    return np.where(c == 0, iou, iou - u).astype(F32)


def box_diou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``AB:src/box.c:box_diou``: ``IoU - (d²/c²)^0.6``; note the exponent is a fixed 0.6.

    This is what ``nms_kind=greedynms`` uses (the cfg's ``beta_nms`` is ignored there).
    """
    return _diou_generic(a, b, np.float64(0.6))


def box_diounms(a: np.ndarray, b: np.ndarray, beta1: float) -> np.ndarray:
    """``AB:src/box.c:box_diounms``: ``IoU - (d²/c²)^beta1``, ``beta1`` a float (``beta_nms``)."""
    return _diou_generic(a, b, np.float64(F32(beta1)))


# --------------------------------------------------------------------------- NMS


def _objectness_partition(objectness: np.ndarray) -> tuple[np.ndarray, int]:
    """Darknet's pre-NMS pass: swap every zero-objectness detection to the end.

    Reproduces the exact swap sequence of ``do_nms_sort``/``diounms_sort`` (it is not
    a stable partition). Returns the permutation and the count of non-zero ones.
    """
    order = np.arange(objectness.shape[0])
    k = order.size - 1
    i = 0
    zero = objectness == 0
    while i <= k:
        if zero[order[i]]:
            order[i], order[k] = order[k], order[i]
            k -= 1  # re-examine position i, which now holds what was at k
        else:
            i += 1
    return order, k + 1


SuppressFn = Callable[[np.ndarray, np.ndarray, np.float32], np.ndarray]


def _nms_sort(dets: Detections, thresh: float, suppress: SuppressFn, classes: int | None = None) -> Detections:
    """Shared body of ``do_nms_sort`` and ``diounms_sort``.

    For each class k in turn the *whole* array is re-sorted by ``prob[k]`` descending
    (``nms_comparator_v3``; stable, so ties keep the order left by class k-1), then every
    detection with ``prob[k] != 0`` zeroes ``prob[k]`` of the later ones that
    ``suppress(a, b)`` flags. Returns a copy in Darknet's final array order: the
    zero-objectness tail is left untouched and stays at the end. ``classes``: only the
    first ``classes`` classes (the count Darknet's caller passes; default all).
    """
    order, total = _objectness_partition(dets.objectness)
    head = order[:total]
    probs = dets.probs.copy()
    boxes = dets.boxes
    limit = F32(thresh)
    for k in range(dets.classes if classes is None else min(classes, dets.classes)):
        col = probs[head, k]
        if not col.any():
            continue  # all keys equal: a stable sort leaves the order as it is
        perm = np.argsort(-col, kind="stable")
        head = head[perm]
        col = col[perm]
        for i in np.flatnonzero(col):
            if col[i] == 0:  # suppressed by an earlier, higher-scoring box
                continue
            # Zeroing an already-zero prob is a no-op, so only live later boxes are tested.
            live = i + 1 + np.flatnonzero(col[i + 1 :])
            if live.size == 0:
                continue
            hit = suppress(boxes[head[i]], boxes[head[live]], limit)
            col[live[hit]] = 0
        probs[head, k] = col
    final = np.concatenate([head, order[total:]])
    out = dets.take(final)
    out.probs = probs[final]
    return out


def do_nms_sort(dets: Detections, thresh: float = 0.45) -> Detections:
    """``AB:src/box.c:do_nms_sort`` (``nms_kind=default``): per-class greedy NMS on IoU ``> thresh``."""
    return _nms_sort(dets, thresh, lambda a, b, t: box_iou(a, b) > t)


def diounms_sort(
    dets: Detections, thresh: float = 0.45, nms_kind: str = "greedynms", beta_nms: float = 0.6
) -> Detections:
    """``AB:src/box.c:diounms_sort``: per-class greedy NMS with the criterion of ``nms_kind``.

    * ``greedynms``: ``box_diou > thresh`` (DIoU with the fixed exponent 0.6);
    * ``diounms``: ``box_diounms(beta_nms) > thresh``;
    * ``cornersnms``: plain ``box_iou > thresh`` (the box-merging code is commented out in AB).
    """
    if nms_kind == "greedynms":
        return _nms_sort(dets, thresh, lambda a, b, t: box_diou(a, b) > t)
    if nms_kind == "diounms":
        return _nms_sort(dets, thresh, lambda a, b, t: box_diounms(a, b, beta_nms) > t)
    if nms_kind == "cornersnms":
        return _nms_sort(dets, thresh, lambda a, b, t: box_iou(a, b) > t)
    raise ArgumentError(f"diounms_sort: nms_kind must be greedynms, diounms or cornersnms, not {nms_kind!r}")


def do_nms_sort_pjreddie(dets: Detections, thresh: float = 0.45, classes: int | None = None) -> Detections:
    """``PJ:src/box.c:do_nms_sort``: the same algorithm and comparator as AB's :func:`do_nms_sort`
    (pjreddie has no ``nms_kind``), over the first ``classes`` classes: ``test_detector`` passes
    the *last layer's* ``l.classes``, 0 when that layer is not a detection head (then only the
    zero-objectness partition happens)."""
    return _nms_sort(dets, thresh, lambda a, b, t: box_iou(a, b) > t, classes)


def nms(dets: Detections, thresh: float = 0.45, nms_kind: str = "default", beta_nms: float = 0.6) -> Detections:
    """NMS as ``test_detector`` chooses it from the last detection layer's ``nms_kind``."""
    if nms_kind == "default":
        return do_nms_sort(dets, thresh)
    return diounms_sort(dets, thresh, nms_kind, beta_nms)
