"""Decoded and NMS outputs in the graph: what ``darkweights detect`` computes after the network.

``decoded``: ``boxes`` ``(N, K, 4)`` = centre x, centre y, width, height in network-input pixels
(Darknet's relative box times the input width/height; the letterbox correction to image
coordinates, which needs the image size, stays outside the graph) and ``scores`` ``(N, K, C)`` =
``detection.prob`` before NMS: ``objectness * class`` where the objectness and the product are
``> thresh``, else 0. The K candidates are in Darknet's order: heads in layer order, then grid
cell (row-major), then anchor. Decoders follow AlexeyAB's (hank-ai's) ``get_network_boxes``, one
per head type (:data:`DECODERS`).

``nms``: ONNX ``NonMaxSuppression`` (``center_point_box=1``) per class over all K candidates,
IoU ``> nms``, score ``> thresh``; output ``detections`` ``(M, 7)`` rows ``batch, class, score, x,
y, w, h`` sorted by score, highest first. That is Darknet's ``do_nms_sort`` (``nms_kind=default``
and ``cornersnms``, whose box merging AlexeyAB comments out). ``greedynms`` and ``diounms``
suppress on DIoU, which ONNX cannot express: the export warns once and records it in the metadata
(``nms_exact=0``, ``nms_note``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..dialects import DEFAULT
from ..errors import DarkweightsWarning, UnsupportedError

DECODERS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {}
EXACT_NMS = frozenset({"default", "cornersnms"})
DEFAULT_THRESH = 0.25
DEFAULT_NMS = 0.45


def decoder(*types: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        for t in types:
            DECODERS[t] = fn
        return fn

    return deco


def _grid(h: int, w: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row of every candidate, location-major then anchor: ``(H*W*n,)`` float32."""
    loc = torch.arange(h * w).repeat_interleave(n)
    return (loc % w).float(), torch.div(loc, w, rounding_mode="floor").float()


