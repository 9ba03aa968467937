"""pjreddie's ``[deconvolutional]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...layers.conv import Deconvolutional as DeconvolutionalLayer
from ...layers.names import BIAS, BN, DECONV, WEIGHT
from ..base import BuildContext, DarknetLayer, register
from ..units import Holder, batchnorm_, make_bn


@register("deconvolutional")
class Deconvolutional(DarknetLayer):
    """pjreddie ``[deconvolutional]``: ConvTranspose2d with weights ``[c][n][k][k]`` (§5.13)."""

    deconv: Holder
    bn: Holder

    def __init__(self, layer: DeconvolutionalLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        self.stride, self.padding = (layer.stride_y, layer.stride_x), layer.padding
        self.has_bn = bool(layer.batch_normalize)
        if self.has_bn:
            self.add_module(DECONV, Holder({WEIGHT: ctx.param(a["weights"])}))
            self.add_module(BN, make_bn(ctx, a))
        else:
            self.add_module(DECONV, Holder({WEIGHT: ctx.param(a["weights"]), BIAS: ctx.param(a["biases"])}))
        self.act = ctx.activation(layer, "generic")

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = F.conv_transpose2d(
            self.image(x), self.deconv.weight, None if self.has_bn else self.deconv.bias, self.stride, self.padding
        )
        if self.has_bn:
            y = batchnorm_(y, self.bn)
        return self.act(y)
