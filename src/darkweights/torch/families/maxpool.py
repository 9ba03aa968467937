"""``[maxpool]`` (§5.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...layers.pooling import Maxpool as MaxpoolLayer
from ..base import BuildContext, ChannelParts, DarknetLayer, dense, register
from ..units import Blur, lowest


def pool_geometry(layer: MaxpoolLayer) -> tuple[int, int, int, int]:
    """Darknet's maxpool window placement: left/top ``padding//2``, the rest right/bottom."""
    off = layer.padding // 2
    return off, layer.padding - off, off, layer.padding - off


@register("maxpool")
class Maxpool(DarknetLayer):
    """``[maxpool]`` (§5.4): out-of-range cells are skipped (−inf padding); maxpool_depth; antialiasing."""

    def __init__(self, layer: MaxpoolLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.depth = layer.maxpool_depth
        self.out_channels = layer.out_channels
        self.size = layer.size
        aa = layer.antialiasing
        self.stride = (1, 1) if aa else (layer.stride_y, layer.stride_x)
        self.blur = Blur(aa, layer.input.c, layer.stride_x, layer.stride_y) if aa else None
        self.pad = pool_geometry(layer)
        self.takes_parts = not self.depth and self.blur is None
        self.mode = "pad"
        if not self.depth:
            self.mode = self._fast_mode(layer)

    def _fast_mode(self, layer: MaxpoolLayer) -> str:
        """Use max_pool2d's own (−inf) padding or ceil_mode when it gives Darknet's windows."""
        h, w = layer.input.h, layer.input.w
        k, (sy, sx) = self.size, self.stride
        left, right, _, _ = self.pad
        want = (layer.output.h, layer.output.w)

        oh, ow = want
        if left == 0 and sy == sx == k and oh * k <= h and ow * k <= w:
            self.tiles = want
            return "tiles"  # windows tile the map without overlap or padding (size=2 stride=2)

        def torch_out(n: int, s: int, p: int, ceil: bool) -> int:
            span = n + 2 * p - k
            o = (-(-span // s) if ceil else span // s) + 1
            if ceil and (o - 1) * s >= n + p:
                o -= 1
            return o

        if left == right and left <= k // 2 and (torch_out(h, sy, left, False), torch_out(w, sx, left, False)) == want:
            return "sym"
        if left == 0 and (torch_out(h, sy, 0, True), torch_out(w, sx, 0, True)) == want and k >= 1:
            return "ceil"
        return "pad"

    def forward(self, x: torch.Tensor | ChannelParts, outs: list) -> torch.Tensor | ChannelParts:
        if type(x) is ChannelParts:  # pooling is per channel: pool each block (fewer bytes to concatenate)
            return ChannelParts(self._pool(p) for p in x)
        return self._pool(self.image(dense(x)))

    def portable(self, x: torch.Tensor, outs: list) -> torch.Tensor | None:
        if self.mode == "tiles" and not self.depth:
            # the forward's strided maxima are an eager NHWC fast path: in the graph, one MaxPool over the same
            # non-overlapping windows (cut to the tiled area first, as the forward reads only that)
            k = self.size
            oh, ow = self.tiles
            x = self.image(dense(x))
            if (oh * k, ow * k) != (self.in_shape.h, self.in_shape.w):
                x = x[:, :, : oh * k, : ow * k]
            y = F.max_pool2d(x, k, k)
            return self.blur(y) if self.blur is not None else y
        if not self.depth:
            return None
        # maxpool_depth: channel k keeps max over channels k, k+g, ...; the missing tail is -FLT_MAX (F.pad on
        # the channel axis comes out misplaced in the exported graph)
        x = self.image(dense(x))
        s = self.in_shape  # static sizes: traced ones would turn the slice below into graph arithmetic
        g = self.out_channels
        k = -(-s.c // g)
        if k * g != s.c:
            fill = torch.full_like(x[:, : k * g - s.c], lowest(x.dtype))
            x = torch.cat([x, fill], dim=1)
        return x.reshape(-1, k, g, s.h, s.w).amax(dim=1)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.depth:
            n, c, h, w = x.shape
            g = self.out_channels
            m = -(-c // g)
            if m * g != c:
                x = F.pad(x, (0, 0, 0, 0, 0, m * g - c), value=lowest(x.dtype))
            y = x.reshape(n, m, g, h, w).amax(dim=1)
            return y
        if self.mode == "tiles":
            y = self._tiles(x)
        elif self.mode == "sym":
            y = F.max_pool2d(x, self.size, self.stride, self.pad[0])
        elif self.mode == "ceil":
            y = F.max_pool2d(x, self.size, self.stride, 0, 1, True)
        else:
            y = F.max_pool2d(F.pad(x, self.pad, value=lowest(x.dtype)), self.size, self.stride)
        return self.blur(y) if self.blur is not None else y

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        """Non-overlapping k x k windows as k + k elementwise maxima of strided views: exact, and on
        NHWC data several times faster than ``max_pool2d`` (which also computes indices)."""
        k = self.size
        oh, ow = self.tiles
        rows = x[:, :, 0 : oh * k : k]
        for i in range(1, k):
            rows = torch.maximum(rows, x[:, :, i : oh * k : k])
        y = rows[..., 0 : ow * k : k]
        for j in range(1, k):
            y = torch.maximum(y, rows[..., j : ow * k : k])
        return y
