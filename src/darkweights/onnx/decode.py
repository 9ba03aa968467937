"""Decoded and NMS outputs in the graph: what ``darkweights detect`` computes after the network.

``decoded``: ``boxes`` ``(N, K, 4)`` = centre x, centre y, width, height in network-input pixels
(Darknet's relative box times the input width/height; the letterbox correction to image
coordinates, which needs the image size, stays outside the graph) and ``scores`` ``(N, K, C)`` =
``detection.prob`` before NMS: ``objectness * class`` where the objectness and the product are
``> thresh``, else 0. The K candidates are in Darknet's order: heads in layer order, then grid
cell (row-major), then anchor. The decode is :func:`darkweights.heads.decode`, the one ``detect`` runs
(AlexeyAB's and hank-ai's ``get_network_boxes``), here in torch operations (:class:`TorchOps`).

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
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..dialects import DEFAULT
from ..errors import DarkweightsWarning, UnsupportedError
from ..heads import Head, Ops, decode, threshold

EXACT_NMS = frozenset({"default", "cornersnms"})
DEFAULT_THRESH = 0.25
DEFAULT_NMS = 0.45


class TorchOps(Ops):
    """:func:`darkweights.heads.decode` in torch operations, for the exported graph: float32 throughout (the
    ``f64``/``f32`` marks of Darknet's double arithmetic are no-ops), a batch dimension first."""

    def candidates(self, output: torch.Tensor, head: Head) -> torch.Tensor:
        n, e = head.slots, head.entries
        h, w = head.grid
        if head.layout == "rows":
            return output.reshape(-1, h * w * n, e)
        v = output.reshape(-1, n, e, h * w)
        return (v.permute(0, 3, 1, 2) if head.order == "cell" else v.permute(0, 1, 3, 2)).reshape(-1, h * w * n, e)

    def cells(self, head: Head) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n = head.slots
        h, w = head.grid
        if head.order == "cell":
            loc = torch.arange(h * w).repeat_interleave(n)
        else:
            loc = torch.arange(h * w).repeat(n)
        pairs = torch.tensor([list(p) for p in head.anchors], dtype=torch.float32).reshape(-1, 2)
        aw, ah = (
            (pairs[:, 0].repeat(h * w), pairs[:, 1].repeat(h * w))
            if head.order == "cell"
            else (
                pairs[:, 0].repeat_interleave(h * w),
                pairs[:, 1].repeat_interleave(h * w),
            )
        )
        return (loc % w).float(), torch.div(loc, w, rounding_mode="floor").float(), aw, ah

    def logistic(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)

    def ones_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)

    def stack(self, parts: list) -> torch.Tensor:
        return torch.stack(parts, dim=-1)

    def keep(self, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, x, torch.zeros_like(x))


TORCH = TorchOps()


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
        self, net: Any, heads: Sequence[Head], outputs: str, thresh: float, nms: float, max_detections: int
    ) -> None:
        super().__init__()
        self.heads = list(heads)
        self.net_w, self.net_h = net.width, net.height
        self.outputs, self.thresh, self.nms, self.max_detections = outputs, thresh, nms, max_detections

    def _decode(self, head: Head, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes in network-input pixels and Darknet's ``detection.prob`` (0 where not above ``thresh``)."""
        unit = (self.net_w, self.net_h)
        c = decode(head, out, TORCH, net_w=self.net_w, net_h=self.net_h, unit=unit)
        return c.boxes, threshold(head, c, TORCH, self.thresh)[1]

    def forward(self, outs: Sequence[torch.Tensor]) -> tuple:
        parts = [self._decode(h, o) for h, o in zip(self.heads, outs)]
        boxes = torch.cat([p[0] for p in parts], dim=1).float()  # NonMaxSuppression takes float32 only
        scores = torch.cat([p[1] for p in parts], dim=1).float()
        if self.outputs == "decoded":
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
    outputs: str,
    thresh: float | None,
    nms: float | None,
    max_detections: int | None,
    letterbox: bool = False,
) -> tuple[nn.Module, list[str], dict, dict[str, str]]:
    """The post-processing module, output names, output layout and metadata for ``outputs`` (decoded, nms)."""
    if net.dialect.detector.pipeline != DEFAULT.detector.pipeline:
        raise UnsupportedError(
            "--outputs decoded/nms follow AlexeyAB's (and hank-ai's) detector; pjreddie's "
            "letterbox-only box correction and [detection] heads are not exported",
            file=net.path,
        )
    records = [net.layers[i].head() for i in heads]
    for h in records:
        if h.problem:
            raise net.layers[h.index].error(f"--outputs {outputs}: {h.problem}", UnsupportedError)
    if len({h.classes for h in records}) != 1:
        raise UnsupportedError("the detection heads disagree on the number of classes", file=net.path)
    thresh = DEFAULT_THRESH if thresh is None else float(thresh)
    nms = DEFAULT_NMS if nms is None else float(nms)
    k = sum(h.candidates for h in records)
    c = records[0].classes
    max_det = k if not max_detections else int(max_detections)
    notes = {
        "thresh": repr(thresh),
        "letter_box": str(int(bool(getattr(net, "letter_box", 0)) or letterbox)),
        "box_format": "cx, cy, w, h in network-input pixels",
    }
    if outputs == "decoded":
        names = ["boxes", "scores"]
        layout = {
            "boxes": {"shape": ["N", k, 4], "fields": ["cx", "cy", "w", "h"]},
            "scores": {"shape": ["N", k, c], "meaning": "objectness*class where > thresh (Darknet's prob)"},
        }
    else:
        kind_nms = records[-1].nms_kind  # Darknet's test_detector: the last head's
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
    notes["decode_heads"] = json.dumps([h.index for h in records])
    return Post(net, records, outputs, thresh, nms, max_det), names, layout, notes
