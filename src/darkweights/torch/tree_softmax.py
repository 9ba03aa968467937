"""``softmax_tree``: one softmax per group of a class tree (YOLO9000's ``tree=``), shared by ``[softmax]``
and ``[region]``."""

from __future__ import annotations

import torch

from ..tree import Tree


class TreeSoftmax(torch.nn.Module):
    """``softmax_tree``: one softmax per group of the tree over the last axis (``tree.n`` values),
    ``exp(x/T - max/T) / sum`` as ``softmax()`` in blas.c. Holds no state_dict entries."""

    segment: torch.Tensor

    def __init__(self, tree: Tree, temperature: float = 1.0) -> None:
        super().__init__()
        self.groups = tree.groups
        self.temperature = float(temperature)
        self.register_buffer("segment", torch.from_numpy(tree.group.copy()), persistent=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        seg = self.segment.expand(v.shape)
        top = torch.full(v.shape[:-1] + (self.groups,), float("-inf"), dtype=v.dtype, device=v.device)
        top = top.scatter_reduce(-1, seg, v, "amax").gather(-1, seg)
        t = self.temperature
        e = torch.exp(v - top) if t == 1.0 else torch.exp(v / t - top / t)
        total = torch.zeros(v.shape[:-1] + (self.groups,), dtype=v.dtype, device=v.device).scatter_add(-1, seg, e)
        return e / total.gather(-1, seg)
