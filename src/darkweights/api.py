"""Top-level conveniences: the bundled default model, array names of either kind, ``save_weights``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Union

from .errors import ArrayError
from .network import Network
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


def save_weights(source: Any, path: PathLike | IO[bytes], **options: Any) -> int:
    """:func:`darkweights.save` in Darknet's ``.weights`` format whatever ``path``'s extension (the name
    before ``save`` took every format; same options: ``net=``, ``cfg=``, ``header=``, ``seen=``, ``dialect=``,
    ``cutoff=``)."""
    from .export import save

    return save(source, path, format=".weights", **options)
