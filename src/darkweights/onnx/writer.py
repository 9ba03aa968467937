"""An ONNX file written field by field, its initializers streamed from their source.

``ModelProto.SerializeToString()`` needs the whole model in memory, initializers included, and
makes a second copy as bytes (a third when ``onnx.checker`` copies it again): for yolov4 that is
several times the weights file. Protobuf's wire format is a sequence of ``tag, length, bytes``
fields, so the file can be written in pieces instead: everything but the large initializers is
serialized by ``onnx`` itself; each initializer is its header (``dims``, ``data_type``, ``name``,
serialized by ``onnx``) followed by its ``raw_data`` field, whose bytes are copied from the model's
arrays in chunks. Fields are written in field-number order, so the file is byte-identical to what
``SerializeToString()`` gives for the same model (a test checks it); only the framing (tags and
varint lengths, below) is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any, NamedTuple

from ..errors import UnsupportedError

MAX_PROTO = 2**31 - 1  # protobuf cannot parse a message of 2 GiB or more


class Blob(NamedTuple):
    """One initializer whose data is streamed: ``chunks()`` yields its raw little-endian bytes."""

    name: str
    dims: tuple[int, ...]
    data_type: int  # onnx.TensorProto.FLOAT, FLOAT16, ...
    nbytes: int
    chunks: Callable[[], Iterable[bytes | memoryview]]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(message_type: Any, name: str) -> bytes:
    """The tag of a length-delimited field (wire type 2), e.g. ``ModelProto.graph``."""
    return _varint(message_type.DESCRIPTOR.fields_by_name[name].number << 3 | 2)


def _split(message: Any, name: str) -> tuple[bytes, bytes]:
    """``message`` serialized as the fields numbered up to field ``name`` (inclusive) and those after."""
    number = message.DESCRIPTOR.fields_by_name[name].number
    before, after = type(message)(), type(message)()
    before.CopyFrom(message)
    after.CopyFrom(message)
    for fd, _ in message.ListFields():
        (after if fd.number <= number else before).ClearField(fd.name)
    return before.SerializeToString(), after.SerializeToString()


def write_model(
    f: IO[bytes], model: Any, blobs: Iterable[Blob], progress: Callable[[int], object] | None = None
) -> int:
    """Write ``model`` with ``blobs`` appended to its graph's initializers; returns the bytes written.
    ``progress`` is told the size of each block of initializer data written.

    Raises :class:`~darkweights.errors.UnsupportedError` before writing anything when the file would exceed
    protobuf's 2 GiB limit."""
    import onnx

    graph = model.graph
    rest = onnx.ModelProto()
    rest.CopyFrom(model)
    rest.ClearField("graph")
    m_before, m_after = _split(rest, "graph")
    g_before, g_after = _split(graph, "initializer")
    init_tag, raw_tag = _field(onnx.GraphProto, "initializer"), _field(onnx.TensorProto, "raw_data")
    heads = []
    for b in blobs:
        header = onnx.TensorProto(dims=b.dims, data_type=b.data_type, name=b.name).SerializeToString()
        header += raw_tag + _varint(b.nbytes)
        size = len(header) + b.nbytes
        heads.append((b, init_tag + _varint(size) + header))
    graph_size = len(g_before) + sum(len(h) + b.nbytes for b, h in heads) + len(g_after)
    graph_head = _field(onnx.ModelProto, "graph") + _varint(graph_size)
    total = len(m_before) + len(graph_head) + graph_size + len(m_after)
    if total > MAX_PROTO:
        raise UnsupportedError(
            f"the ONNX model would be {total:,} bytes; one ONNX file holds at most 2 GiB (protobuf's limit)"
        )
    f.write(m_before)
    f.write(graph_head)
    f.write(g_before)
    for b, head in heads:
        f.write(head)
        written = 0
        for chunk in b.chunks():
            f.write(chunk)
            n = memoryview(chunk).nbytes
            written += n
            if progress is not None:
                progress(n)
        if written != b.nbytes:  # pragma: no cover - a bug: the framing above would be wrong
            raise RuntimeError(f"initializer {b.name}: {written:,} bytes written, {b.nbytes:,} framed")
    f.write(g_after)
    f.write(m_after)
    return total
