"""``[upsample]`` (§5.6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...layers.pooling import Upsample as UpsampleLayer
from ..base import BuildContext, DarknetLayer, register
from ..units import window_sum


@register("upsample")
class Upsample(DarknetLayer):
    """``[upsample]``: nearest x stride times scale; negative stride = sum-pool times scale (§5.6)."""

    def __init__(self, layer: UpsampleLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.stride = layer.stride
        self.scale = float(layer.scale)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, c, h, w = x.shape
        if self.stride > 0:
            s = self.stride
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                # NHWC: repeat whole pixels, so the result stays channels_last for the next conv
                y = x.permute(0, 2, 3, 1)[:, :, None, :, None].expand(n, h, s, w, s, c)
                y = y.reshape(n, h * s, w * s, c).permute(0, 3, 1, 2)
            else:
                y = x[:, :, :, None, :, None].expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)
            return y * self.scale if self.scale != 1.0 else y
        s = -self.stride
        if self.scale != 1.0:
            x = x * self.scale  # Darknet adds scale*x term by term
        return F.avg_pool2d(x, s, s, divisor_override=1)

    def portable(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        if self.stride > 0:
            # nearest-neighbour copies: one Resize in the graph (the forward's expand + reshape suits NHWC tensors)
            y = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
            return y * self.scale if self.scale != 1.0 else y
        s = -self.stride
        if self.scale != 1.0:
            x = x * self.scale  # Darknet adds scale*x term by term
        return window_sum(x, self.in_shape.c, s, (s, s))  # avg_pool2d's divisor_override does not export
