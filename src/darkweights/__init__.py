"""darkweights: Darknet ``.cfg`` + ``.weights`` models read, written and rebuilt exactly as Darknet does.

>>> import darkweights
>>> net = darkweights.load("yolo-fastest")    # a bundled model by name; or load("yolov4.cfg", "yolov4.weights")
>>> net[0].weights.shape                      # layer 0's weights: a zero-copy (filters, c, k, k) array
(8, 3, 3, 3)
>>> net[0].batchnorm.scales.dtype, len(net), net[-1].type
(dtype('float32'), 131, 'yolo')
>>> list(net.arrays())[:2]                    # every array by its stable export name
['layer_000.biases', 'layer_000.scales']

``net.save(path)`` writes it back byte-identical, ``net.summary()`` is ``darkweights inspect``'s table.
Heavy backends are optional and imported lazily (``net.to_torch()`` needs ``[torch]``).
"""

from __future__ import annotations

from . import dialects
from .api import default_model, save_weights
from .dialects import DIALECTS, Dialect
from .errors import (
    ArrayError,
    CfgError,
    DarkweightsError,
    DarkweightsWarning,
    ShapeError,
    UnsupportedError,
    WeightsError,
)
from .network import Network, load
from .weightsfile import Header, Param

__version__ = "0.1.0"

__all__ = [
    "load",
    "save",
    "save_weights",
    "default_model",
    "Network",
    "LayerView",
    "Header",
    "Param",
    "Dialect",
    "DIALECTS",
    "dialects",
    "DarkweightsError",
    "CfgError",
    "ShapeError",
    "WeightsError",
    "ArrayError",
    "UnsupportedError",
    "DarkweightsWarning",
    "val",
    "__version__",
]


def __getattr__(name: str) -> object:  # imported on first use: `import darkweights` stays light
    if name == "LayerView":
        from .view import LayerView

        return LayerView
    if name == "val":  # the package, callable as darkweights.val(data, model, weights, ...)
        import importlib

        return importlib.import_module(".val", __name__)
    if name == "save":  # the I/O surface (every format) is imported when first used
        from .export import save

        return save
    raise AttributeError(f"module 'darkweights' has no attribute {name!r}")
