"""Array files: ``.npz`` and ``.safetensors`` export and import.

Array names are the stable export keys (``layer_012.biases``, ``layer_012.weights``,
``layer_104.input_layer.weights``...): ``layer_<index>.<Darknet array name>``, each array in
Darknet's in-memory shape (conv weights ``(n, c/groups, k, k)`` = PyTorch ``Conv2d.weight``,
connected weights ``(outputs, inputs)`` = ``Linear.weight``). The metadata carries the cfg
text, dialect, header and input-size overrides, so a ``.safetensors`` file alone turns back
into the exact cfg + ``.weights`` pair.

The safetensors format (8-byte little-endian header length, JSON header, raw data) is
written and read here directly: writing copies straight from the weights file, reading
maps the file, so neither needs a copy of the data in memory. The data section begins with
the 16/20 ``.weights`` header bytes as a uint8 tensor ``__darknet_header__``; after it come
the arrays in file order, so a whole-file export's data section *is* the ``.weights`` file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from .dialects import DIALECTS, DialectLike
from .errors import ArrayError
from .network import Network
from .weightsfile import FLOAT, atomic_output

if TYPE_CHECKING:
    import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
META_KEY = "__darkweights__"  # npz entry holding the metadata JSON
HEADER_KEY = "__darknet_header__"  # safetensors: the .weights header bytes (uint8), first in the data
FORMAT_VERSION = "1"
DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1", "I8": "i1"}
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit for the JSON header


def metadata(net: Network) -> dict[str, str]:
    """What is needed to rebuild the exact cfg + weights from the arrays alone."""
    meta = {
        "format": "darkweights",
        "format_version": FORMAT_VERSION,
        "cfg": net.cfg.text,
        "cfg_name": os.path.basename(net.path or "model.cfg"),
        "dialect": net.dialect.name,
        "dialect_evidence": net.dialect_choice.describe(),
        "header": json.dumps(net.header.as_dict()),
        "input": json.dumps({"width": net.width, "height": net.height, "channels": net.channels}),
    }
    if net.cutoff is not None:
        meta["cutoff"] = str(net.cutoff)
    return meta


def _format(path: PathLike, need: str) -> ArrayFormat:
    suffix = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(suffix)
    if fmt is None or getattr(fmt, need) is None:
        known = ", ".join(s for s, f in FORMATS.items() if getattr(f, need) is not None)
        raise ArrayError(f"unknown array format {suffix or '(no extension)'!r}: use {known}", file=path)
    return fmt


def export_arrays(net: Network, path: PathLike, *, layers: Iterable[int] | None = None) -> int:
    """Write the bound weights in the format of ``path``'s extension (:data:`FORMATS`); returns bytes written."""
    return _format(path, "write").write(net, path, layers)  # type: ignore[misc]


def _write_npz(net: Network, path: PathLike, layers: Iterable[int] | None) -> int:
    import numpy as np

    arrays = net.arrays(layers=layers)
    arrays[META_KEY] = np.array(json.dumps(metadata(net)))
    with atomic_output(path, inputs=[net.weights_path, net.path]) as f:
        np.savez(f, **arrays)
        return f.tell()


def _write_safetensors(net: Network, path: PathLike, layers: Iterable[int] | None) -> int:
    keep = set(layers) if layers is not None else None
    params = [p for p in net.params() if keep is None or p.layer in keep]
    # The data section starts with the .weights header as a uint8 tensor, so for a whole export it is
    # the .weights file byte for byte and can be copied in one kernel call, like `cp`.
    hsize = net.header.size
    entries: dict[str, Any] = {HEADER_KEY: {"dtype": "U8", "shape": [hsize], "data_offsets": [0, hsize]}}
    pos = hsize
    for p in params:
        entries[p.key] = {"dtype": "F32", "shape": list(p.shape), "data_offsets": [pos, pos + p.nbytes]}
        pos += p.nbytes
    entries["__metadata__"] = metadata(net)
    head = json.dumps(entries, separators=(",", ":")).encode()
    whole = keep is None and net.weights_path is not None and not any(p.transposed for p in params)
    # pad the JSON so the data starts 8-byte aligned; for big files 64 KiB aligned, which lets the
    # kernel copy whole pages (measured 1.5x faster than a misaligned copy on ext4)
    align = 1 << 16 if whole and pos > 16 << 20 else 8
    head += b" " * (-(8 + len(head)) % align)
    with atomic_output(path, inputs=[net.weights_path, net.path]) as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        if whole:
            with open(net.weights_path, "rb") as src:  # type: ignore[arg-type]
                _copy_exact(src, f, 0, pos)
        else:
            import numpy as np

            from .progress import bar

            f.write(net.header.to_bytes())
            arrays = net.arrays(layers=layers)
            for p in bar(params, total=len(params), desc="extract", unit="array"):
                f.write(np.ascontiguousarray(arrays[p.key], dtype=FLOAT).data)
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


