"""Darknet's detection-head decoding, in NumPy: the detection array ``get_network_boxes`` fills.

Re-implements what AlexeyAB Darknet's ``darknet detector test`` does after ``network_predict``
(pjreddie's ``detector test``: the ``*_pjreddie`` functions):

* ``get_network_boxes`` -> per head :func:`head_detections` (the head's
  :class:`~darkweights.heads.Head` record and its decode, :func:`darkweights.heads.decode`, in
  Darknet's C arithmetic); the same for loose arrays: :func:`get_yolo_detections`,
  :func:`get_gaussian_yolo_detections`, :func:`get_region_detections` (concatenate the results in
  layer order with :meth:`Detections.concatenate`);
* ``correct_yolo_boxes`` (letterbox) -> :func:`correct_yolo_boxes`, :func:`correct_boxes_pjreddie`;
* the box convention of the reference fixtures -> :func:`to_records`.

NMS is :mod:`.nms`. Arithmetic follows the C code's float32/double mix step by step (float32 arrays,
with float64 only where C promotes to double, e.g. ``exp`` and ``pow``), so decoded boxes and
probabilities match Darknet to the last bit or ulp given the same layer output. The decoders take each
head's ``l.output`` as ``darkweights.torch`` computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArgumentError
from ..heads import CONSTANT, GATE, NUMPY, SELECT, Candidates, Head, decode, threshold
from .image import letterbox_geometry

if TYPE_CHECKING:
    from ..tree import Tree

__all__ = [
    "Detections",
    "head_detections",
    "get_yolo_detections",
    "get_gaussian_yolo_detections",
    "get_region_detections",
    "correct_yolo_boxes",
    "get_yolo_detections_pjreddie",
    "get_region_detections_pjreddie",
    "correct_boxes_pjreddie",
    "to_records",
]

F32 = np.float32


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


def head_detections(
    head: Head,
    output: np.ndarray,
    *,
    net_w: int,
    net_h: int,
    thresh: float,
    tree: Tree | None = None,
    map: Sequence[int] | None = None,
    candidates: Candidates | None = None,
) -> Detections:
    """The detections one head adds to Darknet's array, before box correction (``get_*_detections``):
    boxes relative to the network input, in Darknet's candidate order. ``tree``: the head's class tree
    (YOLO9000, see :func:`get_region_detections`). ``candidates``: the head's decode, when already made."""
    c = candidates if candidates is not None else decode(head, output, NUMPY, net_w=net_w, net_h=net_h)
    objectness, probs = threshold(head, c, NUMPY, thresh)
    if tree is not None:
        cls = c.entries[:, head.first_class : head.first_class + head.classes].copy()
        probs = _tree_probs(cls, c.scale, tree, thresh, map)
    if head.objectness_rule == SELECT:  # get_yolo_detections returns only these
        index = np.flatnonzero(c.scale > F32(thresh))
        if index.size == 0:
            return Detections.empty(head.classes)
    else:
        index = np.arange(head.candidates)
    uc = c.entries[index][:, list(head.uncertainty)] if head.uncertainty else None
    return Detections(c.boxes[index], objectness[index], probs[index], uc)


def _anchor_pairs(anchors: Sequence[float]) -> np.ndarray:
    a = np.asarray(list(anchors), dtype=F32)  # l.biases is a float array
    if a.size % 2:
        raise ArgumentError("anchors must be w,h pairs")
    return a.reshape(-1, 2)


def _yolo_head(
    anchors: Sequence[float],
    mask: Sequence[int] | None,
    classes: int,
    grid: tuple[int, int],
    entries: int,
    **kw: object,
) -> Head:
    """A head record for loose arrays (the cfg's anchor list, the mask)."""
    pairs = _anchor_pairs(anchors)
    m = list(range(pairs.shape[0])) if mask is None else [int(v) for v in mask]
    if m and (min(m) < 0 or max(m) >= pairs.shape[0]):
        raise ArgumentError(f"mask {m} refers to anchors beyond the {pairs.shape[0]} given")
    used = tuple((float(pairs[i, 0]), float(pairs[i, 1])) for i in m)
    return Head(index=-1, type="", classes=classes, anchors=used, grid=grid, entries=classes + entries, **kw)


