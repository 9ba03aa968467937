"""``[normalization]``/``[lrn]`` (§5.14)."""

from __future__ import annotations

import numpy as np
import torch

from ...layers.misc import Normalization as NormalizationLayer
from ..base import BuildContext, DarknetLayer, register


@register("normalization")
class Normalization(DarknetLayer):
    """``[normalization]``/``[lrn]`` exactly as Darknet's running-window sum computes it (§5.14):
    ``y_k = x_k * N_k^-beta``, ``N_k = kappa + alpha*(sum_{j=max(0,k-(size-1)/2)}^{min(c-1,k+size/2)} x_j^2
    - x_{size/2}^2)``. Darknet subtracts the square of channel ``size/2`` everywhere, so ``N_k`` can be
    negative and the output NaN, as in Darknet."""

    def __init__(self, layer: NormalizationLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        c = layer.input.c
        if layer.size // 2 >= c:
            raise layer.unsupported(
                f"size={layer.size} needs more than {2 * (layer.size // 2)} channels: Darknet "
                "reads past the channel buffer",
            )
        self.alpha, self.beta, self.kappa, self.size = layer.alpha, layer.beta, layer.kappa, layer.size
        lo = np.maximum(0, np.arange(c) - (self.size - 1) // 2)
        hi = np.minimum(c - 1, np.arange(c) + self.size // 2)
        m = np.zeros((c, c), np.float32)
        for k in range(c):
            m[k, lo[k] : hi[k] + 1] = 1.0
        m[:, self.size // 2] -= 1.0
        self.register_buffer("window", torch.from_numpy(m), persistent=False)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        sq = x * x
        norms = torch.einsum("kj,njhw->nkhw", self.window, sq).mul_(self.alpha).add_(self.kappa)
        return norms.pow_(-self.beta).mul_(x)
