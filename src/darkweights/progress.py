"""Progress bars for long work, drawn by tqdm when it is installed (the ``[progress]`` extra).

Silent unless all of: tqdm importable, stderr a terminal, not :func:`set_quiet` (``--quiet``),
and ``DARKWEIGHTS_PROGRESS`` not ``0``. ``DARKWEIGHTS_PROGRESS=1`` forces bars on a pipe, at once (tests).
Work that is short never shows a bar: tqdm waits ``delay`` seconds before drawing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

_quiet = False
DELAY = 1.0  # seconds before a bar appears: work shorter than this stays silent


def set_quiet(quiet: bool = True) -> None:
    """Turn every progress bar off (``--quiet``) or back on."""
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    """Whether bars would be drawn now."""
    forced = os.environ.get("DARKWEIGHTS_PROGRESS")
    if _quiet or forced == "0":
        return False
    if forced != "1" and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class _Silent:
    """What :func:`bar` returns when bars are off: accepts the same calls, draws nothing."""

    def __init__(self, iterable: Iterable | None = None) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self._iterable or ())

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def bar(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    unit_scale: bool = False,
) -> Any:
    """A tqdm bar over ``iterable`` (or updated by hand with ``.update(n)``), or a silent stand-in.

    ``unit="B", unit_scale=True`` shows bytes as kB/MB. Use as an iterable or a context manager.
    """
    if not enabled():
        return _Silent(iterable)
    from tqdm import tqdm

    forced = os.environ.get("DARKWEIGHTS_PROGRESS") == "1"
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        unit_divisor=1024 if unit == "B" else 1000,
        delay=0 if forced else DELAY,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
    )
