"""The concerns every layer family must answer, as checks: tests/test_conformance.py runs them for every
registered family, tests/test_toy_family.py for a family registered by a test.

Each ``check_*`` takes the family's class and one example (``Example``: a small network whose last layer
is the family's) and raises ``AssertionError`` naming the family when the concern is missing or wrong.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import darkweights as dw
from darkweights import dialects
from darkweights.heads import NUMPY, Head, decode
from darkweights.layers import Layer
from darkweights.report import inspect
from darkweights.synth import init, random_arrays, value_range

from .conftest import DATA, FIXTURES

TABLES = DATA / "darknet_tables"
# the AlexeyAB layer tables (README there); catalogue/heads cover every AlexeyAB family but [contrastive]
AB_TABLES = ["yolov4", "yolov4-tiny", "yolov7", "yolov3", "darknet19", "recurrent", "catalogue", "heads"]


@dataclass
class Example:
    """A family's example network with random weights (seed 1), and its last layer, the one under test."""

    cls: type[Layer]
    dialect: str
    cfg: str

    @functools.cached_property
    def net(self) -> dw.Network:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dw.DarkweightsWarning)
            net = dw.load(f"{self.cls.type}.cfg", cfg_text=self.cfg, dialect=self.dialect)
            buf = io.BytesIO()
            init(net, buf, seed=1)
            net.load_weights(buf.getvalue())
        return net

    @property
    def layer(self) -> Layer:
        return self.net.layers[-1]

    @functools.cached_property
    def model(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dw.DarkweightsWarning)
            return self.net.to_torch()

    @functools.cached_property
    def x(self) -> np.ndarray:
        shape = self.net.input.chw if self.net.input.is_image else (self.net.input.size,)
        return np.random.default_rng(0).random((1, *shape), dtype=np.float32)

    @functools.cached_property
    def outputs(self) -> list:
        import torch

        return self.model(torch.from_numpy(self.x), all_outputs=True)

    def __str__(self) -> str:
        return f"[{self.cls.type}] ({self.dialect})"


def named(cls: type[Layer]) -> str:
    return f"layer family {cls.__name__} ({cls.type!r})"


# -- registration and forks ------------------------------------------------------------------------------


def check_registration(cls: type[Layer]) -> None:
    from darkweights.layers import HEADERS, LAYER_TYPES
    from darkweights.torch import MODULES

    assert LAYER_TYPES.get(cls.type) is cls, f"{named(cls)} is not registered"
    assert cls.headers and all(HEADERS[h] is cls for h in cls.headers), f"{named(cls)}: its headers are not its own"
    assert cls.type in MODULES, f"{named(cls)} has no PyTorch module (darkweights.torch.register({cls.type!r}))"


def check_forks(cls: type[Layer], example: Example) -> None:
    """The forks a family declares are the dialects whose sections list it; the others refuse its section with a
    message naming the forks that know it."""
    forks = cls.forks
    assert forks and set(forks) <= set(dialects.DIALECTS), f"{named(cls)}: forks {forks!r}"
    for d in dialects.DIALECTS.values():
        assert (cls.type in d.sections) == (d.name in forks), f"{named(cls)}: {d.name} sections disagree with its forks"
    header = cls.headers[0]
    titles = ", ".join(d.title for d in dialects.DIALECTS.values() if d.name in forks)
    for d in dialects.DIALECTS.values():
        if d.name in forks:
            continue
        cfg = f"[net]\nwidth=8\nheight=8\nchannels=3\n[{header}]\n"
        try:
            dw.load(f"{cls.type}.cfg", cfg_text=cfg, dialect=d.name)
        except dw.CfgError as exc:
            assert f"[{header}] is not supported by {d.title} Darknet (only by {titles})" in str(exc), str(exc)
        else:
            raise AssertionError(f"{named(cls)}: {d.title} accepted [{header}], which it does not know")


# -- shape -----------------------------------------------------------------------------------------------


