"""The ``.weights`` file: header, validated memory-mapped reader, atomic writer (§1).

The body is a bare concatenation of little-endian float32 arrays whose layout only the
cfg defines, so everything here works from a list of :class:`Param` records computed by
:meth:`darkweights.network.Network.layout`. Sizes are checked against the file before
anything is mapped, and nothing is allocated from a size read out of the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, NamedTuple, Union

from . import dialects
from .dialects import DialectLike
from .errors import ArrayError, DarkweightsError, WeightsError

if TYPE_CHECKING:
    import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
# a weights file on disk, or one already in memory (bytes, bytearray, memoryview, mmap ...)
Source = PathLike | bytes | bytearray | memoryview
FLOAT = "<f4"  # numpy is imported only where arrays are touched: opening and validating stay fast


class Header(NamedTuple):
    """``major, minor, revision`` (int32) then ``seen`` (uint32 or uint64, §1.3)."""

    major: int = 0
    minor: int = 2
    revision: int = 5
    seen: int = 0
    seen_bytes: int = 8

    @property
    def size(self) -> int:
        return 12 + self.seen_bytes

    @property
    def transpose(self) -> bool:
        """Connected weights stored ``[inputs][outputs]`` (legacy files, §1.4)."""
        return self.major > 1000 or self.minor > 1000

    @staticmethod
    def seen_width(major: int, minor: int, dialect: DialectLike = dialects.DEFAULT) -> int:
        wide = major * 10 + minor >= 2
        if dialects.get(dialect).seen_64bit_needs_small_version:
            wide = wide and major < 1000 and minor < 1000
        return 8 if wide else 4

    @classmethod
    def for_dialect(cls, dialect: DialectLike = dialects.DEFAULT, seen: int = 0) -> Header:
        """What the fork's ``save_weights`` writes: AB/HK ``0.2.5``, pjreddie ``0.2.0``."""
        return cls(*dialects.get(dialect).header, seen, 8)

    @classmethod
    def make(
        cls, major: int, minor: int, revision: int, seen: int = 0, dialect: DialectLike = dialects.DEFAULT
    ) -> Header:
        return cls(major, minor, revision, seen, cls.seen_width(major, minor, dialect))

    @classmethod
    def parse(cls, data: bytes, dialect: DialectLike = dialects.DEFAULT, path: PathLike | None = None) -> Header:
        if len(data) < 12:
            raise WeightsError(f"file is {len(data)} bytes, shorter than the 12-byte version header", file=path)
        major, minor, revision = struct.unpack("<iii", data[:12])
        width = cls.seen_width(major, minor, dialect)
        if len(data) < 12 + width:
            raise WeightsError(
                f"header needs {12 + width} bytes (version {major}.{minor}), file has {len(data)}",
                file=path,
                offset=len(data),
            )
        seen = struct.unpack("<Q" if width == 8 else "<I", data[12 : 12 + width])[0]
        return cls(major, minor, revision, seen, width)

    @classmethod
    def coerce(
        cls,
        value: Header | Mapping | Sequence[int] | None,
        dialect: DialectLike = dialects.DEFAULT,
        *,
        what: str = "header",
        file: PathLike | None = None,
        error: type[DarkweightsError] = ArrayError,
    ) -> Header | None:
        """A :class:`Header` from a Header, a dict of :meth:`as_dict` or ``(major, minor, revision[, seen])``:
        each field a 32-bit int, ``seen`` unsigned and within the width the version gives it (4 bytes below
        0.2 (§1.3), else 8). ``None`` stays ``None``; anything else is an ``error`` naming ``what`` and ``file``."""
        if value is None:
            return None
        try:
            if isinstance(value, Header):
                vals = [value.major, value.minor, value.revision, value.seen]
            elif isinstance(value, Mapping):
                vals = [value["major"], value["minor"], value["revision"], value.get("seen", 0)]
            elif isinstance(value, (str, bytes)):
                raise TypeError
            else:
                vals = list(value)
                vals += [0] * (len(vals) == 3)
            if len(vals) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
                raise TypeError
        except (TypeError, KeyError, AttributeError):
            raise error(
                f"{what} {value!r:.80}: expected major, minor, revision[, seen] (integers)", file=file
            ) from None
        major, minor, revision, seen = vals
        if not all(-(2**31) <= v < 2**31 for v in (major, minor, revision)):
            raise error(f"{what}: version {major}.{minor}.{revision} does not fit 32-bit ints", file=file)
        width = cls.seen_width(major, minor, dialect)
        if not 0 <= seen < 1 << (8 * width):
            raise error(
                f"{what}: seen={seen} does not fit the {width}-byte field that version {major}.{minor} gives it "
                f"(0..{(1 << (8 * width)) - 1})",
                file=file,
            )
        return cls(major, minor, revision, seen, width)

    def to_bytes(self) -> bytes:
        return struct.pack("<iii", self.major, self.minor, self.revision) + struct.pack(
            "<Q" if self.seen_bytes == 8 else "<I", self.seen
        )

    def as_dict(self) -> dict:
        return {
            "major": self.major,
            "minor": self.minor,
            "revision": self.revision,
            "seen": self.seen,
            "header_bytes": self.size,
            "transpose": self.transpose,
        }


