"""pjreddie ``[iseg]``."""

from __future__ import annotations

import torch

from ...layers import Layer
from ..base import BuildContext, DarknetLayer, register


@register("iseg")
class Iseg(DarknetLayer):
    """pjreddie ``[iseg]``: sigmoid on the first ``classes`` channels."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.classes = layer.classes

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.image(x).clone()
        y[:, : self.classes].sigmoid_()
        return y
