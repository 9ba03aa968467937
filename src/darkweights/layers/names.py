"""State-dict names shared by the catalogue and the PyTorch modules, declared once.

The catalogue writes them into :attr:`ArraySpec.torch <darkweights.layers.ArraySpec>` (the key a stored
array has in ``DarknetModel.state_dict()``: ``layers.12.conv.weight``, ``layers.3.wf.bn.running_var``);
:mod:`darkweights.torch` registers its parameter holders under the same names. The conformance suite
(tests/test_conformance.py) checks for every family that the two agree.
"""

from __future__ import annotations

CONV = "conv"  # a convolution's weight (and bias without batch-norm)
DECONV = "deconv"  # a transposed convolution's
FC = "fc"  # a connected layer's
BN = "bn"  # batch-norm: weight, bias, running_mean, running_var
WEIGHT = "weight"
BIAS = "bias"

# Darknet's batch-norm arrays -> the attribute of the BN holder (torch.nn.BatchNorm's names)
BN_FIELDS = {"biases": BIAS, "scales": WEIGHT, "rolling_mean": "running_mean", "rolling_variance": "running_var"}
