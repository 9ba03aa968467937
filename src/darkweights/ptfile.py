"""PyTorch ``.pt``/``.pth`` files: a ``torch.save``'d ``state_dict`` (``layers.<i>.conv.weight`` ...).

Read with ``torch.load(weights_only=True)``: a file that would need to run code to load is refused, never
run. darkweights writes ``{"state_dict": ..., "__darkweights__": metadata}`` so the file alone rebuilds the
cfg; a bare ``state_dict`` (any training script's) is read too, with the cfg given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Union

from .errors import ArrayError
from .meta import Metadata
from .npzfile import META_KEY, expected_shapes, shape_error

if TYPE_CHECKING:
    import numpy as np

    from .network import Network

PathLike = Union[str, "os.PathLike[str]"]


def write(net: Network, path: PathLike, *, layers: Iterable[int] | None = None, arrays: Any = None) -> int:
    """The bound arrays under their state_dict names, with the metadata; returns bytes written."""
    import torch

    from . import weightsfile  # its atomic_output: one name every writer opens outputs through

    keep = set(layers) if layers is not None else None
    source = net.arrays(layers=layers) if arrays is None else arrays
    state = {
        p.torch: torch.from_numpy(source[p.key].copy())
        for p in net.params()
        if p.torch and (keep is None or p.layer in keep) and p.key in source
    }
    with weightsfile.atomic_output(path, inputs=[net.weights_path, net.path]) as f:
        torch.save({"state_dict": state, META_KEY: Metadata.of(net).to_strings()}, f)
        return f.tell()


def read(path: PathLike, plan: Callable[[Metadata], Network | None]) -> tuple[dict[str, np.ndarray], Metadata]:
    """The state_dict's tensors as arrays (memory-mapped where the file allows) and the metadata."""
    import torch  # optional dependency

    where = os.fspath(path)
    obj = None
    for mmap in (True, False):  # mmap: the tensors stay in the file's pages (zip format only)
        try:
            # weights_only: a user's file must never be able to run code on load
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except OSError:
            raise
        except Exception as exc:  # torch raises many types for corrupt/unsafe files
            if mmap and "mmap can only be used" in str(exc):
                continue
            raise ArrayError(f"not a loadable PyTorch state_dict: {_why(exc)}", file=where) from None
    raw_meta = obj.pop(META_KEY, None) if isinstance(obj, dict) else None
    meta = Metadata.parse(raw_meta, file=where)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArrayError("expected a state_dict (a mapping of names to tensors)", file=where)
    net = plan(meta)
    expect = expected_shapes(net) if net is not None else None
    arrays = {}
    for k, v in obj.items():
        if expect is not None:
            if k not in expect:
                continue
            if tuple(v.shape) != expect[k]:
                raise shape_error(k, tuple(v.shape), expect[k], where)
        arrays[k] = v.detach().numpy()
    return arrays, meta


def _why(exc: BaseException) -> str:
    """torch's reason in one whole sentence (its messages run to several paragraphs)."""
    text = " ".join(str(exc).split())
    blocked = re.search(r"unsupported GLOBAL (\S+)", text)
    if blocked:
        return f"it needs the Python object {blocked.group(1)} to load, which would run code: refused (weights_only)"
    first = re.match(r"(.{1,300}?[.:])(\s|$)", text)
    return (first.group(1).rstrip(":") if first else text[:300]) or type(exc).__name__
