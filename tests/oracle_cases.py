"""Oracle cases whose big or Darknet-shaped files are not stored: ``layers.json`` says how to make them
(``verify.load_fixture`` does so in memory). :func:`materialise` writes them to disk, for what needs files
(the command line): the case itself when nothing is missing, else a copy in ``tmp`` with model.weights
(``darkweights init`` with the case's ``seed``) and the synthetic tree=/map= files (``verify.fixture_files``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import darkweights
from darkweights.synth import init
from darkweights.verify import fixture_files


def materialise(case: Path, tmp: Path) -> Path:
    meta = json.loads((case / "layers.json").read_text())
    if meta.get("weights_stored", True) and not meta.get("synthetic_files"):
        return case
    dest = tmp / case.name
    if not dest.exists():
        shutil.copytree(case, dest)
        for name, text in fixture_files(meta).items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_text(text)
        if not meta.get("weights_stored", True):
            net = darkweights.load(dest / "model.cfg", dialect=meta.get("dialect", "alexeyab"))
            init(net, dest / "model.weights", seed=meta["seed"], mode=meta.get("weights_mode", "save"))
    return dest
