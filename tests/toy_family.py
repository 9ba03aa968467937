"""A layer family added by one module: ``[swish_gate]``, the example of issue #13 (reads ``from=``, stores one
weight per channel). Importing it registers the catalogue family and its PyTorch module; nothing else in the
package changes (tests/test_toy_family.py checks that it answers every concern).

``y = x * sigmoid(w_c * f)``: the input gated per channel by the ``from`` layer's map ``f`` scaled by the stored
weight ``w``. No Darknet fork has it; it is declared for AlexeyAB so that its parser rules apply.
"""

from __future__ import annotations

import torch

from darkweights.cfg import Options
from darkweights.layers import ArraySpec, Layer, names
from darkweights.layers.base import AB, register
from darkweights.layers.builder import Builder
from darkweights.torch import BuildContext, DarknetLayer
from darkweights.torch import register as register_module


@register
class SwishGate(Layer):
    """``[swish_gate] from=-2``: the input times ``sigmoid(weight[c] * from)``, per channel."""

    type = "swish_gate"
    headers = ("swish_gate",)
    forks = frozenset({AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        (source,) = self.read_layers(opts, builder, "from", first_only=True)
        self.need_image()
        if builder.layers[source].output != self.input:
            raise self.shape_error(f"from={source} ({builder.layers[source].output}) must have the input's shape")
        self.output = self.input

    def arrays(self) -> list[ArraySpec]:
        return [ArraySpec("weights", (self.input.c,), "weights", names.WEIGHT)]

    def init_range(self, spec: ArraySpec) -> tuple[float, float]:
        return 0.5, 1.5  # a gain per channel: no fan-in to scale by


@register_module("swish_gate")
class SwishGateModule(DarknetLayer):
    weight: torch.Tensor

    def __init__(self, layer: SwishGate, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.register_parameter(names.WEIGHT, ctx.param(ctx.arrays(layer)["weights"]))

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        gate = torch.sigmoid(self.image(outs[self.reads[0]]) * self.weight.view(1, -1, 1, 1))
        return self.image(x) * gate


EXAMPLE = (
    "[net]\nwidth=8\nheight=8\nchannels=3\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
    "[swish_gate]\nfrom=-2\n"
)