def _region_head(
    output: np.ndarray,
    anchors: Sequence[float],
    num: int,
    classes: int,
    grid: tuple[int, int],
    formula: str,
    entries: int,
    **kw: object,
) -> tuple[np.ndarray, Head]:
    """A ``[region]`` output checked for its size and anchors, flat, and its head record."""
    flat = np.asarray(output, dtype=F32).reshape(-1)
    want = grid[0] * grid[1] * num * entries
    if flat.size != want:
        raise ArgumentError(f"[region] output has {flat.size} values, expected {formula} = {want}")
    pairs = _anchor_pairs(anchors)
    if pairs.shape[0] < num:
        raise ArgumentError(f"[region] needs {num} anchor pairs, got {pairs.shape[0]}")
    used = tuple((float(a), float(b)) for a, b in pairs[:num])
    head = Head(
        index=-1, type="region", classes=classes, anchors=used, grid=grid, entries=entries, anchor_units="grid", **kw
    )
    return flat, head


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
    c, h, w = out.shape
    head = _yolo_head(anchors, mask, classes, (h, w), 5, new_coords=new_coords)
    if c != head.slots * (5 + classes):
        raise ArgumentError(
            f"[yolo] output has {c} channels, expected len(mask)*(classes+5) = {head.slots * (5 + classes)}"
        )
    dets = head_detections(head, out, net_w=net_w, net_h=net_h, thresh=thresh)
    dets.boxes = correct_yolo_boxes(dets.boxes, im_w, im_h, net_w, net_h, letterbox)
    return dets


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
    c, h, w = out.shape
    if yolo_point not in ("center", "left_top", "right_bottom"):
        raise ArgumentError(f"unknown yolo_point {yolo_point!r}")
    head = _yolo_head(
        anchors,
        mask,
        classes,
        (h, w),
        9,
        box=(0, 2, 4, 6),
        objectness=8,
        first_class=9,
        uncertainty=(1, 3, 5, 7),
        yolo_point=yolo_point,
        box_correction="gaussian",
    )
    if c != head.slots * (9 + classes):
        raise ArgumentError(
            f"[Gaussian_yolo] output has {c} channels, expected len(mask)*(classes+9) = {head.slots * (9 + classes)}"
        )
    dets = head_detections(head, out, net_w=net_w, net_h=net_h, thresh=thresh)
    dets.boxes = correct_yolo_boxes(dets.boxes, im_w, im_h, net_w, net_h, letterbox, gaussian=True)
    return dets


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
    flat, head = _region_head(
        output,
        anchors,
        num,
        classes,
        (grid_h, grid_w),
        "grid_w*grid_h*num*(classes+5)",
        classes + 5,
        layout="rows",
        xy_logistic=True,
        objectness_rule=CONSTANT,
    )
    c = decode(head, flat, NUMPY, net_w=net_w, net_h=net_h)
    if classfix == -1:  # get_region_boxes: a scale below .5 counts as 0
        scale = np.where(c.scale < F32(0.5), F32(0.0), c.scale).astype(F32)
        c = c._replace(scale=scale, probs=scale[:, None] * c.entries[:, 5:])
    dets = head_detections(head, flat, net_w=net_w, net_h=net_h, thresh=thresh, tree=tree, map=map, candidates=c)
    dets.boxes = correct_yolo_boxes(dets.boxes, im_w, im_h, net_w, net_h, letterbox)
    return dets


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
    flat, head = _region_head(
        output,
        anchors,
        num,
        classes,
        (grid_h, grid_w),
        "num*(coords+1+classes)*grid_h*grid_w",
        coords + 1 + classes,
        coords=coords,
        objectness=None if background else coords,
        first_class=coords + 1,
        order="slot",
        objectness_rule=GATE,
    )
    dets = head_detections(head, flat, net_w=net_w, net_h=net_h, thresh=thresh)
    dets.boxes = correct_boxes_pjreddie(dets.boxes, im_w, im_h, net_w, net_h)
    return dets


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
