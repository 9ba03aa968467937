"""``[local_avgpool]`` (§5.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...layers.pooling import LocalAvgpool as LocalAvgpoolLayer
from ..base import BuildContext, DarknetLayer, register
from ..units import window_sum
from .maxpool import pool_geometry


@register("local_avgpool")
class LocalAvgpool(DarknetLayer):
    """``[local_avgpool]``: maxpool geometry, mean over the in-range cells only (§5.5)."""

    count: torch.Tensor

    def __init__(self, layer: LocalAvgpoolLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.size = layer.size
        self.stride = (layer.stride_y, layer.stride_x)
        self.pad = pool_geometry(layer)
        ones = torch.ones(1, 1, layer.input.h, layer.input.w)
        count = F.avg_pool2d(F.pad(ones, self.pad), self.size, self.stride, divisor_override=1)
        self.register_buffer("count", count, persistent=False)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        s = F.avg_pool2d(F.pad(self.image(x), self.pad), self.size, self.stride, divisor_override=1)
        return s.div_(self.count)

    def portable(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        # TorchScript's exporter drops avg_pool2d's divisor_override (a mean comes out): the window sum as a
        # depthwise convolution instead
        s = window_sum(F.pad(self.image(x), self.pad), self.in_shape.c, self.size, self.stride)
        return s / self.count
