"""darkweights: Darknet ``.cfg`` + ``.weights`` models read, written and rebuilt exactly as Darknet does.

>>> import darkweights
>>> net = darkweights.load("yolov4.cfg", "yolov4.weights")
>>> net.layers[0].output, list(net.arrays())[:2]
>>> darkweights.save_weights(net, "copy.weights")

Heavy backends are optional and imported lazily (``net.to_torch()`` needs ``[torch]``).
"""

from __future__ import annotations

from .errors import (ArrayError, CfgError, DarkweightsError, DarkweightsWarning, ShapeError, UnsupportedError,
                     WeightsError)
from . import dialects
from .api import default_model, save_weights
from .dialects import DIALECTS, Dialect
from .network import Network, load
from .weightsfile import Header, Param

__version__ = "0.1.0"

__all__ = ["load", "save_weights", "default_model", "Network", "Header", "Param", "Dialect", "DIALECTS", "dialects",
           "DarkweightsError", "CfgError",
           "ShapeError", "WeightsError", "ArrayError", "UnsupportedError", "DarkweightsWarning", "__version__"]
