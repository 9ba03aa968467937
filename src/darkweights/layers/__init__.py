"""The layer catalogue: one class per Darknet section family, registered by header name.

Importing this package registers every family; look them up with :data:`HEADERS`
(section name as written in a cfg) or :data:`LAYER_TYPES` (canonical type name). What a family
owns, and how one is added: ``docs/architecture.md``.
"""

from . import conv, heads, merge, misc, names, pooling, recurrent  # noqa: F401  (registration side effect)
from .base import HEADERS, LAYER_TYPES, ArraySpec, Cells, Layer, Shape

__all__ = ["HEADERS", "LAYER_TYPES", "ArraySpec", "Cells", "Layer", "Shape", "names"]
