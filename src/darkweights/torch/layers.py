"""One module per Darknet layer family that computes on feature maps (darknet-format.md §5).

Heads (yolo, region, detection, softmax ...) live in :mod:`.heads`, recurrent layers in
:mod:`.recurrent`. Each class is registered under the catalogue ``type`` it builds.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import dialects
from ..dialects import Dialect
from ..errors import DarkweightsWarning
from ..layers import Layer
from . import winograd
from .base import BuildContext, ChannelParts, DarknetLayer, dense, natural_shape, register, unsupported

FLT_MAX = float(np.finfo(np.float32).max)


def lowest(dtype: torch.dtype) -> float:
    """Darknet's ``-FLT_MAX`` padding value, or the lowest finite value of a narrower type (float16)."""
    return max(-FLT_MAX, float(torch.finfo(dtype).min))


_PREPACK_OK = [hasattr(torch.ops.mkldnn, "_convolution_pointwise") and torch.backends.mkldnn.is_available()]


class Holder(nn.Module):
    """A named bag of parameters/buffers, so that state_dict keys read ``conv.weight``, ``bn.running_var``."""

    def __init__(self, params: dict | None = None, buffers: dict | None = None) -> None:
        super().__init__()
        for k, v in (params or {}).items():
            if v is not None:
                setattr(self, k, v)
        for k, v in (buffers or {}).items():
            if v is not None:
                self.register_buffer(k, v)

    def extra_repr(self) -> str:
        items = list(self._parameters.items()) + list(self._buffers.items())
        return ", ".join(f"{k}={tuple(v.shape)}" for k, v in items if v is not None)


def make_bn(ctx: BuildContext, arrays: dict, prefix: str = "", *, biases: bool = True) -> Holder:
    """BatchNorm holder: ``weight``/``bias`` parameters, ``running_mean``/``running_var`` buffers."""
    a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    n = a["scales"].shape[0]
    bias = ctx.param(a["biases"]) if biases and "biases" in a else nn.Parameter(torch.zeros(n), requires_grad=False)
    bn = Holder(
        {"weight": ctx.param(a["scales"]), "bias": bias},
        {"running_mean": ctx.tensor(a["rolling_mean"]), "running_var": ctx.tensor(a["rolling_variance"])},
    )
    bn.eps = ctx.dialect.bn_eps
    bn.eps_inside_sqrt = ctx.dialect.bn_eps_inside_sqrt
    return bn


def batchnorm_(y: torch.Tensor, bn: nn.Module, centered: bool = False) -> torch.Tensor:
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

    def __init__(self, mode: int, channels: int, stride_x: int, stride_y: int) -> None:
        super().__init__()
        kernel, self.pad = BLUR[2 if mode == 2 else 1]
        w = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1) + kernel.shape)))
        self.register_buffer("weight", w, persistent=False)
        self.stride = (stride_y, stride_x)
        self.channels = channels

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, self.weight, None, self.stride, self.pad, 1, self.channels)