def read_arrays(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata from ``.npz``, ``.safetensors`` (memory-mapped) or a PyTorch ``state_dict``
    saved with ``torch.save`` (``.pt``/``.pth``, loaded with ``weights_only=True``)."""
    return _format(path, "read").read(path)  # type: ignore[misc]


def _read_state_dict(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import torch  # optional dependency

    try:
        # weights_only: a user's file must never be able to run code on load
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise ArrayError(f"not a loadable PyTorch state_dict: {str(exc).splitlines()[0][:200]}", file=path) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArrayError("expected a state_dict (a mapping of names to tensors)", file=path)
    return {k: v.detach().numpy() for k, v in obj.items()}, {}


def _read_npz(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import zipfile

    import numpy as np

    try:
        # allow_pickle=False: an object array (a pickle inside the .npy) is refused, never unpickled
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with z:
            arrays = {}
            for k in z.files:
                _check_npy_size(z.zip, k, path)
                arrays[k] = z[k]
    except ArrayError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # what numpy and zipfile raise on corrupt archives, pickled objects, unknown compression
        what = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ArrayError(f"not a readable .npz file: {what}", file=path) from None
    meta: dict[str, str] = {}
    raw = arrays.pop(META_KEY, None)
    if raw is not None:
        try:
            meta = json.loads(str(raw))
        except ValueError:
            raise ArrayError(f"corrupt {META_KEY} metadata entry", file=path) from None
    return arrays, meta


def _check_npy_size(archive: Any, key: str, path: PathLike) -> None:
    """An .npy member's declared shape must fit its uncompressed size before numpy allocates it."""
    import tokenize

    import numpy as np

    name = key if key in archive.namelist() else key + ".npy"
    info = archive.getinfo(name)
    with archive.open(name) as f:
        version = np.lib.format.read_magic(f)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:
            raise ArrayError(f".npz member {name}: unsupported .npy version {version}", file=path)
        try:
            shape, _fortran, dtype = reader(f)
        except (ValueError, SyntaxError, EOFError, OSError, tokenize.TokenError) as exc:
            # numpy parses the header as a Python literal: corrupt text raises any of these
            raise ArrayError(f".npz member {name}: corrupt .npy header ({type(exc).__name__})", file=path) from None
        need = math.prod(shape) * dtype.itemsize
        if dtype.hasobject:
            raise ArrayError(f".npz member {name} holds Python objects (a pickle): refused, never unpickled", file=path)
        if need > info.file_size:
            raise ArrayError(
                f".npz member {name} declares shape {shape} {dtype} ({need:,} bytes) but holds "
                f"{info.file_size:,} bytes",
                file=path,
            )


def _read_safetensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import numpy as np

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ArrayError(f"file is {size} bytes, too short for a safetensors header", file=path, offset=0)
            (hlen,) = struct.unpack("<Q", raw_len)
            if hlen > min(MAX_HEADER, size - 8):
                raise ArrayError(f"header length {hlen} exceeds the file ({size} bytes)", file=path, offset=0)
            head = f.read(hlen)
    except OSError as exc:
        raise ArrayError(f"cannot read: {exc.strerror or exc}", file=path) from None
    try:
        entries = json.loads(head)
        if not isinstance(entries, dict):
            raise ValueError
    except ValueError:
        raise ArrayError("corrupt safetensors header (not a JSON object)", file=path, offset=8) from None
    meta = entries.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ArrayError("corrupt safetensors header: __metadata__ must map names to strings", file=path, offset=8)
    entries.pop(HEADER_KEY, None)
    start = 8 + hlen
    data_len = size - start
    arrays: dict[str, np.ndarray] = {}
    mm = np.memmap(path, dtype="u1", mode="c", offset=start, shape=(data_len,)) if data_len > 0 else np.zeros(0, "u1")
    for key, info in entries.items():
        try:
            dtype = np.dtype(DTYPES[info["dtype"]])
            shape = tuple(_exact_int(d) for d in info["shape"])
            b, e = (_exact_int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ArrayError(f"safetensors entry {key!r} is malformed or has an unsupported dtype", file=path) from None
        count = math.prod(shape)
        if not (0 <= b <= e <= data_len) or e - b != count * dtype.itemsize or min(shape, default=1) < 0:
            raise ArrayError(
                f"safetensors entry {key!r}: offsets {b}..{e} do not fit shape {shape} {info['dtype']} "
                f"within the {data_len}-byte data section",
                file=path,
                offset=start + b,
            )
        arrays[key] = mm[b:e].view(dtype).reshape(shape)
    spans = sorted(
        (int(info["data_offsets"][0]), int(info["data_offsets"][1]), k)
        for k, info in entries.items()
        if int(info["data_offsets"][1]) > int(info["data_offsets"][0])
    )
    for (_b0, e0, k0), (b1, _e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:  # safetensors forbids overlapping tensors: one would alias the other
            raise ArrayError(
                f"safetensors entries {k0!r} and {k1!r} overlap (bytes {b1}..{e0})", file=path, offset=start + b1
            )
    return arrays, dict(meta)


def _exact_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def network_from_metadata(
    meta: Mapping[str, str],
    cfg: PathLike | None = None,
    dialect: DialectLike | None = None,
    source: PathLike | None = None,
) -> Network:
    """Rebuild the network an array file was exported from (or use ``cfg`` if given), with the
    fork the exporter recorded unless ``dialect`` says otherwise."""
    from .network import load

    where = {"file": source} if source is not None else {}
    if not isinstance(meta, Mapping) or not all(isinstance(v, str) for v in meta.values()):
        raise ArrayError("corrupt metadata: expected a mapping of names to strings", **where)
    try:
        inp = json.loads(meta.get("input", "{}")) if meta.get("input") else {}
        if not isinstance(inp, dict):
            raise ValueError
        kwargs = {k: _exact_int(inp.get(k)) for k in ("width", "height", "channels") if inp.get(k)}
    except (ValueError, TypeError):
        raise ArrayError(f"corrupt metadata: input {meta.get('input', '')[:80]!r}", **where) from None
    d = dialect or meta.get("dialect") or "auto"
    if dialect is None and d != "auto" and d not in DIALECTS:
        raise ArrayError(f"corrupt metadata: unknown dialect {d[:40]!r}", **where)
    if cfg is not None:
        return load(cfg, dialect=d, **kwargs)
    if "cfg" not in meta:
        raise ArrayError("this array file has no embedded cfg: pass the cfg explicitly", **where)
    return load(meta.get("cfg_name", "embedded.cfg"), dialect=d, cfg_text=meta["cfg"], **kwargs)


def pack(
    arrays_path: PathLike,
    out: PathLike,
    *,
    cfg: PathLike | None = None,
    dialect: DialectLike | None = None,
    header: Any = None,
) -> int:
    """Arrays (``.npz``/``.safetensors``) → ``.weights``: the way home after editing the numbers."""
    from .api import save_weights
    from .atomic import check_output
    from .errors import DarkweightsError

    if isinstance(out, (str, os.PathLike)):
        check_output(out, inputs=[arrays_path, cfg])
    arrays, meta = read_arrays(arrays_path)
    try:
        net = network_from_metadata(meta, cfg, dialect, source=arrays_path)
        hdr = header
        if hdr is None and meta.get("header"):
            hdr = json.loads(meta["header"])
        cutoff = int(meta["cutoff"]) if meta.get("cutoff") else None
        if cutoff is not None and cutoff < 0:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise ArrayError("corrupt metadata: header or cutoff", file=arrays_path) from None
    try:
        return save_weights(arrays, out, net=net, header=hdr, cutoff=cutoff)
    except DarkweightsError as exc:
        if exc.file is None:  # the arrays came from this file: say so
            exc.file = os.fspath(arrays_path)
        raise


class ArrayFormat(NamedTuple):
    """How one array-file format is written and read (``None``: not in that direction)."""

    write: Callable[[Network, PathLike, Iterable[int] | None], int] | None
    read: Callable[[PathLike], tuple[dict, dict]] | None


def _read_onnx(path: PathLike) -> tuple[dict, dict]:
    from .onnx.home import model_metadata, onnx_arrays, read_onnx

    proto = read_onnx(path)
    return onnx_arrays(proto), model_metadata(proto)


# file extension -> format: every command and API that takes an array file dispatches here
FORMATS: dict[str, ArrayFormat] = {
    ".npz": ArrayFormat(_write_npz, _read_npz),
    ".safetensors": ArrayFormat(_write_safetensors, _read_safetensors),
    ".pt": ArrayFormat(None, _read_state_dict),  # a torch.save'd state_dict, loaded with weights_only=True
    ".pth": ArrayFormat(None, _read_state_dict),
    ".onnx": ArrayFormat(None, _read_onnx),  # the initializers of a darkweights export (write: darkweights export)
}