def layer_name(index: int) -> str:
    """A layer's stable name: ``layer_012`` (fixture outputs, graph outputs, export-name prefix)."""
    return f"layer_{index:03d}"


def export_key(index: int, name: str) -> str:
    """The stable export name of one stored array: ``layer_012.biases``, ``layer_003.wf.weights``."""
    return f"{layer_name(index)}.{name}"


def parse_key(key: str) -> tuple[int, str]:
    """``"layer_012.biases"`` -> ``(12, "biases")`` (the inverse of :func:`export_key`)."""
    head, _, name = key.partition(".")
    if not (head.startswith("layer_") and head[6:].isdigit() and name):
        raise ArrayError(f"{key!r} is not an export name like layer_012.biases")
    return int(head[6:]), name


class Param(NamedTuple):
    """One stored array placed in a file: the format as data, shared by every reader and writer."""

    key: str  # stable export name, "layer_012.biases"
    layer: int
    name: str  # Darknet's name within the layer, "biases", "input_layer.weights"
    role: str
    shape: tuple[int, ...]  # as Darknet holds it in memory
    offset: int  # absolute byte offset in the file
    transposed: bool = False  # stored as shape[::-1] (connected weights in legacy files)
    torch: str = ""  # PyTorch state_dict key, "layers.12.bn.running_var"

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return 4 * self.count

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    @property
    def stored_shape(self) -> tuple[int, ...]:
        return self.shape[::-1] if self.transposed else self.shape


def sniff(head: bytes) -> str | None:
    """Recognise files that are commonly saved as ``.weights`` by mistake."""
    text = head.lstrip()[:64].lower()
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights (run `git lfs pull` or download the real file)"
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return "an HTML page (a download link that returned a web page instead of the file)"
    if text.startswith(b"[net]") or text.startswith(b"[network]"):
        return "a Darknet .cfg text, not the .weights (are the two arguments swapped?)"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (unpack it first)"
    if head[:2] == b"\x1f\x8b":
        return "a gzip archive (unpack it first)"
    return None


def as_buffer(source: object) -> memoryview | None:
    """A read-only byte view of an in-memory weights file; ``None`` for a path."""
    if isinstance(source, (str, os.PathLike)):
        return None
    try:
        return memoryview(source).cast("B").toreadonly()  # type: ignore[arg-type]
    except TypeError:
        raise WeightsError(f"weights must be a path or a bytes-like object, not {type(source).__name__}") from None


def source_name(source: object) -> str:
    """How messages name a source: its path, or ``<N bytes in memory>``."""
    buf = as_buffer(source)
    return os.fspath(source) if buf is None else f"<{buf.nbytes:,} bytes in memory>"  # type: ignore[arg-type]


def read_header(source: Source, dialect: DialectLike = dialects.DEFAULT) -> tuple[Header, int]:
    """Header and total file size, with a clear error for non-weights files."""
    buf = as_buffer(source)
    name = source_name(source)
    if buf is not None:
        size, head = buf.nbytes, bytes(buf[:64])
    else:
        try:
            size = os.path.getsize(source)  # type: ignore[arg-type]
            with open(source, "rb") as f:  # type: ignore[arg-type]
                head = f.read(64)
        except OSError as exc:
            raise WeightsError(f"cannot read weights: {exc.strerror or exc}", file=name) from None
    what = sniff(head)
    if what:
        raise WeightsError(f"this file is {what}", file=name, offset=0)
    header = Header.parse(head, dialect, name)
    if not (0 <= header.major < 1 << 16 and 0 <= header.minor < 1 << 16):
        raise WeightsError(
            f"implausible version {header.major}.{header.minor}.{header.revision} in the header: "
            "not a Darknet weights file",
            file=name,
            offset=0,
        )
    return header, size


def peek_revision(source: Source | None) -> int | None:
    """The revision field of a 0.2.x header, without validating the file (``None`` when unreadable):
    the evidence ``dialect="auto"`` weighs before the cfg is parsed."""
    if source is None:
        return None
    try:
        buf = as_buffer(source)
        if buf is not None:
            head = bytes(buf[:12])
        else:
            with open(source, "rb") as f:  # type: ignore[arg-type]
                head = f.read(12)
    except (OSError, WeightsError):
        return None
    if len(head) < 12:
        return None
    major, minor, revision = struct.unpack("<iii", head)
    return revision if (major, minor) == (0, 2) else None


