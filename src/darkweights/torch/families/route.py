"""``[route]`` (§5.7)."""

from __future__ import annotations

import torch

from ...layers.merge import Route as RouteLayer
from ..base import BuildContext, ChannelParts, DarknetLayer, dense, register


@register("route")
class Route(DarknetLayer):
    """``[route]``: the ``group_id``-th of ``groups`` flat slices of each input, concatenated (§5.7)."""

    takes_parts = True

    def __init__(self, layer: RouteLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        srcs = [ctx.net.layers[i] for i in self.reads]
        self.groups, self.group_id = layer.groups, layer.group_id
        out = layer.output
        # channel slices when every input is an image tensor of the output's size that splits evenly;
        # otherwise Darknet's flat slices
        self.channel_mode = out.is_image and all(
            len(s.natural_shape) == 3 and (s.output.h, s.output.w) == (out.h, out.w) and s.output.c % self.groups == 0
            for s in srcs
        )
        self.parts = [s.output.size // self.groups for s in srcs]
        self.chans = [s.output.c // self.groups for s in srcs]

    def forward(self, x: torch.Tensor | ChannelParts, outs: list) -> torch.Tensor | ChannelParts:
        g = self.group_id
        if self.channel_mode:
            # the concatenation stays lazy (ChannelParts): a following maxpool pools the blocks, so
            # the next conv concatenates the smaller pooled maps instead of the full-size ones
            parts: list[torch.Tensor] = []
            for i, c in zip(self.reads, self.chans):
                src = outs[i]
                if type(src) is not ChannelParts:
                    src = ChannelParts((src,))
                parts += src if self.groups == 1 else src.channels(g * c, (g + 1) * c)
            return parts[0] if len(parts) == 1 else ChannelParts(parts)
        parts = [self.flat(dense(outs[i]))[:, g * p : (g + 1) * p] for i, p in zip(self.reads, self.parts)]
        return self.shaped(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
