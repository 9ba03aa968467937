"""Oracle cases whose big or Darknet-shaped files are not stored: ``layers.json`` says how to make them.

``weights_stored: false``: model.weights is ``darkweights init`` with the case's ``seed`` (9000-class
heads would be megabytes). ``synthetic_files``: tree=/map= files made by ``darkweights.synth``
(tree_text/map_text), never Darknet's own ``data/9k.tree``. :func:`materialise` returns a directory
holding the whole fixture: the case itself when nothing is missing, else a copy in ``tmp``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import darkweights
from darkweights.synth import init, map_text, tree_text

SYNTH = {"tree": tree_text, "map": map_text}


def synthetic(meta: dict, dest: Path) -> None:
    """Write the case's synthetic tree=/map= files into ``dest``."""
    for name, f in (meta.get("synthetic_files") or {}).items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        extra = {k: f[k] for k in ("roots", "branching") if k in f}
        (dest / name).write_text(SYNTH[f["kind"]](f["classes"], f["seed"], **extra))


def materialise(case: Path, tmp: Path) -> Path:
    meta = json.loads((case / "layers.json").read_text())
    if meta.get("weights_stored", True) and not meta.get("synthetic_files"):
        return case
    dest = tmp / case.name
    if not dest.exists():
        shutil.copytree(case, dest)
        synthetic(meta, dest)
        if not meta.get("weights_stored", True):
            net = darkweights.load(dest / "model.cfg", dialect=meta.get("dialect", "alexeyab"))
            init(net, dest / "model.weights", seed=meta["seed"], mode=meta.get("weights_mode", "save"))
    return dest