def check_shape(cls: type[Layer], example: Example) -> None:
    """The output shape is consistent, and the module returns the family's ``natural_shape``."""
    layer = example.layer
    assert type(layer) is cls, f"{example}: the last layer is {type(layer).__name__}"
    out = layer.output
    assert out.size > 0 and (not out.c or out.c * out.h * out.w == out.size or cls.data_is_flat), f"{example}: {out}"
    got = tuple(example.outputs[-1].shape[1:])
    assert got == layer.natural_shape, f"{example}: the module returns {got}, the family says {layer.natural_shape}"


@functools.cache
def darknet_shape_records() -> dict[str, list[tuple[str, int, tuple[int, int, int, int], tuple[int, int, int, int]]]]:
    """Every layer whose geometry a Darknet build recorded (fixture layers.json, oracle cases, shapes/), by our
    family type: ``(source, index, Darknet's (c, h, w, outputs), ours)``."""
    sources: list[tuple[str, Path, list[dict], str | None]] = []
    for meta_path in sorted([*FIXTURES.glob("*/layers.json"), *(DATA / "oracle").glob("*/layers.json")]):
        meta = json.loads(meta_path.read_text())
        if "layers" in meta:
            sources.append((meta_path.parent.name, meta_path.parent / "model.cfg", meta["layers"], meta.get("dialect")))
    shapes = FIXTURES / "shapes"
    cfgs = FIXTURES.parent / "cfg"
    for p in sorted(shapes.glob("**/*.json")) if shapes.exists() else []:
        meta = json.loads(p.read_text())
        cfg = cfgs / meta.get("cfg", "")
        if "layers" in meta and cfg.is_file():
            sources.append((meta["cfg"], cfg, meta["layers"], None))
    out: dict[str, list] = {}
    for name, cfg, layers, maker in sources:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = dw.load(cfg, dialect=dialects.from_provenance(maker) or "alexeyab")
        except dw.DarkweightsError:
            continue  # test_shapes says which cfgs Darknet and darkweights both refuse
        for rec in layers:
            i = rec["index"]
            if i >= len(net.layers) or "out_c" not in rec:
                continue
            L = net.layers[i]
            theirs = (rec["out_c"], rec["out_h"], rec["out_w"], rec["outputs"])
            mine = tuple(L.next_input) if "darknet_reported" in rec else tuple(L.output)
            out.setdefault(L.type, []).append((name, i, theirs, mine))
    return out


def check_darknet_shapes(cls: type[Layer]) -> int:
    """Every recorded Darknet geometry of this family's layers equals ours; returns how many there are."""
    records = darknet_shape_records().get(cls.type, [])
    wrong = [r for r in records if r[2] != r[3]]
    assert not wrong, f"{named(cls)}: shapes differ from Darknet's: {wrong[:3]}"
    return len(records)


# -- stored arrays ---------------------------------------------------------------------------------------


def check_arrays(cls: type[Layer], example: Example) -> None:
    """Stored arrays: unique names, positive shapes, known roles, and the state_dict of the family's module holds
    exactly the catalogue's ``ArraySpec.torch`` names (darkweights.layers.names) with the same element counts;
    a file written for the network reads back and writes byte-identically."""
    layer = example.layer
    specs = layer.stored()
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), f"{example}: duplicate array names {names}"
    roles = {"biases", "scales", "rolling_mean", "rolling_variance", "weights"}
    for s in specs:
        assert s.role in roles and all(d > 0 for d in s.shape), f"{example}: {s}"
    prefix = f"layers.{layer.index}."
    state = {k[len(prefix) :]: v for k, v in example.model.state_dict().items() if k.startswith(prefix)}
    declared = {s.torch: s for s in specs if s.torch and s.on_load}
    if layer.share_index is None:  # (a module may hold parameters Darknet does not store: pjreddie's BN bias)
        assert set(declared) <= set(state), f"{example}: state_dict {sorted(state)} lacks {sorted(declared)}"
        for k, s in declared.items():
            assert state[k].numel() == s.count, f"{example}: {k} has {state[k].numel()} values, {s.name} {s.count}"
    net = example.net
    source = net.weights_source
    assert source is not None
    buf = io.BytesIO()
    net.save_weights(buf)
    assert buf.getvalue() == bytes(source), f"{example}: the round trip changed the bytes"


