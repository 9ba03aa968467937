"""``ConvUnit``: a Darknet convolution (conv, then BN or bias, then the activation), used by
``[convolutional]`` and the convolutional sub-layers of ``[crnn]`` and ``[conv_lstm]``.

Its plain computation is ``F.conv2d`` (:meth:`ConvUnit.weight`, :meth:`ConvUnit.bias`); at CPU inference
it takes fast paths that compute the same: oneDNN with the weights prepacked once (``prepack``) and
Winograd F(2,3) for wide 3x3 stride-1 convolutions (:mod:`.winograd`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Layer
from ..layers.names import BIAS, BN, CONV, WEIGHT
from . import winograd
from .base import BuildContext
from .units import Holder, batchnorm_, fold_bn, make_bn

_PREPACK_OK = [hasattr(torch.ops.mkldnn, "_convolution_pointwise") and torch.backends.mkldnn.is_available()]


class ConvUnit(nn.Module):
    """A Darknet convolution: conv, then BN or bias, then the conv-path activation.

    Used by ``[convolutional]`` and the sub-layers of ``[crnn]``/``[conv_lstm]``. Children ``conv``/``bn``
    (:mod:`darkweights.layers.names`) give the catalogue's state_dict names.
    """

    conv: Holder
    bn: Holder

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
        self.folded: bool = False
        if share is not None:
            # AB fuse_conv_batchnorm sets batch_normalize=0 on sharing layers: they use the folded target
            if share.folded:
                self.has_bn = False
            self.folded = share.folded
            return
        a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
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
            self.add_module(CONV, Holder({WEIGHT: ctx.param(w), BIAS: ctx.param(b)}))
            self.has_bn, self.folded = False, True
        elif batch_normalize:
            self.add_module(CONV, Holder({WEIGHT: ctx.param(a["weights"])}))
            self.add_module(BN, make_bn(ctx, a))
        else:
            self.add_module(CONV, Holder({WEIGHT: ctx.param(a["weights"]), BIAS: ctx.param(a["biases"])}))

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

    def bn_module(self) -> Holder:
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
            and x.is_cpu
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
            except AttributeError:  # pragma: no cover - the op is missing in this torch build: never try again
                _PREPACK_OK[0] = False
            except (RuntimeError, NotImplementedError):  # oneDNN refused this unit's case: it computes directly
                self.prepack = False
                self.__dict__.pop("_pack_cache", None)
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


def sub_layer_options(layer: Any) -> dict[str, Any]:
    """The :class:`ConvUnit` options every convolution of a recurrent layer (``[crnn]``, ``[conv_lstm]``) shares:
    the layer's geometry, BN and activation, never folded (Darknet folds no sub-layer)."""
    return dict(
        size=layer.size,
        stride_x=layer.stride_x,
        stride_y=layer.stride_y,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        batch_normalize=bool(layer.batch_normalize),
        activation=layer.activation,
        fuse=False,
    )
