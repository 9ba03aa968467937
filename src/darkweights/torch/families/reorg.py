"""Old ``[reorg]`` and ``[reorg3d]`` (§5.9)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DarkweightsWarning
from ...layers.pooling import Reorg as ReorgLayer
from ..base import BuildContext, DarknetLayer, register


def _reorg_map(w: int, h: int, c: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The two index arrays of Darknet's ``reorg_cpu(x, w, h, c, stride, ...)`` for one item."""
    in_c = c // (stride * stride)
    k, j, i = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    in_index = i + w * (j + h * k)
    c2 = k % in_c
    offset = k // in_c
    w2 = i * stride + offset % stride
    h2 = j * stride + offset // stride
    out_index = w2 + w * stride * (h2 + h * stride * c2)
    return in_index.reshape(-1), out_index.reshape(-1)


@register("reorg")
class Reorg(DarknetLayer):
    """Old ``[reorg]``: Darknet's ``reorg_cpu`` index maps applied literally (§5.9), on the input's geometry:
    ``reorg_cpu(input, l.w, l.h, l.c, stride, forward=reverse)``. pjreddie's ``flatten``/``extra`` modes."""

    gather: torch.Tensor
    maps_output_geometry = False  # reorg_cpu is called with the input's w, h, c
    reverse_is_inverse = True

    def __init__(self, layer: ReorgLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        if layer.extra or layer.flatten:
            self.mode = "extra" if layer.extra else ("flatten_rev" if layer.reverse else "flatten")
            self.extra = layer.extra
            return
        self.mode = "gather"
        s = layer.stride
        if layer.reverse and not self.reverse_is_inverse:
            warnings.warn(
                f"{ctx.net.path}:{layer.line}: layer {layer.index} [{layer.type}] reverse=1 reproduces Darknet "
                "literally, which is not the inverse of the forward mapping (a Darknet bug)",
                DarkweightsWarning,
                stacklevel=4,
            )
        w, h, c = (layer.output if self.maps_output_geometry else layer.input).chw[::-1]
        in_index, out_index = _reorg_map(w, h, c, s)
        if layer.reverse:  # out[out_index] = x[in_index]
            index = np.empty_like(in_index)
            index[out_index] = in_index
        else:  # out[in_index] = x[out_index]
            index = np.empty_like(out_index)
            index[in_index] = out_index
        self.register_buffer("gather", torch.from_numpy(index.astype(np.int64)), persistent=False)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        flat = self.flat(x)
        if self.mode == "gather":
            return self.shaped(flat.index_select(1, self.gather))
        if self.mode == "extra":
            return F.pad(flat, (0, self.extra))
        s = self.in_shape
        if self.mode == "flatten":  # CHW -> HWC
            return self.shaped(flat.reshape(-1, s.c, s.h * s.w).transpose(1, 2).reshape(x.shape[0], -1))
        return self.shaped(flat.reshape(-1, s.h * s.w, s.c).transpose(1, 2).reshape(x.shape[0], -1))


@register("reorg3d")
class Reorg3d(Reorg):
    """``[reorg3d]``: ``reorg_cpu(input, l.out_w, l.out_h, l.out_c, stride, forward=reverse)``, whose reverse
    is not the inverse of its forward mapping (reproduced, with a warning)."""

    maps_output_geometry = True
    reverse_is_inverse = False
