"""One model of a detection head: the :class:`Head` record, and its decode written once.

A head family of the catalogue (``[yolo]``, ``[Gaussian_yolo]``, ``[region]``, ``[detection]``) describes
itself as a :class:`Head` (:meth:`darkweights.layers.Layer.head`): which anchors its slots use, how its
``l.output`` holds the slots and in which order Darknet walks the candidates, the box formula, the
objectness rule, the NMS settings. Everything that reads a head's output reads this record:

* :func:`decode` turns ``l.output`` into every candidate's box, scale and class scores
  (``get_yolo_box``, ``get_region_box`` and the probability products of ``get_*_detections``), written once
  against a small array API (:class:`Ops`): :data:`NUMPY` follows Darknet's C arithmetic (float32, with
  float64 where C computes in double: ``exp``, the Gaussian ``1 - uc`` product), which ``darkweights
  detect`` needs to reproduce Darknet bit for bit; the ONNX ``decoded``/``nms`` graphs use torch operations
  (:mod:`darkweights.onnx.decode`), and ``verify --against opencv`` projects the same candidates into
  OpenCV's rows;
* :func:`threshold` applies the head's objectness rule and the threshold (``detection.objectness`` and
  ``detection.prob``);
* the candidate count, the anchors exported as metadata, the classes hint of a size mismatch read the
  record's fields.

The training losses (issue #15) and mAP evaluation (#14) hang off the same record: the options they need
join it as fields read by the family, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .dialects import Record

# objectness rules: which candidates Darknet returns and what it stores as detection.objectness
SELECT = "select"  # get_yolo_detections: only candidates whose objectness > thresh; objectness = the entry
CONSTANT = "constant"  # AlexeyAB get_region_boxes: every candidate, objectness 1, prob = entry * class
GATE = "gate"  # pjreddie get_region_detections: every candidate, objectness = entry if > thresh else 0


class Head(Record):
    """A detection head as its decode, NMS, losses and exports need it (one per head layer)."""

    index: int  # the layer
    type: str  # its family (the catalogue's type name)
    classes: int
    anchors: tuple[tuple[float, float], ...]  # (w, h) of each slot, in slot order (the mask applied)
    grid: tuple[int, int]  # (h, w) cells
    entries: int  # values per slot
    box: tuple[int, int, int, int] = (0, 1, 2, 3)  # entries of tx, ty, tw, th
    objectness: int | None = 4  # entry of the objectness (the region "scale"); None: 1 everywhere
    first_class: int = 5  # entry of class 0
    uncertainty: tuple[int, ...] = ()  # [Gaussian_yolo] entries of sigma x, y, w, h
    layout: str = "slots"  # l.output as (slot, entry, H, W) "slots", or (H*W*slots, entry) "rows" (AB [region])
    order: str = "cell"  # candidates cell-major then slot ("cell"), or slot-major ("slot", pjreddie [region])
    anchor_units: str = "input"  # anchors in network-input pixels ("input") or in grid cells ("grid")
    xy_logistic: bool = False  # the decode applies the logistic to tx, ty (else the forward did)
    new_coords: bool = False  # w = tw^2 * 4 * anchor instead of exp(tw) * anchor
    scale_x_y: float = 1.0  # applied by the forward (x, y); the losses need it
    yolo_point: str = "center"  # [Gaussian_yolo]: the box corner tx, ty point at
    box_correction: str = "yolo"  # AlexeyAB's letterbox correction: correct_yolo_boxes, or "gaussian" (its own)
    objectness_rule: str = SELECT
    coords: int = 4
    nms_kind: str = "default"
    beta_nms: float = 0.6
    tree: str | None = None  # tree= (YOLO9000): class probabilities through the hierarchy
    problem: str = ""  # why darkweights cannot decode it ([detection], a mask beyond the anchors); "": it can

    @property
    def slots(self) -> int:
        return len(self.anchors)

    @property
    def candidates(self) -> int:
        """Detections Darknet's ``get_network_boxes`` considers: every cell and slot."""
        return self.grid[0] * self.grid[1] * self.slots


