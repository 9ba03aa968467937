"""The portable form of a :class:`~darkweights.torch.DarknetModel`: what the ONNX exporter traces.

The inference model carries CPU fast paths (oneDNN prepacked weights, Winograd F(2,3), NHWC data,
lazy route concatenation) that are not graph operations; :func:`portable_model` turns them off.
A few layer modules use operations that TorchScript's ONNX exporter translates wrongly without a
word (``avg_pool2d(divisor_override=1)`` loses its divisor override and becomes a mean; padding the
channel axis comes out misplaced); :data:`OVERRIDES`, keyed by the catalogue's layer ``type``, holds
an equivalent written with operations that translate exactly. Every other module is traced as is.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedError
from ..torch.base import DarknetLayer, dense
from ..torch.layers import FLT_MAX

Override = Callable[[DarknetLayer, torch.Tensor, list], Optional[torch.Tensor]]
OVERRIDES: dict[str, Override] = {}


def override(*types: str) -> Callable[[Override], Override]:
    """Register a traceable forward for layers of these types (return ``None`` to use the module's own)."""

    def deco(fn: Override) -> Override:
        for t in types:
            OVERRIDES[t] = fn
        return fn

    return deco


def _window_sum(x: torch.Tensor, c: int, size: int, stride: tuple[int, int]) -> torch.Tensor:
    """Sum over ``size x size`` windows of ``c`` channels: a depthwise convolution with a kernel of ones."""
    ones = torch.ones(c, 1, size, size, dtype=x.dtype)
    return F.conv2d(x, ones, None, stride, 0, 1, c)


@override("convolutional")
def _convolutional(m: DarknetLayer, x: torch.Tensor, outs: list) -> Optional[torch.Tensor]:
    """Convolution + BN as ONNX ``Conv`` + ``BatchNormalization``, which reads the stored arrays as they are
    (``(x - mean) / sqrt(var + eps) * scale + bias``: Darknet's formula). The inference module's form (mean
    through the convolution bias, the scale computed in the graph) computes the same, but OpenCV's ONNX
    importer cannot evaluate operations on initializers. pjreddie's CPU BN (``sqrt(var) + 1e-6``) and xnor
    layers keep the module's form."""
    u = m.unit
    if not u.has_bn or u.xnor or u.folded:
        return None
    bn = u.bn_module()
    if not bn.eps_inside_sqrt:  # ONNX BatchNormalization is sqrt(var + eps)
        return None
    y = F.conv2d(m.image(x), u.weight(), None, u.stride, u.padding, u.dilation, u.groups)
    y = u.act(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))
    return m.blur(y) if m.blur is not None else y


@override("yolo", "gaussian_yolo")
def _yolo(m: DarknetLayer, x: torch.Tensor, outs: list) -> torch.Tensor:
    """The module's arithmetic as one concatenation of entry runs instead of slice assignments (which
    export as ``ScatterND``/``Expand`` chains that OpenCV's ONNX importer rejects)."""
    s = m.in_shape
    v = m.image(x).reshape(-1, m.n, m.entries, s.h, s.w)
    sig = v if m.new_coords else torch.sigmoid(v)

    def kind(e: int) -> tuple[bool, bool]:  # (raw, scaled)
        return (m.new_coords or e in m.raw), (m.sxy != 1.0 and e in m.scaled)

    parts, start = [], 0
    for e in range(1, m.entries + 1):
        if e < m.entries and kind(e) == kind(start):
            continue
        raw, scaled = kind(start)
        block = (v if raw else sig)[:, :, start:e]
        if scaled:
            block = block * m.sxy + (-0.5 * (m.sxy - 1.0))
        parts.append(block)
        start = e
    y = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
    return y.reshape(-1, s.c, s.h, s.w)


@override("maxpool")
def _maxpool(m: DarknetLayer, x: torch.Tensor, outs: list) -> Optional[torch.Tensor]:
    if not m.depth:
        return None
    # maxpool_depth: channel k keeps max over channels k, k+g, ...; the missing tail is -FLT_MAX
    x = m.image(dense(x))
    s = m.in_shape  # static sizes: traced ones would turn the slice below into graph arithmetic
    g = m.out_channels
    k = -(-s.c // g)
    if k * g != s.c:
        fill = torch.full_like(x[:, : k * g - s.c], -FLT_MAX)
        x = torch.cat([x, fill], dim=1)
    return x.reshape(-1, k, g, s.h, s.w).amax(dim=1)


@override("local_avgpool")
def _local_avgpool(m: DarknetLayer, x: torch.Tensor, outs: list) -> torch.Tensor:
    s = _window_sum(F.pad(m.image(x), m.pad), m.in_shape.c, m.size, m.stride)
    return s / m.count


@override("upsample")
def _upsample(m: DarknetLayer, x: torch.Tensor, outs: list) -> Optional[torch.Tensor]:
    if m.stride > 0:
        return None
    s = -m.stride
    x = m.image(x)
    if m.scale != 1.0:
        x = x * m.scale  # Darknet adds scale*x term by term
    return _window_sum(x, m.in_shape.c, s, (s, s))


def portable_model(model: nn.Module) -> nn.Module:
    """Switch the CPU-only fast paths off (in place): prepacking, Winograd, NHWC."""
    model.prepack = False
    model.winograd = False
    model.channels_last = False
    return model


class Portable(nn.Module):
    """Runs a portable model layer by layer and returns the chosen layers' outputs as a tuple.

    ``returned``: the layer indexes whose outputs the graph gives (heads, the network output, or
    every layer); ``post``: an optional module turning the head outputs into decoded boxes/scores.
    ``half``: compute in float16 (the input and outputs stay float32).
    """

    def __init__(self, model: nn.Module, returned: Sequence[int], post: Optional[nn.Module] = None,
                 half: bool = False) -> None:
        super().__init__()
        self.model = model
        self.returned = list(returned)
        self.post = post
        self.half = half

    def forward(self, x: torch.Tensor) -> tuple:
        if self.half:
            x = x.half()
        layers = self.model.layers
        last = max(self.returned) if self.returned else len(layers) - 1
        # an output is dropped after its last reader: tracing runs the real forward at full size
        final = {j: i for i, m in enumerate(layers) for j in m.sources}
        kept = set(self.returned)
        outs: list = [None] * len(layers)
        cur = x
        for i, module in enumerate(layers):
            if i > last:
                break
            fn = OVERRIDES.get(module.kind)
            try:
                y = fn(module, cur, outs) if fn is not None else None
                cur = dense(module(cur, outs) if y is None else y)
            except UnsupportedError:
                raise
            except Exception as exc:  # name the layer: tracing runs the modules' own code
                raise UnsupportedError(f"cannot be traced for ONNX: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                                       layer=i, layer_type=module.kind) from None
            if i in kept or i in final:
                outs[i] = cur
            for j in [j for j, reader in final.items() if reader == i and j not in kept]:
                outs[j] = None
        picked = [outs[i] for i in self.returned]
        if self.post is not None:
            picked = list(self.post(picked))
        if self.half:
            picked = [p.float() for p in picked]
        return tuple(picked)
