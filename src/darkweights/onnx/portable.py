"""The portable form of a :class:`~darkweights.torch.DarknetModel`: what the ONNX exporter traces.

The inference model carries CPU fast paths (oneDNN prepacked weights, Winograd F(2,3), NHWC data,
lazy route concatenation) that are not graph operations; :func:`portable_model` turns them off.
A few layer modules use operations that TorchScript's ONNX exporter translates wrongly without a
word (``avg_pool2d(divisor_override=1)`` loses its divisor override and becomes a mean; padding the
channel axis comes out misplaced): those modules give an equivalent written with operations that
translate exactly, their :meth:`~darkweights.torch.DarknetLayer.portable` method. Every other module
is traced as is. :class:`Step` is one layer as a function of its inputs: :mod:`.trace` traces the model
step by step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import UnsupportedError
from ..torch.base import DarknetLayer, dense
from ..torch.builder import DarknetModel


def portable_model(model: DarknetModel) -> DarknetModel:
    """Switch the CPU-only fast paths off (in place): prepacking, Winograd, NHWC."""
    model.prepack = False
    model.winograd = False
    model.channels_last = False
    return model


def run_layer(module: DarknetLayer, index: int, x: torch.Tensor, outs: list) -> torch.Tensor:
    """One layer's output as a dense tensor, through its portable form when it has one; a failure names the
    layer (tracing runs the modules' own code)."""
    try:
        y = module.portable(x, outs)
        return dense(module(x, outs) if y is None else y)
    except UnsupportedError:
        raise
    except Exception as exc:
        raise UnsupportedError(
            f"cannot be traced for ONNX: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            layer=index,
            layer_type=module.layer_type,
        ) from None


class Step(nn.Module):
    """Layer ``index`` of a portable model as a function of its inputs, ``forward(x, *sources)``: what the
    exporter traces, one layer at a time (:mod:`.trace`). ``x`` is the previous layer's output (the network
    input for layer 0), ``sources`` the outputs of the earlier layers it reads, in ``module.reads`` order."""

    def __init__(self, module: DarknetLayer, index: int, borrowed: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.m = module
        self.index = index
        # layers whose arrays this one reads (a share_index convolution): registered here, those arrays are
        # parameters of the step (graph inputs), not constants
        self.borrowed = nn.ModuleList(borrowed)

    def forward(self, x: torch.Tensor, *sources: torch.Tensor) -> torch.Tensor:
        outs: list = [None] * self.index
        for j, s in zip(self.m.reads, sources):
            outs[j] = s
        return run_layer(self.m, self.index, x, outs)


class PostStep(nn.Module):
    """The decoded / NMS post-processing (:mod:`.decode`) as a function of the head outputs."""

    def __init__(self, post: nn.Module) -> None:
        super().__init__()
        self.post = post

    def forward(self, *heads: torch.Tensor) -> tuple:
        return tuple(self.post(list(heads)))
