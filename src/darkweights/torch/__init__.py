"""PyTorch backend: rebuild a Darknet network as an ``nn.Module`` that computes, layer by layer,
what Darknet's CPU forward pass computes.

>>> import darkweights
>>> net = darkweights.load("yolov4-tiny.cfg", "yolov4-tiny.weights")
>>> model = net.to_torch()                     # == darkweights.torch.build(net)
>>> heads = model(x)                           # x: (N, C, H, W) float32; list of [yolo] outputs
>>> outs = model(x, all_outputs=True)          # every layer's output, Darknet layout
>>> darkweights.save_weights(model.state_dict(), "copy.weights", net=net)   # byte-identical

``build(net, fuse_bn=False, bug_compatible=False)``: ``fuse_bn`` folds batch-norm like Darknet's
``fuse_conv_batchnorm`` (fastest; what ``darknet detector test`` runs); ``bug_compatible``
reproduces Darknet CPU bugs (zeros for activations it does not compute) instead of raising
:class:`~darkweights.errors.UnsupportedError`.

Modules: :mod:`.builder` (``build``, ``DarknetModel``), :mod:`.base` (module registry keyed by
the catalogue's layer ``type``, build context, the layer base class), :mod:`.families` (one file per
layer family), :mod:`.units` and :mod:`.convunit` (computing units several families share),
:mod:`.activations`, :mod:`.winograd`.
"""

from __future__ import annotations

from .activations import activation
from .base import MODULES, BuildContext, DarknetLayer, register
from .builder import DarknetModel, build
from .units import fold_bn

__all__ = ["build", "DarknetModel", "DarknetLayer", "MODULES", "register", "BuildContext", "activation", "fold_bn"]
