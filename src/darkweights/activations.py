"""Darknet activation names and which fork knows them (darknet-format.md §4.1).

The formulas live with the backends (``darkweights.torch``); this module is the name table
the cfg parser validates against.
"""

from __future__ import annotations

PJ_ACTIVATIONS = ("linear", "logistic", "loggy", "relu", "elu", "selu", "relie", "ramp", "leaky", "tanh",
                  "plse", "stair", "hardtan", "lhtan")
AB_ACTIVATIONS = PJ_ACTIVATIONS + ("relu6", "gelu", "revleaky", "swish", "mish", "hard_mish", "normalize_channels",
                                   "normalize_channels_softmax", "normalize_channels_softmax_maxval")

ACTIVATIONS = {"alexeyab": AB_ACTIVATIONS, "hankai": AB_ACTIVATIONS, "pjreddie": PJ_ACTIVATIONS}

# AB's generic activate_array() has no case for these: outside [convolutional] (and swish/mish
# outside [shortcut]) Darknet outputs zeros (§4.2).
CONV_ONLY = frozenset({"swish", "mish", "hard_mish", "normalize_channels", "normalize_channels_softmax",
                       "normalize_channels_softmax_maxval"})
SHORTCUT_OK = frozenset({"swish", "mish"})
