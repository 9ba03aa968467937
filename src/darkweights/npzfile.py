"""``.npz`` array files: numpy's zip of ``.npy`` members, the metadata JSON in the ``__darkweights__`` entry.

Reading checks every size before anything is inflated: the zip directory's sizes against the archive
(deflate cannot expand more than ~1032:1), each member's ``.npy`` header against its zip entry, and, once
the metadata has named the network, each member's shape against the array the cfg places under that name.
A member the network does not store is never inflated. Pickles (object arrays) are refused, never loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

from .errors import ArrayError
from .limits import MAX_META_BYTES
from .meta import Metadata

if TYPE_CHECKING:
    import numpy as np

    from .network import Network

PathLike = Union[str, "os.PathLike[str]"]
META_KEY = "__darkweights__"  # the entry holding the metadata JSON
DEFLATE_RATIO = 1032  # the most deflate can expand (258-byte matches coded in 2 bits, 1 bit in practice)
# Without a cfg (an .npz of someone else's, no metadata) the archive alone bounds what is inflated: float
# weights compress little (np.savez stores them, savez_compressed gains ~10%), so more than 64x is a bomb.
UNPLANNED_RATIO = 64
UNPLANNED_BYTES = 64 << 20


def write(net: Network, path: PathLike, *, layers: Iterable[int] | None = None, arrays: Any = None) -> int:
    """The bound arrays (or ``arrays``, export names) and the metadata as an ``.npz``; returns bytes written."""
    import json

    import numpy as np

    from . import weightsfile  # its atomic_output: one name every writer opens outputs through

    entries = dict(net.arrays(layers=layers) if arrays is None else arrays)
    entries[META_KEY] = np.array(json.dumps(Metadata.of(net).to_strings()))
    with weightsfile.atomic_output(path, inputs=[net.weights_path, net.path]) as f:
        np.savez(f, **entries)
        return f.tell()


def read(path: PathLike, plan: Callable[[Metadata], Network | None]) -> tuple[dict[str, np.ndarray], Metadata]:
    """Arrays and metadata; ``plan(metadata)`` names the network whose shapes the members must have."""
    import zipfile

    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic[:2] != b"PK":
            what = "a single .npy array" if magic[:4] == b"\x93NUM" else "not a zip archive"
            raise ArrayError(f"not a readable .npz file: {what}", file=where, offset=0)
        with zipfile.ZipFile(path) as z:
            members = {_key(info.filename): info for info in z.infolist() if not info.is_dir()}
            size = os.path.getsize(path)
            for info in members.values():
                _check_entry(info, size, where)
            raw_meta = None
            if META_KEY in members:
                raw_meta = _read_member(z, members[META_KEY], where, limit=4 * MAX_META_BYTES + 1024, text=True)
            meta = _parse_meta(raw_meta, where)
            net = plan(meta)
            expect = expected_shapes(net) if net is not None else None
            if expect is None:  # no cfg to hold the sizes against: bound what the archive may inflate to
                declared = sum(i.file_size for k, i in members.items() if k != META_KEY)
                if declared > max(UNPLANNED_RATIO * size, UNPLANNED_BYTES):
                    raise ArrayError(
                        f"its members inflate to {declared:,} bytes from a {size:,}-byte archive and no cfg "
                        "says how large the arrays are: pass the cfg",
                        file=where,
                    )
            arrays = {}
            for key, info in members.items():
                if key == META_KEY or (expect is not None and key not in expect):
                    continue  # not an array of this network: never inflated
                arrays[key] = _read_member(z, info, where, expect=expect)
    except ArrayError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # what zipfile raises on corrupt archives (CRC, truncation), unknown compression, encryption
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) and exc.filename:
            raise
        what = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ArrayError(f"not a readable .npz file: {what}", file=where) from None
    return arrays, meta


def expected_shapes(net: Network) -> dict[str, tuple[int, ...]]:
    """Every name an array of ``net`` may have in a file (export and state_dict names) -> its shape."""
    out: dict[str, tuple[int, ...]] = {}
    for p in net.layout(mode="save"):
        out[p.key] = tuple(p.shape)
        if p.torch:
            out[p.torch] = tuple(p.shape)
    return out


def shape_error(key: str, shape: tuple, expected: tuple, file: str, offset: int | None = None) -> ArrayError:
    """An array whose declared shape is not the one the cfg gives it (refused before it is read)."""
    from .weightsfile import parse_key

    try:
        layer: int | None = parse_key(key)[0]
    except ArrayError:  # a state_dict name: layers.<i>.
        parts = key.split(".")
        layer = int(parts[1]) if len(parts) > 2 and parts[0] == "layers" and parts[1].isdigit() else None
    return ArrayError(
        f"{key} has shape {tuple(shape)}, expected {tuple(expected)}", file=file, offset=offset, layer=layer
    )


def _key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def _check_entry(info: Any, size: int, where: str) -> None:
    """A zip entry's declared sizes must be possible for this archive before any byte is inflated."""
    if info.compress_size > size:
        raise ArrayError(
            f".npz member {info.filename} claims {info.compress_size:,} compressed bytes in a {size:,}-byte file",
            file=where,
            offset=info.header_offset,
        )
    stored = info.compress_type == 0
    bound = info.compress_size if stored else info.compress_size * DEFLATE_RATIO + 1024
    if info.file_size > bound:
        raise ArrayError(
            f".npz member {info.filename} claims {info.file_size:,} bytes from {info.compress_size:,} compressed "
            "(more than compression can expand): a zip bomb or a corrupt directory",
            file=where,
            offset=info.header_offset,
        )


