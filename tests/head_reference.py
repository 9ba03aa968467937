"""Reference NumPy versions of Darknet's head forwards, for the decode tests.

The product computes these in ``darkweights.torch`` (heads.py); these float32 NumPy
copies let the decode tests build ``l.output`` from raw values without torch.
"""

from __future__ import annotations

import numpy as np

from darkweights.detect.boxes import F32
from darkweights.heads import NUMPY

_logistic = NUMPY.logistic  # Darknet's logistic_activate (expf as a rounded double exp)


def _scale_xy(v: np.ndarray, scale_x_y: float) -> np.ndarray:
    # AB:src/blas.c:scal_add_cpu(X*ALPHA + BETA), BETA = -0.5*(sxy-1) computed in double, passed as float
    alpha = F32(scale_x_y)
    beta = F32(-0.5 * (float(alpha) - 1.0))
    return v * alpha + beta


def yolo_forward(x: np.ndarray, n: int, classes: int, scale_x_y: float = 1.0, new_coords: bool = False) -> np.ndarray:
    """``[yolo]`` CPU forward (``AB:src/yolo_layer.c:forward_yolo_layer``): raw ``(n*(5+K), H, W)`` -> ``l.output``.

    Logistic on x, y, objectness and classes (not with ``new_coords``), then
    ``v*sxy - 0.5*(sxy-1)`` on x, y; w, h stay raw.
    """
    out = np.array(x, dtype=F32, copy=True)
    c, h, w = out.shape
    if c != n * (5 + classes):
        raise ValueError(f"[yolo] input has {c} channels, expected n*(classes+5) = {n * (5 + classes)}")
    v = out.reshape(n, 5 + classes, h, w)
    if not new_coords:
        v[:, 0:2] = _logistic(v[:, 0:2])
        v[:, 4:] = _logistic(v[:, 4:])
    v[:, 0:2] = _scale_xy(v[:, 0:2], scale_x_y)
    return out


def gaussian_yolo_forward(x: np.ndarray, n: int, classes: int, scale_x_y: float = 1.0) -> np.ndarray:
    """``[Gaussian_yolo]`` CPU forward (``AB:src/gaussian_yolo_layer.c``): raw ``(n*(9+K), H, W)`` -> ``l.output``.

    Logistic on channels 0,1,2,3,5,7,8 and the classes; the ``scale_x_y`` step on 0 and 2.
    """
    out = np.array(x, dtype=F32, copy=True)
    c, h, w = out.shape
    if c != n * (9 + classes):
        raise ValueError(f"[Gaussian_yolo] input has {c} channels, expected n*(classes+9) = {n * (9 + classes)}")
    v = out.reshape(n, 9 + classes, h, w)
    for ch in (0, 1, 2, 3, 5, 7):
        v[:, ch] = _logistic(v[:, ch])
    v[:, 8:] = _logistic(v[:, 8:])
    for ch in (0, 2):
        v[:, ch] = _scale_xy(v[:, ch], scale_x_y)
    return out


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    """``AB:src/blas.c:softmax`` (temperature 1) over the last axis, float32, sequential sum."""
    largest = np.max(x, axis=-1, keepdims=True)
    e = np.exp((x - largest).astype(np.float64)).astype(F32)
    # C accumulates `sum += e` left to right in float; cumsum is sequential too (np.sum is pairwise).
    total = np.cumsum(e, axis=-1, dtype=F32)[..., -1:]
    return e / total


def region_forward(x: np.ndarray, n: int, classes: int, coords: int = 4, softmax: bool = True) -> np.ndarray:
    """AlexeyAB ``[region]`` CPU forward: raw ``(n*(coords+1+K), H, W)`` -> flat ``l.output``.

    AB (unlike pjreddie) first transposes to rows ``(H*W*n, coords+1+K)``
    (location-major, then anchor), applies the logistic to entry 4 only and the softmax
    to entries 5.. when ``softmax=1``; x, y, w, h stay raw (``AB:src/region_layer.c``).
    Returns the flat ``(H*W*n*(coords+1+K),)`` buffer. ``tree=`` (hierarchical softmax)
    is not supported.
    """
    x = np.asarray(x, dtype=F32)
    c, h, w = x.shape
    size = coords + 1 + classes
    if c != n * size:
        raise ValueError(f"[region] input has {c} channels, expected num*(coords+1+classes) = {n * size}")
    rows = x.reshape(n * size, h * w).T.reshape(h * w * n, size).copy()
    # entry offsets are hard-coded as 4 and 5 in forward_region_layer, whatever coords is
    rows[:, 4] = _logistic(rows[:, 4])
    if softmax:
        rows[:, 5 : 5 + classes] = _softmax_rows(rows[:, 5 : 5 + classes])
    return rows.reshape(-1)
