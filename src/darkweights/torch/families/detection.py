"""``[detection]`` (YOLOv1)."""

from __future__ import annotations

import torch

from ...layers.heads import Detection as DetectionLayer
from ..base import BuildContext, DarknetLayer, register


@register("detection")
class Detection(DarknetLayer):
    """``[detection]`` (YOLOv1): flat copy of its input, softmax over each cell's classes if ``softmax=1``."""

    def __init__(self, layer: DetectionLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.cells = layer.side * layer.side
        self.classes = layer.classes
        self.softmax = bool(layer.softmax)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.flat(x).clone()
        if self.softmax:
            k = self.cells * self.classes
            y[:, :k] = torch.softmax(y[:, :k].reshape(-1, self.cells, self.classes), dim=-1).reshape(-1, k)
        return y
