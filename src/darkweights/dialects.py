"""The three Darknet forks as data: one frozen :class:`Dialect` record each, in :data:`DIALECTS`.

Everything that differs between pjreddie's original Darknet, AlexeyAB's fork and hank-ai's
C++ rewrite is a field here, so the parser, the layer catalogue, the weights file, the PyTorch
builder and the detector read a fork's rules instead of testing its name. What is specific to a layer
family is the family's (:mod:`darkweights.layers`): which forks know it (:attr:`Dialect.sections` is
derived from that) and which of its options a fork never reads (``Layer.unread``; then
:class:`~darkweights.cfg.Options` returns the default and leaves the key "unused", as Darknet's
``option_unused`` would report it).

``dialect="auto"`` (:func:`choose`) decides from the files: a fork that refuses the cfg is out,
a fork that would ignore options the cfg sets is less likely, and the header revision Darknet
wrote (pjreddie 0.2.0, AlexeyAB and hank-ai 0.2.5) breaks the remaining tie. :class:`Choice`
records what decided it.
"""

from collections.abc import Sequence
from typing import Any

from .errors import CfgError

_PJ_ACTIVATIONS = (
    "linear",
    "logistic",
    "loggy",
    "relu",
    "elu",
    "selu",
    "relie",
    "ramp",
    "leaky",
    "tanh",
    "plse",
    "stair",
    "hardtan",
    "lhtan",
)
_AB_ACTIVATIONS = _PJ_ACTIVATIONS + (
    "relu6",
    "gelu",
    "revleaky",
    "swish",
    "mish",
    "hard_mish",
    "normalize_channels",
    "normalize_channels_softmax",
    "normalize_channels_softmax_maxval",
)

# options the pjreddie fork reads in every section and the others never read
_PJ_EVERYWHERE = frozenset({"dontsave"})


class Record:
    """A small frozen record whose fields are the class annotations (in order, defaults as class values).

    Plain classes, not dataclasses or NamedTuples: creating those costs milliseconds at import, and
    ``import darkweights`` should stay light.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields()
        values = dict(zip(fields, args), **kwargs)
        for name in fields:
            if name not in values:
                if not hasattr(type(self), name):
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
                values[name] = getattr(type(self), name)
        unknown = set(values) - set(fields)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(unknown)}")
        self.__dict__.update(values)

    @classmethod
    def _fields(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names += [n for n in klass.__dict__.get("__annotations__", {}) if n not in names]
        return names

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


class DetectorRules(Record):
    """What a fork's ``darknet detector test`` does around the network (see ``darkweights.detect``)."""

    pipeline: str  # whose get_network_boxes / NMS code runs: a key of darkweights.detect.run.PIPELINES
    thresh: float  # default -thresh of its CLI
    always_letterbox: bool  # letterbox whatever the cfg says (pjreddie's test_detector)
    fuse_bn: bool  # fold BN into the convolutions first (AB's fuse_conv_batchnorm)


