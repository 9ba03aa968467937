"""ONNX export and the way back (extra ``[onnx]``: ``onnx`` + ``onnxruntime``, imported lazily).

>>> import darkweights
>>> net = darkweights.load("yolov4-tiny.cfg", "yolov4-tiny.weights")
>>> net.to_onnx("yolov4-tiny.onnx", batch="dynamic")          # == darkweights.onnx.export_onnx(net, ...)
>>> darkweights.onnx.pack_onnx("yolov4-tiny.onnx", "copy.weights")   # byte-identical to the original

Modules: :mod:`.portable` (the traced form of the PyTorch model), :mod:`.trace` (tracing it one layer at a
time and joining the pieces), :mod:`.writer` (the file written field by field, initializers streamed from the
model's arrays), :mod:`.exporter` (``export_onnx``), :mod:`.decode` (decoded / NMS outputs), :mod:`.home`
(reading a model back: ``pack_onnx``, running it, comparing it with Darknet fixtures or our PyTorch model).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "export_onnx",
    "pack_onnx",
    "read_onnx",
    "onnx_arrays",
    "run_onnx",
    "compare_onnx_with_fixture",
    "compare_onnx_with_torch",
    "default_opset",
]


def __getattr__(name: str) -> Any:
    if name in ("export_onnx", "default_opset", "ExportInfo"):
        from . import exporter

        return getattr(exporter, name)
    if name in (
        "pack_onnx",
        "read_onnx",
        "onnx_arrays",
        "run_onnx",
        "compare_onnx_with_fixture",
        "compare_onnx_with_torch",
        "onnx_session",
    ):
        from . import home

        return getattr(home, name)
    raise AttributeError(name)
