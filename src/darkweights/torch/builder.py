"""``build(net)``: a PyTorch ``nn.Module`` computing what Darknet's CPU forward computes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ArgumentError, DarkweightsWarning
from . import families  # noqa: F401  (registration side effect)
from .base import MODULES, BuildContext, ChannelParts, DarknetLayer, dense
from .convunit import ConvUnit

if TYPE_CHECKING:
    from ..network import Network


class DarknetModel(nn.Module):
    """A Darknet network as a PyTorch module (eval mode; inference under ``torch.inference_mode``).

    ``model.layers[i]`` is Darknet layer ``i``; ``model.state_dict()`` keys are the catalogue's
    ``Param.torch`` names (``layers.12.conv.weight``, ``layers.12.bn.running_var`` ...), so
    ``darkweights.save_weights(model.state_dict(), path, net=net)`` writes a Darknet file.
    ``model.network`` is the :class:`~darkweights.Network`, ``model.heads`` the indexes of the
    detection heads (yolo, Gaussian_yolo, region, detection).
    """

    def __init__(
        self,
        net: Network,
        modules: Sequence[DarknetLayer],
        *,
        fuse_bn: bool = False,
        bug_compatible: bool = False,
        initialised: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.network = net
        self.layers = nn.ModuleList(modules)
        self.heads: list[int] = [l.index for l in net.layers if l.is_head]
        self.output_index = net.output_index
        self.fuse_bn = fuse_bn
        self.bug_compatible = bug_compatible
        self.initialised = list(initialised)
        self.input_shape = net.input.chw if net.input.is_image else (net.input.size,)
        self.output_shapes = [l.natural_shape for l in net.layers]
        # oneDNN convolutions and pooling run markedly faster on NHWC data (CPU); values are the same
        self.channels_last = True
        self._plan(modules)
        self.eval()

    def _plan(self, modules: Sequence[DarknetLayer]) -> None:
        """Which outputs the forward keeps (``_keep``: read by a later layer, or returned) and which it
        concatenates when they come as :class:`ChannelParts` (``_dense``: the caller or some reader,
        the next layer included, needs one tensor)."""
        returned = set(self.heads) | {self.output_index}
        readers: list[list[DarknetLayer]] = [[] for _ in modules]
        for i, m in enumerate(modules):
            if i:
                readers[i - 1].append(m)  # its input
            for j in m.reads:
                readers[j].append(m)
        self._keep = frozenset(returned | {j for m in modules for j in m.reads})
        self._dense = frozenset(i for i, r in enumerate(readers) if i in returned or not all(m.takes_parts for m in r))

    @property
    def prepack(self) -> bool:
        """Cache convolution weights in oneDNN's blocked layout on the first inference call (default).

        Faster on CPU, at the cost of a second copy of the convolution weights in memory; the
        parameters themselves stay zero-copy views of the weights file. Set to ``False`` to drop
        the caches and use ``F.conv2d`` directly."""
        return all(u.prepack for u in self._conv_units())

    @prepack.setter
    def prepack(self, value: bool) -> None:
        for u in self._conv_units():
            u.prepack = bool(value)
            if not value:
                u.__dict__.pop("_pack_cache", None)

    @property
    def winograd(self) -> bool:
        """Whether wide 3x3 stride-1 convolutions use Winograd F(2,3) at CPU inference (default;
        needs ``prepack``). Set to ``False`` for direct convolutions everywhere."""
        return any(u.winograd for u in self._conv_units())

    @winograd.setter
    def winograd(self, value: bool) -> None:
        for u in self._conv_units():
            u.winograd = bool(value) and u.winograd_eligible
            u.__dict__.pop("_pack_cache", None)

    def _conv_units(self) -> list:
        units = []
        for m in self.layers:
            unit = m.__dict__.get("unit")
            if isinstance(unit, ConvUnit):
                units.append(unit)
            units.extend(c for c in m.modules() if isinstance(c, ConvUnit))
        return units

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        # float32, or as .double()'d: the first floating tensor's type (a network may have no parameters)
        first = next((t for t in (*self.parameters(), *self.buffers()) if t.is_floating_point()), None)
        dtype = first.dtype if first is not None else torch.float32
        if x.dtype != dtype:
            x = x.to(dtype)
        if x.dim() == len(self.input_shape):
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            size = "x".join(map(str, self.input_shape))
            raise ArgumentError(
                f"input of shape {tuple(x.shape)} does not fit the network input (N, {size}); "
                "Darknet fixes the geometry at parse time: load the cfg with "
                "darkweights.load(cfg, weights, width=..., height=...)"
            )
        return x

    def forward(self, x: torch.Tensor, all_outputs: bool = False) -> torch.Tensor | list:
        """Run the network on ``x`` ``(N, C, H, W)`` float32.

        ``all_outputs=True``: a list with every layer's output in Darknet's layout (``(N, C, H, W)``
        with image geometry, else ``(N, outputs)``; antialiased layers give their blurred, strided
        map; ``[region]`` is flat). Otherwise: the list of head outputs in layer order if the
        network has heads, else the output of ``network.output_index``.
        """
        with torch.inference_mode(not self.training):
            x = self._check_input(x)
            if self.channels_last and x.dim() == 4 and x.is_cpu:
                x = x.contiguous(memory_format=torch.channels_last)
            outs: list = [None] * len(self.layers)
            keep, dense = self._keep, self._dense
            cur = x
            for i, module in enumerate(self.layers):
                cur = module(cur, outs)
                if type(cur) is ChannelParts and (all_outputs or i in dense):
                    cur = cur.dense()
                if all_outputs or i in keep:
                    outs[i] = cur
            if all_outputs:
                return outs
            if self.heads:
                return [outs[i] for i in self.heads]
            return outs[self.output_index]

    def forward_layer(self, index: int, x: torch.Tensor, outs: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Run one layer on a given input and earlier outputs (teacher forcing)."""
        with torch.inference_mode(not self.training):
            return dense(self.layers[index](x, list(outs)))

    def extra_repr(self) -> str:
        net = self.network
        return (
            f"input={self.input_shape}, layers={len(self.layers)}, heads={self.heads}, dialect={net.dialect}, "
            f"fuse_bn={self.fuse_bn}"
        )


