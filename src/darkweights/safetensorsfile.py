"""``.safetensors`` array files, written and read here directly (no dependency).

Layout: 8-byte little-endian header length, a JSON header, raw data. The data section begins with the 16/20
``.weights`` header bytes as a uint8 tensor ``__darknet_header__``; after it come the arrays in file order, so
a whole-file export's data section *is* the ``.weights`` file and is written with one kernel copy. Reading
maps the file (zero-copy); the JSON header is parsed with a size and depth bound, and every entry's dims are
checked against the data section and, once the metadata has named the network, against the cfg.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Union

from .errors import ArrayError
from .limits import MAX_JSON_HEADER, bounded_json
from .meta import Metadata
from .npzfile import expected_shapes, shape_error

if TYPE_CHECKING:
    import numpy as np

    from .network import Network

PathLike = Union[str, "os.PathLike[str]"]
HEADER_KEY = "__darknet_header__"  # the .weights header bytes (uint8), first in the data
DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1", "I8": "i1"}
MAX_HEADER = MAX_JSON_HEADER


def write(net: Network, path: PathLike, *, layers: Iterable[int] | None = None, arrays: Any = None) -> int:
    """The bound arrays (or ``arrays``, export names) and the metadata as ``.safetensors``; returns bytes."""
    import json

    from . import weightsfile  # its atomic_output: one name every writer opens outputs through
    from .weightsfile import FLOAT

    keep = set(layers) if layers is not None else None
    params = [p for p in net.params() if (keep is None or p.layer in keep) and (arrays is None or p.key in arrays)]
    hsize = net.header.size
    entries: dict[str, Any] = {HEADER_KEY: {"dtype": "U8", "shape": [hsize], "data_offsets": [0, hsize]}}
    pos = hsize
    for p in params:
        entries[p.key] = {"dtype": "F32", "shape": list(p.shape), "data_offsets": [pos, pos + p.nbytes]}
        pos += p.nbytes
    entries["__metadata__"] = Metadata.of(net).to_strings()
    head = json.dumps(entries, separators=(",", ":")).encode()
    whole = keep is None and arrays is None and net.weights_path is not None and not any(p.transposed for p in params)
    # pad the JSON so the data starts 8-byte aligned; for big files 64 KiB aligned, which lets the
    # kernel copy whole pages (measured 1.5x faster than a misaligned copy on ext4)
    align = 1 << 16 if whole and pos > 16 << 20 else 8
    head += b" " * (-(8 + len(head)) % align)
    with weightsfile.atomic_output(path, inputs=[net.weights_path, net.path]) as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        if whole:
            with open(net.weights_path, "rb") as src:  # type: ignore[arg-type]
                _copy_exact(src, f, 0, pos)
        else:
            import numpy as np

            from .progress import bar

            f.write(net.header.to_bytes())
            source = net.arrays(layers=layers) if arrays is None else arrays
            for p in bar(params, total=len(params), desc="extract", unit="array"):
                f.write(np.ascontiguousarray(source[p.key], dtype=FLOAT).data)
        return 8 + len(head) + pos


def _copy_exact(src: Any, dst: Any, offset: int, nbytes: int) -> None:
    """Copy ``nbytes`` from ``offset`` of ``src`` to the end of ``dst``, in the kernel when possible."""
    dst.flush()
    remaining, pos = nbytes, offset
    try:
        while remaining > 0:
            n = os.copy_file_range(src.fileno(), dst.fileno(), remaining, pos)
            if n <= 0:
                break
            remaining, pos = remaining - n, pos + n
    except (AttributeError, OSError):
        pass  # no copy_file_range here (other OS, filesystem): plain reads below
    dst.seek(0, os.SEEK_END)
    src.seek(pos)
    while remaining > 0:
        chunk = src.read(min(remaining, 16 << 20))
        if not chunk:
            raise ArrayError("weights file changed while it was being exported")
        dst.write(chunk)
        remaining -= len(chunk)


def read(path: PathLike, plan: Callable[[Metadata], Network | None]) -> tuple[dict[str, np.ndarray], Metadata]:
    """Arrays (copy-on-write views of the mapped file) and metadata; ``plan(metadata)`` names the network
    whose shapes the entries must have."""
    import numpy as np

    where = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ArrayError(f"file is {size} bytes, too short for a safetensors header", file=where, offset=0)
            (hlen,) = struct.unpack("<Q", raw_len)
            if hlen > min(MAX_HEADER, size - 8):
                raise ArrayError(
                    f"header length {hlen:,} exceeds the file ({size:,} bytes) or the format's limit "
                    f"({MAX_HEADER:,} bytes)",
                    file=where,
                    offset=0,
                )
            head = f.read(hlen).decode("utf-8", errors="strict") if hlen else ""
    except UnicodeDecodeError:
        raise ArrayError("corrupt safetensors header: not UTF-8 text", file=where, offset=8) from None
    except OSError as exc:
        raise ArrayError(f"cannot read: {exc.strerror or exc}", file=where) from None
    entries = bounded_json(head, what="corrupt safetensors header", file=where, offset=8, max_bytes=MAX_HEADER)
    if not isinstance(entries, dict):
        raise ArrayError("corrupt safetensors header (not a JSON object)", file=where, offset=8)
    meta = Metadata.parse(entries.pop("__metadata__", None) or {}, file=where)
    entries.pop(HEADER_KEY, None)
    start = 8 + hlen
    data_len = size - start
    spans = []
    checked = {}
    for key, info in entries.items():
        try:
            dtype = np.dtype(DTYPES[info["dtype"]])
            shape = tuple(_exact_int(d) for d in info["shape"])
            b, e = (_exact_int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ArrayError(
                f"safetensors entry {key!r} is malformed or has an unsupported dtype", file=where
            ) from None
        if min(shape, default=1) < 0 or not (0 <= b <= e <= data_len) or e - b != math.prod(shape) * dtype.itemsize:
            raise ArrayError(
                f"safetensors entry {key!r}: offsets {b}..{e} do not fit shape {shape} {info['dtype']} "
                f"within the {data_len}-byte data section",
                file=where,
                offset=start + min(max(b, 0), max(data_len, 0)),
            )
        checked[key] = (dtype, shape, b, e)
        if e > b:
            spans.append((b, e, key))
    spans.sort()
    for (_b0, e0, k0), (b1, _e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:  # safetensors forbids overlapping tensors: one would alias the other
            raise ArrayError(
                f"safetensors entries {k0!r} and {k1!r} overlap (bytes {b1}..{e0})", file=where, offset=start + b1
            )
    net = plan(meta)
    expect = expected_shapes(net) if net is not None else None
    mm = np.memmap(path, dtype="u1", mode="c", offset=start, shape=(data_len,)) if data_len > 0 else np.zeros(0, "u1")
    arrays: dict[str, np.ndarray] = {}
    for key, (dtype, shape, b, e) in checked.items():
        if expect is not None:
            if key not in expect:
                continue
            if shape != expect[key]:
                raise shape_error(key, shape, expect[key], where, start + b)
        arrays[key] = mm[b:e].view(dtype).reshape(shape)
    return arrays, meta


def _exact_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value
