"""Shared pieces of the PyTorch builder: the module registry, the build context, the layer base class.

Every Darknet layer family has one small ``nn.Module``, in its own file under :mod:`.families`,
registered under the catalogue's ``type`` (:data:`MODULES`); :func:`darkweights.torch.build` looks the
class up. A module is constructed from its catalogue layer and a :class:`BuildContext`, and is called as
``module(x, outs)``: ``x`` is the previous layer's output, ``outs`` the list of earlier outputs, of which
it reads those in :attr:`DarknetLayer.reads` (the catalogue's :meth:`~darkweights.layers.Layer.reads`).
It returns its output in Darknet's layout: ``(N, C, H, W)`` when the layer has image geometry, else
``(N, outputs)``. Modules never modify ``x`` or ``outs`` in place. :meth:`DarknetLayer.portable` is the
module's form for the ONNX exporter where its own does not trace exactly (:mod:`darkweights.onnx.portable`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..layers import Layer, Shape
from ..weightsfile import parse_key
from .activations import Act, activation

if TYPE_CHECKING:
    from ..network import Network

MODULES: dict[str, type[DarknetLayer]] = {}


class ChannelParts(tuple):
    """A feature map held as its channel blocks ``(N, C_i, H, W)``, in order: a ``[route]``'s
    concatenation, made only when a layer needs one tensor (:meth:`dense`). Modules with
    ``takes_parts`` accept it as input or source; the model concatenates it for the others."""

    def dense(self) -> torch.Tensor:
        return torch.cat(self, dim=1) if len(self) > 1 else self[0]

    def channels(self, lo: int, hi: int) -> list[torch.Tensor]:
        """The blocks covering channels ``lo:hi``: whole blocks as they are, cut ones as views."""
        out, start = [], 0
        for p in self:
            end = start + p.shape[1]
            if start < hi and end > lo:
                out.append(p if lo <= start and end <= hi else p[:, max(lo, start) - start : min(hi, end) - start])
            start = end
        return out


def dense(x: torch.Tensor | ChannelParts) -> torch.Tensor:
    """``x`` as one tensor (concatenating :class:`ChannelParts`)."""
    return x.dense() if isinstance(x, ChannelParts) else x


def register(*types: str) -> Callable[[type[DarknetLayer]], type[DarknetLayer]]:
    """Class decorator: the module that builds catalogue layers of these ``type`` names."""

    def deco(cls: type[DarknetLayer]) -> type[DarknetLayer]:
        for t in types:
            if t in MODULES:
                raise RuntimeError(
                    f"torch module for layer type {t!r} registered twice ({MODULES[t].__name__}, {cls.__name__})"
                )
            MODULES[t] = cls
        return cls

    return deco


class BuildContext:
    """What a module needs while it is built: arrays, options, the modules built so far."""

    def __init__(
        self, net: Network, *, fuse_bn: bool, bug_compatible: bool, seed: int = 0, winograd: bool = True
    ) -> None:
        self.net = net
        self.winograd = winograd
        self.dialect = net.dialect
        self.fuse_bn = fuse_bn
        self.bug_compatible = bug_compatible
        self.modules: list[DarknetLayer] = []
        self.seed = seed
        self._synth: dict[int, dict[str, np.ndarray]] | None = None
        self._loaded: dict[int, dict[str, np.ndarray]] = {}
        if net.has_weights:
            for key, arr in net.arrays().items():
                index, name = parse_key(key)
                self._loaded.setdefault(index, {})[name] = arr
        self.initialised: list[int] = []  # layers whose arrays were synthesised

    # -- arrays -----------------------------------------------------------------------------

    def arrays(self, layer: Layer) -> dict[str, np.ndarray]:
        """The layer's arrays by Darknet name: bound (zero-copy) where the file has them, else synthesised.

        Layers a partial file does not reach, ``dontload`` layers and ``dontloadscales`` arrays
        get the values ``darkweights init`` writes (seeded), so a model can always be built.
        """
        specs = layer.arrays()
        got = dict(self._loaded.get(layer.index, {}))
        missing = [s for s in specs if s.name not in got]
        if missing:
            synth = self.synthesised(layer.index)
            for s in missing:
                got[s.name] = synth[s.name]
            self.initialised.append(layer.index)
        return got

    def loaded(self, index: int) -> dict[str, np.ndarray]:
        """The arrays the bound file holds for layer ``index`` (empty without a file)."""
        return dict(self._loaded.get(index, {}))

    def synthesised(self, index: int) -> dict[str, np.ndarray]:
        """The arrays ``darkweights init`` (seeded) writes for layer ``index``, in the save layout."""
        if self._synth is None:
            from ..synth import random_arrays

            self._synth = {}
            for p, arr in random_arrays(self.net, self.seed):
                self._synth.setdefault(p.layer, {})[p.name] = arr
        return self._synth.get(index, {})

    @staticmethod
    def tensor(arr: np.ndarray) -> torch.Tensor:
        """Zero-copy tensor over a (copy-on-write memmap) numpy view.

        A read-only view (weights given in memory) is copied: a tensor cannot be read-only,
        and training in place must not write into the caller's buffer.
        """
        if arr.dtype != np.float32 or not arr.flags.writeable:
            arr = np.array(arr, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not writable.*")
            return torch.from_numpy(arr)

    def param(self, arr: np.ndarray) -> nn.Parameter:
        return nn.Parameter(self.tensor(arr), requires_grad=False)

    # -- options ----------------------------------------------------------------------------

    def activation(self, layer: Layer, path: str, name: str | None = None) -> Act:
        return activation(
            name if name is not None else layer.activation,
            path,
            layer=layer,
            bug_compatible=self.bug_compatible,
            relu6_missing=self.dialect.relu6_missing_on_cpu,
        )

    def source(self, layer: Layer, index: int) -> Layer:
        """A layer read by route/shortcut/...: refuse antialiased layers whose data and geometry disagree."""
        src = self.net.layers[index]
        if src.next_input != src.output:
            raise layer.unsupported(
                f"reads layer {index}, an antialiased layer with stride > 1: Darknet reads its "
                f"stride-1 geometry {src.output} while the buffer holds the blurred {src.next_input} "
                "map (a Darknet bug)",
            )
        return src


class DarknetLayer(nn.Module):
    """Base class: one Darknet layer. ``reads`` lists the earlier layers it reads besides its input (the
    catalogue's); ``takes_parts``: its input and those may be :class:`ChannelParts` (else the model hands
    it dense tensors)."""

    takes_parts = False

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__()
        self.index = layer.index
        self.layer_type = layer.type
        self.in_shape: Shape = layer.input
        self.out_shape: Shape = layer.next_input
        self.reads: list[int] = layer.reads()
        self.natural_shape = layer.natural_shape
        for i in self.reads:
            ctx.source(layer, i)

    def portable(self, x: torch.Tensor, outs: list) -> torch.Tensor | None:
        """This layer's output computed with operations the ONNX exporter translates exactly, where the
        module's own forward does not (a CPU fast path, an operation TorchScript's exporter gets wrong);
        ``None``: trace the forward itself."""
        return None

    def image(self, x: torch.Tensor, shape: Shape | None = None) -> torch.Tensor:
        """``x`` viewed as ``(N, C, H, W)`` with Darknet's input geometry (flat data is reinterpreted)."""
        s = shape or self.in_shape
        if x.dim() == 4 and tuple(x.shape[1:]) == (s.c, s.h, s.w):
            return x
        return x.reshape(x.shape[0], s.c, s.h, s.w)

    @staticmethod
    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def shaped(self, y: torch.Tensor) -> torch.Tensor:
        """Give a flat result this layer's output layout."""
        s = self.out_shape
        if s.is_image:
            return y.reshape(y.shape[0], s.c, s.h, s.w)
        return y.reshape(y.shape[0], s.size)

    def extra_repr(self) -> str:
        return f"{self.index}: {self.layer_type} {self.in_shape} -> {self.out_shape}"
