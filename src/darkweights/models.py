"""Models by name: the Darknet cfg files shipped as package data, and the bundled Yolo-Fastest 1.1.

``darkweights.load("yolov4")`` and ``darkweights inspect yolov4`` find ``yolov4.cfg`` here when no
such file exists; ``darkweights models`` lists them. The cfgs are byte-identical copies of the
public-domain files in AlexeyAB's and pjreddie's ``cfg/`` directories (``data/cfg/SOURCES.tsv``
says which); only Yolo-Fastest comes with weights.

>>> import darkweights
>>> from darkweights import models
>>> models.find("yolov4").cfg.name, models.find("yolov4").weights
('yolov4.cfg', None)
>>> len(darkweights.load("yolov4-tiny"))
38
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .report import Table

DATA = Path(__file__).resolve().parent / "data"
CFG_DIR = DATA / "cfg"
DEFAULT_NAME = "yolo-fastest-1.1"
ALIASES = {"default": DEFAULT_NAME, "yolo-fastest": DEFAULT_NAME}


class Model(NamedTuple):
    """A bundled model: its cfg, weights (``None`` for cfg-only models), and where it comes from."""

    name: str
    cfg: Path
    weights: Path | None
    source: str


def _sources() -> dict[str, str]:
    out = {}
    for line in (CFG_DIR / "SOURCES.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, source = line.split("\t", 1)
            out[name] = source
    return out


def bundled() -> list[Model]:
    """Every model resolvable by name: Yolo-Fastest 1.1 (with weights) first, then the cfgs by name."""
    sources = _sources()
    out = [
        Model(
            DEFAULT_NAME,
            DATA / f"{DEFAULT_NAME}.cfg",
            DATA / f"{DEFAULT_NAME}.weights",
            "Yolo-Fastest 1.1 (COCO, 80 classes), with weights: the bundled default model",
        )
    ]
    for path in sorted(CFG_DIR.glob("*.cfg"), key=lambda p: p.name.lower()):
        out.append(Model(path.stem, path, None, sources.get(path.stem, "Darknet cfg/")))
    return out


def names() -> list[str]:
    """Every name a model can be given by (the bundled cfgs' stems and the aliases)."""
    return [DEFAULT_NAME, *ALIASES, *(p.stem for p in CFG_DIR.glob("*.cfg"))]


def find(name: str) -> Model | None:
    """The bundled model called ``name`` (``"yolov4"`` or ``"yolov4.cfg"``), else ``None``."""
    stem = os.path.basename(str(name))
    stem = stem[:-4] if stem.endswith(".cfg") else stem
    stem = ALIASES.get(stem, stem)
    if stem == DEFAULT_NAME:
        return bundled()[0]
    path = CFG_DIR / f"{stem}.cfg"
    if path.is_file():
        return Model(stem, path, None, _sources().get(stem, "Darknet cfg/"))
    return None


def resolve(cfg: Any, weights: Any = None) -> tuple[Any, Any]:
    """``(cfg, weights)`` with a bare model name that is not a file replaced by the bundled one.

    A path that exists, or one with a directory part, is never replaced; the bundled weights
    are bound only when no weights were given.
    """
    if not isinstance(cfg, str) or os.path.exists(cfg) or os.sep in cfg or "/" in cfg:
        return cfg, weights
    model = find(cfg)
    if model is None:
        return cfg, weights
    return str(model.cfg), weights if weights is not None else (str(model.weights) if model.weights else None)


def table() -> Table:
    """What ``darkweights models`` lists: name, layers, parameters, weights file size, source."""
    import warnings

    from .network import load
    from .report import Column, Table

    rows = []
    for m in bundled():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                net = load(str(m.cfg))
                row = {
                    "name": m.name,
                    "layers": len(net),
                    "params": net.param_count(),
                    "weights_bytes": net.weights_bytes(),
                    "dialect": net.dialect.name,
                }
            except Exception as exc:
                row = {"name": m.name, "error": str(exc).splitlines()[0]}
        row.update(cfg=str(m.cfg), weights=str(m.weights) if m.weights else None, source=m.source)
        rows.append(row)
    columns = [
        Column("name", "name"),
        Column("layers", "layers", ">"),
        Column("params", "params", ">", lambda v: f"{v:,}"),
        Column("weights_bytes", "weights size", ">", _mb),
        Column("dialect", "dialect"),
        Column("source", "source"),
    ]
    footer = [
        f"{len(rows)} models; `darkweights inspect NAME` uses one by name when no such file exists",
        "weights size: the .weights file Darknet writes for the cfg (only yolo-fastest-1.1 ships one)",
    ]
    return Table("", columns, rows, footer, {"models": rows})


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"
