"""Mean average precision exactly as AlexeyAB's ``darknet detector map`` computes it, on any backend.

``darkweights.val`` is this package, and it is callable: ``darkweights.val(data, model, weights, ...)`` is
:func:`.run.val` (a record of mAP, per-class AP, precision, recall, F1, TP/FP/FN, average IoU). Modules:
:mod:`.data` (Darknet datasets: ``.data`` files, image lists, names, label files; shared with training),
:mod:`.metric` (``validate_detector_map``'s arithmetic and printout), :mod:`.run` (the evaluation loop),
:mod:`.coco` (COCO's AP@[.5:.95] by ``pycocotools``). Backends live in :mod:`darkweights.backends`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .run import val

__all__ = ["val"]


class _CallableModule(types.ModuleType):
    """``darkweights.val(...)`` calls :func:`.run.val`, while ``darkweights.val.data`` stays the module."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return val(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
