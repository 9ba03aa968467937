"""Stand-alone ``[batchnorm]``."""

from __future__ import annotations

import torch

from ...layers import Layer
from ...layers.names import BN
from ..base import BuildContext, DarknetLayer, register
from ..units import Holder, batchnorm_, make_bn


@register("batchnorm")
class Batchnorm(DarknetLayer):
    """Stand-alone ``[batchnorm]`` (AB 4 arrays; pjreddie's biases are not stored and start at 0)."""

    bn: Holder

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.add_module(BN, make_bn(ctx, ctx.arrays(layer)))

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        s = self.in_shape
        y = x.reshape(x.shape[0], s.c, -1).clone()
        return self.shaped(batchnorm_(y, self.bn))
