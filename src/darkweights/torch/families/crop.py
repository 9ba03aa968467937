"""``[crop]``."""

from __future__ import annotations

import torch

from ...layers.misc import Crop as CropLayer
from ..base import BuildContext, DarknetLayer, register


@register("crop")
class Crop(DarknetLayer):
    """``[crop]`` (CPU, inference): centre crop, then ``2x - 1`` unless ``noadjust``."""

    def __init__(self, layer: CropLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.dh = (layer.input.h - layer.crop_height) // 2
        self.dw = (layer.input.w - layer.crop_width) // 2
        self.ch, self.cw = layer.crop_height, layer.crop_width
        self.noadjust = bool(layer.noadjust)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.image(x)[:, :, self.dh : self.dh + self.ch, self.dw : self.dw + self.cw]
        return y.clone() if self.noadjust else y * 2.0 - 1.0
