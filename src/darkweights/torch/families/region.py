"""``[region]`` (§5.10.3)."""

from __future__ import annotations

import torch

from ...layers.heads import Region as RegionLayer
from ...tree import load_tree
from ..base import BuildContext, DarknetLayer, register
from ..tree_softmax import TreeSoftmax

# [region] tree= (YOLO9000): what each fork's CPU forward_region_layer does; None = refused, with the reason.
# AlexeyAB/hank-ai: after the flatten to rows, softmax_tree over each row's entries 5..5+tree.n (temperature 1).
# pjreddie: softmax_cpu(net.input + coords+1, group_size, .., groups=n*w*h, group_offset=1, stride=n*w*h,
# l.temperature) on its unflattened buffer, and parse_region never sets temperature (0): NaN.
PJ_REGION_TREE = (
    "tree= in the pjreddie dialect: its CPU forward_region_layer softmaxes with temperature 0 "
    "(parse_region never sets it) across anchors and cells, so Darknet's output is NaN"
)


@register("region")
class Region(DarknetLayer):
    """``[region]``. AlexeyAB/hank-ai: the buffer is transposed to rows ``(H*W*n, coords+1+classes)``
    (location-major, then anchor), sigmoid on entry 4 only, softmax over entries ``5..5+classes`` when
    ``softmax=1``; x, y, w, h raw; returned flat ``(N, outputs)``. pjreddie keeps the input layout
    ``(n, coords+1+classes, H, W)`` with sigmoid on x, y, objectness and softmax/sigmoid on the classes."""

    tree: TreeSoftmax | None

    def __init__(self, layer: RegionLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.num, self.coords, self.classes = layer.num, layer.coords, layer.classes
        self.entries = layer.coords + layer.classes + 1
        self.softmax = bool(layer.softmax)
        self.pj = ctx.dialect.region_anchor_major  # pjreddie's layout and activations
        self.tree = None
        if layer.tree:
            if not ctx.dialect.region_tree_softmax:
                raise layer.unsupported(PJ_REGION_TREE)
            self.tree = TreeSoftmax(load_tree(layer, ctx.net, layer.classes))
        self.background = bool(layer.background)
        if not self.pj and layer.coords != 4:
            raise layer.unsupported(
                f"coords={layer.coords}: AlexeyAB's region forward hard-codes entry 4 as objectness and 5.. as classes",
            )

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, c, h, w = x.shape
        if self.pj:
            return self._pjreddie(x)
        rows = x.reshape(n, c, h * w).transpose(1, 2).reshape(n, h * w * self.num, self.entries).clone()
        rows[:, :, 4].sigmoid_()
        if self.tree is not None:  # before (and instead of) softmax=1
            k = 5 + self.tree.segment.numel()
            rows[:, :, 5:k] = self.tree(rows[:, :, 5:k])
        elif self.softmax:
            rows[:, :, 5 : 5 + self.classes] = torch.softmax(rows[:, :, 5 : 5 + self.classes], dim=-1)
        return rows.reshape(n, -1)

    def _pjreddie(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = x.reshape(n, self.num, self.entries, h, w).clone()
        y[:, :, 0:2].sigmoid_()
        if not self.background:
            y[:, :, self.coords].sigmoid_()
        first = self.coords + (0 if self.background else 1)
        if self.softmax:
            count = self.classes + (1 if self.background else 0)
            y[:, :, first : first + count] = torch.softmax(y[:, :, first : first + count], dim=2)
        else:
            y[:, :, self.coords + 1 :].sigmoid_()
        return y.reshape(n, -1)
