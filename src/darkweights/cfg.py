"""Darknet ``.cfg`` text: sections, options, and typed option values.

Two syntaxes exist (darknet-format.md §6):

* lenient (AlexeyAB, pjreddie: ``src/parser.c:read_cfg``, ``src/option_list.c:read_option``):
  every blank is removed from a line, whole-line ``#``/``;`` comments, first duplicate key
  wins, numbers are read with C ``atoi``/``atof`` (trailing garbage ignored);
* strict (hank-ai: ``src-lib/darknet_cfg.cpp``): lines trimmed, inline ``#`` comments, duplicate
  keys and unused keys fatal, numbers must consist of ``-.0123456789`` only.

Lenient mode here additionally understands inline ``# comments`` (Darknet would glue them
to the value); it warns where that changes what Darknet itself would read.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence

from . import dialects
from .dialects import Dialect, DialectLike
from .errors import CfgError, DarkweightsWarning, did_you_mean
from .limits import INT_MAX, MAX_CFG_BYTES, MAX_LAYERS


class Option:
    """One ``key=value`` line; ``used`` records whether a layer read it (Darknet's ``option_unused``)."""

    __slots__ = ("key", "value", "line", "comment", "used", "misread")

    def __init__(self, key: str, value: str, line: int, comment: str = "") -> None:
        self.key = key
        self.value = value
        self.line = line
        self.comment = comment  # inline comment removed from the value (lenient mode)
        self.used = False
        self.misread = False  # lenient forks would glue the inline comment into this value

    def __repr__(self) -> str:
        return f"Option({self.key}={self.value!r}, line {self.line})"


class Section:
    """One ``[name]`` block with its options in file order."""

    __slots__ = ("name", "line", "options", "_first")

    def __init__(self, name: str, line: int) -> None:
        self.name = name  # text between the brackets, e.g. "conv"
        self.line = line
        self.options: list[Option] = []
        self._first: dict[str, Option] = {}  # key -> its first occurrence (what option_find returns)

    def add(self, opt: Option) -> None:
        self.options.append(opt)
        self._first.setdefault(opt.key, opt)

    def __repr__(self) -> str:
        return f"Section([{self.name}], line {self.line}, {len(self.options)} options)"

    @property
    def header(self) -> str:
        return f"[{self.name}]"

    def find(self, key: str) -> Option | None:
        # option_find: a linear search, so the first occurrence wins (later duplicates are unused)
        return self._first.get(key)

    def set(self, key: str, value: str) -> None:
        """Override (or add) an option, e.g. ``[net] width`` chosen by the caller."""
        opt = self.find(key)
        if opt is None:
            self.add(Option(key, value, 0))
        else:
            opt.value, opt.comment = value, ""


class CfgFile:
    """A parsed cfg: ``[net]`` first, then one section per layer, and the original text."""

    def __init__(
        self, sections: list[Section], path: str | None = None, text: str = "", dialect: Dialect = dialects.DEFAULT
    ) -> None:
        self.sections = sections
        self.path = path
        self.text = text
        self.dialect = dialect

    @property
    def net(self) -> Section:
        return self.sections[0]

    @property
    def layers(self) -> list[Section]:
        return self.sections[1:]


def read_cfg_text(source: str | os.PathLike[str]) -> str:
    """The cfg file's text (a clear error for unreadable or binary files)."""
    path = os.fspath(source)
    try:
        with open(source, "rb") as f:
            raw = f.read(MAX_CFG_BYTES + 1)
    except OSError as exc:
        hint = ""
        if isinstance(exc, FileNotFoundError) and os.sep not in path and "/" not in path:
            from .models import names

            hint = did_you_mean(path[:-4] if path.endswith(".cfg") else path, names(), "{!r} (a bundled model)")
        raise CfgError(f"cannot read cfg: {exc.strerror or exc}{hint}", file=path) from None
    if len(raw) > MAX_CFG_BYTES:
        raise CfgError(f"larger than {MAX_CFG_BYTES >> 20} MiB: not a Darknet .cfg text", file=path)
    if b"\0" in raw[:4096]:
        raise CfgError("this is a binary file, not a Darknet .cfg text (is it the .weights?)", file=path)
    return raw.decode("utf-8", errors="replace")


def read_cfg(
    source: str | os.PathLike[str], *, dialect: DialectLike = dialects.DEFAULT, text: str | None = None
) -> CfgFile:
    """Parse a cfg file (or ``text`` with ``source`` as its display name) with a fork's syntax."""
    fork = dialects.get(dialect)
    path = os.fspath(source)
    if text is None:
        text = read_cfg_text(source)
    if text.startswith("\ufeff"):  # Darknet would read "\ufeff[net]" as an option before any section
        text = text[1:]
        warnings.warn(
            f"{path}:1: a UTF-8 byte-order mark starts the file: removed (Darknet itself would refuse the cfg)",
            DarkweightsWarning,
            stacklevel=2,
        )
    parse = _parse_strict if fork.strict_syntax else _parse_lenient
    sections = parse(text, path, fork)
    if not sections:
        raise CfgError("cfg has no sections (expected [net] first)", file=path)

    if sections[0].name not in ("net", "network"):
        raise CfgError(
            f"first section must be [net] or [network], found {sections[0].header}", file=path, line=sections[0].line
        )
    if len(sections) == 1:  # parse_network_cfg reads net->layers[n - 1] of an empty network: a crash
        raise CfgError(
            f"no layers after {sections[0].header}: a network needs at least one (Darknet would crash)",
            file=path,
            line=sections[0].line,
        )
    return CfgFile(sections, path, text, fork)


def _parse_lenient(text: str, path: str, dialect: Dialect) -> list[Section]:
    sections: list[Section] = []
    crlf_warned = False
    for lineno, raw in enumerate(text.split("\n"), 1):
        if "\r" in raw and dialect.keeps_cr and not crlf_warned:
            warnings.warn(
                f"{path}:{lineno}: CRLF line endings: {dialect.title}'s Darknet cannot read this cfg "
                "('First section must be [net]'); darkweights accepts it",
                DarkweightsWarning,
                stacklevel=3,
            )
            crlf_warned = True
        # utils.c:strip removes every blank anywhere in the line
        line = raw.translate(_BLANKS)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                # Darknet takes the whole stripped line as the section type (`[net]#x` is unknown)
                m = re.match(r"\[([^\]]*)\]#", line)
                if not m:
                    raise CfgError(f"malformed section header {raw.strip()!r}: expected [name]", file=path, line=lineno)
                line = f"[{m.group(1)}]"
            sections.append(Section(line[1:-1], lineno))
            _check_count(sections, path)
            continue
        if not sections:
            raise CfgError(f"option {raw.strip()!r} appears before the first [section]", file=path, line=lineno)
        where = _where(sections)
        if "=" not in line:
            raise CfgError(f"malformed line {raw.strip()!r}: expected key=value", file=path, line=lineno, **where)
        key, value = line.split("=", 1)
        comment = ""
        if "#" in value:
            value, comment = value.split("#", 1)
        if not key:
            raise CfgError(f"malformed line {raw.strip()!r}: empty key", file=path, line=lineno, **where)
        if not value:
            raise CfgError(f"option {key!r} has no value", file=path, line=lineno, **where)
        sections[-1].add(Option(key, value, lineno, comment))
    return sections


_BLANKS = str.maketrans("", "", " \t\r\n")


def _check_count(sections: list[Section], path: str) -> None:
    """Refuse a cfg of more than MAX_LAYERS layers at the first one too many (before the rest is read)."""
    if len(sections) > MAX_LAYERS + 1:  # [net] + layers
        raise CfgError(
            f"more than {MAX_LAYERS:,} layers: real Darknet cfgs have under 1,000; darkweights refuses more "
            "(darkweights.limits.MAX_LAYERS)",
            file=path,
            line=sections[-1].line,
            layer=MAX_LAYERS,
        )


def _where(sections: list[Section]) -> dict:
    """Layer index and type of the section being read (none for [net])."""
    if len(sections) < 2:
        return {}
    return {"layer": len(sections) - 2, "layer_type": sections[-1].name}


_HK_SECTION = re.compile(r"^\[(.+)\]")
_HK_OPTION = re.compile(r"^[ \t]*([^#= \t]+)[ \t]*=[ \t]*([^#]*)")


def _parse_strict(text: str, path: str, dialect: Dialect) -> list[Section]:
    sections: list[Section] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r\n")
        m = _HK_SECTION.match(line)
        if m:
            sections.append(Section(line[1 : line.rfind("]")], lineno))
            _check_count(sections, path)
            continue
        m = _HK_OPTION.match(line)
        if not m:
            continue  # hank-ai silently ignores comments, blank lines and lines without '='
        key, value = m.group(1), m.group(2).strip(" \t")
        if not sections:
            raise CfgError(f"option {key!r} appears before the first [section]", file=path, line=lineno)
        if not value:
            raise CfgError(f"option {key!r} has no value", file=path, line=lineno, **_where(sections))
        prev = sections[-1].find(key)
        if prev is not None:
            raise CfgError(
                f"duplicate key {key!r} at lines {prev.line} and {lineno} (hank-ai rejects duplicates)",
                file=path,
                line=lineno,
                **_where(sections),
            )
        sections[-1].add(Option(key, value, lineno))
    return sections


# ---------------------------------------------------------------------------------------------
# Typed option access


_INT = re.compile(r"^[ \t]*[+-]?\d+")
_FLOAT = re.compile(r"^[ \t]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|nan)", re.I)
_HK_NUMERIC = re.compile(r"^[-.0-9]+$")


class Options:
    """Typed reader over one section that records which keys were consumed.

    Mirrors Darknet's ``option_find_int/float/str``: missing keys give the default, the
    first duplicate wins; ``strict`` applies hank-ai's value rules. Keys in ``absent`` are
    options the fork never reads: they read as missing and stay unused.
    """

    def __init__(
        self,
        section: Section,
        *,
        path: str | None,
        strict: bool,
        layer: int | None = None,
        absent: frozenset[str] = frozenset(),
    ) -> None:
        self.section = section
        self.path = path
        self.strict = strict
        self.layer = layer
        self.absent = absent
        self.asked: set[str] = set()  # every key the layer looked up: what "did you mean" suggests from

    def error(self, message: str, opt: Option | None = None, cls: type = CfgError) -> Exception:
        return cls(
            message,
            file=self.path,
            line=opt.line if opt else self.section.line,
            layer=self.layer,
            layer_type=self.section.name,
        )

    def _take(self, key: str) -> Option | None:
        self.asked.add(key)
        if key in self.absent:
            return None
        opt = self.section._first.get(key)  # Section.find, without the call: this runs ~20 times a layer
        if opt is not None:
            opt.used = True
        return opt

    def reads(self, key: str) -> bool:
        """Whether the fork's parser reads ``key`` in this section at all."""
        return key not in self.absent

    def _number(self, opt: Option, kind: str) -> float:
        value = opt.value
        if self.strict:
            if not _HK_NUMERIC.match(value):
                raise self.error(f"{opt.key}={value!r}: expected a number (hank-ai accepts only -.0123456789)", opt)
            try:
                return float(value)
            except ValueError:
                raise self.error(f"{opt.key}={value!r}: expected a number", opt) from None
        m = (_INT if kind == "int" else _FLOAT).match(value)
        if not m:
            raise self.error(f"{opt.key}={value!r}: expected {'an integer' if kind == 'int' else 'a number'}", opt)
        if m.end() != len(value) and not (kind == "int" and re.fullmatch(r"[+-]?\d+\.\d*", value)):
            warnings.warn(
                f"{self.path}:{opt.line}: {opt.key}={value!r}: Darknet reads only {m.group(0)!r}",
                DarkweightsWarning,
                stacklevel=4,
            )
        return float(m.group(0))

    def _int_value(self, opt: Option, value: float) -> int:
        """Darknet reads into a C int: refuse what does not fit (its arithmetic would overflow)."""
        if not (-INT_MAX - 1 <= value <= INT_MAX):  # also NaN and inf
            raise self.error(
                f"{opt.key}={opt.value[:40]!r}{'...' if len(opt.value) > 40 else ''}: out of range "
                f"(Darknet reads it into a 32-bit int)",
                opt,
            )
        return int(value)

    def _list(self, key: str, kind: str) -> list[float] | None:
        opt = self._take(key)
        if opt is None:
            return None
        if self.strict:
            pattern = r"-?[0-9]+" if kind == "int" else r"[-.0-9]+"
            tokens = re.findall(pattern, opt.value)
            if not tokens:
                raise self.error(f"{key}={opt.value!r}: expected a list of numbers", opt)
            try:
                return [float(tok) for tok in tokens]
            except ValueError:  # "-.-" matches the pattern
                raise self.error(f"{key}={opt.value!r}: expected a list of numbers", opt) from None
        items = opt.value.split(",")
        if items[-1] == "" and len(items) > 1:
            warnings.warn(
                f"{self.path}:{opt.line}: trailing comma in {key}={opt.value}: Darknet adds an extra 0",
                DarkweightsWarning,
                stacklevel=4,
            )
        out = []
        for item in items:
            if item == "":
                out.append(0.0)
                continue
            m = (_INT if kind == "int" else _FLOAT).match(item)
            if not m:
                raise self.error(f"{key}={opt.value!r}: {item!r} is not a number", opt)
            out.append(float(m.group(0)))
        return out

    def ints(self, key: str, *, required: bool = False) -> list[int] | None:
        values = self._list(key, "int")
        if values is None:
            if required:
                raise self.error(f"required option {key!r} is missing")
            return None
        opt = self.section.find(key)
        assert opt is not None
        return [self._int_value(opt, v) for v in values]

    def floats(self, key: str) -> list[float] | None:
        return self._list(key, "float")

    def ignore(self, *keys: str) -> None:
        """Mark keys Darknet reads but that do not matter for inference or storage."""
        for key in keys:
            self.asked.add(key)
            if key in self.absent:
                continue
            opt = self.section._first.get(key)
            if opt is not None:
                opt.used = True

    def unused(self) -> Iterator[Option]:
        return (opt for opt in self.section.options if not opt.used)

    def int(self, key: str, default: int) -> int:
        opt = self._take(key)
        if opt is None:
            return default
        v = opt.value
        if len(v) < 11 and v.isascii() and (v.isdigit() or (v[:1] == "-" and v[1:].isdigit())):
            n = int(v)  # the common case, read as every rule below would read it
            if -INT_MAX - 1 <= n <= INT_MAX:
                return n
        # atoi truncates; hank-ai truncates toward zero too
        return self._int_value(opt, self._number(opt, "int"))

    def float(self, key: str, default: float) -> float:
        opt = self._take(key)
        return default if opt is None else self._number(opt, "float")

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        opt = self._take(key)
        value = self.str(key, default)
        assert value is not None
        if value not in choices:
            raise self.error(f"{key}={value!r} is not valid here; expected one of: {', '.join(choices)}", opt)
        return value

    def str(self, key: str, default: str | None) -> str | None:
        opt = self._take(key)
        if opt is None:
            return default
        if opt.comment and not self.strict:
            opt.misread = True
            warnings.warn(
                f"{self.path}:{opt.line}: inline comment after {opt.key}={opt.value}: Darknet would read "
                f"the value as {opt.value + '#' + opt.comment!r}",
                DarkweightsWarning,
                stacklevel=3,
            )
        return opt.value
