"""Computing units shared by several layer families: parameter holders, Darknet's batch-norm, the
antialiasing blur, the connected unit (``[connected]`` and the recurrent sub-layers).

Holders register their tensors under the state-dict names of :mod:`darkweights.layers.names`, so that a
model's ``state_dict()`` keys are the catalogue's ``ArraySpec.torch`` names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import dialects
from ..dialects import Dialect
from ..layers import Layer
from ..layers.names import BIAS, BN, BN_FIELDS, FC, WEIGHT
from .base import BuildContext

FLT_MAX = float(np.finfo(np.float32).max)


def lowest(dtype: torch.dtype) -> float:
    """Darknet's ``-FLT_MAX`` padding value, or the lowest finite value of a narrower type (float16)."""
    return max(-FLT_MAX, float(torch.finfo(dtype).min))


class Holder(nn.Module):
    """A named bag of parameters/buffers, so that state_dict keys read ``conv.weight``, ``bn.running_var``
    (:mod:`darkweights.layers.names`). Its attributes are the tensors (and ``eps`` ... for batch-norm)."""

    def __init__(self, params: dict | None = None, buffers: dict | None = None) -> None:
        super().__init__()
        for k, v in (params or {}).items():
            if v is not None:
                setattr(self, k, v)
        for k, v in (buffers or {}).items():
            if v is not None:
                self.register_buffer(k, v)

    def __getattr__(self, name: str) -> Any:
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        items = list(self._parameters.items()) + list(self._buffers.items())
        return ", ".join(f"{k}={tuple(v.shape)}" for k, v in items if v is not None)


def make_bn(ctx: BuildContext, arrays: dict, prefix: str = "", *, biases: bool = True) -> Holder:
    """BatchNorm holder: ``weight``/``bias`` parameters, ``running_mean``/``running_var`` buffers."""
    a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    n = a["scales"].shape[0]
    bias = ctx.param(a["biases"]) if biases and "biases" in a else nn.Parameter(torch.zeros(n), requires_grad=False)
    f = BN_FIELDS
    bn = Holder(
        {f["scales"]: ctx.param(a["scales"]), f["biases"]: bias},
        {f["rolling_mean"]: ctx.tensor(a["rolling_mean"]), f["rolling_variance"]: ctx.tensor(a["rolling_variance"])},
    )
    bn.eps = ctx.dialect.bn_eps
    bn.eps_inside_sqrt = ctx.dialect.bn_eps_inside_sqrt
    return bn


def batchnorm_(y: torch.Tensor, bn: Holder, centered: bool = False) -> torch.Tensor:
    """Darknet's inference BN on an owned tensor, in Darknet's operation order:
    ``(x - mean) / sqrt(var + eps) * scale + bias`` with the fork's ``bn.eps`` (AB 1e-5); pjreddie's
    CPU ``normalize_cpu`` computes ``sqrt(var) + 1e-6`` instead (``bn.eps_inside_sqrt`` False)."""
    shape = (1, -1) + (1,) * (y.dim() - 2)
    var = bn.running_var
    denom = (var + bn.eps).sqrt() if bn.eps_inside_sqrt else var.sqrt().add(bn.eps)
    k = bn.weight / denom
    if not centered:  # centered: the caller already subtracted the rolling mean
        y = y.sub_(bn.running_mean.view(shape))
    return y.mul_(k.view(shape)).add_(bn.bias.view(shape))


def fold_bn(
    weights: np.ndarray,
    biases: np.ndarray,
    scales: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    dialect: Dialect = dialects.DEFAULT,
) -> tuple[np.ndarray, np.ndarray]:
    """``fuse_conv_batchnorm`` (AB network.c), in double precision as Darknet does it, with the
    fork's batch-norm formula."""
    v = var.astype(np.float64)
    denom = np.sqrt(v + dialect.bn_eps) if dialect.bn_eps_inside_sqrt else np.sqrt(v) + dialect.bn_eps
    s = scales.astype(np.float64)
    b = (biases.astype(np.float64) - s * mean.astype(np.float64) / denom).astype(np.float32)
    pre = s / denom
    w = (weights.astype(np.float64) * pre.reshape((-1,) + (1,) * (weights.ndim - 1))).astype(np.float32)
    return w, b


BLUR = {
    1: (np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16.0, 1),
    2: (np.full((2, 2), 0.25, np.float32), 0),
}


class Blur(nn.Module):
    """The fixed depthwise antialiasing conv (§2.1.6): never stored, carries the layer's stride."""

    weight: torch.Tensor

    def __init__(self, mode: int, channels: int, stride_x: int, stride_y: int) -> None:
        super().__init__()
        kernel, self.pad = BLUR[2 if mode == 2 else 1]
        w = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1) + kernel.shape)))
        self.register_buffer("weight", w, persistent=False)
        self.stride = (stride_y, stride_x)
        self.channels = channels

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, self.weight, None, self.stride, self.pad, 1, self.channels)


class FCUnit(nn.Module):
    """A Darknet connected layer on ``(N, inputs)``: ``W x`` then BN (and biases) or ``+ b``, then the
    generic activation. Used by ``[connected]`` and the recurrent layers' sub-layers."""

    fc: Holder
    bn: Holder

    def __init__(
        self, layer: Layer, ctx: BuildContext, arrays: dict, prefix: str = "", activation: str | None = None
    ) -> None:
        super().__init__()
        a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        self.has_bn = "scales" in a
        if self.has_bn:
            self.add_module(FC, Holder({WEIGHT: ctx.param(a["weights"])}))
            self.add_module(BN, make_bn(ctx, a))
        else:
            self.add_module(FC, Holder({WEIGHT: ctx.param(a["weights"]), BIAS: ctx.param(a["biases"])}))
        self.act = ctx.activation(layer, "generic", activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.fc.weight, None if self.has_bn else self.fc.bias)
        if self.has_bn:
            y = batchnorm_(y, self.bn)
        return self.act(y)


def window_sum(x: torch.Tensor, c: int, size: int, stride: tuple[int, int]) -> torch.Tensor:
    """Sum over ``size x size`` windows of ``c`` channels: a depthwise convolution with a kernel of ones
    (what ``avg_pool2d(divisor_override=1)`` computes, in a form ONNX exporters translate exactly)."""
    ones = torch.ones(c, 1, size, size, dtype=x.dtype)
    return F.conv2d(x, ones, None, stride, 0, 1, c)
