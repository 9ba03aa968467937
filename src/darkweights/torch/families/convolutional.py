"""``[convolutional]`` (§5.2): groups, dilation, stride_x/y, BN, every activation, xnor, antialiasing,
share_index, flipped, pjreddie's numload."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DarkweightsWarning
from ...layers.conv import Convolutional as ConvolutionalLayer
from ..base import BuildContext, DarknetLayer, register
from ..convunit import ConvUnit
from ..units import Blur


def numload_arrays(layer: ConvolutionalLayer, ctx: BuildContext) -> dict:
    """pjreddie ``numload=K``: ``load_convolutional_weights`` reads K filters into the first K slots of
    full-size arrays; the others keep ``make_convolutional_layer``'s values: bias 0, BN scale 1, rolling
    mean and variance 0, and weights Darknet draws from ``rand()`` -- zeros here (train or set them)."""
    k = layer.numload
    arrays = ctx.loaded(layer.index)
    if not arrays:  # no file (or a partial one): the full arrays are synthesised like any layer's
        ctx.initialised.append(layer.index)
        return dict(ctx.synthesised(layer.index))  # the save layout: full arrays
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
    antialiasing, share_index, flipped. ``binary=1`` computes with the stored weights as they are: only
    Darknet's GPU forward binarizes them (``forward_convolutional_layer``, the CPU path of every fork,
    binarizes for ``xnor=1`` alone)."""

    unit: ConvUnit
    blur: Blur | None

    def __init__(self, layer: ConvolutionalLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        # Darknet's CPU 1x1 GEMM shortcut: AB takes it at stride_x 1, pjreddie at any stride
        any_stride = ctx.dialect.conv1x1_fast_path_any_stride
        if (
            layer.size == 1
            and layer.dilation == 1
            and (layer.stride_x == 1 or any_stride)
            and (layer.padding or (layer.stride_x if any_stride else layer.stride_y) != 1)
        ):
            raise layer.unsupported(
                f"size=1 with padding={layer.padding}, stride {layer.stride_x}x{layer.stride_y}: "
                "Darknet's CPU 1x1 fast path ignores padding/stride here and computes garbage",
            )
        if layer.xnor:
            if layer.stride_x != layer.stride_y or layer.dilation != 1 or layer.antialiasing:
                raise layer.unsupported(
                    "xnor=1 with stride_x != stride_y, dilation or antialiasing: Darknet's "
                    "bit-packed CPU path does not implement these",
                )
        if layer.flipped and ctx.dialect.flip_counts_all_channels and layer.groups > 1:
            raise layer.unsupported(
                "flipped=1 with groups > 1: pjreddie transposes c*size*size x filters values, "
                "more than the layer stores",
            )
        if layer.binary and not layer.xnor:
            warnings.warn(
                f"{layer.path}:{layer.line}: layer {layer.index} [{layer.section.name}] binary=1 binarizes the "
                "weights only in Darknet's GPU build; like its CPU build, this model uses them as they are",
                DarkweightsWarning,
                stacklevel=4,
            )
        share = None
        if layer.share_index is not None:
            target = ctx.modules[layer.share_index]
            assert isinstance(target, Convolutional)
            share = target.unit
        arrays: dict = {}  # a sharing layer reads its target's arrays
        if share is None:
            arrays = numload_arrays(layer, ctx) if layer.numload else ctx.arrays(layer)
        activation = layer.activation or "linear"
        if layer.xnor and layer.use_bin_output:
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

    def portable(self, x: torch.Tensor, outs: list) -> torch.Tensor | None:
        """Convolution + BN as ONNX ``Conv`` + ``BatchNormalization``, which reads the stored arrays as they
        are (``(x - mean) / sqrt(var + eps) * scale + bias``: Darknet's formula). The forward's form (mean
        through the convolution bias, the scale computed in the graph) computes the same, but OpenCV's ONNX
        importer cannot evaluate operations on initializers. pjreddie's CPU BN (``sqrt(var) + 1e-6``) and xnor
        layers keep the forward's form."""
        u = self.unit
        if not u.has_bn or u.xnor or u.folded:
            return None
        bn = u.bn_module()
        if not bn.eps_inside_sqrt:  # ONNX BatchNormalization is sqrt(var + eps)
            return None
        y = F.conv2d(self.image(x), u.weight(), None, u.stride, u.padding, u.dilation, u.groups)
        y = u.act(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))
        return self.blur(y) if self.blur is not None else y
