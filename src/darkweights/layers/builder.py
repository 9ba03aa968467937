"""``Builder``: replays Darknet's parser (``parse_network_cfg_custom``) over the sections.

Each layer's input is the previous layer's output; layers call back into the builder to read
their options with the fork's rules, resolve the indexes of the layers they read, and check
their activation. It lives with the catalogue so that a layer can be built and tested without
:mod:`darkweights.network`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..cfg import CfgFile, Options, Section
from ..dialects import Dialect
from ..errors import DarkweightsWarning, ShapeError, did_you_mean

if TYPE_CHECKING:
    from .base import Layer


class Builder:
    """The parser's state while the layers of one cfg are built, under one fork's rules."""

    def __init__(self, cfg: CfgFile, dialect: Dialect) -> None:
        self.cfg = cfg
        self.dialect = dialect
        self.path = cfg.path
        self.strict = dialect.strict_syntax
        self.layers: list[Layer] = []
        self.ignored: list[str] = []  # "key=value (line N)" of options this fork would not read
        self._unread: dict[type, frozenset[str]] = {}

    def options(self, section: Section, index: int | None = None, unread: frozenset[str] = frozenset()) -> Options:
        """``section``'s options under this fork's rules; ``unread``: keys its parser never reads there."""
        return Options(section, path=self.path, strict=self.strict, layer=index, absent=unread)

    def unread(self, family: type[Layer]) -> frozenset[str]:
        """The options this fork never reads in a ``family`` section: the family's own and those of every section."""
        keys = self._unread.get(family)
        if keys is None:
            keys = self._unread[family] = family.unread_by(self.dialect.name) | self.dialect.unread_everywhere
        return keys

    def keep_float_output(self, *indexes: int) -> None:
        """AB ``parse_network_cfg_custom``: layers read by a route, shortcut, scale_channels or sam lose their
        ``use_bin_output`` (an xnor layer's binary output)."""
        for i in indexes:
            self.layers[i].use_bin_output = False

    def report_unused(self, opts: Options) -> None:
        for opt in opts.unused():
            if self.strict:
                raise opts.error(
                    f"option {opt.key}={opt.value} is unused or invalid in [{opts.section.name}] "
                    f"(hank-ai rejects unknown keys){did_you_mean(opt.key, opts.asked - {opt.key})}",
                    opt,
                )
            dup = opts.section.find(opt.key)
            if dup is not None and dup is not opt:
                why = f"duplicate of line {dup.line}, the first one wins"
            else:
                why = "not an option of this section" + did_you_mean(opt.key, opts.asked - {opt.key})
                self.ignored.append(f"{opt.key}= (line {opt.line})")
            warnings.warn(
                f"{self.path}:{opt.line}: layer {opts.layer} [{opts.section.name}]: unused option "
                f"{opt.key}={opt.value} ({why})",
                DarkweightsWarning,
                stacklevel=4,
            )

    def resolve(self, value: int, current: int, opts: Options, key: str) -> int:
        """Relative (negative) or absolute layer index; must name an already-parsed layer."""
        index = current + value if value < 0 else value
        if not 0 <= index < current:
            raise opts.error(
                f"{key} refers to layer {value} -> {index}, which is not an earlier layer (this is layer {current})",
                opts.section.find(key),
                ShapeError,
            )
        return index

    def activation(self, opts: Options, default: str, layer: Layer) -> str:
        name = opts.str("activation", default) or default
        known = self.dialect.activations
        if name not in known:
            raise opts.error(
                f"unknown activation {name!r} (Darknet would silently use relu); "
                f"{self.dialect.title} knows: {', '.join(known)}{did_you_mean(name, known)}",
                opts.section.find("activation"),
            )
        return name
