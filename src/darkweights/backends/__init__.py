"""Backends: what computes a detector's heads on a batch of network inputs, one small interface for every exit.

A :class:`Backend` takes a batch ``(N, C, H, W)`` float32 (what Darknet feeds the network: RGB in [0, 1],
resized or letterboxed) and returns the detection heads' outputs ``(N, ...)`` in Darknet's ``l.output`` layout,
one array per head in :attr:`Backend.heads` order (the layer indexes). Decoding and NMS stay outside (the
detector's own rules, :class:`darkweights.detect.run.Detector`), so every exit is measured by the same numbers:

* ``torch``: the PyTorch rebuild (:mod:`.torch_backend`), BN folded as ``detector test``/``detector map`` fold it;
* ``onnxruntime``: a raw export (``darkweights export --outputs raw``, float32 or ``--fp16``) in onnxruntime's CPU
  provider (:mod:`.onnx_backend`);
* ``openvino``: the same file in OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT=f32`` (its default on
  processors with bfloat16 is bfloat16 arithmetic, about 1e-2 off);
* any callable ``fn(batch) -> outputs`` (:class:`CallableBackend`): a list in head order, or a dict by layer index.

>>> from darkweights.backends import BACKENDS
>>> sorted(BACKENDS)
['onnxruntime', 'openvino', 'torch']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np

from ..errors import ArgumentError

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["BACKENDS", "Backend", "CallableBackend", "open_backend"]


class Backend:
    """Computes the heads of one network. ``heads``: their layer indexes; ``batch``: the batch size it takes
    (``None``: any); ``name``: what reports call it."""

    name = "backend"
    heads: list[int]
    batch: int | None = None

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """The heads' outputs for ``batch`` ``(N, C, H, W)`` float32, each ``(N, ...)``, in :attr:`heads` order."""
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.forward(batch)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """:meth:`forward` on any number of items: padded to a fixed :attr:`batch` (and cut back), or split in
        chunks of it."""
        n = batch.shape[0]
        size = self.batch
        if size is None or size == n:
            return [np.asarray(o) for o in self.forward(batch)]
        parts = []
        for start in range(0, n, size):
            chunk = batch[start : start + size]
            if chunk.shape[0] < size:  # repeat the last item up to the fixed batch
                pad = np.repeat(chunk[-1:], size - chunk.shape[0], axis=0)
                chunk = np.concatenate([chunk, pad])
            parts.append([np.asarray(o) for o in self.forward(chunk)])
        return [np.concatenate([p[h] for p in parts])[:n] for h in range(len(self.heads))]


class CallableBackend(Backend):
    """Any function ``fn(batch) -> outputs`` as a backend: outputs a list in ``heads`` order or a mapping by layer
    index, arrays or tensors ``(N, ...)`` in Darknet's layout."""

    name = "callable"

    def __init__(self, fn: Callable[[np.ndarray], Any], heads: Sequence[int], *, batch: int | None = None) -> None:
        if not callable(fn):
            raise ArgumentError(f"a backend must be callable: fn(batch) -> head outputs, not {type(fn).__name__}")
        self.fn = fn
        self.heads = list(heads)
        self.batch = batch

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        out = self.fn(batch)
        if isinstance(out, Mapping):
            missing = [i for i in self.heads if i not in out]
            if missing:
                raise ArgumentError(f"the backend returned no output for head layer {missing[0]} (keys: {list(out)})")
            out = [out[i] for i in self.heads]
        out = list(out)
        if len(out) != len(self.heads):
            raise ArgumentError(f"the backend returned {len(out)} outputs for {len(self.heads)} heads {self.heads}")
        return [_numpy(o) for o in out]


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, np.float32)


def _torch(net: Any, onnx: PathLike | None, threads: int | None) -> Backend:
    from .torch_backend import TorchBackend

    if not net.has_weights:
        from .onnx_backend import network_with_onnx_weights

        net = network_with_onnx_weights(net, onnx)
    return TorchBackend(net, threads=threads)


def _onnxruntime(net: Any, onnx: PathLike | None, threads: int | None) -> Backend:
    from .onnx_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(_need(onnx), threads=threads)


def _openvino(net: Any, onnx: PathLike | None, threads: int | None) -> Backend:
    from .onnx_backend import OpenVinoBackend

    return OpenVinoBackend(_need(onnx), threads=threads)


def _need(onnx: PathLike | None) -> PathLike:
    if onnx is None:
        raise ArgumentError("this backend runs an ONNX export: none given")
    return onnx


# name -> (needs an ONNX file, factory(net, onnx path, threads))
BACKENDS: dict[str, tuple[bool, Callable[[Any, PathLike | None, int | None], Backend]]] = {
    "torch": (False, _torch),
    "onnxruntime": (True, _onnxruntime),
    "openvino": (True, _openvino),
}


def open_backend(
    name: str,
    net: Any,
    onnx: PathLike | None = None,
    *,
    workdir: PathLike | None = None,
    threads: int | None = None,
) -> Backend:
    """The backend ``name`` for ``net`` (a :class:`~darkweights.Network`, with weights unless ``onnx`` holds them).
    The ONNX backends run ``onnx``, a raw export; without one, the network is exported (raw, float32) into
    ``workdir`` first. ``threads``: the backend's intra-op threads (default: its own; torch's setting is
    process-wide)."""
    try:
        needs_onnx, factory = BACKENDS[name]
    except KeyError:
        raise ArgumentError(f"unknown backend {name!r}; one of {', '.join(BACKENDS)}") from None
    if needs_onnx and onnx is None:
        if workdir is None:
            raise ArgumentError(f"the {name} backend runs an ONNX export: pass onnx= or a workdir to export into")
        from ..onnx import export_onnx

        onnx = os.path.join(os.fspath(workdir), "model.onnx")
        export_onnx(net, onnx, batch="dynamic")
    if not needs_onnx and onnx is None and not net.has_weights:
        raise ArgumentError("the network has no weights to run", file=net.path)
    return factory(net, onnx, threads)