def _read_member(
    z: Any,
    info: Any,
    where: str,
    *,
    expect: Mapping[str, tuple] | None = None,
    limit: int | None = None,
    text: bool = False,
) -> Any:
    """One ``.npy`` member, its header checked (size, dtype, shape against ``expect``) before its data."""
    import tokenize

    import numpy as np

    name, key = info.filename, _key(info.filename)
    if limit is not None and info.file_size > limit:
        raise ArrayError(
            f".npz member {name}: {info.file_size:,} bytes, more than metadata needs",
            file=where,
            offset=info.header_offset,
        )
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError:
            raise ArrayError(
                f".npz member {name} is not an .npy array", file=where, offset=info.header_offset
            ) from None
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:
            raise ArrayError(f".npz member {name}: unsupported .npy version {version}", file=where)
        try:
            shape, fortran, dtype = reader(f)
        except (ValueError, SyntaxError, EOFError, OSError, tokenize.TokenError) as exc:
            # numpy parses the header as a Python literal: corrupt text raises any of these
            raise ArrayError(f".npz member {name}: corrupt .npy header ({type(exc).__name__})", file=where) from None
        if dtype.hasobject:
            raise ArrayError(
                f".npz member {name} holds Python objects (a pickle): refused, never unpickled", file=where
            )
        if text != (dtype.kind == "U"):
            raise ArrayError(
                f".npz member {name} has dtype {dtype}, expected {'a string' if text else 'float32'}", file=where
            )
        if expect is not None and tuple(shape) != expect[key]:
            raise shape_error(key, shape, expect[key], where, info.header_offset)
        need = math.prod(shape) * dtype.itemsize
        if need > info.file_size:
            raise ArrayError(
                f".npz member {name} declares shape {shape} {dtype} ({need:,} bytes) but holds "
                f"{info.file_size:,} bytes",
                file=where,
            )
        arr = np.empty(shape, dtype, order="F" if fortran else "C")  # its size is checked above
        view = memoryview(arr.reshape(-1, order="A")).cast("B")  # type: ignore[arg-type]
        done = 0
        while done < need:
            n = f.readinto(view[done:])
            if not n:
                raise ArrayError(f".npz member {name} ends early: {done:,} of {need:,} bytes", file=where)
            done += n
    return str(arr) if text else arr


def _parse_meta(raw: str | None, where: str) -> Metadata:
    if raw is None:
        return Metadata(file=where)
    from .limits import bounded_json

    return Metadata.parse(bounded_json(raw, what=f"corrupt {META_KEY} metadata entry", file=where), file=where)
