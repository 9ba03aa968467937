"""Exceptions and warnings of darkweights.

Every error carries where it happened (file, cfg line, byte offset, layer) so the
CLI can print one line a user can act on, without a traceback.
"""

from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


class DarkweightsError(Exception):
    """Base class: a problem with the user's cfg, weights or arrays."""

    def __init__(
        self,
        message: str,
        *,
        file: PathLike | None = None,
        line: int | None = None,
        offset: int | None = None,
        layer: int | None = None,
        layer_type: str | None = None,
        evidence: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.offset = offset
        self.layer = layer
        self.layer_type = layer_type
        self.evidence = evidence  # a short fact for dialect="auto": "[l2norm] at line 40"

    def location(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        if self.offset is not None:
            parts.append(f"byte {self.offset}")
        if self.layer is not None:
            parts.append(f"layer {self.layer}" + (f" [{self.layer_type}]" if self.layer_type else ""))
        return ", ".join(parts)

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: {self.message}" if loc else self.message


def did_you_mean(word: str, candidates: object, show: str = "{!r}") -> str:
    """``"; did you mean 'yolov4-tiny'?"`` when one of ``candidates`` is close to ``word`` (difflib), else ``""``;
    ``show`` formats the suggestion (``"[{}]"`` for a section)."""
    import difflib

    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)  # type: ignore[call-overload]
    return f"; did you mean {show.format(close[0])}?" if close else ""


class CfgError(DarkweightsError):
    """Malformed cfg text, unknown section, bad option value."""


class ShapeError(DarkweightsError):
    """The cfg describes impossible geometry (Darknet would crash or compute garbage)."""


class WeightsError(DarkweightsError):
    """The .weights file does not fit the cfg, or is not a weights file at all."""


class ArrayError(DarkweightsError):
    """Arrays handed to the writer are missing, mis-shaped or not finite."""


class ImageError(DarkweightsError):
    """An image file that cannot be decoded (corrupt, truncated, too large, unknown format)."""


class OutputError(DarkweightsError, OSError):
    """An output that cannot or must not be written: it exists (without ``force``), it is an input, the disk
    is full (also an ``OSError``, what writing raised before)."""


class ArgumentError(DarkweightsError, ValueError, TypeError):
    """A bad argument to a library function (also a ``ValueError``/``TypeError``, what such code raised before)."""


class UnsupportedError(DarkweightsError):
    """A valid Darknet construct that this operation cannot handle (e.g. no torch module)."""


class DarkweightsWarning(UserWarning):
    """Something Darknet accepts silently but that is probably not what the user meant."""


class DatasetError(DarkweightsError):
    """A Darknet dataset that cannot be evaluated or trained on: a ``.data`` file, an image list or a label file
    that is missing, malformed or disagrees with the network (class counts)."""
