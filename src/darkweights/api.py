"""Top-level conveniences: ``save_weights`` from any source, the bundled default model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Union

from .dialects import DialectLike
from .errors import ArgumentError, ArrayError
from .network import Network, header_from, load
from .weightsfile import Header

if TYPE_CHECKING:
    from pathlib import Path

PathLike = Union[str, "os.PathLike[str]"]


class BundledModel(NamedTuple):
    cfg: Path
    weights: Path
    names: Path


def default_model() -> BundledModel:
    """Yolo-Fastest 1.1 (COCO, public domain), shipped as package data so the CLI works offline."""
    from pathlib import Path

    root = Path(__file__).resolve().parent / "data"
    return BundledModel(root / "yolo-fastest-1.1.cfg", root / "yolo-fastest-1.1.weights", root / "coco.names")


def arrays_by_key(net: Network, arrays: Mapping[str, Any], header: Header) -> dict[str, Any]:
    """Accept export names (``layer_012.weights``) or PyTorch state_dict names (``layers.12.conv.weight``)."""
    if not arrays:
        raise ArrayError("no arrays given")
    if any(k.startswith("layers.") for k in arrays):
        by_torch = {p.torch: p.key for p in net.layout(header, mode="save") if p.torch}
        out = {}
        for k, v in arrays.items():
            if k in by_torch:
                out[by_torch[k]] = v
        return out
    return dict(arrays)


def save_weights(
    source: Any,
    path: PathLike | IO[bytes],
    *,
    net: Network | None = None,
    cfg: PathLike | None = None,
    header: Header | Mapping | tuple | None = None,
    seen: int | None = None,
    dialect: DialectLike | None = None,
    cutoff: int | None = None,
) -> int:
    """Write a Darknet ``.weights`` file atomically; returns the number of bytes written.

    ``path`` may also be an open binary file (``sys.stdout.buffer``, ``io.BytesIO`` ...),
    which is written in place.

    ``source`` is a :class:`Network` with weights, a mapping of arrays (export names or a
    PyTorch ``state_dict``), or a model built by ``Network.to_torch()``. Every array is
    checked (present, shape, finite) before anything is written. The header defaults to the
    source file's, else what the dialect's Darknet writes (``0.2.5``, pjreddie ``0.2.0``).
    """
    if isinstance(source, Network):
        net = source
        arrays: Mapping[str, Any] | None = None
    elif hasattr(source, "state_dict") and hasattr(source, "network"):  # darkweights.torch model
        net = net or source.network
        arrays = source.state_dict()
    elif isinstance(source, Mapping):
        arrays = source
    else:
        raise ArgumentError(
            f"save_weights: cannot write {type(source).__name__}; pass a Network, a mapping of arrays or a state_dict"
        )
    if net is None:
        if cfg is None:
            raise ArrayError("save_weights needs the network layout: pass net= or cfg=")
        net = load(cfg, dialect=dialect or "auto")
    hdr = header_from(header, net.dialect) or (net.header if net.has_weights else Header.for_dialect(net.dialect))
    if seen is not None:
        hdr = hdr._replace(seen=int(seen))
    if arrays is not None:
        arrays = arrays_by_key(net, arrays, hdr)
    return net.save_weights(path, arrays=arrays, header=hdr, cutoff=cutoff)
