"""``[scale_channels]``."""

from __future__ import annotations

import torch

from ...layers import Layer
from ..base import BuildContext, DarknetLayer, register


@register("scale_channels")
class ScaleChannels(DarknetLayer):
    """``[scale_channels]``: ``from``'s map times the input per channel (``scale_wh=1``: per pixel)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.act = ctx.activation(layer, "generic")
        self.src_shape = ctx.net.layers[self.reads[0]].output

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        f = self.image(outs[self.reads[0]], self.src_shape)
        return self.act(f * self.image(x))