class Dialect(Record):
    """One Darknet fork's rules, as far as reading, writing and running a model is concerned."""

    name: str  # what --dialect and the metadata say: "alexeyab", "pjreddie", "hankai"
    title: str  # how messages name it
    source: str  # the repository the rules were read from
    # -- the .weights file (darknet-format.md §1)
    header_revision: int  # save_weights writes 0.2.<revision>
    seen_64bit_needs_small_version: bool  # pjreddie: 64-bit `seen` only if major and minor are < 1000
    # -- cfg text and the section catalogue (§6)
    strict_syntax: bool  # hank-ai darknet_cfg.cpp: trimmed lines, inline comments, unknown keys/values fatal
    keeps_cr: bool  # pjreddie's strip() leaves '\r', so a CRLF cfg fails there
    activations: tuple[str, ...]
    common_options: tuple[str, ...]  # read for every section (tail of parse_network_cfg)
    unread_everywhere: frozenset[str]  # options of another fork this one reads in no section (per family: Layer.unread)
    # -- layer geometry and storage (§2-3)
    batchnorm_arrays: tuple[str, ...]  # stand-alone [batchnorm], in file order
    gru_state_gates_first: bool  # pjreddie saves the state gates (uz, ur, uh) before the input gates
    lstm_gate_order: str  # file order of the gates: AB "figo", pjreddie "ifog"
    recurrent_flat_output: bool  # [rnn]/[lstm] report a flat output (pjreddie) instead of outputs x 1 x 1
    crnn_fixed_3x3_swapped: bool  # pjreddie [crnn]: fixed 3x3 convs, reads its input as C x W x H
    xnor_forces_groups_1: bool
    flip_counts_all_channels: bool  # pjreddie's flipped=1 transposes c*size*size x filters (groups ignored)
    shortcut_scaled: bool  # pjreddie [shortcut]: one source, alpha/beta, samples across resolutions
    shortcut_per_layer: bool  # weights_type=per_layer accepted (an AlexeyAB alias of per_feature)
    shortcut_norm_needs_type: bool  # AB parse_shortcut: with weights, a normalisation must be named
    route_equal_sizes: bool  # hank-ai refuses [route] inputs of different width/height
    detector_input_multiple: int  # hank-ai: [yolo]/[region] networks need width/height multiples of 32
    # -- the forward pass (§4-5)
    bn_eps: float
    bn_eps_inside_sqrt: bool  # AB/HK (x-mean)/sqrt(var+eps); pjreddie CPU (x-mean)/(sqrt(var)+eps)
    conv1x1_fast_path_any_stride: bool  # pjreddie's 1x1 GEMM shortcut ignores stride/padding at any stride
    region_anchor_major: bool  # pjreddie [region] keeps (n, entries, H, W); AB transposes to rows
    region_tree_softmax: bool  # [region] tree=: a softmax per tree group over each row (pjreddie's CPU gives NaN)
    relu6_missing_on_cpu: bool  # AB's activate_array has no RELU6 case (bug_compatible zeros)
    detector: DetectorRules

    def __str__(self) -> str:
        return self.name

    def reads(self, family: str, option: str) -> bool:
        """Whether this fork's parser reads ``option`` in a ``family`` section (the family says: ``Layer.unread``)."""
        from .layers import LAYER_TYPES

        return option not in LAYER_TYPES[family].unread_by(self.name) | self.unread_everywhere

    @property
    def sections(self) -> frozenset[str]:
        """The layer families (canonical type names) its parser knows: those that declare this fork
        (:attr:`darkweights.layers.Layer.forks`)."""
        from .layers import LAYER_TYPES

        return frozenset(t for t, cls in LAYER_TYPES.items() if self.name in cls.forks)

    @property
    def header(self) -> tuple[int, int, int]:
        return (0, 2, self.header_revision)


_AB_COMMON = ("clip", "onlyforward", "dont_update", "burnin_update", "stopbackward", "train_only_bn", "learning_rate")

ALEXEYAB = Dialect(
    name="alexeyab",
    title="AlexeyAB",
    source="github.com/AlexeyAB/darknet",
    header_revision=5,
    seen_64bit_needs_small_version=False,
    strict_syntax=False,
    keeps_cr=False,
    activations=_AB_ACTIVATIONS,
    common_options=_AB_COMMON,
    unread_everywhere=_PJ_EVERYWHERE,
    batchnorm_arrays=("biases", "scales", "rolling_mean", "rolling_variance"),
    gru_state_gates_first=False,
    lstm_gate_order="figo",
    recurrent_flat_output=False,
    crnn_fixed_3x3_swapped=False,
    xnor_forces_groups_1=True,
    flip_counts_all_channels=False,
    shortcut_scaled=False,
    shortcut_per_layer=True,
    shortcut_norm_needs_type=True,
    route_equal_sizes=False,
    detector_input_multiple=1,
    bn_eps=1e-5,
    bn_eps_inside_sqrt=True,
    conv1x1_fast_path_any_stride=False,
    region_anchor_major=False,
    region_tree_softmax=True,
    relu6_missing_on_cpu=True,
    detector=DetectorRules(pipeline="alexeyab", thresh=0.25, always_letterbox=False, fuse_bn=True),
)

PJREDDIE = Dialect(
    name="pjreddie",
    title="pjreddie",
    source="github.com/pjreddie/darknet",
    header_revision=0,
    seen_64bit_needs_small_version=True,
    strict_syntax=False,
    keeps_cr=True,
    activations=_PJ_ACTIVATIONS,
    common_options=("onlyforward", "stopbackward", "learning_rate", "truth", "smooth"),
    unread_everywhere=frozenset(),
    batchnorm_arrays=("scales", "rolling_mean", "rolling_variance"),
    gru_state_gates_first=True,
    lstm_gate_order="ifog",
    recurrent_flat_output=True,
    crnn_fixed_3x3_swapped=True,
    xnor_forces_groups_1=False,
    flip_counts_all_channels=True,
    shortcut_scaled=True,
    shortcut_per_layer=False,
    shortcut_norm_needs_type=False,
    route_equal_sizes=False,
    detector_input_multiple=1,
    bn_eps=1e-6,
    bn_eps_inside_sqrt=False,
    conv1x1_fast_path_any_stride=True,
    region_anchor_major=True,
    region_tree_softmax=False,
    relu6_missing_on_cpu=False,
    detector=DetectorRules(pipeline="pjreddie", thresh=0.5, always_letterbox=True, fuse_bn=False),
)

