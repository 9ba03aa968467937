"""Output layers: what Darknet's forward leaves in ``l.output`` (darknet-format.md §5.10–5.11,
fixtures/README "What l.output holds"). Box decoding is post-processing and lives elsewhere."""

from __future__ import annotations

import warnings

import torch

from ..errors import DarkweightsWarning
from ..layers import Layer
from ..tree import Tree, load_tree
from .base import BuildContext, DarknetLayer, register, unsupported

# [region] tree= (YOLO9000): what each fork's CPU forward_region_layer does; None = refused, with the reason.
# AlexeyAB/hank-ai: after the flatten to rows, softmax_tree over each row's entries 5..5+tree.n (temperature 1).
# pjreddie: softmax_cpu(net.input + coords+1, group_size, .., groups=n*w*h, group_offset=1, stride=n*w*h,
# l.temperature) on its unflattened buffer, and parse_region never sets temperature (0): NaN.
PJ_REGION_TREE = (
    "tree= in the pjreddie dialect: its CPU forward_region_layer softmaxes with temperature 0 "
    "(parse_region never sets it) across anchors and cells, so Darknet's output is NaN"
)


class TreeSoftmax(torch.nn.Module):
    """``softmax_tree``: one softmax per group of the tree over the last axis (``tree.n`` values),
    ``exp(x/T - max/T) / sum`` as ``softmax()`` in blas.c. Holds no state_dict entries."""

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


@register("yolo", "gaussian_yolo")
class Yolo(DarknetLayer):
    """``[yolo]``: per anchor slot ``x, y = sigmoid(t)*sxy - 0.5*(sxy-1)``, ``w, h`` raw, objectness and
    classes ``sigmoid``; ``new_coords=1``: no sigmoid, only the ``scale_x_y`` step.
    ``[Gaussian_yolo]``: sigmoid on entries 0,1,2,3,5,7,8.. , scale step on 0 and 2, 4 and 6 raw."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.n = len(layer.mask)
        self.entries = layer.classes + layer.entries
        self.sxy = float(layer.scale_x_y)
        self.new_coords = bool(layer.new_coords)
        if layer.type == "gaussian_yolo":
            self.raw = [4, 6]
            self.scaled = [0, 2]
        else:
            self.raw = [2, 3]
            self.scaled = [0, 1]

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, c, h, w = x.shape
        v = x.reshape(n, self.n, self.entries, h, w)
        if self.new_coords:
            y = v.clone()
        else:
            y = torch.sigmoid(v)
            for e in self.raw:
                y[:, :, e] = v[:, :, e]
        if self.sxy != 1.0:
            for e in self.scaled:  # not a chained in-place op on a view: the ONNX tracer drops the second one
                y[:, :, e] = y[:, :, e] * self.sxy + (-0.5 * (self.sxy - 1.0))
        return y.reshape(n, c, h, w)


@register("region")
class Region(DarknetLayer):
    """``[region]``. AlexeyAB/hank-ai: the buffer is transposed to rows ``(H*W*n, coords+1+classes)``
    (location-major, then anchor), sigmoid on entry 4 only, softmax over entries ``5..5+classes`` when
    ``softmax=1``; x, y, w, h raw; returned flat ``(N, outputs)``. pjreddie keeps the input layout
    ``(n, coords+1+classes, H, W)`` with sigmoid on x, y, objectness and softmax/sigmoid on the classes."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.num, self.coords, self.classes = layer.num, layer.coords, layer.classes
        self.entries = layer.coords + layer.classes + 1
        self.softmax = bool(layer.softmax)
        self.pj = ctx.dialect.region_anchor_major  # pjreddie's layout and activations
        self.tree = None
        if layer.tree:
            if not ctx.dialect.region_tree_softmax:
                raise unsupported(layer, PJ_REGION_TREE, ctx.net)
            self.tree = TreeSoftmax(load_tree(layer, ctx.net, layer.classes))
        self.background = bool(layer.background)
        if not self.pj and layer.coords != 4:
            raise unsupported(
                layer,
                f"coords={layer.coords}: AlexeyAB's region forward hard-codes entry 4 as objectness and 5.. as classes",
                ctx.net,
            )
        self.out_shape = layer.output  # image geometry is reported, data is flat

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


@register("detection")
class Detection(DarknetLayer):
    """``[detection]`` (YOLOv1): flat copy of its input, softmax over each cell's classes if ``softmax=1``."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.cells = layer.side * layer.side
        self.classes = layer.classes
        self.softmax = bool(layer.softmax)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.flat(x).clone()
        if self.softmax:
            k = self.cells * self.classes
            y[:, :k] = torch.softmax(y[:, :k].reshape(-1, self.cells, self.classes), dim=-1).reshape(-1, k)
        return y


@register("softmax")
class Softmax(DarknetLayer):
    """``[softmax]``: ``groups`` contiguous chunks of the flat input, each ``exp(x/T - max/T)/sum``.
    ``spatial=1`` is GPU-only in Darknet; the CPU (and this module) ignores it. ``tree=``: one softmax
    per tree group over the first ``tree.n`` inputs instead (``groups`` ignored); the rest of ``l.output``
    is never written (0)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
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
