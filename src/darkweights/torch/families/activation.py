"""``[activation]``."""

from __future__ import annotations

import torch

from ...layers import Layer
from ..base import BuildContext, DarknetLayer, register


@register("activation")
class Activation(DarknetLayer):
    """``[activation]``: the generic activation path."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.act = ctx.activation(layer, "generic")

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return self.act(x.clone())
