"""``[local]``: an unshared convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...layers.conv import Local as LocalLayer
from ...layers.names import BIAS, WEIGHT
from ..base import BuildContext, DarknetLayer, register


@register("local")
class Local(DarknetLayer):
    """``[local]``: unshared convolution, weights ``[location][n][c][k][k]``, one bias per output."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, layer: LocalLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        self.register_parameter(WEIGHT, ctx.param(a["weights"]))
        self.register_parameter(BIAS, ctx.param(a["biases"]))
        self.size, self.stride, self.pad = layer.size, (layer.stride_y, layer.stride_x), layer.padding
        self.act = ctx.activation(layer, "generic")

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        o = self.out_shape
        cols = F.unfold(self.image(x), self.size, 1, self.pad, self.stride)  # (N, c*k*k, L)
        w = self.weight.reshape(o.h * o.w, o.c, -1)  # (L, n, c*k*k)
        y = torch.einsum("lnk,bkl->bnl", w, cols).reshape(x.shape[0], o.c, o.h, o.w)
        return self.act(y.add_(self.bias))
