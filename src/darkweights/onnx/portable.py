"""The portable form of a :class:`~darkweights.torch.DarknetModel`: what the ONNX exporter traces.

The inference model carries CPU fast paths (oneDNN prepacked weights, Winograd F(2,3), NHWC data,
lazy route concatenation) that are not graph operations; :func:`portable_model` turns them off.
A few layer modules use operations that TorchScript's ONNX exporter translates wrongly without a
word (``avg_pool2d(divisor_override=1)`` loses its divisor override and becomes a mean; padding the
channel axis comes out misplaced); :data:`OVERRIDES`, keyed by the catalogue's layer ``type``, holds
an equivalent written with operations that translate exactly. Every other module is traced as is.
:class:`Step` is one layer as a function of its inputs: :mod:`.trace` traces the model step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedError
from ..torch.base import DarknetLayer, dense
from ..torch.layers import lowest

Override = Callable[[DarknetLayer, torch.Tensor, list], torch.Tensor | None]
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
def _convolutional(m: DarknetLayer, x: torch.Tensor, outs: list) -> torch.Tensor | None:
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
def _maxpool(m: DarknetLayer, x: torch.Tensor, outs: list) -> torch.Tensor | None:
    if m.mode == "tiles" and not m.depth:
        # the module's strided maxima are an eager NHWC fast path: in the graph, one MaxPool over the same
        # non-overlapping windows (cut to the tiled area first, as the module reads only that)
        k = m.size
        oh, ow = m.tiles
        x = m.image(dense(x))
        if (oh * k, ow * k) != (m.in_shape.h, m.in_shape.w):
            x = x[:, :, : oh * k, : ow * k]
        y = F.max_pool2d(x, k, k)
        return m.blur(y) if m.blur is not None else y
    if not m.depth:
        return None
    # maxpool_depth: channel k keeps max over channels k, k+g, ...; the missing tail is -FLT_MAX
    x = m.image(dense(x))
    s = m.in_shape  # static sizes: traced ones would turn the slice below into graph arithmetic
    g = m.out_channels
    k = -(-s.c // g)
    if k * g != s.c:
        fill = torch.full_like(x[:, : k * g - s.c], lowest(x.dtype))
        x = torch.cat([x, fill], dim=1)
    return x.reshape(-1, k, g, s.h, s.w).amax(dim=1)


@override("local_avgpool")
def _local_avgpool(m: DarknetLayer, x: torch.Tensor, outs: list) -> torch.Tensor:
    s = _window_sum(F.pad(m.image(x), m.pad), m.in_shape.c, m.size, m.stride)
    return s / m.count


@override("upsample")
def _upsample(m: DarknetLayer, x: torch.Tensor, outs: list) -> torch.Tensor | None:
    x = m.image(x)
    if m.stride > 0:
        # nearest-neighbour copies: one Resize in the graph (the module's expand + reshape suits NHWC tensors)
        y = F.interpolate(x, scale_factor=float(m.stride), mode="nearest")
        return y * m.scale if m.scale != 1.0 else y
    s = -m.stride
    if m.scale != 1.0:
        x = x * m.scale  # Darknet adds scale*x term by term
    return _window_sum(x, m.in_shape.c, s, (s, s))


def portable_model(model: nn.Module) -> nn.Module:
    """Switch the CPU-only fast paths off (in place): prepacking, Winograd, NHWC."""
    model.prepack = False
    model.winograd = False
    model.channels_last = False
    return model


def run_layer(module: DarknetLayer, index: int, x: torch.Tensor, outs: list) -> torch.Tensor:
    """One layer's output as a dense tensor, through its override when it has one; a failure names the layer
    (tracing runs the modules' own code)."""
    fn = OVERRIDES.get(module.kind)
    try:
        y = fn(module, x, outs) if fn is not None else None
        return dense(module(x, outs) if y is None else y)
    except UnsupportedError:
        raise
    except Exception as exc:
        raise UnsupportedError(
            f"cannot be traced for ONNX: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            layer=index,
            layer_type=module.kind,
        ) from None


class Step(nn.Module):
    """Layer ``index`` of a portable model as a function of its inputs, ``forward(x, *sources)``: what the
    exporter traces, one layer at a time (:mod:`.trace`). ``x`` is the previous layer's output (the network
    input for layer 0), ``sources`` the outputs of the earlier layers it reads, in ``module.sources`` order."""

    def __init__(self, module: DarknetLayer, index: int, borrowed: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.m = module
        self.index = index
        # layers whose arrays this one reads (a share_index convolution): registered here, those arrays are
        # parameters of the step (graph inputs), not constants
        self.borrowed = nn.ModuleList(borrowed)

    def forward(self, x: torch.Tensor, *sources: torch.Tensor) -> torch.Tensor:
        outs: list = [None] * self.index
        for j, s in zip(self.m.sources, sources):
            outs[j] = s
        return run_layer(self.m, self.index, x, outs)


class PostStep(nn.Module):
    """The decoded / NMS post-processing (:mod:`.decode`) as a function of the head outputs."""

    def __init__(self, post: nn.Module) -> None:
        super().__init__()
        self.post = post

    def forward(self, *heads: torch.Tensor) -> tuple:
        return tuple(self.post(list(heads)))