HANKAI = Dialect(
    name="hankai",
    title="hank-ai",
    source="github.com/hank-ai/darknet",
    header_revision=5,
    seen_64bit_needs_small_version=False,
    strict_syntax=True,
    keeps_cr=False,
    activations=_AB_ACTIVATIONS,
    common_options=_AB_COMMON,
    unread_everywhere=_PJ_EVERYWHERE,
    batchnorm_arrays=ALEXEYAB.batchnorm_arrays,
    gru_state_gates_first=False,
    lstm_gate_order="figo",
    recurrent_flat_output=False,
    crnn_fixed_3x3_swapped=False,
    xnor_forces_groups_1=True,
    flip_counts_all_channels=False,
    shortcut_scaled=False,
    shortcut_per_layer=False,
    shortcut_norm_needs_type=False,
    route_equal_sizes=True,
    detector_input_multiple=32,
    bn_eps=1e-5,
    bn_eps_inside_sqrt=True,
    conv1x1_fast_path_any_stride=False,
    region_anchor_major=False,
    region_tree_softmax=True,
    relu6_missing_on_cpu=False,
    detector=ALEXEYAB.detector,
)

# the one table: --dialect NAME and the metadata's "dialect" look up here
DIALECTS: dict[str, Dialect] = {d.name: d for d in (ALEXEYAB, PJREDDIE, HANKAI)}
DEFAULT = ALEXEYAB  # the most used fork: what auto falls back to when the files do not decide
AUTO = "auto"

DialectLike = str | Dialect


def get(dialect: DialectLike) -> Dialect:
    """The record for a name (or a record); ``auto`` is resolved by :func:`choose`, not here."""
    if isinstance(dialect, Dialect):
        return dialect
    found = DIALECTS.get(str(dialect).lower().replace("-", ""))
    if found is None:
        raise CfgError(f"unknown dialect {dialect!r}; expected auto or one of {', '.join(DIALECTS)}")
    return found


def check(dialect: DialectLike) -> str:
    """A valid ``dialect=`` argument's name (``auto`` allowed)."""
    if isinstance(dialect, str) and dialect.lower() == AUTO:
        return AUTO
    return get(dialect).name


def from_provenance(text: str | None) -> str | None:
    """The fork a maker string names: ``"hank-ai (libdarknet.so, CPU build)"`` -> ``"hankai"``."""
    if not text:
        return None
    word = str(text).split()[0].lower().replace("-", "")
    return next((d.name for d in DIALECTS.values() if word in (d.name, d.title.lower().replace("-", ""))), None)


class Choice(Record):
    """What ``dialect="auto"`` picked and why (shown by ``inspect``, stored in exported metadata)."""

    dialect: Dialect
    auto: bool  # False: given explicitly
    reasons: tuple[str, ...] = ()
    also: tuple[str, ...] = ()  # other forks that read these files the same way
    note: str | None = None  # where the choice changes numbers and the files do not settle it

    def describe(self) -> str:
        """``pjreddie (auto: header 0.2.0, [shortcut] at line 103 across resolutions)``."""
        if not self.auto:
            return f"{self.dialect.name} (explicit)"
        return f"{self.dialect.name} (auto: {'; '.join(self.reasons) or 'no evidence'})"

    def as_dict(self) -> dict:
        return {
            "dialect": self.dialect.name,
            "auto": self.auto,
            "reasons": list(self.reasons),
            "also": list(self.also),
            **({"note": self.note} if self.note else {}),
        }


class Trial(Record):
    """One fork's reading of the files, for :func:`choose`."""

    dialect: Dialect
    error: Exception | None = None  # why it refuses the cfg
    ignored: Sequence[str] = ()  # "key at line N" options it would not read
    inline_comments: int = 0  # values a '# comment' would change (only hank-ai strips them)
    uses_bn: bool = False


