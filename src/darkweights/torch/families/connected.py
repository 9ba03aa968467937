"""``[connected]``."""

from __future__ import annotations

import torch

from ...layers.conv import Connected as ConnectedLayer
from ..base import BuildContext, DarknetLayer, register
from ..units import FCUnit


@register("connected")
class Connected(DarknetLayer):
    """``[connected]``: flatten CHW, ``W x + b`` (or BN after the product), generic activation;
    output ``(N, outputs, 1, 1)`` (Darknet reports ``out_h = out_w = 1``)."""

    unit: FCUnit

    def __init__(self, layer: ConnectedLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        unit = FCUnit(layer, ctx, ctx.arrays(layer))
        object.__setattr__(self, "unit", unit)
        for name, child in unit.named_children():
            self.add_module(name, child)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return self.shaped(self.unit(self.flat(x)))
