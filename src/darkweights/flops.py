"""BFLOPs per layer and in total, computed exactly as AlexeyAB Darknet prints them when it loads a cfg.

AlexeyAB stores each layer's count in ``float bflops`` (``make_convolutional_layer``,
``make_maxpool_layer``, ``make_shortcut_layer``, ``make_crnn_layer``, ``make_conv_lstm_layer``)
and ``parse_network_cfg_custom`` sums them into a ``float`` ("Total BFLOPS"). The counts are
therefore rounded to float32 per layer and accumulated in float32 here too; products Darknet
computes in ``int`` wrap as 32-bit integers. Layers Darknet gives no count (route, upsample,
yolo, connected ...) have ``None``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Network

GIGA = 1000000000.0


def f32(x: float) -> float:
    """Round a Python float to the nearest float32 (what assigning to a C ``float`` does)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def i32(x: int) -> int:
    """A C ``int`` product: wrap to 32 bits."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def _conv(nweights: int, out_h: int, out_w: int, xnor: bool = False) -> float:
    # l.bflops = (2.0 * l.nweights * l.out_h*l.out_w) / 1e9: double arithmetic (2.0 first), xnor / 32
    v = 2.0 * i32(nweights) * out_h * out_w / GIGA
    return f32(v / 32 if xnor else v)


def _convolutional(L: Layer) -> float:
    nweights = i32((L.input.c // L.groups) * L.filters * L.size * L.size)
    return _conv(nweights, L.output.h, L.output.w, bool(L.xnor))


def _pool(L: Layer) -> float:
    # (l.size*l.size*l.c * l.out_h*l.out_w) / 1e9: an int product
    return f32(i32(L.size * L.size * L.input.c * L.output.h * L.output.w) / GIGA)


def _shortcut(L: Layer) -> float:
    out = L.output
    v = i32(out.w * out.h * out.c * len(L.sources)) / GIGA
    return f32(v * 2 if L.weights_type != "none" else v)


def _sub_convs(L: Layer) -> float:
    """Sum of the sub-layers' float counts, in float (crnn: input + self + output layers)."""
    total = 0.0
    for spec in L.arrays():
        if spec.role == "weights":
            total = f32(total + _conv(spec.count, L.output.h, L.output.w, bool(getattr(L, "xnor", 0))))
    return total


def _conv_lstm(L: Layer) -> float:
    # the eleven gate convolutions (the peephole ones only with peephole=1), then 9 or 12 flops per output
    extra = (12 if L.peephole else 9) * L.output.size / GIGA
    return f32(_sub_convs(L) + extra)


# layer type -> its make_*_layer count
BFLOPS: dict[str, Callable[[Layer], float]] = {
    "convolutional": _convolutional,
    "maxpool": _pool,
    "local_avgpool": _pool,
    "shortcut": _shortcut,
    "crnn": _sub_convs,
    "conv_lstm": _conv_lstm,
}


def layer_bflops(layer: Layer) -> float | None:
    """What AlexeyAB prints as ``... N.NNN BF`` for this layer (``None``: it prints no count)."""
    fn = BFLOPS.get(layer.type)
    return None if fn is None else fn(layer)


def network_bflops(net: Network) -> tuple[list[float | None], float]:
    """Per-layer counts and AlexeyAB's ``Total BFLOPS`` (a float32 sum of the positive counts)."""
    per = [layer_bflops(L) for L in net.layers]
    total = 0.0
    for v in per:
        if v is not None and v > 0:
            total = f32(total + v)
    return per, total
