"""BFLOPs per layer and in total, computed exactly as AlexeyAB Darknet prints them when it loads a cfg.

AlexeyAB stores each layer's count in ``float bflops`` (``make_convolutional_layer``,
``make_maxpool_layer``, ``make_shortcut_layer``, ``make_crnn_layer``, ``make_conv_lstm_layer``)
and ``parse_network_cfg_custom`` sums them into a ``float`` ("Total BFLOPS"). The counts are
therefore rounded to float32 per layer and accumulated in float32 here too; products Darknet
computes in ``int`` wrap as 32-bit integers. Each layer family counts its own
(:meth:`darkweights.layers.Layer.bflops`); layers Darknet gives no count (route, upsample,
yolo, connected ...) have ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .layers.base import GIGA, f32, i32  # Darknet's C number rules, which the families count with

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Network

__all__ = ["GIGA", "f32", "i32", "layer_bflops", "network_bflops"]


def layer_bflops(layer: Layer) -> float | None:
    """What AlexeyAB prints as ``... N.NNN BF`` for this layer (``None``: it prints no count)."""
    return layer.bflops()


def network_bflops(net: Network) -> tuple[list[float | None], float]:
    """Per-layer counts and AlexeyAB's ``Total BFLOPS`` (a float32 sum of the positive counts)."""
    per = [L.bflops() for L in net.layers]
    total = 0.0
    for v in per:
        if v is not None and v > 0:
            total = f32(total + v)
    return per, total
