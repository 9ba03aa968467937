"""PyTorch backend: ``darkweights.torch.build(net)`` (or ``net.to_torch()``) rebuilds a Darknet
network as an ``nn.Module`` computing what Darknet's CPU forward computes, layer by layer.

Modules: :mod:`.builder` (``build``, ``DarknetModel``), :mod:`.base` (registry, build context),
:mod:`.activations`, :mod:`.layers` (one module per layer family), :mod:`.heads`,
:mod:`.recurrent`.
"""

from __future__ import annotations

from .activations import activation
from .base import MODULES, BuildContext, DarknetLayer, register
from .builder import HEAD_TYPES, DarknetModel, build
from .layers import fold_bn

__all__ = ["build", "DarknetModel", "DarknetLayer", "MODULES", "register", "BuildContext", "HEAD_TYPES",
           "activation", "fold_bn"]
