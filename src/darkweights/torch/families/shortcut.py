"""``[shortcut]`` (§5.8)."""

from __future__ import annotations

import torch

from ...layers.merge import Shortcut as ShortcutLayer
from ...layers.names import WEIGHT
from ..base import BuildContext, DarknetLayer, register


@register("shortcut")
class Shortcut(DarknetLayer):
    """``[shortcut]`` (§5.8). AB/HK: flat-index add of every ``from`` layer, truncated to the input's
    channels, optionally weighted per feature/channel with relu/softmax normalisation, then the
    shortcut-path activation. pjreddie: strided/sampled ``alpha*x + beta*from``."""

    weight: torch.Tensor

    def __init__(self, layer: ShortcutLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.scaled = ctx.dialect.shortcut_scaled
        self.act = ctx.activation(layer, "shortcut")
        self.weights_type = layer.weights_type
        self.norm = layer.weights_normalization
        # unfused CPU kernel clamps relu weights at 0; fuse_conv_batchnorm (what inference tools run)
        # pre-normalises them with max(w, 0.001)
        self.relu_floor = 0.001 if ctx.fuse_bn else 0.0
        if self.weights_type != "none":
            self.register_parameter(WEIGHT, ctx.param(ctx.arrays(layer)["weights"]))
        self.alpha, self.beta = float(layer.alpha), float(layer.beta)
        c = layer.input.c
        self.src_c = [min(c, ctx.net.layers[i].output.c) for i in self.reads]
        self.src_shapes = [ctx.net.layers[i].output for i in self.reads]

    def _weights(self) -> torch.Tensor | None:
        """(m+1, C or 1) effective weights after normalisation."""
        if self.weights_type == "none":
            return None
        w = self.weight.reshape(self.weight.shape[0], -1)
        if self.norm == "relu":
            r = w.clamp_min(self.relu_floor) if self.relu_floor else w.relu()
            return r / (r.sum(dim=0, keepdim=True) + 0.0001)
        if self.norm == "softmax":
            e = torch.exp(w - w.amax(dim=0, keepdim=True))
            return e / (e.sum(dim=0, keepdim=True) + 0.0001)
        return w

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        if self.scaled:
            return self.act(self._scaled(x, outs))
        w = self._weights()
        if w is None:
            if len(self.reads) == 1 and self.src_c[0] == x.shape[1] and outs[self.reads[0]].shape == x.shape:
                return self.act(x + outs[self.reads[0]])
            y = x.clone()
        else:
            y = x * w[0].view(1, -1, 1, 1)
        for j, (i, c) in enumerate(zip(self.reads, self.src_c)):
            f = self.image(outs[i], self.src_shapes[j])[:, :c]
            if w is None:
                y[:, :c] += f
            else:
                wj = w[j + 1].view(1, -1, 1, 1)
                y[:, :c] += f * (wj[:, :c] if wj.shape[1] > 1 else wj)
        return self.act(y)

    def _scaled(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        f = self.image(outs[self.reads[0]], self.src_shapes[0])
        _, c2, h2, w2 = x.shape
        _, c1, h1, w1 = f.shape
        stride = max(1, w1 // w2)
        sample = max(1, w2 // w1)
        mc, mh, mw = min(c1, c2), min(h1, h2), min(w1, w2)
        y = x.clone()
        dst = (slice(None), slice(0, mc), slice(0, mh * sample, sample), slice(0, mw * sample, sample))
        src = f[:, :mc, 0 : mh * stride : stride, 0 : mw * stride : stride]
        y[dst] = self.alpha * y[dst] + self.beta * src
        return y
