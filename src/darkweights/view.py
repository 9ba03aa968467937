r"""``net[i]``: one layer of a loaded network, with its arrays as attributes.

A :class:`LayerView` is a thin, stateless view bound to a :class:`~darkweights.network.Network`:
``net[0].weights``, ``net[0].biases`` and ``net[0].batchnorm.scales`` are the zero-copy
views :meth:`Network.layer_arrays` returns (copy-on-write memory maps of the file), with
Darknet's in-memory shapes. The catalogue's own layer object stays in ``net.layers``.

>>> import darkweights
>>> net = darkweights.load(darkweights.default_model().cfg, darkweights.default_model().weights)
>>> net[0].weights.shape                     # filters, channels / groups, size, size
(8, 3, 3, 3)
>>> net[0].batchnorm.rolling_variance.shape
(8,)
>>> net[0]
<Layer 0 [convolutional] line 22: 3x320x320 -> 8x160x160 (8 3x3/2 bn leaky), 248 params: biases (8,), scales (8,), rolling_mean (8,), rolling_variance (8,), weights (8, 3, 3, 3)>
>>> len(net), net[-1].type, [v.type for v in net[28:31]]
(131, 'yolo', ['dropout', 'shortcut', 'convolutional'])

A connected layer's weights are ``(outputs, inputs)`` (= ``torch.nn.Linear.weight``):

>>> import io
>>> from darkweights.synth import init
>>> cfg = "[net]\nwidth=4\nheight=4\nchannels=2\n[connected]\noutput=5\nactivation=linear\n"
>>> buf = io.BytesIO(); n = init(darkweights.load("tiny.cfg", cfg_text=cfg), buf, seed=1)
>>> darkweights.load("tiny.cfg", buf.getvalue(), cfg_text=cfg)[0].weights.shape
(5, 32)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

    from .layers import Layer, Shape
    from .network import Network


class BatchNorm(NamedTuple):
    """A layer's four batch-norm arrays (Darknet's names; ``biases`` is BN's shift, ``beta``)."""

    scales: np.ndarray
    biases: np.ndarray
    rolling_mean: np.ndarray
    rolling_variance: np.ndarray


class LayerView:
    """Layer ``index`` of ``network``: type, shapes, cfg line, options and stored arrays.

    Attributes the catalogue layer has (``filters``, ``size``, ``activation`` ...) read through.
    The array attributes are ``None`` when the layer stores no such array; reading any array
    of a network without weights raises :class:`~darkweights.WeightsError`.
    """

    __slots__ = ("network", "index")

    def __init__(self, network: Network, index: int) -> None:
        self.network = network
        self.index = index

    # -- structure ----------------------------------------------------------------------

    @property
    def layer(self) -> Layer:
        """The catalogue object (``net.layers[index]``)."""
        return self.network.layers[self.index]

    @property
    def type(self) -> str:
        return self.layer.type

    @property
    def input(self) -> Shape:
        return self.layer.input

    @property
    def output(self) -> Shape:
        return self.layer.output

    @property
    def line(self) -> int:
        """The cfg line of the layer's ``[section]`` header."""
        return self.layer.line

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of the arrays this layer stores, in file order (no weights needed)."""
        return {p.name: tuple(p.shape) for p in self.network.params() if p.layer == self.index}

    @property
    def params(self) -> int:
        """Number of stored float32 values."""
        return sum(p.count for p in self.network.params() if p.layer == self.index)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.network.layers[self.index], name)

    # -- arrays -------------------------------------------------------------------------

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """``{Darknet name: zero-copy array}`` (``biases``, ``scales`` ..., ``wf.weights`` for sub-layers)."""
        return self.network.layer_arrays(self.index)

    def _array(self, name: str) -> np.ndarray | None:
        return self.arrays.get(name)

    @property
    def weights(self) -> np.ndarray | None:
        """Convolution ``(n, c/groups, k, k)``, connected ``(outputs, inputs)``, local, shortcut weights."""
        return self._array("weights")

    @property
    def biases(self) -> np.ndarray | None:
        """Biases (with batch-norm: BN's shift, as Darknet stores it)."""
        return self._array("biases")

    @property
    def batchnorm(self) -> BatchNorm | None:
        """The four batch-norm arrays, or ``None`` without ``batch_normalize``."""
        a = self.arrays
        if "rolling_variance" not in a:
            return None
        return BatchNorm(a["scales"], a["biases"], a["rolling_mean"], a["rolling_variance"])

    # -- display ------------------------------------------------------------------------

    def __repr__(self) -> str:
        L = self.layer
        shapes = ", ".join(f"{n} {s}" for n, s in self.shapes.items())
        detail = L.describe()
        return (
            f"<Layer {self.index} [{L.section.name}] line {L.line}: {L.input} -> {L.output}"
            + (f" ({detail})" if detail else "")
            + (f", {self.params:,} params: {shapes}" if shapes else ", no stored arrays")
            + ">"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LayerView) and other.network is self.network and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.network), self.index))