def check_init_range(cls: type[Layer], example: Example) -> None:
    """Every stored array has a finite init range, weights with a declared fan-in (or the family's own rule), and
    ``darkweights init`` draws inside it."""
    layer = example.layer
    own_rule = type(layer).init_range is not Layer.init_range
    net = example.net
    for p, arr in random_arrays(net, 3):
        if p.layer != layer.index:
            continue
        spec = next(s for s in layer.stored() if s.name == p.name)
        assert spec.role != "weights" or spec.fan_in >= 0 or own_rule, (
            f"{named(cls)}: array {spec.name} declares no fan_in (ArraySpec.fan_in) and the family no init_range"
        )
        lo, hi = value_range(net, p)
        assert math.isfinite(lo) and math.isfinite(hi) and lo < hi, f"{example}: {spec.name} range {lo}, {hi}"
        assert lo <= float(arr.min()) and float(arr.max()) <= hi, f"{example}: {spec.name} outside [{lo}, {hi}]"


# -- reads ------------------------------------------------------------------------------------------------


class _Unread:
    """Stands for an output the layer does not declare it reads: any use of it fails."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the module used {self.what}")


def check_reads(cls: type[Layer], example: Example) -> None:
    """``reads()`` names earlier layers only; the module reads exactly those (and its input, unless the family
    says it does not): every other output is replaced by a stand-in that fails when touched."""
    layer = example.layer
    reads = layer.reads()
    assert all(0 <= j < layer.index for j in reads), f"{example}: reads {reads}"
    module = example.model.layers[layer.index]
    assert module.reads == reads, f"{example}: module reads {module.reads}, catalogue {reads}"
    outs = example.outputs
    given = [outs[j] if j in reads else _Unread(f"layer {j}'s output") for j in range(layer.index)]
    prev = outs[layer.index - 1] if layer.index else None
    if prev is None:
        import torch

        prev = torch.from_numpy(example.x)
    x = prev if cls.reads_input else _Unread("its input")
    import torch

    try:
        with torch.inference_mode():
            got = module(x, given)
    except Exception as exc:  # a stand-in was used: as an argument (TypeError ...) or read (AssertionError)
        raise AssertionError(
            f"{named(cls)}: the module fails when it is given only the outputs its family's reads() lists "
            f"({reads}{', and its input' if cls.reads_input else ''}): {type(exc).__name__}: {exc}"
        ) from None
    from darkweights.torch.base import dense

    # the same values up to float rounding (the model's forward may run on channels-last data)
    np.testing.assert_allclose(
        dense(got).numpy(), outs[layer.index].numpy(), rtol=1e-5, atol=1e-6, err_msg=str(example)
    )


# -- BFLOPs ----------------------------------------------------------------------------------------------


LINE = re.compile(r"^ +(\d+) (.*)$")
BF = re.compile(r"(\d+\.\d+) BF\s*$")


@functools.cache
def ab_table_records() -> dict[str, list[tuple[str, int, str | None, bool, float | None]]]:
    """Every layer of the recorded AlexeyAB tables, by our family type: ``(table, index, the BF printed on its own
    line or None, whether its continuation lines print BF, ours)``."""
    out: dict[str, list] = {}
    for name in AB_TABLES:
        text = (TABLES / f"{name}.txt").read_text()
        cfg = TABLES / f"{name}.cfg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = dw.load(cfg if cfg.exists() else name, dialect="alexeyab")
        lines: dict[int, list[str]] = {}
        current = -1
        for line in text.splitlines()[1:]:
            m = LINE.match(line)
            if m and int(m.group(1)) > current:  # a layer's own line ("%4d " first); a recurrent layer's
                current = int(m.group(1))  # sub-convolutions' lines can hide the next indexes: those have none
                lines[current] = [m.group(2)]
            elif current >= 0 and not line.startswith("Total BFLOPS"):
                lines[current].append(line)
        for i, (own, *rest) in lines.items():
            m = BF.search(own)
            L = net.layers[i]
            out.setdefault(L.type, []).append(
                (name, i, m.group(1) if m else None, any(BF.search(r) for r in rest), L.bflops())
            )
    return out


def check_bflops(cls: type[Layer]) -> int:
    """The family's counts equal what AlexeyAB printed for every recorded layer of it (none where it prints none);
    returns how many recorded layers there are."""
    records = ab_table_records().get(cls.type, [])
    for table, i, printed, sub, ours in records:
        where = f"{named(cls)}: layer {i} of {table}.txt"
        if printed is not None:
            assert ours is not None and f"{ours:5.3f}".strip() == printed, f"{where}: AlexeyAB {printed}, ours {ours}"
        elif sub:
            assert ours is not None, f"{where}: AlexeyAB counts its sub-layers, ours is None"
        else:
            assert ours is None, f"{where}: AlexeyAB prints no count, ours is {ours}"
    return len(records)


def check_bflops_value(cls: type[Layer], example: Example) -> None:
    value = example.layer.bflops()
    assert value is None or (math.isfinite(value) and value >= 0), f"{example}: bflops {value!r}"
    if dialects.ALEXEYAB.name not in cls.forks:
        assert value is None, f"{named(cls)}: AlexeyAB does not know this family, so it counts nothing for it"


# -- torch, ONNX ------------------------------------------------------------------------------------------


def check_torch(cls: type[Layer], example: Example) -> None:
    """The module computes finite values, the same in float64, and the same with BN folded (float rounding)."""
    import torch

    y = example.outputs[-1]
    assert torch.isfinite(y).all() or not torch.isfinite(torch.from_numpy(example.x)).all(), f"{example}: not finite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        double = example.net.to_torch().double()
        fused = example.net.to_torch(fuse_bn=True)
    x = torch.from_numpy(example.x)
    y64 = double(x.double(), all_outputs=True)[-1]
    yf = fused(x, all_outputs=True)[-1]
    scale = max(float(y.abs().max()), 1e-6)
    assert float((y64 - y).abs().max()) / scale < 1e-4, f"{example}: float64 differs"
    assert float((yf - y).abs().max()) / scale < 1e-4, f"{example}: fused differs"


def check_onnx(cls: type[Layer], example: Example, tmp: Path) -> None:
    """The network exports to ONNX (raw, every layer) and onnxruntime computes this layer's output as torch does."""
    from darkweights.onnx import export_onnx, run_onnx

    net = example.net
    if not net.input.is_image:
        return  # the export needs an image input (a flat [net] inputs= is refused, located)
    path = tmp / f"{cls.type}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = export_onnx(net, path, all_outputs=True)
        got = run_onnx(path, example.x[0])
    name = info.outputs[-1]
    want = example.outputs[-1].numpy()
    scale = max(float(np.abs(want).max()), 1e-6)
    diff = float(np.abs(got[name].reshape(want.shape) - want).max())
    assert diff / scale <= 1e-4, f"{example}: onnxruntime differs by {diff / scale:.3g}"