def choose(trials: Sequence[Trial], revision: int | None, *, provenance: str | None = None) -> Choice:
    """Decide among the forks' readings of a cfg (and the header ``revision`` of its weights, if any).

    ``provenance`` is a fork named by the files themselves (a fixture's ``layers.json``): it wins
    unless that fork refuses the cfg.
    """
    ok = [t for t in trials if t.error is None]
    by_name = {t.dialect.name: t for t in trials}
    reasons: list[str] = []
    if provenance is not None and provenance in by_name and by_name[provenance].error is None:
        chosen = by_name[provenance]
        return Choice(chosen.dialect, True, (f"the files name {chosen.dialect.title} as their maker",))
    if not ok:
        raise next(t.error for t in trials if t.error is not None)
    if len(trials) == 1:  # only the default was tried: nothing in the files pointed elsewhere
        (t,) = trials
        head = [f"header 0.2.{revision}"] if revision is not None else ["no weights header"]
        return Choice(
            t.dialect,
            True,
            tuple(
                head + [f"{t.dialect.title} reads every option and no section, geometry or comment needs another fork"]
            ),
        )
    refusals: dict[str, list[str]] = {}  # one line for forks that refuse for the same reason
    for t in trials:
        if t.error is not None:
            why = getattr(t.error, "evidence", None) or _short(t.error)
            refusals.setdefault(why, []).append(t.dialect.title)
    reasons += [f"not {' or '.join(titles)}: {why}" for why, titles in refusals.items()]
    default = by_name.get(DEFAULT.name)
    if default is not None and default.error is not None and getattr(default.error, "evidence", None) is None:
        # the default fork refuses a value (not a section or geometry only another fork has): another
        # fork is the answer only if it reads every option; else this is a mistake in the cfg
        ok = [t for t in ok if not t.ignored]
        if not ok:
            raise default.error
    # a fork that would silently skip options the cfg sets did not write this cfg
    fewest = min(len(t.ignored) for t in ok)
    for t in ok:
        if len(t.ignored) > fewest:
            reasons.append(
                f"not {t.dialect.title}: it ignores {', '.join(list(t.ignored)[:2])}"
                + (f" (+{len(t.ignored) - 2} more)" if len(t.ignored) > 2 else "")
            )
    ok = [t for t in ok if len(t.ignored) == fewest]
    note = None
    names = {t.dialect.name for t in ok}
    if revision is not None:
        writers = [t for t in ok if t.dialect.header_revision == revision]
        if writers and len(writers) < len(ok):
            reasons.append(f"header 0.2.{revision} (written by {' and '.join(t.dialect.title for t in writers)})")
            if any(t.uses_bn for t in writers) and PJREDDIE.name in {t.dialect.name for t in writers}:
                note = (
                    f"header 0.2.{revision} chose {PJREDDIE.title}, whose batch-norm differs "
                    "((x-mean)/(sqrt(var)+1e-6) instead of /sqrt(var+1e-5)); give --dialect alexeyab to "
                    "compute what AlexeyAB's Darknet computes from these files"
                )
            ok = writers
    if len(ok) > 1 and HANKAI.name in names:
        hk = by_name[HANKAI.name]
        comments = max(t.inline_comments for t in trials)  # counted by the lenient parsers
        if hk in ok and comments:
            reasons.append(f"{comments} inline '#' comment(s), which only hank-ai strips")
            note = (
                f"{comments} inline '#' comment(s): hank-ai strips them, AlexeyAB and pjreddie would read them "
                "into the value (an unknown activation becomes relu); give --dialect alexeyab to see what "
                "AlexeyAB reads"
            )
            ok = [hk]
    pick = next((t for t in ok if t.dialect is DEFAULT), ok[0])
    also = tuple(t.dialect.name for t in ok if t is not pick)
    if also:
        reasons.append(f"{', '.join(DIALECTS[a].title for a in also)} would read these files the same way")
    if not reasons:
        reasons.append("only one fork accepts this cfg")
    return Choice(pick.dialect, True, tuple(reasons), also, note)


def _short(exc: Exception) -> str:
    """The first clause of an error, with its line: ``[l2norm] at line 40 unknown``."""
    message = getattr(exc, "message", str(exc))
    line = getattr(exc, "line", None)
    text = message.split(";")[0].split(" (")[0].split(": ")[0]
    return f"{text} (line {line})" if line else text
