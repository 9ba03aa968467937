"""``[implicit]`` (YOLOR)."""

from __future__ import annotations

import torch

from ...layers import Layer
from ...layers.names import WEIGHT
from ..base import BuildContext, DarknetLayer, register


@register("implicit")
class Implicit(DarknetLayer):
    """``[implicit]``: the stored ``filters x atoms`` constant, for every batch item."""

    weight: torch.Tensor

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.register_parameter(WEIGHT, ctx.param(ctx.arrays(layer)["weights"]))

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        w = self.weight
        return w.reshape(1, w.shape[0], w.shape[1], 1).expand(x.shape[0], -1, -1, -1).clone()