class Candidates(NamedTuple):
    """Every candidate of one head in Darknet's order (``...`` is the batch for batched backends)."""

    boxes: Any  # (..., K, 4) x, y, w, h: relative to the network input, times ``unit``
    scale: Any  # (..., K) the objectness entry (1 without one)
    probs: Any  # (..., K, classes) scale * class (Gaussian: times 1 - mean sigma), not thresholded
    entries: Any  # (..., K, entries) the head's values per candidate, as l.output holds them


class Ops:
    """The array operations :func:`decode` uses. ``f64``/``f32`` mark where Darknet's C computes in double:
    a backend that follows C (NumPy) converts, a graph backend (torch, float32 throughout) may not."""

    def candidates(self, output: Any, head: Head) -> Any:  # (..., K, entries)
        raise NotImplementedError

    def cells(self, head: Head) -> tuple[Any, Any, Any, Any]:  # column, row, anchor w, anchor h: (K,) float32
        raise NotImplementedError

    def logistic(self, x: Any) -> Any:
        raise NotImplementedError

    def exp(self, x: Any) -> Any:
        raise NotImplementedError

    def f64(self, x: Any) -> Any:
        return x

    def f32(self, x: Any) -> Any:
        return x

    def ones_like(self, x: Any) -> Any:
        raise NotImplementedError

    def stack(self, parts: list) -> Any:  # along a new last axis
        raise NotImplementedError

    def keep(self, mask: Any, x: Any) -> Any:  # x where mask, else 0
        raise NotImplementedError


def _to_unit(v: Any, norm: float, unit: float) -> Any:
    """``v / norm * unit``; both skipped when ``norm == unit`` (a head whose anchors are in the unit asked for)."""
    if norm == unit:
        return v
    return v / norm if unit == 1 else v / norm * unit


def _times(v: Any, unit: float) -> Any:
    return v if unit == 1 else v * unit


def decode(
    head: Head, output: Any, xp: Ops, *, net_w: int, net_h: int, unit: tuple[float, float] = (1, 1)
) -> Candidates:
    """Every candidate of ``head`` from its ``l.output`` (``get_yolo_box`` / ``get_region_box`` and the products
    of ``get_*_detections``). Boxes are Darknet's, relative to the network input, times ``unit`` (``(1, 1)``:
    Darknet's relative box; ``(net_w, net_h)``: network-input pixels)."""
    v = xp.candidates(output, head)
    col, row, aw, ah = xp.cells(head)
    gh, gw = head.grid
    ex, ey, ew, eh = head.box
    tx, ty, tw, th = v[..., ex], v[..., ey], v[..., ew], v[..., eh]
    if head.xy_logistic:
        tx, ty = xp.logistic(tx), xp.logistic(ty)
    ux, uy = unit
    nw, nh = (net_w, net_h) if head.anchor_units == "input" else (gw, gh)
    bx = _times((col + tx) / gw, ux)
    by = _times((row + ty) / gh, uy)
    if head.new_coords:  # get_yolo_box with new_coords: all float
        bw = _to_unit(tw * tw * 4.0 * aw, nw, ux)
        bh = _to_unit(th * th * 4.0 * ah, nh, uy)
    else:  # exp() is C's double function: exp(t) * anchor / size in double, stored as float
        bw = xp.f32(_to_unit(xp.exp(xp.f64(tw)) * xp.f64(aw), nw, ux))
        bh = xp.f32(_to_unit(xp.exp(xp.f64(th)) * xp.f64(ah), nh, uy))
    bx, by = POINTS[head.yolo_point](bx, by, bw, bh)
    scale = v[..., head.objectness] if head.objectness is not None else xp.ones_like(tx)
    cls = v[..., head.first_class : head.first_class + head.classes]
    if head.uncertainty:
        # get_gaussian_yolo_detections: uc_aver = (uc0+uc1+uc2+uc3)/4.0 (float sum, double division);
        # prob = objectness*class*(1.0 - uc_aver) with the last product in double
        u0, u1, u2, u3 = (v[..., e] for e in head.uncertainty)
        uc = xp.f32(xp.f64(((u0 + u1) + u2) + u3) / 4.0)
        probs = xp.f32(xp.f64(scale[..., None] * cls) * (1.0 - xp.f64(uc))[..., None])
    else:
        probs = scale[..., None] * cls
    return Candidates(xp.stack([bx, by, bw, bh]), scale, probs, v)


def _center(bx: Any, by: Any, bw: Any, bh: Any) -> tuple[Any, Any]:
    return bx, by


