"""Darknet's detection-head decoding and non-maximum suppression, in NumPy.

Re-implements what AlexeyAB Darknet's ``darknet detector test`` does after
``network_predict`` (pjreddie's ``detector test``: the ``*_pjreddie`` functions, see
the section at the end of the decoders):

* ``get_network_boxes`` -> per head :func:`get_yolo_detections`,
  :func:`get_gaussian_yolo_detections`, :func:`get_region_detections` (concatenate the
  results in layer order with :meth:`Detections.concatenate`);
* ``do_nms_sort`` / ``diounms_sort`` -> :func:`do_nms_sort`, :func:`diounms_sort`
  (or :func:`nms`, which dispatches on the cfg's ``nms_kind``);
* the box convention of the reference fixtures -> :func:`to_records`.

Arithmetic follows the C code's float32/double mix step by step (float32 arrays,
with float64 only where C promotes to double, e.g. ``exp`` and ``pow``), so decoded
boxes and probabilities match Darknet to the last bit or ulp given the same layer
output. Darknet's ``qsort`` calls are reproduced as stable sorts: glibc's ``qsort``
is a merge sort whenever it can allocate its buffer, so ties keep their previous order.
The decoders take each head's ``l.output`` as ``darkweights.torch`` computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArgumentError
from .image import letterbox_geometry

if TYPE_CHECKING:
    from ..tree import Tree

__all__ = [
    "Detections",
    "NMS_KINDS",
    "get_yolo_detections",
    "get_gaussian_yolo_detections",
    "get_region_detections",
    "correct_yolo_boxes",
    "get_yolo_detections_pjreddie",
    "get_region_detections_pjreddie",
    "correct_boxes_pjreddie",
    "do_nms_sort_pjreddie",
    "box_iou",
    "box_diou",
    "box_diounms",
    "do_nms_sort",
    "diounms_sort",
    "nms",
    "to_records",
]

F32 = np.float32
NMS_KINDS = ("default", "greedynms", "diounms", "cornersnms")


# --------------------------------------------------------------------------- records


@dataclass
class Detections:
    """A batch of Darknet ``detection`` structs, stored as arrays.

    ``boxes[i] = (x, y, w, h)``: centre and size *relative to the image* (after
    ``correct_yolo_boxes``). ``probs[i, j]`` is ``objectness * class_prob`` or 0 when not
    above the decode threshold, exactly like ``detection.prob``. ``uc`` holds the
    Gaussian-YOLO uncertainties (tx, ty, tw, th) when present.
    """

    boxes: np.ndarray
    objectness: np.ndarray
    probs: np.ndarray
    uc: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=F32).reshape(-1, 4)
        self.objectness = np.asarray(self.objectness, dtype=F32).reshape(-1)
        n = self.boxes.shape[0]
        self.probs = np.asarray(self.probs, dtype=F32)
        if self.probs.ndim != 2 or self.probs.shape[0] != n or self.objectness.shape[0] != n:
            raise ArgumentError("need boxes (N, 4), objectness (N,) and probs (N, classes)")
        if self.uc is not None:
            self.uc = np.asarray(self.uc, dtype=F32).reshape(n, 4)

    @property
    def classes(self) -> int:
        """Number of classes (``detection.classes``)."""
        return int(self.probs.shape[1])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def take(self, index: np.ndarray) -> Detections:
        """Detections at ``index`` (an integer array), as copies."""
        index = np.asarray(index, dtype=np.int64)
        return Detections(
            self.boxes[index].copy(),
            self.objectness[index].copy(),
            self.probs[index].copy(),
            None if self.uc is None else self.uc[index].copy(),
        )

    @classmethod
    def empty(cls, classes: int) -> Detections:
        return cls(np.zeros((0, 4), F32), np.zeros(0, F32), np.zeros((0, classes), F32))

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        """Join per-head results in layer order, as ``fill_network_boxes`` fills one array."""
        parts = list(parts)
        if not parts:
            raise ArgumentError("nothing to concatenate")
        classes = {p.classes for p in parts}
        if len(classes) != 1:
            # Darknet sizes every prob array for the first head's class count.
            raise ArgumentError(f"detection heads disagree on the number of classes: {sorted(classes)}")
        with_uc = [p.uc is not None for p in parts]
        uc = np.concatenate([p.uc for p in parts]) if all(with_uc) else None
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.objectness for p in parts]),
            np.concatenate([p.probs for p in parts]),
            uc,
        )


# --------------------------------------------------------------------------- float helpers


def _logistic(x: np.ndarray) -> np.ndarray:
    """``logistic_activate``: ``1.f/(1.f + expf(-x))`` in float32.

    ``expf`` is evaluated as a float64 ``exp`` rounded to float32 (glibc's ``expf`` is
    correctly rounded in practice; NumPy's own float32 ``exp`` may differ by an ulp).
    """
    e = np.exp(-np.asarray(x, dtype=np.float64)).astype(F32)
    return F32(1.0) / (F32(1.0) + e)


# --------------------------------------------------------------------------- decoding


def correct_yolo_boxes(
    boxes: np.ndarray, im_w: int, im_h: int, net_w: int, net_h: int, letterbox: bool, gaussian: bool = False
) -> np.ndarray:
    """Map boxes from network-input-relative to image-relative (``correct_yolo_boxes``).

    Only does something for letterboxed input: shifts by the grey border and
    rescales by ``new/net``. With ``letterbox=False`` it is the identity (ratio 1.0f).
    ``gaussian=True`` uses ``correct_gaussian_yolo_boxes``' w/h factor ``(float)netw/new_w``
    instead of ``1/((float)new_w/netw)`` (they can differ by an ulp).
    """
    b = np.array(boxes, dtype=F32, copy=True).reshape(-1, 4)
    if not letterbox or b.shape[0] == 0:
        return b
    new_w, new_h = letterbox_geometry(im_w, im_h, net_w, net_h)
    ratiow = F32(new_w) / F32(net_w)
    ratioh = F32(new_h) / F32(net_h)
    # x, y: double arithmetic, `(b.x - deltaw/2./netw) / ratiow`, stored as float
    b[:, 0] = ((b[:, 0].astype(np.float64) - (net_w - new_w) / 2.0 / net_w) / np.float64(ratiow)).astype(F32)
    b[:, 1] = ((b[:, 1].astype(np.float64) - (net_h - new_h) / 2.0 / net_h) / np.float64(ratioh)).astype(F32)
    if gaussian:
        fw, fh = F32(net_w) / F32(new_w), F32(net_h) / F32(new_h)
    else:
        fw, fh = F32(1.0) / ratiow, F32(1.0) / ratioh
    b[:, 2] = b[:, 2] * fw
    b[:, 3] = b[:, 3] * fh
    return b


def _anchor_pairs(anchors: Sequence[float]) -> np.ndarray:
    a = np.asarray(list(anchors), dtype=F32)  # l.biases is a float array
    if a.size % 2:
        raise ArgumentError("anchors must be w,h pairs")
    return a.reshape(-1, 2)


def _mask_list(mask: Sequence[int] | None, n_anchor_pairs: int) -> np.ndarray:
    if mask is None:
        return np.arange(n_anchor_pairs, dtype=np.int64)
    m = np.asarray(list(mask), dtype=np.int64)
    if m.size and (m.min() < 0 or m.max() >= n_anchor_pairs):
        raise ArgumentError(f"mask {m.tolist()} refers to anchors beyond the {n_anchor_pairs} given")
    return m


def _threshold_probs(obj: np.ndarray, cls: np.ndarray, thresh: float) -> np.ndarray:
    # prob = objectness*class (float); kept only when > thresh, else exactly 0
    prob = obj[:, None] * cls
    return np.where(prob > F32(thresh), prob, F32(0.0)).astype(F32)


def get_yolo_detections(
    output: np.ndarray,
    *,
    anchors: Sequence[float],
    mask: Sequence[int] | None,
    classes: int,
    net_w: int,
    net_h: int,
    im_w: int,
    im_h: int,
    thresh: float = 0.25,
    letterbox: bool = False,
    new_coords: bool = False,
) -> Detections:
    """Decode one ``[yolo]`` layer's ``l.output`` (``AB:src/yolo_layer.c:get_yolo_detections``).

    ``output`` is ``(n*(5+classes), H, W)``, ``n = len(mask)``; ``anchors`` in
    network-input pixels (the cfg's full list), ``mask`` selects this layer's pairs.
    A box is kept when its objectness is ``> thresh``; detections are ordered by grid cell
    (row-major), then anchor slot, as in Darknet.
    """
    out = np.asarray(output, dtype=F32)
    pairs = _anchor_pairs(anchors)
    m = _mask_list(mask, pairs.shape[0])
    n = m.size
    c, h, w = out.shape
    if c != n * (5 + classes):
        raise ArgumentError(f"[yolo] output has {c} channels, expected len(mask)*(classes+5) = {n * (5 + classes)}")
    # (n, 5+K, H*W) -> (H*W, n, 5+K): Darknet loops over locations, then anchors
    v = out.reshape(n, 5 + classes, h * w).transpose(2, 0, 1)
    obj = v[:, :, 4]
    loc, slot = np.nonzero(obj > F32(thresh))
    if loc.size == 0:
        return Detections.empty(classes)
    sel = v[loc, slot]
    col = (loc % w).astype(F32)
    row = (loc // w).astype(F32)
    aw = pairs[m[slot], 0]
    ah = pairs[m[slot], 1]
    bx = (col + sel[:, 0]) / F32(w)
    by = (row + sel[:, 1]) / F32(h)
    if new_coords:
        # get_yolo_box: x*x*4*bias/w, all in float
        bw = sel[:, 2] * sel[:, 2] * F32(4.0) * aw / F32(net_w)
        bh = sel[:, 3] * sel[:, 3] * F32(4.0) * ah / F32(net_h)
    else:
        # exp() is the double function: exp(x)*bias/w evaluated in double, stored as float
        bw = (np.exp(sel[:, 2].astype(np.float64)) * aw.astype(np.float64) / net_w).astype(F32)
        bh = (np.exp(sel[:, 3].astype(np.float64)) * ah.astype(np.float64) / net_h).astype(F32)
    boxes = np.stack([bx, by, bw, bh], axis=1)
    objectness = sel[:, 4].copy()
    probs = _threshold_probs(objectness, sel[:, 5:], thresh)
    boxes = correct_yolo_boxes(boxes, im_w, im_h, net_w, net_h, letterbox)
    return Detections(boxes, objectness, probs)


def get_gaussian_yolo_detections(
    output: np.ndarray,
    *,
    anchors: Sequence[float],
    mask: Sequence[int] | None,
    classes: int,
    net_w: int,
    net_h: int,
    im_w: int,
    im_h: int,
    thresh: float = 0.25,
    letterbox: bool = False,
    yolo_point: str = "center",
) -> Detections:
    """Decode one ``[Gaussian_yolo]`` ``l.output`` (``AB:src/gaussian_yolo_layer.c:get_gaussian_yolo_detections``).

    Channels per anchor: ``x, σx, y, σy, w, σw, h, σh, obj, classes…``. Class scores are
    ``obj * cls * (1 - mean(σx, σy, σw, σh))``; ``yolo_point`` (``center``,
    ``left_top``, ``right_bottom``) shifts the centre by half the box.
    """
    out = np.asarray(output, dtype=F32)
    pairs = _anchor_pairs(anchors)
    m = _mask_list(mask, pairs.shape[0])
    n = m.size
    c, h, w = out.shape
    if c != n * (9 + classes):
        raise ArgumentError(
            f"[Gaussian_yolo] output has {c} channels, expected len(mask)*(classes+9) = {n * (9 + classes)}"
        )
    if yolo_point not in ("center", "left_top", "right_bottom"):
        raise ArgumentError(f"unknown yolo_point {yolo_point!r}")
    v = out.reshape(n, 9 + classes, h * w).transpose(2, 0, 1)
    loc, slot = np.nonzero(v[:, :, 8] > F32(thresh))
    if loc.size == 0:
        return Detections.empty(classes)
    sel = v[loc, slot]
    col = (loc % w).astype(F32)
    row = (loc // w).astype(F32)
    aw = pairs[m[slot], 0].astype(np.float64)
    ah = pairs[m[slot], 1].astype(np.float64)
    bw = (np.exp(sel[:, 4].astype(np.float64)) * aw / net_w).astype(F32)
    bh = (np.exp(sel[:, 6].astype(np.float64)) * ah / net_h).astype(F32)
    bx = (col + sel[:, 0]) / F32(w)
    by = (row + sel[:, 2]) / F32(h)
    if yolo_point == "left_top":
        bx, by = bx + bw / F32(2), by + bh / F32(2)
    elif yolo_point == "right_bottom":
        bx, by = bx - bw / F32(2), by - bh / F32(2)
    uc = sel[:, [1, 3, 5, 7]].copy()
    # uc_aver = (uc0+uc1+uc2+uc3)/4.0: float sum left to right, then a double division
    uc_sum = ((uc[:, 0] + uc[:, 1]) + uc[:, 2]) + uc[:, 3]
    uc_aver = (uc_sum.astype(np.float64) / 4.0).astype(F32)
    objectness = sel[:, 8].copy()
    prob = ((objectness[:, None] * sel[:, 9:]).astype(np.float64) * (1.0 - uc_aver.astype(np.float64))[:, None]).astype(
        F32
    )
    probs = np.where(prob > F32(thresh), prob, F32(0.0)).astype(F32)
    boxes = correct_yolo_boxes(np.stack([bx, by, bw, bh], axis=1), im_w, im_h, net_w, net_h, letterbox, gaussian=True)
    return Detections(boxes, objectness, probs, uc)


def _tree_probs(cls: np.ndarray, scale: np.ndarray, tree: Tree, thresh: float, map: Sequence[int] | None) -> np.ndarray:
    """The ``softmax_tree`` branch of ``AB:src/region_layer.c:get_region_boxes`` (see get_region_detections)."""
    from ..tree import hierarchy_predictions

    if tree.n != cls.shape[1]:
        raise ValueError(
            f"[region] has {cls.shape[1]} classes but its tree {tree.n} nodes: Darknet's "
            "hierarchy_predictions would read past the tree"
        )
    hierarchy_predictions(cls, tree)
    probs = np.zeros_like(cls)
    if map is not None:
        if len(map) < 200:
            raise ValueError(f"map has {len(map)} entries; Darknet reads 200")
        prob = (scale[:, None] * cls[:, np.asarray(map[:200])]).astype(F32)
        probs[:, :200] = np.where(prob > F32(thresh), prob, F32(0.0))
        return probs
    above = cls > F32(0.5)
    last = cls.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)  # the highest class index > .5
    rows = np.nonzero(above.any(axis=1) & (scale > F32(thresh)))[0]
    probs[rows, last[rows]] = cls[rows, last[rows]]
    return probs


def get_region_detections(
    output: np.ndarray,
    *,
    anchors: Sequence[float],
    num: int,
    classes: int,
    grid_w: int,
    grid_h: int,
    net_w: int,
    net_h: int,
    im_w: int,
    im_h: int,
    thresh: float = 0.25,
    letterbox: bool = False,
    coords: int = 4,
    classfix: int = 0,
    tree: Tree | None = None,
    map: Sequence[int] | None = None,
) -> Detections:
    """Decode an AlexeyAB ``[region]`` ``l.output`` (YOLOv2), as ``fill_network_boxes`` does.

    AB routes ``[region]`` through ``AB:src/network.c:custom_get_region_detections`` ->
    ``get_region_boxes`` -> ``correct_yolo_boxes`` (not ``get_region_detections`` /
    ``correct_region_boxes``, which it no longer calls). ``output`` is the flat
    location-major buffer (the ``[region]`` output of ``darkweights.torch``); ``anchors`` are in grid cells.
    Every cell/anchor yields a detection (Darknet counts ``w*h*n`` of them) with
    objectness 1; class probs are ``sigmoid(obj) * class`` when ``> thresh``, else 0.

    ``tree`` (YOLO9000, the layer's ``tree=``): ``hierarchy_predictions`` first (each class times its
    ancestors). Without ``map`` (``detector test`` passes none: the cfg's ``map=`` is read for training
    only, and ``-hier`` never reaches ``get_region_boxes``), walking the classes from the last down, the
    first one ``> .5`` keeps its product, unscaled, when ``objectness > thresh``; all others are 0. With
    ``map`` (``validate_detector``'s data-file map): the 200 mapped classes, ``objectness * product`` when
    ``> thresh``.
    """
    if coords != 4:
        # get_region_boxes hard-codes a row stride of classes+5
        raise ArgumentError("[region] decoding supports coords=4 only (as Darknet's get_region_boxes)")
    size = classes + 5
    flat = np.asarray(output, dtype=F32).reshape(-1)
    cells = grid_w * grid_h
    if flat.size != cells * num * size:
        raise ArgumentError(
            f"[region] output has {flat.size} values, expected grid_w*grid_h*num*(classes+5) = {cells * num * size}"
        )
    pairs = _anchor_pairs(anchors)
    if pairs.shape[0] < num:
        raise ArgumentError(f"[region] needs {num} anchor pairs, got {pairs.shape[0]}")
    rows = flat.reshape(cells * num, size)  # row index = location*num + anchor
    idx = np.arange(cells * num)
    loc, slot = idx // num, idx % num
    col = (loc % grid_w).astype(F32)
    row = (loc // grid_w).astype(F32)
    # get_region_box with DOABS=1: sigmoid at decode, w/h divided by the grid size
    bx = (col + _logistic(rows[:, 0])) / F32(grid_w)
    by = (row + _logistic(rows[:, 1])) / F32(grid_h)
    bw = (np.exp(rows[:, 2].astype(np.float64)) * pairs[slot, 0].astype(np.float64) / grid_w).astype(F32)
    bh = (np.exp(rows[:, 3].astype(np.float64)) * pairs[slot, 1].astype(np.float64) / grid_h).astype(F32)
    scale = rows[:, 4].copy()
    if classfix == -1:
        scale = np.where(scale < F32(0.5), F32(0.0), scale).astype(F32)
    if tree is not None:
        probs = _tree_probs(rows[:, 5:].copy(), scale, tree, thresh, map)
    else:
        probs = _threshold_probs(scale, rows[:, 5:], thresh)
    boxes = correct_yolo_boxes(np.stack([bx, by, bw, bh], axis=1), im_w, im_h, net_w, net_h, letterbox)
    return Detections(boxes, np.ones(cells * num, dtype=F32), probs)


# --------------------------------------------------------------------------- pjreddie decoding
#
# pjreddie's ``test_detector`` (``PJ:examples/detector.c``) always letterboxes, collects every
# [yolo], [region] and [detection] layer in ``fill_network_boxes`` and maps boxes back with a
# letterbox-only ``correct_*_boxes``. [detection] (YOLOv1) is not decoded here, as for AlexeyAB.


def correct_boxes_pjreddie(boxes: np.ndarray, im_w: int, im_h: int, net_w: int, net_h: int) -> np.ndarray:
    """``PJ:src/yolo_layer.c:correct_yolo_boxes`` (``region_layer.c:correct_region_boxes`` is the same).

    Always undoes a letterbox, and scales w/h by ``(float)netw/new_w``: the ``gaussian=True``
    form of :func:`correct_yolo_boxes` (AB's plain one multiplies by ``1/ratio``).
    """
    return correct_yolo_boxes(boxes, im_w, im_h, net_w, net_h, letterbox=True, gaussian=True)


def get_yolo_detections_pjreddie(
    output: np.ndarray,
    *,
    anchors: Sequence[float],
    mask: Sequence[int] | None,
    classes: int,
    net_w: int,
    net_h: int,
    im_w: int,
    im_h: int,
    thresh: float = 0.5,
) -> Detections:
    """``PJ:src/yolo_layer.c:get_yolo_detections``: AB's decoding of a plain ``[yolo]`` head.

    Same layout, box formula, thresholds (objectness ``> thresh``, class probs kept when
    ``> thresh``) and order as :func:`get_yolo_detections` without ``new_coords``
    (pjreddie has neither it nor ``scale_x_y``); boxes by :func:`correct_boxes_pjreddie`.
    """
    dets = get_yolo_detections(
        output,
        anchors=anchors,
        mask=mask,
        classes=classes,
        net_w=net_w,
        net_h=net_h,
        im_w=im_w,
        im_h=im_h,
        thresh=thresh,
        letterbox=False,
    )  # letterbox=False: as decoded
    dets.boxes = correct_boxes_pjreddie(dets.boxes, im_w, im_h, net_w, net_h)
    return dets


def get_region_detections_pjreddie(
    output: np.ndarray,
    *,
    anchors: Sequence[float],
    num: int,
    classes: int,
    grid_w: int,
    grid_h: int,
    net_w: int,
    net_h: int,
    im_w: int,
    im_h: int,
    thresh: float = 0.5,
    coords: int = 4,
    background: bool = False,
) -> Detections:
    """``PJ:src/region_layer.c:get_region_detections`` (no ``tree=``/``map``; hier_thresh unused).

    ``output`` is pjreddie's ``[region]`` ``l.output``: ``(num, coords+1+classes, H, W)``, x, y,
    objectness and classes already activated by its forward (``darkweights.torch``, pjreddie
    dialect). One detection per anchor and cell, in *anchor-major* order (``n*H*W + cell``;
    AB: cell-major). Box ``((col+x)/W, (row+y)/H, exp(w)*anchor/W, exp(h)*anchor/H)``;
    ``objectness = scale if scale > thresh else 0`` (``scale`` = 1 with ``background=1``; AB:
    always 1), class probs ``scale*p`` kept when ``> thresh``, all 0 when objectness is 0.
    """
    entries = coords + 1 + classes
    cells = grid_w * grid_h
    flat = np.asarray(output, dtype=F32).reshape(-1)
    if flat.size != num * entries * cells:
        raise ArgumentError(
            f"[region] output has {flat.size} values, expected num*(coords+1+classes)*grid_h*grid_w "
            f"= {num * entries * cells}"
        )
    pairs = _anchor_pairs(anchors)
    if pairs.shape[0] < num:
        raise ArgumentError(f"[region] needs {num} anchor pairs, got {pairs.shape[0]}")
    v = flat.reshape(num, entries, cells)
    col = (np.arange(cells) % grid_w).astype(F32)
    row = (np.arange(cells) // grid_w).astype(F32)
    # get_region_box: float sums and divisions; exp() in double, stored as float
    bx = (col + v[:, 0]) / F32(grid_w)
    by = (row + v[:, 1]) / F32(grid_h)
    bw = (np.exp(v[:, 2].astype(np.float64)) * pairs[:num, 0:1].astype(np.float64) / grid_w).astype(F32)
    bh = (np.exp(v[:, 3].astype(np.float64)) * pairs[:num, 1:2].astype(np.float64) / grid_h).astype(F32)
    boxes = np.stack([bx, by, bw, bh], axis=-1).reshape(-1, 4)
    scale = np.ones(num * cells, dtype=F32) if background else v[:, coords].reshape(-1)
    objectness = np.where(scale > F32(thresh), scale, F32(0.0)).astype(F32)
    probs = _threshold_probs(scale, v[:, coords + 1 :].transpose(0, 2, 1).reshape(-1, classes), thresh)
    probs[objectness == 0] = F32(0.0)
    return Detections(correct_boxes_pjreddie(boxes, im_w, im_h, net_w, net_h), objectness, probs)


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


# --------------------------------------------------------------------------- output records


def to_records(dets: Detections, names: Sequence[str], im_w: int, im_h: int, thresh: float = 0.25) -> list[dict]:
    """One dict per (detection, class) with ``prob > thresh``, sorted by prob descending.

    Box convention of ``shared/fixtures/detections``: ``x, y`` = centre and ``w, h`` =
    size in pixels of the original image (relative box times ``im_w``/``im_h``),
    ``left, top = x - w/2, y - h/2`` (not clipped), ``bbox_relative`` = Darknet's box.
    Classes whose name starts with ``dont_show`` are skipped, as Darknet's output
    routines do. Ties keep detection order, then class order (stable sort). ``det_index``
    is the detection's position in ``dets`` (Darknet's post-NMS array order).
    """
    if len(names) < dets.classes:
        raise ArgumentError(f"{len(names)} class names for {dets.classes} classes")
    det_i, cls_j = np.nonzero(dets.probs > F32(thresh))
    recs: list[dict] = []
    for i, j in zip(det_i.tolist(), cls_j.tolist()):
        name = names[j]
        if name.startswith("dont_show"):
            continue
        bx, by, bw, bh = (float(v) for v in dets.boxes[i])
        x, y, w, h = bx * im_w, by * im_h, bw * im_w, bh * im_h
        recs.append(
            {
                "class": name,
                "class_id": j,
                "prob": float(dets.probs[i, j]),
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "left": x - w / 2.0,
                "top": y - h / 2.0,
                "objectness": float(dets.objectness[i]),
                "bbox_relative": [bx, by, bw, bh],
                "det_index": i,
            }
        )
    recs.sort(key=lambda r: -r["prob"])  # list.sort is stable
    return recs
