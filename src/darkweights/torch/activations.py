"""Darknet activations as tensor functions (darknet-format.md §4, AlexeyAB ``activations.[ch]``).

Darknet evaluates activations through three code paths and they do not know the same names
(§4.2): ``[convolutional]`` knows every name, ``[shortcut]`` adds ``swish``/``mish`` to the
generic ``activate()`` switch, and every other layer uses the generic switch alone, where
``swish``, ``mish``, ``hard_mish`` and ``normalize_channels*`` silently give zeros. We raise
:class:`~darkweights.errors.UnsupportedError` for those unless ``bug_compatible`` asks for
Darknet's zeros. ``relu6`` is computed as ``min(max(x, 0), 6)``; AlexeyAB's CPU build returns 0
for it (missing switch case) and ``bug_compatible`` reproduces that where the fork has the gap.

Every function returned by :func:`activation` may work in place: call it only on a tensor the
caller owns (a fresh layer output), never on another layer's output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import DarkweightsError, UnsupportedError

if TYPE_CHECKING:
    from ..layers import Layer

Act = Callable[[torch.Tensor], torch.Tensor]


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


def _logistic(x: torch.Tensor) -> torch.Tensor:
    return x.sigmoid_()


def _loggy(x: torch.Tensor) -> torch.Tensor:
    return x.sigmoid_().mul_(2.0).sub_(1.0)


def _relu(x: torch.Tensor) -> torch.Tensor:
    return x.relu_()


def _relu6(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_(0.0, 6.0)


def _elu(x: torch.Tensor) -> torch.Tensor:
    # (x >= 0)*x + (x < 0)*(expf(x) - 1)
    return torch.where(x >= 0, x, torch.exp(x).sub_(1.0))


def _selu(x: torch.Tensor) -> torch.Tensor:
    neg = torch.exp(x).sub_(1.0).mul_(torch.tensor(1.0507, dtype=torch.float32) * 1.6732)
    return torch.where(x >= 0, x * 1.0507, neg)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    # 0.5*x*(1 + tanhf(0.797885*x + 0.035677*x^3)): Darknet's literal constants
    inner = torch.tanh(x * 0.797885 + x.pow(3) * 0.035677)
    return inner.add_(1.0).mul_(x).mul_(0.5)


def _relie(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, x * 0.01)


def _ramp(x: torch.Tensor) -> torch.Tensor:
    # x*(x>0) + .1f*x
    return torch.where(x > 0, x, torch.zeros_like(x)).add_(x * 0.1)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu_(x, 0.1)


def _tanh(x: torch.Tensor) -> torch.Tensor:
    return x.tanh_()


def _plse(x: torch.Tensor) -> torch.Tensor:
    lo = (x + 4.0) * 0.01
    hi = (x - 4.0) * 0.01 + 1.0
    mid = x * 0.125 + 0.5
    return torch.where(x < -4.0, lo, torch.where(x > 4.0, hi, mid))


def _stair(x: torch.Tensor) -> torch.Tensor:
    n = torch.floor(x)
    half = torch.floor(x / 2.0)
    odd = torch.remainder(n, 2.0) != 0
    return torch.where(odd, (x - n) + half, half)


def _hardtan(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_(-1.0, 1.0)


def _lhtan(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, x * 0.001, torch.where(x > 1, (x - 1.0) * 0.001 + 1.0, x))


def _swish(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x, inplace=True)


def _mish(x: torch.Tensor) -> torch.Tensor:
    # x * tanh(softplus(x)), CPU softplus: x if x > 20, expf(x) if x < -20, else log(expf(x) + 1)
    sp = torch.where(x > 20.0, x, torch.where(x < -20.0, torch.exp(x), torch.log(torch.exp(x) + 1.0)))
    return sp.tanh_().mul_(x)


def _hard_mish(x: torch.Tensor) -> torch.Tensor:
    quad = x * x / 2.0 + x
    return torch.where(x > 0, x, torch.where(x > -2.0, quad, torch.zeros_like(x)))


def _normalize_channels(x: torch.Tensor) -> torch.Tensor:
    # per pixel over channels: S = 1e-4 + sum of the positive values; y = x/S where x > 0 else 0
    pos = x.clamp_min(0.0)
    s = pos.sum(dim=1, keepdim=True).add_(0.0001)
    return torch.where(x > 0, x / s, torch.zeros_like(x))


def _normalize_channels_softmax(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x)
    return e.div_(e.sum(dim=1, keepdim=True).add_(0.0001))


def _normalize_channels_softmax_maxval(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x - x.amax(dim=1, keepdim=True))
    return e.div_(e.sum(dim=1, keepdim=True).add_(0.0001))


def _zeros(x: torch.Tensor) -> torch.Tensor:
    return x.zero_()


FUNCTIONS: dict[str, Act] = {
    "linear": _linear,
    "logistic": _logistic,
    "loggy": _loggy,
    "relu": _relu,
    "relu6": _relu6,
    "elu": _elu,
    "selu": _selu,
    "gelu": _gelu,
    "relie": _relie,
    "ramp": _ramp,
    "leaky": _leaky,
    "revleaky": _leaky,
    "tanh": _tanh,
    "plse": _plse,
    "stair": _stair,
    "hardtan": _hardtan,
    "lhtan": _lhtan,
    "swish": _swish,
    "mish": _mish,
    "hard_mish": _hard_mish,
    "normalize_channels": _normalize_channels,
    "normalize_channels_softmax": _normalize_channels_softmax,
    "normalize_channels_softmax_maxval": _normalize_channels_softmax_maxval,
}

# names each Darknet code path evaluates (AB forward_convolutional_layer / forward_shortcut_layer /
# activate_array); anything else is 0 in Darknet
SPECIAL = frozenset(
    {
        "swish",
        "mish",
        "hard_mish",
        "normalize_channels",
        "normalize_channels_softmax",
        "normalize_channels_softmax_maxval",
    }
)
PATHS: dict[str, frozenset[str]] = {
    "conv": frozenset(FUNCTIONS),
    "shortcut": frozenset(FUNCTIONS) - (SPECIAL - {"swish", "mish"}),
    "generic": frozenset(FUNCTIONS) - SPECIAL,
}


def activation(
    name: str | None,
    path: str,
    *,
    layer: Layer | None = None,
    bug_compatible: bool = False,
    relu6_missing: bool = False,
) -> Act:
    """The function Darknet applies for ``name`` in code path ``path`` (conv, shortcut, generic)."""
    name = name or "linear"
    if name not in FUNCTIONS:
        raise _unsupported(f"unknown activation {name!r}", layer)
    if name == "relu6" and bug_compatible and relu6_missing:
        return _zeros  # AB CPU activate() has no RELU6 case (Dialect.relu6_missing_on_cpu)
    if name not in PATHS[path]:
        if bug_compatible:
            return _zeros
        where = {
            "generic": "layers other than [convolutional] (and [shortcut] for swish/mish)",
            "shortcut": "[shortcut]",
        }[path]
        raise _unsupported(
            f"activation={name} is not computed by Darknet in {where}: its generic activate() has no case for it "
            "and outputs zeros. Pass bug_compatible=True to reproduce the zeros",
            layer,
        )
    return FUNCTIONS[name]


def _unsupported(message: str, layer: Layer | None) -> DarkweightsError:
    return UnsupportedError(message) if layer is None else layer.error(message, UnsupportedError)