def read_floats(source: Source, offset: int, count: int) -> array:
    """A few floats without numpy (plausibility checks on open)."""
    out = array("f")
    buf = as_buffer(source)
    if buf is not None:
        out.frombytes(buf[offset : offset + 4 * count])
    else:
        with open(source, "rb") as f:  # type: ignore[arg-type]
            f.seek(offset)
            out.frombytes(f.read(4 * count))
    if out.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte C floats
        raise WeightsError("this platform's C float is not 32-bit")
    return out


def map_body(source: Source, header: Header, nfloats: int) -> np.ndarray:
    """A float32 view of the body (sizes already checked), never a copy.

    A file is memory-mapped copy-on-write: views are writable (PyTorch can train on them in
    place) but the file on disk is never modified; pages are only copied when written to.
    An in-memory source is viewed read-only, so it is never modified either.
    """
    import numpy as np

    if nfloats == 0:
        return np.zeros(0, FLOAT)
    buf = as_buffer(source)
    if buf is not None:
        return np.frombuffer(buf, dtype=FLOAT, count=nfloats, offset=header.size)
    return np.memmap(source, dtype=FLOAT, mode="c", offset=header.size, shape=(nfloats,))


def view(body: np.ndarray, header: Header, p: Param) -> np.ndarray:
    """Zero-copy view of one parameter in Darknet's in-memory shape."""
    start = (p.offset - header.size) // 4
    arr = body[start : start + p.count].reshape(p.stored_shape)
    return arr.T if p.transposed else arr


# ---------------------------------------------------------------------------------------------
# Writing


def atomic_output(path: PathLike, mode: str = "wb", **options: object):
    """:func:`darkweights.atomic.atomic_output` (imported when a file is written, not at import)."""
    from .atomic import atomic_output as atomic

    return atomic(path, mode, **options)  # type: ignore[arg-type]


@contextlib.contextmanager
def output(
    dest: PathLike | IO[bytes], *, force: bool | None = None, inputs: Iterable[PathLike | None] = ()
) -> Iterator[IO]:
    """Where writers write: a path (atomically, see :func:`darkweights.atomic.atomic_output`) or an
    open binary file."""
    if hasattr(dest, "write"):
        yield dest  # type: ignore[misc]
    else:
        with atomic_output(dest, force=force, inputs=inputs) as f:  # type: ignore[arg-type]
            yield f


def as_float32(value: object, p: Param, source: str = "", allow_nonfinite: bool = False) -> np.ndarray:
    """Validate one array for writing: numeric, the expected shape, finite (unless ``allow_nonfinite``)."""
    import numpy as np

    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()  # type: ignore[attr-defined]
    where = f"{source}: " if source else ""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists, objects numpy cannot convert
        raise ArrayError(f"{where}{p.key} is not an array: {str(exc).splitlines()[0][:120]}", layer=p.layer) from None
    if arr.dtype.kind not in "fiub":
        raise ArrayError(f"{where}{p.key} has dtype {arr.dtype}, expected float32", layer=p.layer)
    if tuple(arr.shape) != tuple(p.shape):
        raise ArrayError(f"{where}{p.key} has shape {tuple(arr.shape)}, expected {tuple(p.shape)}", layer=p.layer)
    arr = arr.astype(FLOAT, copy=False)
    if not allow_nonfinite and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ArrayError(f"{where}{p.key} contains {bad} NaN/Inf values; Darknet would propagate them", layer=p.layer)
    return arr


def write_stream(
    dest: PathLike | IO[bytes],
    header: Header,
    items: Iterable[tuple[Param, np.ndarray]],
    expected: int | None = None,
    inputs: Iterable[PathLike | None] = (),
) -> int:
    """Write header + (already validated) arrays, in the given order, to a path (atomically) or a file."""
    import numpy as np

    from .progress import bar

    total = header.size
    with output(dest, inputs=inputs) as f, bar(total=expected, desc="write", unit="B", unit_scale=True) as progress:
        f.write(header.to_bytes())
        for p, arr in items:
            data = arr.T if p.transposed else arr
            f.write(np.ascontiguousarray(data, dtype=FLOAT).data)
            total += p.nbytes
            progress.update(p.nbytes)
    return total


def write_weights(
    dest: PathLike | IO[bytes],
    header: Header,
    params: Sequence[Param],
    arrays: Mapping[str, object],
    source: str = "",
    inputs: Iterable[PathLike | None] = (),
    allow_nonfinite: bool = False,
) -> int:
    """Validate every array first, then write header + arrays atomically. Returns bytes written."""
    missing = [p.key for p in params if p.key not in arrays]
    if missing:
        first = next(p for p in params if p.key == missing[0])
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ArrayError(
            f"{source + ': ' if source else ''}array {missing[0]} (shape {first.shape}) is missing{more}",
            layer=first.layer,
        )
    checked = [as_float32(arrays[p.key], p, source, allow_nonfinite) for p in params]
    return write_stream(dest, header, zip(params, checked), expected=sum(p.nbytes for p in params), inputs=inputs)
