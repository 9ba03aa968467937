"""``[yolo]`` and ``[Gaussian_yolo]``: what Darknet's forward leaves in ``l.output`` (darknet-format.md
§5.10, fixtures/README "What l.output holds"). Box decoding is post-processing (:mod:`darkweights.heads`)."""

from __future__ import annotations

import torch

from ...layers.heads import Yolo as YoloLayer
from ..base import BuildContext, DarknetLayer, register


@register("yolo", "gaussian_yolo")
class Yolo(DarknetLayer):
    """``[yolo]``: per anchor slot ``x, y = sigmoid(t)*sxy - 0.5*(sxy-1)``, ``w, h`` raw, objectness and
    classes ``sigmoid``; ``new_coords=1``: no sigmoid, only the ``scale_x_y`` step.
    ``[Gaussian_yolo]``: sigmoid on entries 0,1,2,3,5,7,8.. , scale step on 0 and 2, 4 and 6 raw."""

    def __init__(self, layer: YoloLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.n = len(layer.mask)
        self.entries = layer.classes + layer.entries
        self.sxy = float(layer.scale_x_y)
        self.new_coords = bool(layer.new_coords)
        self.scaled = list(layer.box[:2])  # x, y: the scale_x_y step
        self.raw = list(layer.box[2:])  # w, h: no sigmoid

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, c, h, w = x.shape
        v = x.reshape(n, self.n, self.entries, h, w)
        if self.new_coords:
            y = v.clone()
        else:
            y = torch.sigmoid(v)
            for e in self.raw:
                y[:, :, e] = v[:, :, e]
        if self.sxy != 1.0:
            for e in self.scaled:  # not a chained in-place op on a view: the ONNX tracer drops the second one
                y[:, :, e] = y[:, :, e] * self.sxy + (-0.5 * (self.sxy - 1.0))
        return y.reshape(n, c, h, w)

    def portable(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        """The forward's arithmetic as one concatenation of entry runs instead of slice assignments (which
        export as ``ScatterND``/``Expand`` chains that OpenCV's ONNX importer rejects)."""
        s = self.in_shape
        v = self.image(x).reshape(-1, self.n, self.entries, s.h, s.w)
        sig = v if self.new_coords else torch.sigmoid(v)

        def kind(e: int) -> tuple[bool, bool]:  # (raw, scaled)
            return (self.new_coords or e in self.raw), (self.sxy != 1.0 and e in self.scaled)

        parts, start = [], 0
        for e in range(1, self.entries + 1):
            if e < self.entries and kind(e) == kind(start):
                continue
            raw, scaled = kind(start)
            block = (v if raw else sig)[:, :, start:e]
            if scaled:
                block = block * self.sxy + (-0.5 * (self.sxy - 1.0))
            parts.append(block)
            start = e
        y = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        return y.reshape(-1, s.c, s.h, s.w)