def build(
    net: Network, *, fuse_bn: bool = False, bug_compatible: bool = False, seed: int = 0, winograd: bool = True
) -> DarknetModel:
    """Rebuild ``net`` in PyTorch.

    ``fuse_bn``: fold batch-norm into the convolutions in double precision exactly like Darknet's
    ``fuse_conv_batchnorm`` (what ``darknet detector test`` runs; also pre-normalises weighted
    shortcuts). The folded model's state_dict then has ``conv.bias`` instead of ``bn.*`` and no
    longer matches the weights-file layout. ``bug_compatible``: reproduce Darknet's CPU bugs
    instead of raising (zeros for activations Darknet does not compute in a layer, ``relu6`` = 0 in
    the AlexeyAB dialect, unfused xnor layers skipping batch-norm). Layers without weights (no file
    bound, partial file, ``dontload``) get ``darkweights init``'s seeded random values.
    ``winograd``: at CPU inference, compute wide 3x3 stride-1 convolutions with Winograd F(2,3)
    (as OpenCV does; as accurate as the direct sum, see :mod:`.winograd`); ``False`` keeps every
    convolution direct.

    Raises :class:`~darkweights.errors.UnsupportedError` for a layer that cannot be built.
    """
    ctx = BuildContext(net, fuse_bn=fuse_bn, bug_compatible=bug_compatible, seed=seed, winograd=winograd)
    for layer in net.layers:
        cls = MODULES.get(layer.type)
        if cls is None:
            raise layer.unsupported("has no PyTorch implementation")
        if layer.unbuildable:  # a geometry Darknet computes but no torch module can (the family says why)
            raise layer.unsupported(layer.unbuildable)
        ctx.modules.append(cls(layer, ctx))
    if net.has_weights and ctx.initialised:
        held = sorted(set(ctx.initialised))
        warnings.warn(
            f"{net.weights_path or 'weights in memory'}: layers {_ranges(held)} have no weights in the "
            "file (partial file, dontload or dontloadscales) and were initialised with random values",
            DarkweightsWarning,
            stacklevel=2,
        )
    return DarknetModel(
        net, ctx.modules, fuse_bn=fuse_bn, bug_compatible=bug_compatible, initialised=sorted(set(ctx.initialised))
    )


def _ranges(values: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