class ConvUnit(nn.Module):
    """A Darknet convolution: conv, then BN or bias, then the conv-path activation.

    Used by ``[convolutional]`` and the sub-layers of ``[crnn]``. Children ``conv``/``bn`` give
    the catalogue's state_dict names.
    """

    def __init__(
        self,
        layer: Layer,
        ctx: BuildContext,
        arrays: dict,
        *,
        prefix: str = "",
        filters: int,
        channels: int,
        size: int,
        stride_x: int,
        stride_y: int,
        padding: int,
        dilation: int,
        groups: int,
        batch_normalize: bool,
        activation: str,
        fuse: bool,
        xnor: bool = False,
        flipped: bool = False,
        share: ConvUnit | None = None,
    ) -> None:
        super().__init__()
        self.stride = (stride_y, stride_x)
        self.padding = padding * dilation  # AB im2col_cpu_ext pads by padding*dilation
        self.dilation = dilation
        self.groups = groups
        self.flip_all_channels = ctx.dialect.flip_counts_all_channels
        self.act = ctx.activation(layer, "conv", activation)
        self.xnor = xnor
        self.flipped = flipped
        self.filters, self.c_per_group, self.size = filters, channels // groups, size
        self._share = [share] if share is not None else []  # a list: not registered, no duplicate state_dict keys
        # activations oneDNN can apply inside the convolution with Darknet's exact arithmetic
        self.post = {
            "leaky": ("leaky_relu", [0.1]),
            "revleaky": ("leaky_relu", [0.1]),
            "relu": ("relu", []),
            "linear": ("none", []),
        }.get(activation)
        if self.act.__name__ == "_zeros":
            self.post = None
        self.prepack = True
        # 3x3 stride-1 convolutions at inference: Winograd F(2,3) where it pays (see .winograd)
        self.winograd_eligible = not xnor and winograd.eligible(
            size, self.stride, padding, dilation, groups, channels, filters
        )
        self.winograd = ctx.winograd and self.winograd_eligible
        self.has_bn = bool(batch_normalize)
        self.skip_bn = False
        if share is not None:
            # AB fuse_conv_batchnorm sets batch_normalize=0 on sharing layers: they use the folded target
            if share.folded:
                self.has_bn = False
            self.folded = share.folded
            return
        a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        self.folded = False
        if batch_normalize and fuse:
            w, b = fold_bn(
                self._effective_np(a["weights"]),
                a["biases"],
                a["scales"],
                a["rolling_mean"],
                a["rolling_variance"],
                ctx.dialect,
            )
            self.flipped = False
            self.conv = Holder({"weight": ctx.param(w), "bias": ctx.param(b)})
            self.has_bn, self.folded = False, True
        elif batch_normalize:
            self.conv = Holder({"weight": ctx.param(a["weights"])})
            self.bn = make_bn(ctx, a)
        else:
            self.conv = Holder({"weight": ctx.param(a["weights"]), "bias": ctx.param(a["biases"])})

    def _effective_np(self, w: np.ndarray) -> np.ndarray:
        if not self.flipped:
            return w
        k = self.c_per_group * self.groups * self.size**2 if self.flip_all_channels else w.size // self.filters
        return np.ascontiguousarray(w.reshape(-1)[: k * self.filters].reshape(k, self.filters).T).reshape(w.shape)

    def weight(self) -> torch.Tensor:
        if self._share:
            return self._share[0].weight()
        w = self.conv.weight
        if self.flipped:  # stored K x n, Darknet transposes after loading (§2.1.8)
            k = self.c_per_group * self.groups * self.size**2 if self.flip_all_channels else w.numel() // self.filters
            w = w.reshape(-1)[: k * self.filters].reshape(k, self.filters).t().reshape(w.shape)
        return w

    def bias(self) -> torch.Tensor:
        """Darknet's ``biases`` array (BN shift when there is BN)."""
        owner = self._share[0] if self._share else self
        return owner.bn.bias if owner.has_bn and not owner.folded else owner.conv.bias

    def bn_module(self) -> nn.Module:
        return self._share[0].bn if self._share else self.bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.xnor:
            y = self._xnor(x, self.weight())
            if self.has_bn and not self.skip_bn:
                y = batchnorm_(y, self.bn_module())
            else:  # the bias (with skip_bn: Darknet's CPU xnor path adds the BN shift without normalising)
                y = y.add_(self.bias().view(1, -1, 1, 1))
            return self.act(y)
        if self.has_bn:
            # the convolution subtracts the rolling mean through its bias, then BN scales and shifts:
            # (x - mean) / sqrt(var + eps) * scale + bias in Darknet's order
            bn = self.bn_module()
            y = self._conv(x, bn.running_mean.neg(), None)
            return self.act(batchnorm_(y, bn, centered=True))
        if self.post is not None:  # activation fused into the convolution
            return self._conv(x, self.bias(), self.post)
        return self.act(self._conv(x, self.bias(), None))

    def _conv(self, x: torch.Tensor, bias: torch.Tensor | None, post: tuple | None) -> torch.Tensor:
        """The convolution (plus, with ``post``, its activation fused into the oneDNN call).

        At inference on CPU the weights are reordered once into oneDNN's blocked layout and cached
        (``prepack``): same arithmetic as ``F.conv2d``, without re-laying out the weights on every
        call. The cache is keyed on the weight tensor's identity and version, so in-place updates
        (``load_state_dict``) invalidate it.
        """
        if (
            _PREPACK_OK[0]
            and self.prepack
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and torch.is_inference_mode_enabled()
        ):
            try:
                if self.winograd:
                    return self._winograd(x, bias, post)
                packed = self._packed(x)
                attr, scalars = post if post is not None else ("none", [])
                return torch.ops.mkldnn._convolution_pointwise(
                    x,
                    packed,
                    bias,
                    [self.padding] * 2,
                    list(self.stride),
                    [self.dilation] * 2,
                    self.groups,
                    attr,
                    scalars,
                    "",
                )
            except (RuntimeError, AttributeError):  # pragma: no cover - op missing in this torch build
                _PREPACK_OK[0] = False
        y = F.conv2d(x, self.weight(), bias, self.stride, self.padding, self.dilation, self.groups)
        return self.act(y) if post is not None else y

    def _packed(self, x: torch.Tensor) -> torch.Tensor:
        owner = self._share[0] if self._share else self
        src = owner.conv.weight
        key = (id(src), src._version, src.data_ptr(), tuple(x.shape), self.winograd)
        cache = self.__dict__.get("_pack_cache")
        if cache is not None and cache[0] == key:
            return cache[1]
        w = self.weight()
        if self.winograd:  # the transformed filters, as the grouped 1x1 convolution that uses them
            n, c, h, wd = x.shape
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                winograd.transform_weights(w), [0, 0], [1, 1], [1, 1], 16, [n, 16 * c, -(-h // 2), -(-wd // 2)]
            )
        else:
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                w.contiguous(), [self.padding] * 2, list(self.stride), [self.dilation] * 2, self.groups, list(x.shape)
            )
        self.__dict__["_pack_cache"] = (key, packed)
        return packed

    def _winograd(self, x: torch.Tensor, bias: torch.Tensor | None, post: tuple | None) -> torch.Tensor:
        y = winograd.conv3x3(x, self._packed(x), winograd.transform_bias(bias, self.filters), self.filters)
        if post is None or post[0] == "none":
            return y
        if post[0] == "leaky_relu":
            return F.leaky_relu_(y, post[1][0])
        return y.relu_()

    def _xnor(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """AB's bit-packed CPU xnor conv: sign(w)*mean|w| per filter, inputs x>0 -> +1 else -1,
        zero padding contributes -1 (bit 0), integer dot products times the filter mean."""
        mean = w.abs().reshape(w.shape[0], -1).mean(dim=1)
        wb = (w > 0).to(w.dtype) * 2 - 1
        xb = (x > 0).to(x.dtype) * 2 - 1
        if self.padding:
            p = self.padding
            xb = F.pad(xb, (p, p, p, p), value=-1.0)
        y = F.conv2d(xb, wb, None, self.stride, 0, 1, 1)
        return y.mul_(mean.view(1, -1, 1, 1))


def numload_arrays(layer: Layer, ctx: BuildContext) -> dict:
    """pjreddie ``numload=K``: ``load_convolutional_weights`` reads K filters into the first K slots of
    full-size arrays; the others keep ``make_convolutional_layer``'s values: bias 0, BN scale 1, rolling
    mean and variance 0, and weights Darknet draws from ``rand()`` -- zeros here (train or set them)."""
    k = layer.numload
    arrays = ctx.loaded(layer.index)
    if not arrays:  # no file (or a partial one): the full arrays are synthesised like any layer's
        ctx.initialised.append(layer.index)
        return dict(ctx._synthesised(layer.index))  # the save layout: full arrays
    init = {"biases": 0.0, "scales": 1.0, "rolling_mean": 0.0, "rolling_variance": 0.0, "weights": 0.0}
    out = {}
    for spec in layer.arrays():
        if spec.name.startswith("numload_"):
            continue
        full = np.full(spec.shape, init[spec.role], dtype=np.float32)
        full[:k] = arrays["numload_" + spec.name]
        out[spec.name] = full
    if k < layer.filters:
        warnings.warn(
            f"{ctx.net.path}:{layer.line}: layer {layer.index} numload={k}: filters {k}..{layer.filters - 1} "
            "are not in the weights file; Darknet leaves them at its random initial weights, this model "
            "at zero weights (bias 0, BN scale 1, mean and variance 0)",
            DarkweightsWarning,
            stacklevel=5,
        )
    return out


@register("convolutional")
class Convolutional(DarknetLayer):
    """``[convolutional]`` (§5.2): groups, dilation, stride_x/y, BN, every activation, xnor,
    antialiasing, share_index, flipped."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        net = ctx.net
        # Darknet's CPU 1x1 GEMM shortcut: AB takes it at stride_x 1, pjreddie at any stride
        any_stride = ctx.dialect.conv1x1_fast_path_any_stride
        if (
            layer.size == 1
            and layer.dilation == 1
            and (layer.stride_x == 1 or any_stride)
            and (layer.padding or (layer.stride_x if any_stride else layer.stride_y) != 1)
        ):
            raise unsupported(
                layer,
                f"size=1 with padding={layer.padding}, stride {layer.stride_x}x{layer.stride_y}: "
                "Darknet's CPU 1x1 fast path ignores padding/stride here and computes garbage",
                net,
            )
        if layer.xnor:
            if layer.stride_x != layer.stride_y or layer.dilation != 1 or layer.antialiasing:
                raise unsupported(
                    layer,
                    "xnor=1 with stride_x != stride_y, dilation or antialiasing: Darknet's "
                    "bit-packed CPU path does not implement these",
                    net,
                )
        if layer.flipped and ctx.dialect.flip_counts_all_channels and layer.groups > 1:
            raise unsupported(
                layer,
                "flipped=1 with groups > 1: pjreddie transposes c*size*size x filters values, "
                "more than the layer stores",
                net,
            )
        share = None
        if layer.share_index is not None:
            target = ctx.modules[layer.share_index]
            share = target.unit
        if share is not None:
            arrays = {}
        else:
            arrays = numload_arrays(layer, ctx) if layer.numload else ctx.arrays(layer)
        activation = layer.activation
        if layer.xnor and layer.index in ctx.bin_output:
            activation = "linear"  # calculate_binary_weights switches bin_output layers to linear
        unit = ConvUnit(
            layer,
            ctx,
            arrays,
            filters=layer.filters,
            channels=layer.input.c,
            size=layer.size,
            stride_x=1 if layer.antialiasing else layer.stride_x,
            stride_y=1 if layer.antialiasing else layer.stride_y,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            batch_normalize=bool(layer.batch_normalize),
            activation=activation,
            fuse=ctx.fuse_bn,
            xnor=bool(layer.xnor),
            flipped=bool(layer.flipped),
            share=share,
        )
        if layer.xnor and unit.has_bn and ctx.bug_compatible:
            unit.skip_bn = True  # AB's unfused CPU xnor path returns before batch-norm
        # the unit computes; its children are registered here so that state_dict keys are the
        # catalogue's layers.{i}.conv.weight / layers.{i}.bn.running_var
        object.__setattr__(self, "unit", unit)
        for name, child in unit.named_children():
            self.add_module(name, child)
        self.blur = (
            Blur(layer.antialiasing, layer.filters, layer.stride_x, layer.stride_y) if layer.antialiasing else None
        )

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.unit(self.image(x))
        return self.blur(y) if self.blur is not None else y


@register("deconvolutional")
class Deconvolutional(DarknetLayer):
    """pjreddie ``[deconvolutional]``: ConvTranspose2d with weights ``[c][n][k][k]`` (§5.13)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        self.stride, self.padding = layer.stride, layer.padding
        self.has_bn = bool(layer.batch_normalize)
        if self.has_bn:
            self.deconv = Holder({"weight": ctx.param(a["weights"])})
            self.bn = make_bn(ctx, a)
        else:
            self.deconv = Holder({"weight": ctx.param(a["weights"]), "bias": ctx.param(a["biases"])})
        self.act = ctx.activation(layer, "generic")

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = F.conv_transpose2d(
            self.image(x), self.deconv.weight, None if self.has_bn else self.deconv.bias, self.stride, self.padding
        )
        if self.has_bn:
            y = batchnorm_(y, self.bn)
        return self.act(y)


class FCUnit(nn.Module):
    """A Darknet connected layer on ``(N, inputs)``: ``W x`` then BN (and biases) or ``+ b``, then the
    generic activation. Used by ``[connected]`` and the recurrent layers' sub-layers."""

    def __init__(
        self, layer: Layer, ctx: BuildContext, arrays: dict, prefix: str = "", activation: str | None = None
    ) -> None:
        super().__init__()
        a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        self.has_bn = "scales" in a
        if self.has_bn:
            self.fc = Holder({"weight": ctx.param(a["weights"])})
            self.bn = make_bn(ctx, a)
        else:
            self.fc = Holder({"weight": ctx.param(a["weights"]), "bias": ctx.param(a["biases"])})
        self.act = ctx.activation(layer, "generic", activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.fc.weight, None if self.has_bn else self.fc.bias)
        if self.has_bn:
            y = batchnorm_(y, self.bn)
        return self.act(y)


@register("connected")
class Connected(DarknetLayer):
    """``[connected]``: flatten CHW, ``W x + b`` (or BN after the product), generic activation;
    output ``(N, outputs, 1, 1)`` (Darknet reports ``out_h = out_w = 1``)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        unit = FCUnit(layer, ctx, ctx.arrays(layer))
        object.__setattr__(self, "unit", unit)
        for name, child in unit.named_children():
            self.add_module(name, child)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return self.shaped(self.unit(self.flat(x)))


@register("local")
class Local(DarknetLayer):
    """``[local]``: unshared convolution, weights ``[location][n][c][k][k]``, one bias per output."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        self.weight = ctx.param(a["weights"])
        self.bias = ctx.param(a["biases"])
        self.size, self.stride, self.pad = layer.size, layer.stride, layer.pad
        self.act = ctx.activation(layer, "generic")

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        o = self.out_shape
        cols = F.unfold(self.image(x), self.size, 1, self.pad, self.stride)  # (N, c*k*k, L)
        w = self.weight.reshape(o.h * o.w, o.c, -1)  # (L, n, c*k*k)
        y = torch.einsum("lnk,bkl->bnl", w, cols).reshape(x.shape[0], o.c, o.h, o.w)
        return self.act(y.add_(self.bias))


@register("batchnorm")
class Batchnorm(DarknetLayer):
    """Stand-alone ``[batchnorm]`` (AB 4 arrays; pjreddie's biases are not stored and start at 0)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.bn = make_bn(ctx, ctx.arrays(layer))

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        s = self.in_shape
        y = x.reshape(x.shape[0], s.c, -1).clone()
        return self.shaped(batchnorm_(y, self.bn))


def _pool_geometry(layer: Layer) -> tuple[int, int, int, int]:
    """Darknet's maxpool window placement: left/top ``padding//2``, the rest right/bottom."""
    off = layer.padding // 2
    return off, layer.padding - off, off, layer.padding - off


@register("maxpool")
class Maxpool(DarknetLayer):
    """``[maxpool]`` (§5.4): out-of-range cells are skipped (−inf padding); maxpool_depth; antialiasing."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.depth = layer.maxpool_depth
        self.out_channels = layer.out_channels
        self.size = layer.size
        aa = layer.antialiasing
        self.stride = (1, 1) if aa else (layer.stride_y, layer.stride_x)
        self.blur = Blur(aa, layer.input.c, layer.stride_x, layer.stride_y) if aa else None
        self.pad = _pool_geometry(layer)
        self.takes_parts = not self.depth and self.blur is None
        self.mode = "pad"
        if not self.depth:
            self.mode = self._fast_mode(layer)

    def _fast_mode(self, layer: Layer) -> str:
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

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        if type(x) is ChannelParts:  # pooling is per channel: pool each block (fewer bytes to concatenate)
            return ChannelParts(self._pool(p) for p in x)
        return self._pool(self.image(x))

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


@register("local_avgpool")
class LocalAvgpool(DarknetLayer):
    """``[local_avgpool]``: maxpool geometry, mean over the in-range cells only (§5.5)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.size = layer.size
        self.stride = (layer.stride_y, layer.stride_x)
        self.pad = _pool_geometry(layer)
        ones = torch.ones(1, 1, layer.input.h, layer.input.w)
        count = F.avg_pool2d(F.pad(ones, self.pad), self.size, self.stride, divisor_override=1)
        self.register_buffer("count", count, persistent=False)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        s = F.avg_pool2d(F.pad(self.image(x), self.pad), self.size, self.stride, divisor_override=1)
        return s.div_(self.count)


@register("avgpool")
class Avgpool(DarknetLayer):
    """``[avgpool]``: global mean per channel, output ``(N, C, 1, 1)``."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return self.image(x).mean(dim=(2, 3), keepdim=True)


@register("upsample")
class Upsample(DarknetLayer):
    """``[upsample]``: nearest x stride times scale; negative stride = sum-pool times scale (§5.6)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.stride = layer.stride
        self.scale = float(layer.scale)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, c, h, w = x.shape
        if self.stride > 0:
            s = self.stride
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                # NHWC: repeat whole pixels, so the result stays channels_last for the next conv
                y = x.permute(0, 2, 3, 1)[:, :, None, :, None].expand(n, h, s, w, s, c)
                y = y.reshape(n, h * s, w * s, c).permute(0, 3, 1, 2)
            else:
                y = x[:, :, :, None, :, None].expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)
            return y * self.scale if self.scale != 1.0 else y
        s = -self.stride
        if self.scale != 1.0:
            x = x * self.scale  # Darknet adds scale*x term by term
        return F.avg_pool2d(x, s, s, divisor_override=1)