def _anchor_cols(layer: Any, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each candidate's anchor width and height (the ``mask``-selected pairs, repeated per cell)."""
    pairs = torch.tensor([float(v) for v in layer.anchors], dtype=torch.float32).reshape(-1, 2)
    a = pairs[list(layer.mask) if layer.mask else list(range(n))]
    return a[:, 0].repeat(h * w), a[:, 1].repeat(h * w)


def _keep(obj: torch.Tensor, prob: torch.Tensor, thresh: float) -> torch.Tensor:
    keep = (obj > thresh).unsqueeze(-1) & (prob > thresh)
    return torch.where(keep, prob, torch.zeros_like(prob))


@decoder("yolo")
def _yolo(layer: Any, out: torch.Tensor, net_w: int, net_h: int, thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``get_yolo_detections`` (+ ``get_yolo_box``): x, y already have the in-forward sigmoid/scale."""
    n, k = len(layer.mask), layer.classes
    c, h, w = layer.output.chw
    v = out.reshape(-1, n, 5 + k, h * w).permute(0, 3, 1, 2).reshape(-1, h * w * n, 5 + k)
    col, row = _grid(h, w, n)
    aw, ah = _anchor_cols(layer, n, h, w)
    bx = (col + v[..., 0]) / w * net_w
    by = (row + v[..., 1]) / h * net_h
    if layer.new_coords:
        bw = v[..., 2] * v[..., 2] * 4.0 * aw
        bh = v[..., 3] * v[..., 3] * 4.0 * ah
    else:
        bw = torch.exp(v[..., 2]) * aw
        bh = torch.exp(v[..., 3]) * ah
    obj = v[..., 4]
    return torch.stack([bx, by, bw, bh], dim=-1), _keep(obj, obj.unsqueeze(-1) * v[..., 5:], thresh)


@decoder("gaussian_yolo")
def _gaussian_yolo(
    layer: Any, out: torch.Tensor, net_w: int, net_h: int, thresh: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``get_gaussian_yolo_detections``: entries x, σx, y, σy, w, σw, h, σh, obj, classes; class scores
    times ``1 - mean(σ)``; ``yolo_point`` shifts the centre by half the box."""
    n, k = len(layer.mask), layer.classes
    c, h, w = layer.output.chw
    v = out.reshape(-1, n, 9 + k, h * w).permute(0, 3, 1, 2).reshape(-1, h * w * n, 9 + k)
    col, row = _grid(h, w, n)
    aw, ah = _anchor_cols(layer, n, h, w)
    bw = torch.exp(v[..., 4]) * aw
    bh = torch.exp(v[..., 6]) * ah
    bx = (col + v[..., 0]) / w * net_w
    by = (row + v[..., 2]) / h * net_h
    point = getattr(layer, "yolo_point", "center")
    if point == "left_top":
        bx, by = bx + bw / 2, by + bh / 2
    elif point == "right_bottom":
        bx, by = bx - bw / 2, by - bh / 2
    uc = (((v[..., 1] + v[..., 3]) + v[..., 5]) + v[..., 7]) / 4.0
    obj = v[..., 8]
    prob = obj.unsqueeze(-1) * v[..., 9:] * (1.0 - uc).unsqueeze(-1)
    return torch.stack([bx, by, bw, bh], dim=-1), _keep(obj, prob, thresh)


@decoder("region")
def _region(layer: Any, out: torch.Tensor, net_w: int, net_h: int, thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AlexeyAB ``get_region_boxes``: rows already location-major; sigmoid on x, y at decode; anchors in
    grid cells; every candidate has objectness 1, class scores ``scale * class``."""
    if layer.coords != 4:
        raise UnsupportedError(
            f"[region] coords={layer.coords}: Darknet's get_region_boxes decodes coords=4 only",
            line=layer.line,
            layer=layer.index,
            layer_type=layer.type,
        )
    n, k = layer.num, layer.classes
    h, w = layer.output.h, layer.output.w
    v = out.reshape(-1, h * w * n, 5 + k)
    col, row = _grid(h, w, n)
    a = torch.tensor([float(x) for x in layer.anchors], dtype=torch.float32).reshape(-1, 2)[:n]
    aw, ah = a[:, 0].repeat(h * w), a[:, 1].repeat(h * w)
    bx = (col + torch.sigmoid(v[..., 0])) / w * net_w
    by = (row + torch.sigmoid(v[..., 1])) / h * net_h
    bw = torch.exp(v[..., 2]) * aw / w * net_w
    bh = torch.exp(v[..., 3]) * ah / h * net_h
    scale = v[..., 4]
    prob = scale.unsqueeze(-1) * v[..., 5:]
    return torch.stack([bx, by, bw, bh], dim=-1), torch.where(prob > thresh, prob, torch.zeros_like(prob))


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` for the tracer (the eager forward returns no selection)."""

    @staticmethod
    def forward(
        ctx: Any,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        max_out: torch.Tensor,
        iou: torch.Tensor,
        score: torch.Tensor,
    ) -> torch.Tensor:
        return torch.zeros((0, 3), dtype=torch.int64)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, max_out: Any, iou: Any, score: Any) -> Any:
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, score, center_point_box_i=1)


class Post(nn.Module):
    """Head outputs → ``(boxes, scores)`` (decoded) or ``(detections,)`` (nms)."""

    def __init__(
        self, net: Any, heads: Sequence[int], kind: str, thresh: float, nms: float, max_detections: int
    ) -> None:
        super().__init__()
        self.layers = [net.layers[i] for i in heads]
        self.net_w, self.net_h = net.width, net.height
        self.kind, self.thresh, self.nms, self.max_detections = kind, thresh, nms, max_detections

    def forward(self, outs: Sequence[torch.Tensor]) -> tuple:
        parts = [DECODERS[l.type](l, o, self.net_w, self.net_h, self.thresh) for l, o in zip(self.layers, outs)]
        boxes = torch.cat([p[0] for p in parts], dim=1).float()  # NonMaxSuppression takes float32 only
        scores = torch.cat([p[1] for p in parts], dim=1).float()
        if self.kind == "decoded":
            return boxes, scores
        k, c = boxes.shape[1], scores.shape[2]
        sel = _NonMaxSuppression.apply(
            boxes,
            scores.transpose(1, 2),
            torch.tensor([self.max_detections]),
            torch.tensor([self.nms], dtype=torch.float32),
            torch.tensor([self.thresh], dtype=torch.float32),
        )
        b, cls, i = sel[:, 0], sel[:, 1], sel[:, 2]
        score = scores.reshape(-1).index_select(0, (b * k + i) * c + cls)
        box = boxes.reshape(-1, 4).index_select(0, b * k + i)
        order = torch.argsort(score, descending=True)
        rows = torch.cat([b.float().unsqueeze(1), cls.float().unsqueeze(1), score.unsqueeze(1), box], dim=1)
        return (rows.index_select(0, order),)


def build_post(
    net: Any,
    model: Any,
    heads: Sequence[int],
    *,
    kind: str,
    thresh: float | None,
    nms: float | None,
    max_detections: int | None,
    letterbox: bool = False,
) -> tuple[nn.Module, list[str], dict, dict[str, str]]:
    """The post-processing module, output names, output layout and metadata for ``kind``."""
    if net.dialect.detector.pipeline != DEFAULT.detector.pipeline:
        raise UnsupportedError(
            "--outputs decoded/nms follow AlexeyAB's (and hank-ai's) detector; pjreddie's "
            "letterbox-only box correction and [detection] heads are not exported",
            file=net.path,
        )
    layers = [net.layers[i] for i in heads]
    for l in layers:
        if l.type not in DECODERS:
            raise UnsupportedError(
                f"--outputs {kind}: detect does not decode [{l.type}] heads",
                file=net.path,
                line=l.line,
                layer=l.index,
                layer_type=l.type,
            )
    if len({l.classes for l in layers}) != 1:
        raise UnsupportedError("the detection heads disagree on the number of classes", file=net.path)
    thresh = DEFAULT_THRESH if thresh is None else float(thresh)
    nms = DEFAULT_NMS if nms is None else float(nms)
    k = sum(l.output.h * l.output.w * (l.num if l.type == "region" else len(l.mask)) for l in layers)
    c = layers[0].classes
    max_det = k if not max_detections else int(max_detections)
    notes = {
        "thresh": repr(thresh),
        "letter_box": str(int(bool(getattr(net, "letter_box", 0)) or letterbox)),
        "box_format": "cx, cy, w, h in network-input pixels",
    }
    if kind == "decoded":
        names = ["boxes", "scores"]
        layout = {
            "boxes": {"shape": ["N", k, 4], "fields": ["cx", "cy", "w", "h"]},
            "scores": {"shape": ["N", k, c], "meaning": "objectness*class where > thresh (Darknet's prob)"},
        }
    else:
        last = layers[-1]
        kind_nms = getattr(last, "nms_kind", "default") or "default"
        exact = kind_nms in EXACT_NMS
        notes.update(
            {
                "nms": repr(nms),
                "nms_kind": kind_nms,
                "max_detections_per_class": str(max_det),
                "nms_exact": "1" if exact else "0",
            }
        )
        if not exact:
            note = (
                f"the cfg asks for nms_kind={kind_nms} (suppression on DIoU), which ONNX NonMaxSuppression cannot "
                "express: the graph suppresses on plain IoU (Darknet's nms_kind=default)"
            )
            notes["nms_note"] = note
            warnings.warn(f"{net.path}: {note}", DarkweightsWarning, stacklevel=3)
        names = ["detections"]
        layout = {
            "detections": {
                "shape": ["M", 7],
                "fields": ["batch", "class", "score", "cx", "cy", "w", "h"],
                "order": "score descending",
            }
        }
    notes["decode_heads"] = json.dumps([l.index for l in layers])
    return Post(net, heads, kind, thresh, nms, max_det), names, layout, notes