# -- table cells -------------------------------------------------------------------------------------------


def check_cells(cls: type[Layer], example: Example) -> None:
    """The family's ``inspect`` cells: strings, a short type name, and the table shows them."""
    layer = example.layer
    cells = layer.cells()
    assert all(isinstance(v, str) for v in cells) and cells.short, f"{example}: cells {cells!r}"
    row = inspect(example.net).rows[-1]
    assert (row["short"], row["filters"], row["size"], row["options"]) == tuple(cells), f"{example}: {row}"
    assert cls.node_color.startswith("#") and cls.edge_color.startswith("#"), f"{named(cls)}: report colours"


@functools.cache
def ab_cells() -> dict[str, list[tuple[str, int, tuple[str, str, str]]]]:
    """AlexeyAB's ``conv``/``max``/``avg`` table lines (type, filters, size/strd(dil)), by our family type."""
    # make_convolutional_layer's and make_maxpool_layer's fprintf formats
    conv = re.compile(r"^\s*(\d+) (conv\w*)\s+(\d+(?:/\s*\d+)?)\s+(\d+) ?x ?(\d+)/ ?(\d+)(?:x ?(\d+))?(\(\d\))?")
    pool = re.compile(r"^\s*(\d+) (max|avg)\s+()(\d+)x ?(\d+)/ ?(\d+)(?:x ?(\d+))?()")
    out: dict[str, list] = {}
    for name in AB_TABLES:
        cfg = TABLES / f"{name}.cfg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = dw.load(cfg if cfg.exists() else name, dialect="alexeyab")
        for line in (TABLES / f"{name}.txt").read_text().splitlines():
            m = conv.match(line) or pool.match(line)
            if not m:
                continue
            i = int(m.group(1))
            size = (
                f"{m.group(4)}x{m.group(5)}/{m.group(6)}"
                + (f"x{m.group(7)}" if m.group(7) else "")
                + (m.group(8) or "")
            )
            filters = m.group(3).replace(" ", "")
            out.setdefault(net.layers[i].type, []).append((name, i, (m.group(2), filters, size)))
    return out


