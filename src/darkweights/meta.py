"""The metadata an exported file carries: one typed, validated record for every format.

``.safetensors`` (``__metadata__``), ``.npz`` (the ``__darkweights__`` entry), ``.onnx`` (``metadata_props``)
and ``.pt`` files store the same string map; :data:`Keys` names its keys (as GGUF names its own), and
:meth:`Metadata.parse` is the only place that reads them back: every value is checked there, so a corrupt
one in any format is an :class:`~darkweights.errors.ArrayError` naming the file and the key, never a
``ValueError`` from deep inside a writer.

>>> from darkweights.meta import Keys, Metadata
>>> m = Metadata.parse({Keys.CFG: "[net]\\nwidth=8\\nheight=8\\nchannels=3\\n", Keys.CUTOFF: "4"})
>>> m.cutoff, m.cfg_name
(4, 'embedded.cfg')
>>> Metadata.parse({Keys.CUTOFF: "abc"}, file="x.npz")
Traceback (most recent call last):
...
darkweights.errors.ArrayError: x.npz: corrupt metadata: cutoff='abc': expected a layer count (an integer >= 0)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from . import dialects
from .errors import ArrayError
from .limits import INT_MAX, MAX_CFG_BYTES, MAX_META_BYTES, bounded_json

if TYPE_CHECKING:
    from .dialects import DialectLike
    from .network import Network
    from .weightsfile import Header

PathLike = Union[str, "os.PathLike[str]"]
FORMAT = "darkweights"  # the value of Keys.FORMAT in every file darkweights writes
FORMAT_VERSION = "1"


class Keys:
    """The metadata keys, one name each (written and read only through these)."""

    FORMAT = "format"  # "darkweights"
    FORMAT_VERSION = "format_version"
    CFG = "cfg"  # the cfg text
    CFG_NAME = "cfg_name"  # its file name
    DIALECT = "dialect"  # alexeyab | pjreddie | hankai
    DIALECT_EVIDENCE = "dialect_evidence"  # why auto chose it (informational)
    HEADER = "header"  # JSON: major, minor, revision, seen (+ header_bytes, transpose, informational)
    INPUT = "input"  # JSON: width, height, channels overrides
    CUTOFF = "cutoff"  # layers a partial file holds
    # ONNX exports (darkweights.onnx.exporter)
    VERSION = "darkweights_version"
    ONNX_OUTPUTS = "onnx_outputs"  # raw | decoded | nms
    FUSED = "fused"  # "1": BN folded into the convolutions
    BUG_COMPATIBLE = "bug_compatible"  # "1": Darknet's CPU bugs reproduced
    PRECISION = "precision"  # float32 | float16
    BATCH = "batch"
    OPSET = "opset"
    INPUT_NAME = "input_name"
    INPUT_LAYOUT = "input_layout"
    NAMES = "names"  # JSON list of class names
    ANCHORS = "anchors"  # JSON: head -> anchors used
    OUTPUTS = "outputs"  # JSON list of output names
    OUTPUT_LAYOUT = "output_layout"  # JSON: output -> type, shape
    NMS_EXACT = "nms_exact"
    NMS_NOTE = "nms_note"
    DECODE_HEADS = "decode_heads"  # JSON list of the decoded heads


FLAGS = ("0", "1")
PRECISIONS = ("float32", "float16")
INPUT_SIZES = ("width", "height", "channels")


class Metadata(NamedTuple):
    """What an exported file says about the network its arrays belong to (every field validated)."""

    cfg: str | None = None
    cfg_name: str = "embedded.cfg"
    dialect: str | None = None
    dialect_evidence: str = ""
    header: tuple[int, int, int, int] | None = None  # major, minor, revision, seen (width: :meth:`header_for`)
    input: Mapping[str, int] = {}  # never mutated  # width/height/channels overrides
    cutoff: int | None = None
    format: str | None = None
    fused: bool = False
    precision: str = "float32"
    bug_compatible: bool = False
    extra: Mapping[str, str] = {}  # every other key, verbatim
    file: str | None = None  # where it was read from (named by later errors)
    raw: Mapping[str, str] = {}  # the strings as read (validated), for callers that show them

    @classmethod
    def of(cls, net: Network) -> Metadata:
        """What rebuilds ``net``'s exact cfg + ``.weights`` from its arrays alone."""
        h = net.header
        return cls(
            cfg=net.cfg.text,
            cfg_name=os.path.basename(net.path or "model.cfg"),
            dialect=net.dialect.name,
            dialect_evidence=net.dialect_choice.describe(),
            header=(h.major, h.minor, h.revision, h.seen),
            input={"width": net.width, "height": net.height, "channels": net.channels},
            cutoff=net.cutoff,
            format=FORMAT,
        )

    def to_strings(self) -> dict[str, str]:
        """The string map every format stores (the keys of :meth:`of` in a fixed order, then ``extra``)."""
        import json

        out = {Keys.FORMAT: self.format or FORMAT, Keys.FORMAT_VERSION: FORMAT_VERSION}
        if self.cfg is not None:
            out[Keys.CFG] = self.cfg
        out[Keys.CFG_NAME] = self.cfg_name
        if self.dialect is not None:
            out[Keys.DIALECT] = self.dialect
        if self.dialect_evidence:
            out[Keys.DIALECT_EVIDENCE] = self.dialect_evidence
        if self.header is not None:
            header = self.header_for(self.dialect or dialects.DEFAULT)
            out[Keys.HEADER] = json.dumps(header.as_dict())  # type: ignore[union-attr]
        if self.input:
            out[Keys.INPUT] = json.dumps(dict(self.input))
        if self.cutoff is not None:
            out[Keys.CUTOFF] = str(self.cutoff)
        out.update(self.extra)
        return out

    @classmethod
    def parse(cls, raw: Any, file: PathLike | None = None) -> Metadata:
        """Validate a string map read from a file; a bad value is an :class:`ArrayError` naming ``file`` and
        the key."""
        where = os.fspath(file) if file is not None else None

        def bad(key: str, expected: str) -> ArrayError:
            value = str(raw.get(key, ""))
            shown = repr(value[:60]) + ("..." if len(value) > 60 else "")
            return ArrayError(f"corrupt metadata: {key}={shown}: expected {expected}", file=where)

        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise ArrayError("corrupt metadata: expected a mapping of names to strings", file=where)
        total = sum(len(k) + len(v) for k, v in raw.items())
        if total > MAX_META_BYTES:
            raise ArrayError(f"metadata of {total:,} characters: more than any cfg needs", file=where)
        known = {v for k, v in vars(Keys).items() if not k.startswith("_")}
        parsed: dict[str, Any] = {
            "file": where,
            "extra": {k: v for k, v in raw.items() if k not in known},
            "raw": dict(raw),
        }
        if Keys.FORMAT in raw:
            parsed["format"] = raw[Keys.FORMAT]
        if Keys.CFG in raw:
            if len(raw[Keys.CFG]) > MAX_CFG_BYTES:
                raise bad(Keys.CFG, f"a cfg text (at most {MAX_CFG_BYTES >> 20} MiB)")
            parsed["cfg"] = raw[Keys.CFG]
        name = raw.get(Keys.CFG_NAME)
        if name is not None:
            if not name or len(name) > 255 or "/" in name or "\0" in name:
                raise bad(Keys.CFG_NAME, "a file name")
            parsed["cfg_name"] = name
        dialect = raw.get(Keys.DIALECT)
        if dialect is not None:
            if dialect not in dialects.DIALECTS:
                raise bad(Keys.DIALECT, "one of " + ", ".join(dialects.DIALECTS))
            parsed["dialect"] = dialect
        parsed["dialect_evidence"] = raw.get(Keys.DIALECT_EVIDENCE, "")
        if raw.get(Keys.HEADER):
            h = _json(raw, Keys.HEADER, where)
            if not isinstance(h, dict):
                raise bad(Keys.HEADER, "a JSON object with major, minor, revision, seen")
            got = [h.get(k, 0 if k == "seen" else None) for k in ("major", "minor", "revision", "seen")]
            values = [v for v in got if isinstance(v, int) and not isinstance(v, bool)]
            if len(values) != 4:
                raise bad(Keys.HEADER, "integers major, minor, revision, seen")
            if not all(-(2**31) <= v < 2**31 for v in values[:3]) or not 0 <= values[3] < 2**64:
                raise bad(Keys.HEADER, "32-bit major, minor, revision and an unsigned 64-bit seen")
            parsed["header"] = tuple(values)
        if raw.get(Keys.INPUT):
            inp = _json(raw, Keys.INPUT, where)
            sizes = [inp.get(k, 0) for k in INPUT_SIZES] if isinstance(inp, dict) else [None]
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT_MAX for v in sizes):
                raise bad(Keys.INPUT, "a JSON object of width, height, channels (integers >= 0)")
            parsed["input"] = {k: v for k, v in zip(INPUT_SIZES, sizes) if v}
        if raw.get(Keys.CUTOFF):
            value = raw[Keys.CUTOFF]
            if not (value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= INT_MAX):
                raise bad(Keys.CUTOFF, "a layer count (an integer >= 0)")
            parsed["cutoff"] = int(value)
        for key, attr in ((Keys.FUSED, "fused"), (Keys.BUG_COMPATIBLE, "bug_compatible")):
            if key in raw:
                if raw[key] not in FLAGS:
                    raise bad(key, "0 or 1")
                parsed[attr] = raw[key] == "1"
        if Keys.PRECISION in raw:
            if raw[Keys.PRECISION] not in PRECISIONS:
                raise bad(Keys.PRECISION, " or ".join(PRECISIONS))
            parsed["precision"] = raw[Keys.PRECISION]
        return cls(**parsed)

    @property
    def ours(self) -> bool:
        """Written by darkweights (so it carries the cfg and header)."""
        return self.format == FORMAT

    def header_for(self, dialect: DialectLike) -> Header | None:
        """The recorded header under ``dialect``'s rules (its ``seen`` width depends on the version)."""
        from .weightsfile import Header

        return Header.coerce(self.header, dialect, what=f"corrupt metadata: {Keys.HEADER}", file=self.file)

    def network(self, cfg: PathLike | None = None, dialect: DialectLike | None = None) -> Network:
        """The network the arrays belong to: ``cfg`` if given, else the embedded one, read as the fork the
        exporter recorded unless ``dialect`` says otherwise."""
        from .network import load

        chosen = dialect or self.dialect or "auto"
        w, h, c = (self.input.get(k) for k in INPUT_SIZES)
        if cfg is not None:
            return load(cfg, dialect=chosen, width=w, height=h, channels=c)
        if self.cfg is None:
            raise ArrayError("this file has no embedded cfg: pass the cfg explicitly", file=self.file)
        return load(self.cfg_name, dialect=chosen, cfg_text=self.cfg, width=w, height=h, channels=c)


def _json(raw: Mapping[str, str], key: str, file: str | None) -> Any:
    return bounded_json(raw[key], what=f"corrupt metadata: {key}", file=file)
