"""A raw ONNX export (``darkweights export --outputs raw``) run by onnxruntime or OpenVINO as a
:class:`~darkweights.backends.Backend`; the network and its settings come from the export's metadata."""

from __future__ import annotations

import io
import os
import re
from typing import Any, Union, cast

import numpy as np

from ..errors import ArrayError, UnsupportedError
from . import Backend

PathLike = Union[str, "os.PathLike[str]"]
HEAD_NAME = re.compile(r"layer_(\d{3,})")


def export_metadata(path: PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (read without its weights' external data)."""
    from ..onnx.home import model_metadata, read_onnx

    return model_metadata(read_onnx(path))


def onnx_network(path: PathLike, *, dialect: Any = None) -> tuple[Any, dict[str, str]]:
    """The network (cfg, dialect, input size) a darkweights raw export was made from, without weights, and the
    export's metadata. Exports of other kinds (``decoded``, ``nms``) or from other tools are refused: their outputs
    are not the heads in Darknet's layout."""
    from ..export import network_from_metadata

    meta = export_metadata(path)
    if meta.get("format") != "darkweights":
        raise ArrayError("not a darkweights export (no embedded cfg): the heads cannot be decoded", file=path)
    kind = meta.get("onnx_outputs", "raw")
    if kind != "raw":
        raise UnsupportedError(
            f"an --outputs {kind} export: evaluation needs the heads in Darknet's layout (export with --outputs raw)",
            file=path,
        )
    return network_from_metadata(meta, None, dialect, source=path), meta


def head_outputs(path: PathLike, names: list[str], heads: list[int]) -> list[str]:
    """The output names of ``heads`` among ``names`` (``layer_030`` ...), in head order."""
    by_index = {int(m.group(1)): n for n in names if (m := HEAD_NAME.fullmatch(n))}
    missing = [i for i in heads if i not in by_index]
    if missing:
        raise ArrayError(
            f"no output for detection head layer {missing[0]} (outputs: {', '.join(names[:8])}): "
            "export with --outputs raw",
            file=path,
        )
    return [by_index[i] for i in heads]


def network_with_onnx_weights(net: Any, path: PathLike | None) -> Any:
    """``net`` with the weights the export holds (an unfused float32 export: the arrays are the original ones)."""
    from ..onnx.home import pack_onnx

    if path is None:
        raise ArrayError("the network has no weights to run", file=net.path)
    buf = io.BytesIO()
    pack_onnx(path, cast(Any, buf))  # written like any output: save_weights takes an open binary file
    return net.load_weights(buf.getvalue())


class OnnxFileBackend(Backend):
    """What both ONNX runtimes share: the export's network (for its heads) and precision, from its metadata."""

    def __init__(self, path: PathLike) -> None:
        self.path = path
        net, meta = onnx_network(path)
        self.precision = meta.get("precision", "float32")
        self.heads = [L.index for L in net.layers if L.is_head]


class OnnxRuntimeBackend(OnnxFileBackend):
    """A raw export in onnxruntime's CPU provider (``level``: graph optimisation, as ``verify --onnx``)."""

    name = "onnxruntime"

    def __init__(self, path: PathLike, *, level: str = "extended", threads: int | None = None) -> None:
        from ..onnx.home import onnx_session

        super().__init__(path)
        self.session = onnx_session(path, level=level, threads=threads)
        self.input = self.session.get_inputs()[0].name
        self.outputs = head_outputs(path, [o.name for o in self.session.get_outputs()], self.heads)
        self.batch = _fixed_batch(self.session.get_inputs()[0].shape)

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.outputs, {self.input: np.ascontiguousarray(batch, np.float32)})


class OpenVinoBackend(OnnxFileBackend):
    """A raw export compiled by OpenVINO for its CPU plugin, in float32 (``INFERENCE_PRECISION_HINT``)."""

    name = "openvino"

    def __init__(self, path: PathLike, *, precision: str = "f32", threads: int | None = None) -> None:
        import openvino as ov

        super().__init__(path)
        core = ov.Core()
        model = core.read_model(os.fspath(path))
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", config)
        names = [o.get_any_name() for o in self.compiled.outputs]
        self.outputs = [self.compiled.output(n) for n in head_outputs(path, names, self.heads)]
        shape = self.compiled.input(0).get_partial_shape()
        self.batch = shape[0].get_length() if shape[0].is_static else None
        self.request = self.compiled.create_infer_request()

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer([np.ascontiguousarray(batch, np.float32)])
        return [np.array(result[o]) for o in self.outputs]


def _fixed_batch(shape: list[Any]) -> int | None:
    return shape[0] if shape and isinstance(shape[0], int) else None