def check_ab_cells(cls: type[Layer]) -> None:
    """Where AlexeyAB prints type, filters and size/strd(dil) columns, our cells are the same text."""
    for table, i, theirs in ab_cells().get(cls.type, []):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = TABLES / f"{table}.cfg"
            L = dw.load(cfg if cfg.exists() else table, dialect="alexeyab").layers[i]
        if L.next_input != L.output:
            continue  # antialiased: AlexeyAB prints its stride-1 convolution and the blur on two lines
        cells = L.cells()
        assert (cells.short, cells.filters, cells.size) == theirs, f"{named(cls)}: layer {i} of {table}: {cells}"


# -- heads ------------------------------------------------------------------------------------------------


def check_head(cls: type[Layer], example: Example) -> None:
    """A head family gives a :class:`Head` that the model returns and both decode backends read the same way;
    any other family gives none."""
    layer = example.layer
    head = layer.head()
    model = example.model
    if head is None:
        assert layer.index not in model.heads, f"{example}: the model returns it as a head, the family says not"
        return
    assert isinstance(head, Head) and layer.index in model.heads, f"{example}: {head!r}"
    assert (head.index, head.type, head.classes) == (layer.index, layer.type, layer.classes), f"{example}: {head}"
    if head.problem:
        return
    out = example.outputs[-1]
    assert head.grid[0] * head.grid[1] * head.slots * head.entries == out[0].numel(), f"{example}: {head}"
    net = example.net
    ours = decode(head, out[0].numpy(), NUMPY, net_w=net.width, net_h=net.height)
    assert ours.boxes.shape == (head.candidates, 4) and ours.probs.shape == (head.candidates, head.classes)
    if head.order == "cell":  # the ONNX graph's ops (float32 throughout) see the same candidates
        from darkweights.onnx.decode import TORCH

        g = decode(head, out, TORCH, net_w=net.width, net_h=net.height)
        for a, b in ((ours.boxes, g.boxes[0].numpy()), (ours.probs, g.probs[0].numpy())):
            finite = np.isfinite(a) & (np.abs(a) < 1e30)
            scale = max(float(np.abs(a[finite]).max(initial=0)), 1e-6)
            assert np.abs(a - b)[finite].max(initial=0) / scale < 1e-5, f"{example}: numpy and torch decodes differ"
