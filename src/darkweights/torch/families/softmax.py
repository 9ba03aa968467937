"""``[softmax]`` (§5.11)."""

from __future__ import annotations

import warnings

import torch

from ...errors import DarkweightsWarning
from ...layers.heads import Softmax as SoftmaxLayer
from ...tree import load_tree
from ..base import BuildContext, DarknetLayer, register
from ..tree_softmax import TreeSoftmax


@register("softmax")
class Softmax(DarknetLayer):
    """``[softmax]``: ``groups`` contiguous chunks of the flat input, each ``exp(x/T - max/T)/sum``.
    ``spatial=1`` is GPU-only in Darknet; the CPU (and this module) ignores it. ``tree=``: one softmax
    per tree group over the first ``tree.n`` inputs instead (``groups`` ignored); the rest of ``l.output``
    is never written (0)."""

    tree: TreeSoftmax | None

    def __init__(self, layer: SoftmaxLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.tree = TreeSoftmax(load_tree(layer, ctx.net, layer.input.size), layer.temperature) if layer.tree else None
        self.groups = layer.groups
        self.temperature = float(layer.temperature)
        if layer.spatial:
            warnings.warn(
                f"{ctx.net.path}:{layer.line}: layer {layer.index} [softmax] spatial=1 is honoured only by "
                "Darknet's GPU build; like its CPU build, this model ignores it",
                DarkweightsWarning,
                stacklevel=4,
            )

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        n = x.shape[0]
        if self.tree is not None:
            v = self.flat(x)
            k = self.tree.segment.numel()
            return torch.cat([self.tree(v[:, :k]), v.new_zeros(n, v.shape[1] - k)], dim=1)
        v = self.flat(x).reshape(n, self.groups, -1)
        if self.temperature != 1.0:
            v = v / self.temperature
        return torch.softmax(v, dim=-1).reshape(n, -1)
