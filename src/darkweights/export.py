"""One I/O surface: every file format darkweights reads or writes is one entry of :data:`FORMATS`.

=============== ====================================== ===========================================
suffix          read                                   write
=============== ====================================== ===========================================
``.weights``    the cfg's layout over the file          Darknet's ``save_weights``, byte for byte
``.npz``        :mod:`darkweights.npzfile`              same
``.safetensors`` :mod:`darkweights.safetensorsfile`     same
``.pt``/``.pth`` :mod:`darkweights.ptfile` (weights_only) same (state_dict names)
``.onnx``       :mod:`darkweights.onnx.home`            :func:`darkweights.onnx.export_onnx`
=============== ====================================== ===========================================

Array names are the stable export keys (``layer_012.biases``, ``layer_104.input_layer.weights``...), each
array in Darknet's in-memory shape (conv weights ``(n, c/groups, k, k)`` = ``Conv2d.weight``); ``.pt`` files use
the state_dict names. Every format carries the same :class:`~darkweights.meta.Metadata` (cfg text, dialect,
header, input size), so the file alone turns back into the exact cfg + ``.weights`` pair (:func:`pack`).

A reader takes the path and a *plan*: once it has read the metadata, it calls ``plan(metadata)``, which
returns the network the arrays must fit (or ``None``); every array's declared shape is then checked against
that network before its data is read, inflated or allocated. :func:`save` is the one verb that writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Union

from . import npzfile, ptfile, safetensorsfile
from .dialects import DialectLike
from .errors import ArgumentError, ArrayError, DarkweightsError
from .meta import FORMAT_VERSION, Keys, Metadata  # noqa: F401  (FORMAT_VERSION re-exported)
from .network import Network
from .npzfile import META_KEY  # noqa: F401  (re-exported: the npz metadata entry's name)
from .safetensorsfile import DTYPES, HEADER_KEY, MAX_HEADER  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
Plan = Callable[[Metadata], "Network | None"]
Arrays = dict  # name -> numpy array


class Format(NamedTuple):
    """How one file format is read and written (``None``: not in that direction)."""

    name: str
    read: Callable[[PathLike, Plan], tuple[Arrays, Metadata]] | None
    write: Callable[..., int] | None  # write(net, dest, *, layers=None, arrays=None, **options) -> bytes


def _read_weights(path: PathLike, plan: Plan) -> tuple[Arrays, Metadata]:
    net = plan(Metadata(file=os.fspath(path)))
    if net is None:
        raise ArrayError("a .weights file needs its cfg: pass the cfg", file=path)
    net.load_weights(path)
    return net.arrays(), Metadata.of(net)


def _write_weights(
    net: Network, dest: PathLike | IO[bytes], *, layers: Iterable[int] | None = None, arrays: Any = None, **options: Any
) -> int:
    if layers is not None:
        raise ArgumentError("a .weights file holds every layer up to a cutoff: use cutoff=, not layers=")
    return net.save_weights(dest, arrays=arrays, **options)


def _read_onnx(path: PathLike, plan: Plan) -> tuple[Arrays, Metadata]:
    from .onnx.home import read

    return read(path, plan)


def _write_onnx(net: Network, dest: PathLike, *, layers: Any = None, arrays: Any = None, **options: Any) -> int:
    from .onnx.exporter import export_onnx

    if layers is not None or arrays is not None:
        raise ArgumentError("an ONNX export holds the network's own arrays: no layers= or arrays=")
    return export_onnx(net, dest, **options).bytes


# file extension -> format: every command and API that reads or writes a model file dispatches here
FORMATS: dict[str, Format] = {
    ".weights": Format("Darknet weights", _read_weights, _write_weights),
    ".npz": Format("numpy npz", npzfile.read, npzfile.write),
    ".safetensors": Format("safetensors", safetensorsfile.read, safetensorsfile.write),
    ".pt": Format("PyTorch state_dict", ptfile.read, ptfile.write),
    ".pth": Format("PyTorch state_dict", ptfile.read, ptfile.write),
    ".onnx": Format("ONNX model", _read_onnx, _write_onnx),
}
ARRAY_FILES = tuple(s for s in FORMATS if s != ".weights")  # the formats that carry their cfg


def format_of(path: PathLike | IO[bytes], need: str = "read", *, among: Iterable[str] = FORMATS) -> Format:
    """The format of ``path`` by its extension, one of ``among``. Writing, an open binary file or an extension
    no format has (Darknet's own names: ``darknet53.conv.74``, ``yolov4.backup``) is ``.weights``."""
    if hasattr(path, "write"):
        return FORMATS[".weights"]
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    allowed = tuple(among)
    if need == "write" and suffix not in FORMATS and ".weights" in allowed:
        suffix = ".weights"
    fmt = FORMATS.get(suffix) if suffix in allowed else None
    if fmt is None or getattr(fmt, need) is None:
        known = ", ".join(s for s in allowed if getattr(FORMATS[s], need) is not None)
        raise ArrayError(f"unknown array format {suffix or '(no extension)'!r}: use {known}", file=path)
    return fmt


def metadata(net: Network) -> dict[str, str]:
    """What is needed to rebuild the exact cfg + weights from the arrays alone (:class:`Metadata` as strings)."""
    return Metadata.of(net).to_strings()


def read_arrays(path: PathLike, plan: Plan | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata (as strings) of an array file. Without ``plan`` the embedded cfg, when there is
    one, bounds every array's shape before it is read."""
    arrays, meta = read_model_file(path, plan or _embedded_network)
    return arrays, dict(meta.raw) if meta.file is not None else meta.to_strings()  # as the file holds them


def read_model_file(path: PathLike, plan: Plan) -> tuple[dict[str, np.ndarray], Metadata]:
    """Arrays and the validated :class:`Metadata` of any file in :data:`FORMATS`."""
    return format_of(path, "read").read(path, plan)  # type: ignore[misc]


def _embedded_network(meta: Metadata) -> Network | None:
    return meta.network() if meta.cfg is not None else None


def export_arrays(net: Network, path: PathLike, *, layers: Iterable[int] | None = None) -> int:
    """Write the bound weights as an array file (``.npz``, ``.safetensors``, ``.pt``), by ``path``'s extension;
    returns bytes written."""
    import warnings

    from .errors import DarkweightsWarning
    from .policy import nonfinite

    suffix = os.path.splitext(os.fspath(path))[1].lower()
    format_of(path, "write", among=(s for s in ARRAY_FILES if s != ".onnx"))
    keep = set(layers) if layers is not None else None
    bad = [b for b in nonfinite(net) if keep is None or b[1] in keep] if net.has_weights else []
    if bad:  # written as they are (a copy of the file), but said
        warnings.warn(
            f"{net.weights_path or 'weights'}: {sum(b[2] for b in bad):,} NaN/Inf values in {len(bad)} arrays "
            f"(first: {bad[0][0]}) are written as they are",
            DarkweightsWarning,
            stacklevel=2,
        )
    return save(net, path, layers=layers, format=suffix)


def network_from_metadata(
    meta: Mapping[str, str] | Metadata,
    cfg: PathLike | None = None,
    dialect: DialectLike | None = None,
    source: PathLike | None = None,
) -> Network:
    """Rebuild the network an array file was exported from (or use ``cfg`` if given), with the fork the
    exporter recorded unless ``dialect`` says otherwise."""
    record = meta if isinstance(meta, Metadata) else Metadata.parse(meta, file=source)
    return record.network(cfg, dialect)


def pack(
    source: PathLike,
    out: PathLike | IO[bytes],
    *,
    cfg: PathLike | None = None,
    dialect: DialectLike | None = None,
    header: Any = None,
    allow_fused: bool = False,
    allow_nonfinite: bool = False,
) -> int:
    """Any model file of :data:`FORMATS` → ``.weights``: the way home after editing the numbers.

    The network is the embedded cfg's (or ``cfg``'s); every array is checked against it before it is read.
    A ``--fp16`` ONNX export is refused (its float32 values are gone); a ``--fuse-bn`` one unless
    ``allow_fused``, which writes the folded weights with an identity BN (scales 1, mean 0, variance ``1 - eps``,
    so that Darknet's normalisation is a no-op up to float rounding). NaN/Inf values are refused unless
    ``allow_nonfinite`` (written as they are: what ``extract`` read)."""
    from .api import arrays_by_key
    from .atomic import check_output
    from .weightsfile import Header

    if isinstance(out, (str, os.PathLike)):
        check_output(out, inputs=[source, cfg])
    where = os.fspath(source)
    chosen: list[Network] = []

    def plan(meta: Metadata) -> Network:
        if meta.precision == "float16":
            raise ArrayError(
                "a --fp16 export holds float16 weights: the original float32 values cannot be recovered", file=where
            )
        if meta.fused and not allow_fused:
            raise ArrayError(
                "exported with BN folded into the convolutions: the BN statistics cannot be recovered. "
                "--allow-fused writes the folded weights with an identity BN",
                file=where,
            )
        if cfg is None and meta.cfg is None:
            raise ArrayError("this file has no embedded cfg: pass the cfg", file=where)
        chosen.append(meta.network(cfg, dialect))
        return chosen[0]

    arrays, meta = read_model_file(source, plan)
    net = chosen[0]
    hdr = Header.coerce(header, net.dialect, what="--header", error=ArgumentError) or meta.header_for(net.dialect)
    try:
        keyed = arrays_by_key(net, arrays, hdr or net.header)
        if meta.fused:
            keyed = _identity_bn(net, keyed)
        if format_of(source) is FORMATS[".onnx"]:  # an export holds every array: a missing one is another model
            missing = [p.key for p in net.layout(mode="save", cutoff=meta.cutoff) if p.key not in keyed]
            if missing:
                raise ArrayError(
                    f"the model has no initializer {missing[0]!r} ({len(missing)} of {len(net.params())} "
                    "arrays missing): was it exported by darkweights from this cfg?",
                    file=where,
                )
        return save(keyed, out, net=net, header=hdr, cutoff=meta.cutoff, allow_nonfinite=allow_nonfinite)
    except DarkweightsError as exc:
        if exc.file is None:  # the arrays came from this file: say so
            exc.file = where
        raise


def _identity_bn(net: Network, arrays: dict) -> dict:
    """Fill the BN arrays a fused export lacks so that Darknet's normalisation is the identity."""
    import numpy as np

    out = dict(arrays)
    eps, inside = net.dialect.bn_eps, net.dialect.bn_eps_inside_sqrt
    values = {"scales": 1.0, "rolling_mean": 0.0, "rolling_variance": 1.0 - eps if inside else (1.0 - eps) ** 2}
    for p in net.params():
        leaf = p.name.rsplit(".", 1)[-1]
        if p.key not in out and leaf in values:  # sqrt(var + eps) == 1 (pjreddie: sqrt(var) + 1e-6 == 1)
            out[p.key] = np.full(p.shape, values[leaf], np.float32)
    return out


def save(
    source: Any,
    path: PathLike | IO[bytes],
    *,
    net: Network | None = None,
    cfg: PathLike | None = None,
    dialect: DialectLike | None = None,
    layers: Iterable[int] | None = None,
    format: str | None = None,
    **options: Any,
) -> int:
    """Write ``source`` in the format of ``path``'s extension or ``format`` (a key of :data:`FORMATS`; an open
    binary file gets ``.weights``), atomically; returns the bytes written. The one verb: ``net.save(path)``,
    ``darkweights.save(model.state_dict(), "tuned.weights", net=net)``, ``darkweights.save(net, "x.onnx")``.

    ``source`` is a :class:`Network` with weights, a mapping of arrays (export names or a PyTorch
    ``state_dict``) with ``net=`` or ``cfg=``, or a model built by ``Network.to_torch()``. Every array is
    checked (present, shape, finite) before anything is written. ``.weights`` options: ``header=``, ``seen=``,
    ``cutoff=``; ``.onnx`` options: those of :func:`darkweights.onnx.export_onnx`.
    """
    from .api import arrays_by_key
    from .network import load
    from .weightsfile import Header

    fmt = format_of(path, "write") if format is None else format_of("x" + format, "write")
    arrays: Mapping[str, Any] | None
    if isinstance(source, Network):
        net, arrays = source, None
    elif hasattr(source, "state_dict") and hasattr(source, "network"):  # darkweights.torch model
        net, arrays = net or source.network, source.state_dict()
    elif isinstance(source, Mapping):
        arrays = source
    else:
        raise ArgumentError(
            f"save: cannot write {type(source).__name__}; pass a Network, a mapping of arrays or a state_dict"
        )
    if net is None:
        if cfg is None:
            raise ArrayError("saving arrays needs the network layout: pass net= or cfg=")
        net = load(cfg, dialect=dialect or "auto")
    if fmt is FORMATS[".weights"]:
        header = Header.coerce(options.pop("header", None), net.dialect, error=ArgumentError)
        header = header or (net.header if net.has_weights else Header.for_dialect(net.dialect))
        seen = options.pop("seen", None)
        if seen is not None:
            header = Header.coerce(header._replace(seen=int(seen)), net.dialect, error=ArgumentError)
        options["header"] = header
    if arrays is not None:
        arrays = arrays_by_key(net, arrays, options.get("header") or net.header)
    return fmt.write(net, path, layers=layers, arrays=arrays, **options)  # type: ignore[misc]


__all__ = ["FORMATS", "Format", "Keys", "Metadata", "format_of", "pack", "read_arrays", "save", "export_arrays"]