def _left_top(bx: Any, by: Any, bw: Any, bh: Any) -> tuple[Any, Any]:
    return bx + bw / 2, by + bh / 2


def _right_bottom(bx: Any, by: Any, bw: Any, bh: Any) -> tuple[Any, Any]:
    return bx - bw / 2, by - bh / 2


# [Gaussian_yolo] yolo_point: where tx, ty point (the box centre is shifted by half the box)
POINTS: dict[str, Callable[[Any, Any, Any, Any], tuple[Any, Any]]] = {
    "center": _center,
    "left_top": _left_top,
    "right_bottom": _right_bottom,
}


def _select(c: Candidates, xp: Ops, thresh: float) -> tuple[Any, Any]:
    keep = (c.scale > thresh)[..., None] & (c.probs > thresh)
    return c.scale, xp.keep(keep, c.probs)


def _constant(c: Candidates, xp: Ops, thresh: float) -> tuple[Any, Any]:
    return xp.ones_like(c.scale), xp.keep(c.probs > thresh, c.probs)


def _gate(c: Candidates, xp: Ops, thresh: float) -> tuple[Any, Any]:
    objectness = xp.keep(c.scale > thresh, c.scale)
    return objectness, xp.keep((objectness != 0)[..., None] & (c.probs > thresh), c.probs)


RULES: dict[str, Callable[[Candidates, Ops, float], tuple[Any, Any]]] = {
    SELECT: _select,
    CONSTANT: _constant,
    GATE: _gate,
}


def threshold(head: Head, c: Candidates, xp: Ops, thresh: float) -> tuple[Any, Any]:
    """Darknet's ``detection.objectness`` and ``detection.prob`` of every candidate: class scores ``> thresh``
    (0 otherwise), under the head's objectness rule. With :data:`SELECT`, Darknet returns only the candidates
    whose objectness is ``> thresh``: the others come out with all-zero scores."""
    return RULES[head.objectness_rule](c, xp, thresh)


class NumpyOps(Ops):
    """Darknet's C arithmetic in NumPy, for one image's ``l.output``."""

    def candidates(self, output: Any, head: Head) -> Any:
        import numpy as np

        n, e = head.slots, head.entries
        gh, gw = head.grid
        flat = np.asarray(output, dtype=np.float32).reshape(-1)
        if head.layout == "rows":
            return flat.reshape(gh * gw * n, e)
        v = flat.reshape(n, e, gh * gw)
        return (v.transpose(2, 0, 1) if head.order == "cell" else v.transpose(0, 2, 1)).reshape(-1, e)

    def cells(self, head: Head) -> tuple[Any, Any, Any, Any]:
        import numpy as np

        n = head.slots
        gh, gw = head.grid
        k = np.arange(gh * gw * n)
        loc, slot = (k // n, k % n) if head.order == "cell" else (k % (gh * gw), k // (gh * gw))
        pairs = np.asarray(head.anchors, dtype=np.float32).reshape(-1, 2)  # l.biases is a float array
        col = (loc % gw).astype(np.float32)
        row = (loc // gw).astype(np.float32)
        return col, row, pairs[slot, 0], pairs[slot, 1]

    def logistic(self, x: Any) -> Any:
        """``logistic_activate``: ``1.f/(1.f + expf(-x))``; ``expf`` as a double ``exp`` rounded to float
        (glibc's ``expf`` is correctly rounded in practice; NumPy's float32 ``exp`` may differ by an ulp)."""
        import numpy as np

        e = np.exp(-np.asarray(x, dtype=np.float64)).astype(np.float32)
        return np.float32(1.0) / (np.float32(1.0) + e)

    def exp(self, x: Any) -> Any:
        import numpy as np

        return np.exp(x)

    def f64(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(x, dtype=np.float64)

    def f32(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(x).astype(np.float32)

    def ones_like(self, x: Any) -> Any:
        import numpy as np

        return np.ones_like(x, dtype=np.float32)

    def stack(self, parts: list) -> Any:
        import numpy as np

        return np.stack(parts, axis=-1)

    def keep(self, mask: Any, x: Any) -> Any:
        import numpy as np

        return np.where(mask, x, np.float32(0.0)).astype(np.float32)


NUMPY = NumpyOps()