@register("route")
class Route(DarknetLayer):
    """``[route]``: the ``group_id``-th of ``groups`` flat slices of each input, concatenated (§5.7)."""

    takes_parts = True

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.sources = list(layer.layers)
        srcs = [ctx.source(layer, i) for i in self.sources]
        self.groups, self.group_id = layer.groups, layer.group_id
        out = layer.output
        # channel slices when every input is an image tensor of the output's size that splits evenly;
        # otherwise Darknet's flat slices
        self.channel_mode = out.is_image and all(
            len(natural_shape(s)) == 3 and (s.output.h, s.output.w) == (out.h, out.w) and s.output.c % self.groups == 0
            for s in srcs
        )
        self.parts = [s.output.size // self.groups for s in srcs]
        self.chans = [s.output.c // self.groups for s in srcs]

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        g = self.group_id
        if self.channel_mode:
            # the concatenation stays lazy (ChannelParts): a following maxpool pools the blocks, so
            # the next conv concatenates the smaller pooled maps instead of the full-size ones
            parts = []
            for i, c in zip(self.sources, self.chans):
                src = outs[i]
                if type(src) is not ChannelParts:
                    src = ChannelParts((src,))
                parts += src if self.groups == 1 else src.channels(g * c, (g + 1) * c)
            return parts[0] if len(parts) == 1 else ChannelParts(parts)
        parts = [self.flat(dense(outs[i]))[:, g * p : (g + 1) * p] for i, p in zip(self.sources, self.parts)]
        return self.shaped(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])


@register("shortcut")
class Shortcut(DarknetLayer):
    """``[shortcut]`` (§5.8). AB/HK: flat-index add of every ``from`` layer, truncated to the input's
    channels, optionally weighted per feature/channel with relu/softmax normalisation, then the
    shortcut-path activation. pjreddie: strided/sampled ``alpha*x + beta*from``."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.sources = list(layer.sources)
        for i in self.sources:
            ctx.source(layer, i)
        self.scaled = ctx.dialect.shortcut_scaled
        self.act = ctx.activation(layer, "shortcut")
        self.weights_type = layer.weights_type
        self.norm = layer.weights_normalization
        # unfused CPU kernel clamps relu weights at 0; fuse_conv_batchnorm (what inference tools run)
        # pre-normalises them with max(w, 0.001)
        self.relu_floor = 0.001 if ctx.fuse_bn else 0.0
        if self.weights_type != "none":
            self.weight = ctx.param(ctx.arrays(layer)["weights"])
        self.alpha, self.beta = float(layer.alpha), float(layer.beta)
        c = layer.input.c
        self.src_c = [min(c, ctx.net.layers[i].output.c) for i in self.sources]
        self.src_shapes = [ctx.net.layers[i].output for i in self.sources]

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
            if len(self.sources) == 1 and self.src_c[0] == x.shape[1] and outs[self.sources[0]].shape == x.shape:
                return self.act(x + outs[self.sources[0]])
            y = x.clone()
        else:
            y = x * w[0].view(1, -1, 1, 1)
        for j, (i, c) in enumerate(zip(self.sources, self.src_c)):
            f = self.image(outs[i], self.src_shapes[j])[:, :c]
            if w is None:
                y[:, :c] += f
            else:
                wj = w[j + 1].view(1, -1, 1, 1)
                y[:, :c] += f * (wj[:, :c] if wj.shape[1] > 1 else wj)
        return self.act(y)

    def _scaled(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        f = self.image(outs[self.sources[0]], self.src_shapes[0])
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


@register("scale_channels")
class ScaleChannels(DarknetLayer):
    """``[scale_channels]``: ``from``'s map times the input per channel (``scale_wh=1``: per pixel)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.sources = [layer.source]
        ctx.source(layer, layer.source)
        self.act = ctx.activation(layer, "generic")
        self.src_shape = ctx.net.layers[layer.source].output

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        f = self.image(outs[self.sources[0]], self.src_shape)
        return self.act(f * self.image(x))


@register("sam")
class Sam(ScaleChannels):
    """``[sam]``: element-wise product of the input and ``from``'s map."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        f = self.image(outs[self.sources[0]], self.src_shape)
        return self.act(self.image(x, self.src_shape) * f)


@register("implicit")
class Implicit(DarknetLayer):
    """``[implicit]``: the stored ``filters x atoms`` constant, for every batch item."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.weight = ctx.param(ctx.arrays(layer)["weights"])

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        w = self.weight
        return w.reshape(1, w.shape[0], w.shape[1], 1).expand(x.shape[0], -1, -1, -1).clone()


def _reorg_map(w: int, h: int, c: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The two index arrays of Darknet's ``reorg_cpu(x, w, h, c, stride, ...)`` for one item."""
    in_c = c // (stride * stride)
    k, j, i = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    in_index = i + w * (j + h * k)
    c2 = k % in_c
    offset = k // in_c
    w2 = i * stride + offset % stride
    h2 = j * stride + offset // stride
    out_index = w2 + w * stride * (h2 + h * stride * c2)
    return in_index.reshape(-1), out_index.reshape(-1)


@register("reorg", "reorg3d")
class Reorg(DarknetLayer):
    """Old ``[reorg]`` and ``[reorg3d]``: Darknet's ``reorg_cpu`` index maps applied literally (§5.9)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        if layer.extra or layer.flatten:
            self.mode = "extra" if layer.extra else ("flatten_rev" if layer.reverse else "flatten")
            self.extra = layer.extra
            return
        self.mode = "gather"
        s = layer.stride
        if layer.type == "reorg3d" and layer.reverse:
            warnings.warn(
                f"{ctx.net.path}:{layer.line}: layer {layer.index} [reorg3d] reverse=1 reproduces Darknet "
                "literally, which is not the inverse of the forward mapping (a Darknet bug)",
                DarkweightsWarning,
                stacklevel=4,
            )
        if layer.type == "reorg":  # reorg_cpu(input, l.w, l.h, l.c, stride, forward=reverse)
            w, h, c = layer.input.w, layer.input.h, layer.input.c
        else:  # reorg3d: reorg_cpu(input, l.out_w, l.out_h, l.out_c, stride, forward=reverse)
            w, h, c = layer.output.w, layer.output.h, layer.output.c
        in_index, out_index = _reorg_map(w, h, c, s)
        if layer.reverse:  # out[out_index] = x[in_index]
            index = np.empty_like(in_index)
            index[out_index] = in_index
        else:  # out[in_index] = x[out_index]
            index = np.empty_like(out_index)
            index[in_index] = out_index
        self.register_buffer("gather", torch.from_numpy(index.astype(np.int64)), persistent=False)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        flat = self.flat(x)
        if self.mode == "gather":
            return self.shaped(flat.index_select(1, self.gather))
        if self.mode == "extra":
            return F.pad(flat, (0, self.extra))
        s = self.in_shape
        if self.mode == "flatten":  # CHW -> HWC
            return self.shaped(flat.reshape(-1, s.c, s.h * s.w).transpose(1, 2).reshape(x.shape[0], -1))
        return self.shaped(flat.reshape(-1, s.h * s.w, s.c).transpose(1, 2).reshape(x.shape[0], -1))


@register("dropout", "empty", "cost", "contrastive")
class Identity(DarknetLayer):
    """Layers that are the identity at inference (their buffer is the previous layer's)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.natural = natural_shape(layer)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return x if tuple(x.shape[1:]) == self.natural else x.reshape(x.shape[0], *self.natural)


@register("activation")
class Activation(DarknetLayer):
    """``[activation]``: the generic activation path."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.act = ctx.activation(layer, "generic")

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return self.act(x.clone())


@register("logistic")
class Logistic(DarknetLayer):
    """pjreddie ``[logistic]``: sigmoid."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return torch.sigmoid(x)


@register("l2norm")
class L2norm(DarknetLayer):
    """pjreddie ``[l2norm]``: per pixel ``x / sqrt(sum_c x^2)`` (no epsilon)."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        return x / x.pow(2).sum(dim=1, keepdim=True).sqrt()


@register("iseg")
class Iseg(DarknetLayer):
    """pjreddie ``[iseg]``: sigmoid on the first ``classes`` channels."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.classes = layer.classes

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.image(x).clone()
        y[:, : self.classes].sigmoid_()
        return y


@register("crop")
class Crop(DarknetLayer):
    """``[crop]`` (CPU, inference): centre crop, then ``2x - 1`` unless ``noadjust``."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.dh = (layer.input.h - layer.crop_height) // 2
        self.dw = (layer.input.w - layer.crop_width) // 2
        self.ch, self.cw = layer.crop_height, layer.crop_width
        self.noadjust = bool(layer.noadjust)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        y = self.image(x)[:, :, self.dh : self.dh + self.ch, self.dw : self.dw + self.cw]
        return y.clone() if self.noadjust else y * 2.0 - 1.0


@register("normalization")
class Normalization(DarknetLayer):
    """``[normalization]``/``[lrn]`` exactly as Darknet's running-window sum computes it (§5.14):
    ``y_k = x_k * N_k^-beta``, ``N_k = kappa + alpha*(sum_{j=max(0,k-(size-1)/2)}^{min(c-1,k+size/2)} x_j^2
    - x_{size/2}^2)``. Darknet subtracts the square of channel ``size/2`` everywhere, so ``N_k`` can be
    negative and the output NaN, as in Darknet."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        c = layer.input.c
        if layer.size // 2 >= c:
            raise unsupported(
                layer,
                f"size={layer.size} needs more than {2 * (layer.size // 2)} channels: Darknet "
                "reads past the channel buffer",
                ctx.net,
            )
        self.alpha, self.beta, self.kappa, self.size = layer.alpha, layer.beta, layer.kappa, layer.size
        lo = np.maximum(0, np.arange(c) - (self.size - 1) // 2)
        hi = np.minimum(c - 1, np.arange(c) + self.size // 2)
        m = np.zeros((c, c), np.float32)
        for k in range(c):
            m[k, lo[k] : hi[k] + 1] = 1.0
        m[:, self.size // 2] -= 1.0
        self.register_buffer("window", torch.from_numpy(m), persistent=False)

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        sq = x * x
        norms = torch.einsum("kj,njhw->nkhw", self.window, sq).mul_(self.alpha).add_(self.kappa)
        return norms.pow_(-self.beta).mul_(x)


@register("history")
class History(DarknetLayer):
    """AB ``[history]`` at inference: the input, then ``history_size - 1`` blocks of zeros.

    ``forward_history_layer`` with ``steps == 1`` (``time_steps=1``, how ``darknet detector test``
    parses) copies only ``l.inputs`` values into an output buffer that is ``history_size`` times
    larger and zero-initialised, and never shifts older inputs in."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.extra = layer.output.c - layer.input.c

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, _, h, w = x.shape
        return torch.cat([x, x.new_zeros(n, self.extra, h, w)], dim=1)
