"""Hostile inputs for darkweights and the contract every one of them must keep.

Each generator takes a :class:`random.Random` and a scratch directory and returns a
:class:`Case`: a label and a thunk that feeds one malformed cfg, weights file, array set or
image to the library. :func:`run_case` runs the thunk and classifies the outcome:

* ``ok``: the input was valid after all (mutations sometimes leave a file intact);
* ``error``: a :class:`~darkweights.errors.DarkweightsError` subclass naming a file, a line or
  a byte offset (the contract);
* ``unexpected``: any other exception, or a library error that says nowhere where;
* ``hang``: more CPU time than the per-case limit;
* ``overalloc``: a ``MemoryError`` (the runner caps the address space) or peak RSS above the bound.

The same generators drive ``tests/test_fuzz.py`` (hypothesis picks the seeds, briefly) and
``fuzz/run.py`` (a long run printing one summary line).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import signal
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import darkweights as dw
from darkweights.errors import DarkweightsError
from darkweights.export import pack, read_arrays
from darkweights.synth import init

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

# ---------------------------------------------------------------------------------------------
# Seeds: small valid models (their weights are a few kB, so a case takes milliseconds)

TINY = """[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=4
size=1
activation=linear

[route]
layers=-1,-2

[upsample]
stride=2

[shortcut]
from=-5
activation=linear

[connected]
output=6
activation=leaky
"""

DETECTOR = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=21
size=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3

[route]
layers=-3

[convolutional]
filters=30
size=1
activation=linear

[region]
anchors=1,1, 2,2, 3,3, 4,4, 5,5
classes=1
coords=4
num=5
"""


def _small_cfgs() -> dict[str, str]:
    out = {"tiny.cfg": TINY, "detector.cfg": DETECTOR}
    for name in ("synth_recurrent.cfg", "synth_geometry.cfg", "synth_activations.cfg", "features.cfg"):
        path = DATA / name
        if path.exists():
            out[name] = path.read_text()
    return out


CFGS = _small_cfgs()
# every numeric option a layer reads from the cfg, with the sections where it matters
NUMERIC = (
    "filters",
    "size",
    "stride",
    "stride_x",
    "stride_y",
    "pad",
    "padding",
    "groups",
    "width",
    "height",
    "channels",
    "inputs",
    "classes",
    "num",
    "mask",
    "anchors",
    "layers",
    "from",
    "output",
    "hidden",
    "batch_normalize",
    "dilation",
    "coords",
    "side",
    "n",
    "steps",
    "time_steps",
    "reverse",
    "dontload",
    "antialiasing",
    "share_index",
    "out_w",
    "out_h",
    "out_c",
    "scale_x_y",
    "new_coords",
    "max_delta",
)
ABSURD = (
    "0",
    "-1",
    "-2",
    "1",
    "2",
    "3",
    "7",
    "-2147483648",
    "2147483647",
    "2147483648",
    "4294967296",
    "99999999999999999999",
    "1e30",
    "-1e30",
    "1.5",
    "0.5",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "abc",
    "0x10",
    "1,2,3",
    "-100",
    "100000",
    "65536",
    "1,",
    ",",
    "1,,2",
    "+3",
    "1e",
    "٣",
    "10 20",
)


def _sections(text: str) -> list[str]:
    """Split cfg text into its sections (each with its header line)."""
    parts = re.split(r"(?m)^(?=\[)", text)
    return [p for p in parts if p.strip()]


def mutate_cfg(rng: random.Random, text: str) -> bytes:
    """One to three structural or value mutations of a cfg's text, as bytes."""
    secs = _sections(text)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(14)
        if op == 0 and len(secs) > 1:  # delete a section ([net] too)
            del secs[rng.randrange(len(secs))]
        elif op == 1 and secs:  # duplicate one
            i = rng.randrange(len(secs))
            secs.insert(rng.randrange(len(secs) + 1), secs[i])
        elif op == 2 and len(secs) > 2:  # reorder
            i, j = rng.randrange(len(secs)), rng.randrange(len(secs))
            secs[i], secs[j] = secs[j], secs[i]
        elif op in (3, 4, 5, 6) and secs:  # absurd value for a numeric option (set or replace)
            i = rng.randrange(len(secs))
            key, value = rng.choice(NUMERIC), rng.choice(ABSURD)
            if re.search(rf"(?m)^{key}\s*=", secs[i]):
                secs[i] = re.sub(rf"(?m)^{key}\s*=.*$", f"{key}={value}", secs[i], count=1)
            else:
                secs[i] = secs[i].rstrip("\n") + f"\n{key}={value}\n"
        elif op == 7 and secs:  # route/shortcut to an arbitrary (forward, zero, far) layer
            i = rng.randrange(len(secs))
            ref = rng.choice((0, 1, -1, len(secs), -len(secs) - 3, 10**6, i, i + 1))
            kind = rng.choice(
                (
                    "[route]\nlayers={}\n",
                    "[shortcut]\nfrom={}\n",
                    "[route]\nlayers=-1,{}\n",
                    "[sam]\nfrom={}\n",
                    "[scale_channels]\nfrom={}\n",
                )
            )
            secs.insert(i, kind.format(ref))
        elif op == 8:  # an unknown section / a known one from another fork
            secs.insert(
                rng.randrange(len(secs) + 1),
                rng.choice(
                    (
                        "[bogus]\n",
                        "[conv_lstm]\noutput=4\n",
                        "[Gaussian_yolo]\nclasses=1\n",
                        "[net]\n",
                        "[empty]\n",
                        "[]\n",
                        "[yolo\n",
                    )
                ),
            )
        elif op == 9 and secs:  # truncate a section mid-line
            i = rng.randrange(len(secs))
            secs[i] = secs[i][: rng.randrange(len(secs[i]) + 1)]
        elif op == 10:  # a huge line
            secs.append(f"[convolutional]\nfilters={'9' * rng.choice((20, 1000, 1 << 20))}\n")
        elif op == 11 and secs:  # an option outside any section, or a malformed line
            secs.insert(0, rng.choice(("filters=3\n", "=\n", "keyonly\n", "a==b\n", "#\n", ";;\n")))
        elif op == 12:  # drop every value of one key
            key = rng.choice(NUMERIC)
            secs = [re.sub(rf"(?m)^{key}\s*=.*\n?", "", s) for s in secs]
        else:  # another activation, some legal, some not
            i = rng.randrange(len(secs)) if secs else 0
            if secs:
                secs[i] = (
                    secs[i].rstrip("\n")
                    + "\nactivation="
                    + rng.choice(("mish", "relu", "ramp", "swish", "hardtan", "lhtan", "bogus", "", "logistic"))
                    + "\n"
                )
    raw = "".join(secs).encode("utf-8")
    return _byte_noise(rng, raw) if rng.random() < 0.15 else raw


def _byte_noise(rng: random.Random, raw: bytes) -> bytes:
    """NUL bytes, invalid UTF-8, random garbage, CRLF."""
    op = rng.randrange(5)
    b = bytearray(raw)
    if op == 0 and b:
        b.insert(rng.randrange(len(b) + 1), 0)
    elif op == 1 and b:
        b[rng.randrange(len(b)) : rng.randrange(len(b)) + 1] = bytes([0xFF, 0xFE, 0xC3])
    elif op == 2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 512)))
    elif op == 3:
        return raw.replace(b"\n", b"\r\n")
    else:
        for _ in range(rng.randint(1, 8)):
            if b:
                b[rng.randrange(len(b))] = rng.getrandbits(8)
    return bytes(b)


def big_cfg(n_layers: int, kind: str = "conv") -> str:
    """A synthetic cfg of ``n_layers`` layers: a conv stack, or a long route/shortcut chain."""
    head = "[net]\nwidth=8\nheight=8\nchannels=3\n\n"
    if kind == "route":
        body = (
            "[convolutional]\nfilters=4\nsize=1\nactivation=leaky\n\n"
            + "[route]\nlayers=-1\n\n[shortcut]\nfrom=-2\nactivation=linear\n\n" * ((n_layers - 1) // 2)
        )
    else:
        body = "[convolutional]\nfilters=4\nsize=1\nactivation=leaky\n\n" * n_layers
    return head + body


# ---------------------------------------------------------------------------------------------
# Cases


class Case(NamedTuple):
    family: str
    label: str
    thunk: Callable[[], Any]


def _quiet_load(*args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dw.load(*args, **kwargs)


def _exercise(net: Any) -> None:
    """What every command does with a parsed network: the layout, sizes, descriptions."""
    params = net.layout()
    net.weights_bytes()
    for layer in net.layers:
        layer.describe()
    if params and params[-1].end < (2 << 20):
        buf = io.BytesIO()
        init(net, buf, seed=0)
        again = _quiet_load(net.path, buf.getvalue(), cfg_text=net.cfg.text, dialect=net.dialect)
        again.arrays()


def gen_cfg(rng: random.Random, tmp: Path) -> Case:
    name, text = rng.choice(sorted(CFGS.items()))
    raw = mutate_cfg(rng, text)
    dialect = rng.choice(("alexeyab", "alexeyab", "pjreddie", "hankai"))
    path = tmp / "fuzz.cfg"
    path.write_bytes(raw)
    return Case(
        "cfg", f"{name} mutated ({len(raw)} bytes, {dialect})", lambda: _exercise(_quiet_load(path, dialect=dialect))
    )


def gen_cfg_big(rng: random.Random, tmp: Path) -> Case:
    # (100 000 layers take ~10 s to parse on a loaded machine: benchmarks/bench_scaling.py measures them)
    n = rng.choice((5000, 10_000)) if rng.random() < 0.05 else rng.choice((200, 1000))
    kind = rng.choice(("conv", "route"))
    text = big_cfg(n, kind)
    if rng.random() < 0.5:
        text = mutate_cfg(rng, text).decode("utf-8", "replace")
    path = tmp / "big.cfg"
    path.write_text(text)
    return Case("cfg", f"{n}-layer {kind} cfg", lambda: _quiet_load(path).layout())


_NETS: dict[str, tuple[Any, bytes]] = {}


def _net_and_weights(name: str) -> tuple[Any, bytes]:
    if name not in _NETS:
        net = _quiet_load(name, cfg_text=CFGS[name])
        buf = io.BytesIO()
        init(net, buf, seed=1)
        _NETS[name] = (net, buf.getvalue())
    return _NETS[name]


def mutate_weights(rng: random.Random, net: Any, data: bytes) -> bytes:
    params = net.layout()
    op = rng.randrange(13)
    if op == 0:  # truncate at a layer boundary
        return data[: rng.choice([p.end for p in params] + [net.header.size])]
    if op == 1:  # truncate mid-array
        p = rng.choice(params)
        return data[: rng.randrange(p.offset, p.end + 1)]
    if op == 2:  # header bit flip
        b = bytearray(data)
        i = rng.randrange(min(20, len(b)))
        b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if op == 3:  # huge or negative versions
        v = [rng.choice((0, 1, 2, 5, 1000, 1001, 65535, 65536, -1, 2**31 - 1, -(2**31))) for _ in range(3)]
        return struct.pack("<iii", *v) + data[12:]
    if op == 4:  # appended bytes
        return data + bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 3, 4, 400, 4096))))
    if op == 5:
        return rng.choice((b"", b"\0", b"\0" * 12, b"\0" * 15, data[:16], data[:19]))
    if op == 6:
        return rng.choice(
            (
                b"<!DOCTYPE html><html><body>404</body></html>\n",
                b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1234\n",
                b"[net]\nwidth=16\n",
            )
        )
    if op == 7:
        return gzip.compress(data)
    if op == 8:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("model.weights", data)
        return out.getvalue()
    if op == 9:  # NaN / Inf / absurd values in the body (BN variances included)
        arr = np.frombuffer(data[net.header.size :], "<f4").copy()
        if arr.size:
            idx = rng.randrange(arr.size)
            arr[idx] = rng.choice((np.nan, np.inf, -np.inf, -1.0, 0.0, 3e38))
        return data[: net.header.size] + arr.tobytes()
    if op == 10:  # garbage of the right size
        return bytes(rng.getrandbits(8) for _ in range(len(data)))
    if op == 11:  # seen as 32-bit (minor=1) with the body unchanged: 4 bytes too many
        return struct.pack("<iii", 0, 1, 0) + data[12:]
    b = bytearray(data)  # random flips anywhere
    for _ in range(rng.randint(1, 16)):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _load_weights(name: str, data: bytes, tmp: Path, on_disk: bool, dialect: str, cutoff: int | None) -> None:
    source: Any = data
    if on_disk:
        source = tmp / "fuzz.weights"
        source.write_bytes(data)
    net = _quiet_load(name, source, cfg_text=CFGS[name], dialect=dialect, cutoff=cutoff)
    arrays = net.arrays()
    for a in arrays.values():
        float(np.sum(a, dtype=np.float64))
    net.save_weights(io.BytesIO())


def gen_weights(rng: random.Random, tmp: Path) -> Case:
    name = rng.choice(sorted(CFGS))
    net, data = _net_and_weights(name)
    raw = mutate_weights(rng, net, data)
    dialect = rng.choice(("alexeyab", "pjreddie", "hankai"))
    on_disk = rng.random() < 0.3
    cutoff = rng.choice((None, None, None, 0, 1, len(net.layers), 10**6, -1))
    return Case(
        "weights",
        f"{name} weights mutated ({len(raw)} bytes, {dialect}, cutoff {cutoff})",
        lambda: _load_weights(name, raw, tmp, on_disk, dialect, cutoff),
    )


def mutate_arrays(rng: random.Random, arrays: dict) -> dict:
    out = dict(arrays)
    keys = sorted(out)
    for _ in range(rng.randint(1, 3)):
        try:
            _mutate_one(rng, out, rng.choice(keys))
        except (TypeError, ValueError):  # a mutation that does not apply to an earlier mutation's result
            pass
    return out


def _mutate_one(rng: random.Random, out: dict, k: str) -> None:
    """Apply one mutation to entry ``k`` in place."""
    op = rng.randrange(12)
    a = out.get(k)
    a = a if isinstance(a, np.ndarray) else np.zeros(1, np.float32)
    if op == 0:
        out[k + "_renamed" if rng.random() < 0.5 else "layers.99.bogus"] = out.pop(k, a)
    elif op == 1:
        out[k] = a.reshape(-1)
    elif op == 2:
        out[k] = np.zeros(tuple(reversed(a.shape)) + (1,), np.float32)
    elif op == 3:
        out[k] = a.astype(rng.choice((np.float64, np.int64, np.int8, bool, np.float16, np.complex64)))
    elif op == 4:
        out[k] = np.array([object()] * a.size, dtype=object).reshape(a.shape)
    elif op == 5:
        out[k] = np.asfortranarray(np.ascontiguousarray(a)) if a.ndim > 1 else a[::-1]
    elif op == 6:
        out[k] = np.zeros((0,) + a.shape[1:], np.float32)
    elif op == 7 and a.dtype.kind in "fiub":
        b = np.array(a, np.float32)
        if b.size:
            b.reshape(-1)[rng.randrange(b.size)] = rng.choice((np.nan, np.inf))
        out[k] = b
    elif op == 8:
        out.pop(k, None)
    elif op == 9:
        out[k] = "not an array"
    elif op == 10:
        out[k] = [[1, 2], [3]]  # ragged
    else:
        out[k] = np.float32(1.0)


def _save_arrays(name: str, arrays: dict) -> None:
    net, _ = _net_and_weights(name)
    dw.save_weights(arrays, io.BytesIO(), net=net)


def gen_arrays(rng: random.Random, tmp: Path) -> Case:
    name = rng.choice(sorted(CFGS))
    net, data = _net_and_weights(name)
    arrays = dict(_quiet_load(name, data, cfg_text=CFGS[name]).arrays())
    if rng.random() < 0.3:  # PyTorch state_dict names
        arrays = {p.torch: arrays[p.key] for p in net.layout() if p.torch}
    mutated = mutate_arrays(rng, arrays)
    return Case("arrays", f"{name} arrays mutated", lambda: _save_arrays(name, mutated))


class _Payload:
    """Runs code when unpickled: a file that carries it must be refused, and it must never run."""

    def __reduce__(self) -> Any:
        return (os.system, ("touch /tmp/darkweights-fuzz-pwned",))


def _npz_bytes(rng: random.Random, arrays: dict, meta: str) -> bytes:
    out = io.BytesIO()
    entries = dict(arrays)
    op = rng.randrange(7)
    if op == 0:
        entries[rng.choice(sorted(entries))] = np.array([_Payload()], dtype=object)
    elif op == 1:
        entries["__darkweights__"] = np.array(rng.choice(("{not json", "[]", "1", '{"cfg": 3}', meta[:40])))
    elif op == 2:
        entries.pop("__darkweights__", None)
    if op == 5:  # a lone .npy named .npz
        np.save(out, entries[rng.choice(sorted(entries))])
        return out.getvalue()
    np.savez(out, **entries)
    raw = out.getvalue()
    if op == 3:
        raw = raw[: rng.randrange(len(raw))]
    elif op == 4:
        b = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 0xFF
        raw = bytes(b)
    return raw


def _safetensors_bytes(rng: random.Random, arrays: dict, meta: dict) -> bytes:
    entries: dict[str, Any] = {}
    pos = 0
    blobs = []
    for k, a in arrays.items():
        if k == "__darkweights__":
            continue
        b = np.ascontiguousarray(a, "<f4").tobytes()
        entries[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    entries["__metadata__"] = meta
    data = b"".join(blobs)
    keys = [k for k in entries if k != "__metadata__"]
    op = rng.randrange(11)
    k = rng.choice(keys)
    if op == 0:  # offsets past the end
        entries[k]["data_offsets"] = [pos - 4, pos + 4 * rng.choice((1, 10**6, 2**40))]
    elif op == 1:  # overlapping
        entries[k]["data_offsets"] = [0, entries[k]["data_offsets"][1] - entries[k]["data_offsets"][0]]
    elif op == 2:
        entries[k]["dtype"] = rng.choice(("F33", "BF16", "BOOL", "", None, 3, "F64", "U8"))
    elif op == 3:
        entries[k]["shape"] = rng.choice(([-1], [2**62, 2**62], ["a"], None, [], [0], 5, [1.5]))
    elif op == 4:
        entries[k] = rng.choice(("x", None, [], {"dtype": "F32"}))
    elif op == 5:
        entries["__metadata__"] = rng.choice(
            (
                {"cfg": 7},
                {"header": "{bad"},
                "str",
                {"input": "[1]"},
                {"cfg": "[net]\n", "dialect": "klingon"},
                {"cutoff": "x"},
            )
        )
    head = json.dumps(entries).encode()
    if op == 6:
        head = head[: rng.randrange(len(head))]
    elif op == 7:
        head = b"\xff\xfe" + head
    hlen = len(head)
    if op == 8:
        hlen = rng.choice((2**64 - 1, 2**63, 10**12, hlen + 1, 0, 100 * 1024 * 1024))
    raw = struct.pack("<Q", hlen) + head + data
    if op == 9:
        raw = raw[: rng.randrange(len(raw))]
    elif op == 10:
        raw = raw[: rng.randrange(9)]
    return raw


def _pack(path: Path, out: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays, _meta = read_arrays(path)
        for a in arrays.values():
            np.asarray(a).sum()
        pack(path, out)


def gen_array_file(rng: random.Random, tmp: Path) -> Case:
    from darkweights.export import metadata

    name = rng.choice(sorted(CFGS))
    net, data = _net_and_weights(name)
    bound = _quiet_load(name, data, cfg_text=CFGS[name])
    arrays = dict(bound.arrays())
    meta = metadata(bound)
    if rng.random() < 0.5:
        raw = _npz_bytes(rng, {**arrays, "__darkweights__": np.array(json.dumps(meta))}, json.dumps(meta))
        path = tmp / "fuzz.npz"
    else:
        raw = _safetensors_bytes(rng, arrays, meta)
        path = tmp / "fuzz.safetensors"
    path.write_bytes(raw)
    out = tmp / "fuzz-out.weights"
    return Case("arrays", f"{path.suffix} file from {name} mutated ({len(raw)} bytes)", lambda: _pack(path, out))


# ---------------------------------------------------------------------------------------------
# Safetensors headers: the JSON itself (depth, size, types) and dims that fit the file but not the cfg


def _safetensors_raw(head: bytes, data: bytes, hlen: int | None = None) -> bytes:
    return struct.pack("<Q", len(head) if hlen is None else hlen) + head + data


def mutate_safetensors_header(rng: random.Random, entries: dict, data: bytes) -> bytes:
    """A hostile JSON header over valid data: nesting, size, literals, types, dims against the cfg."""
    entries = json.loads(json.dumps(entries))  # a deep copy
    meta = entries.get("__metadata__", {})
    keys = [k for k in entries if k != "__metadata__"]
    k = rng.choice(keys)
    op = rng.randrange(12)
    if op == 0:  # nested 10..200,000 deep, in a value or as the whole header
        depth = rng.choice((10, 40, 1000, 100_000, 200_000))
        nest = "[" * depth + "]" * depth
        if rng.random() < 0.5:
            return _safetensors_raw(nest.encode(), data)
        head = json.dumps(entries)[:-1] + ', "deep": ' + nest + "}"
        return _safetensors_raw(head.encode(), data)
    if op == 1:  # metadata values nested as JSON text (header / input are JSON inside strings)
        depth = rng.choice((50, 5000, 100_000))
        meta[rng.choice(("header", "input"))] = "[" * depth + "]" * depth
    elif op == 2:  # a header whose seen does not fit the width its version gives it
        h = json.loads(meta.get("header", "{}") or "{}")
        h.update(major=0, minor=rng.choice((1, 0)), seen=rng.choice((2**32, 2**40, 2**64 - 1, 2**64, -1)))
        meta["header"] = json.dumps(h)
    elif op == 3:  # other corrupt metadata values
        key, value = rng.choice(
            (
                ("cutoff", "abc"),
                ("cutoff", "-1"),
                ("cutoff", "99999999999999999999"),
                ("header", '{"major": "0", "minor": 2, "revision": 5}'),
                ("header", '{"major": 2147483648, "minor": 2, "revision": 5}'),
                ("header", "[0, 2, 5]"),
                ("input", '{"width": -5}'),
                ("input", '{"width": 1e9}'),
                ("input", '{"width": true}'),
                ("dialect", "klingon"),
                ("cfg_name", "../../etc/passwd"),
                ("cfg", "[net]\nwidth=" + "9" * 30 + "\n"),
            )
        )
        meta[key] = value
    elif op == 4:  # dims consistent with the offsets but not with the cfg (a reshaped array)
        info = entries[k]
        n = info["data_offsets"][1] - info["data_offsets"][0]
        count = n // 4
        info["shape"] = rng.choice(([count], [1, count], [count, 1, 1, 1], [max(count // 2, 1), 2]))
    elif op == 5:  # numbers JSON allows but no reader should: floats, huge ints, NaN literals
        entries[k]["data_offsets"] = rng.choice(([0.0, 4.0], [0, 10**30], [-4, 0], [2**63, 2**63 + 4]))
    elif op == 6:
        head = json.dumps(entries).replace(str(entries[k]["data_offsets"][1]), "NaN", 1)
        return _safetensors_raw(head.encode(), data)
    elif op == 7:  # duplicate keys: the later one wins in json, an entry seen twice
        head = json.dumps(entries)[:-1] + ", " + json.dumps({k: entries[k]})[1:]
        return _safetensors_raw(head.encode(), data)
    elif op == 8:  # a big header: many junk entries, or a long cfg
        if rng.random() < 0.5:
            for i in range(rng.choice((1000, 50_000))):
                entries[f"junk{i}"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
        else:
            meta["cfg"] = meta.get("cfg", "") + "#" * rng.choice((1 << 20, 70 << 20))
    elif op == 9:  # not an object, or invalid text
        head = rng.choice((b"[]", b"null", b'"str"', b"1", b"{", b"\xff\xfe{}", b'{"a": 1}' + b" " * 3, b"{}"))
        return _safetensors_raw(head, data)
    elif op == 10:  # the metadata itself the wrong type
        entries["__metadata__"] = rng.choice(([], "x", {"cfg": 1}, {"a": {"b": "c"}}, None))
        head = json.dumps(entries).encode()
        return _safetensors_raw(head, data)
    else:  # a header length that lies
        head = json.dumps(entries).encode()
        return _safetensors_raw(head, data, rng.choice((len(head) - 1, len(head) + 1, 2**64 - 1, 101 << 20)))
    entries["__metadata__"] = meta
    return _safetensors_raw(json.dumps(entries).encode(), data)


def gen_safetensors_header(rng: random.Random, tmp: Path) -> Case:
    from darkweights.export import metadata

    name = rng.choice(sorted(CFGS))
    _net, data = _net_and_weights(name)
    bound = _quiet_load(name, data, cfg_text=CFGS[name])
    entries: dict[str, Any] = {}
    pos = 0
    blobs = []
    for k, a in bound.arrays().items():
        b = np.ascontiguousarray(a, "<f4").tobytes()
        entries[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    entries["__metadata__"] = metadata(bound)
    raw = mutate_safetensors_header(rng, entries, b"".join(blobs))
    path = tmp / "fuzz-header.safetensors"
    path.write_bytes(raw)
    out = tmp / "fuzz-out.weights"
    return Case("safetensors_header", f"safetensors header from {name} ({len(raw)} bytes)", lambda: _pack(path, out))


# ---------------------------------------------------------------------------------------------
# Archive bombs: .npz members that claim (or really hold) far more than the cfg's arrays


_ZEROS: dict[int, bytes] = {}


def _deflated_zeros(nbytes: int) -> bytes:
    """``nbytes`` zero bytes, raw-deflated (made once per size, in chunks: never the whole in memory)."""
    if nbytes not in _ZEROS:
        import zlib

        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        chunk = bytes(1 << 20)
        out = [z.compress(chunk) for _ in range(nbytes >> 20)]
        out.append(z.compress(bytes(nbytes & ((1 << 20) - 1))))
        out.append(z.flush())
        _ZEROS[nbytes] = b"".join(out)
    return _ZEROS[nbytes]


def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _bomb_member(z: zipfile.ZipFile, name: str, shape: tuple, lie: int | None = None) -> None:
    """A deflated member of zeros declaring ``shape`` float32; ``lie``: the directory's size claim."""
    import zlib

    head = _npy_header(shape)
    nbytes = 4 * int(np.prod(shape))
    body = _deflated_zeros(nbytes)
    # raw deflate of header + zeros: the header as its own block, then the zeros' stream
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    data = first + body
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    crc = zlib.crc32(head)
    crc = _crc_zeros(crc, nbytes)
    info.CRC = crc
    info.compress_size = len(data)
    info.file_size = len(head) + nbytes if lie is None else lie
    info.header_offset = z.fp.tell()  # type: ignore[union-attr]
    z.fp.write(info.FileHeader(zip64=info.file_size > 0xFFFFFFFF))  # type: ignore[union-attr]
    z.fp.write(data)  # type: ignore[union-attr]
    z.start_dir = z.fp.tell()  # type: ignore[union-attr]
    z.filelist.append(info)
    z.NameToInfo[name] = info


_CRC: dict[tuple[int, int], int] = {}


def _crc_zeros(crc: int, nbytes: int) -> int:
    import zlib

    key = (crc, nbytes)
    if key not in _CRC:
        chunk = bytes(1 << 20)
        c = crc
        for _ in range(nbytes >> 20):
            c = zlib.crc32(chunk, c)
        _CRC[key] = zlib.crc32(bytes(nbytes & ((1 << 20) - 1)), c)
    return _CRC[key]


def archive_bomb(rng: random.Random, arrays: dict, meta: str, tmp: Path) -> bytes:
    """An .npz whose member declares 16-256 MB of float32 (deflated to kB), or whose zip directory lies."""
    keys = sorted(arrays)
    victim = rng.choice(keys)
    out = io.BytesIO()
    op = rng.randrange(6)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if rng.random() < 0.8:
            z.writestr("__darkweights__.npy", _npy_bytes(np.array(meta)))
        for k in keys:
            if k != victim or op == 5:
                z.writestr(k + ".npy", _npy_bytes(np.asarray(arrays[k], np.float32)))
        if op in (0, 1):  # a real bomb: 16..256 MB of zeros in a member the cfg gives a few bytes
            _bomb_member(z, victim + ".npy", (rng.choice((4, 16, 64)) << 20,))
        elif op == 2:  # the directory claims more than deflate can expand
            _bomb_member(z, victim + ".npy", (1 << 10,), lie=rng.choice((1 << 31, 1 << 40, 2**64 - 1)))
        elif op == 3:  # the .npy header claims more than the member holds
            z.writestr(victim + ".npy", _npy_header((rng.choice((10**9, 2**40, 500_000_000)),)) + bytes(64))
        elif op == 4:  # a member the cfg does not have, huge: never needs to be inflated
            z.writestr(victim + ".npy", _npy_bytes(np.asarray(arrays[victim], np.float32)))
            _bomb_member(z, "layer_999.weights.npy", (16 << 20,))
        else:  # thousands of tiny members
            for i in range(rng.choice((2000, 20_000))):
                z.writestr(f"x{i}.npy", _npy_header((0,)))
    return out.getvalue()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def gen_archive_bomb(rng: random.Random, tmp: Path) -> Case:
    from darkweights.export import metadata

    name = rng.choice(sorted(CFGS))
    _net, data = _net_and_weights(name)
    bound = _quiet_load(name, data, cfg_text=CFGS[name])
    raw = archive_bomb(rng, dict(bound.arrays()), json.dumps(metadata(bound)), tmp)
    path = tmp / "fuzz-bomb.npz"
    path.write_bytes(raw)
    out = tmp / "fuzz-out.weights"
    return Case("archive_bomb", f".npz bomb from {name} ({len(raw)} bytes)", lambda: _pack(path, out))


# ---------------------------------------------------------------------------------------------
# ONNX: a darkweights export (made once, in another process: the fuzzing process never imports torch)


_ONNX: dict[str, bytes] = {}


def _seed_onnx() -> bytes:
    if "tiny" not in _ONNX:
        import subprocess
        import sys
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dw-fuzz-onnx-") as d:
            cfg, weights, model = Path(d, "tiny.cfg"), Path(d, "tiny.weights"), Path(d, "tiny.onnx")
            cfg.write_text(TINY)
            weights.write_bytes(_net_and_weights("tiny.cfg")[1])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
            subprocess.run(
                [sys.executable, "-m", "darkweights", "export", str(cfg), str(weights), "-o", str(model), "-q"],
                check=True,
                env=env,
                capture_output=True,
            )
            _ONNX["tiny"] = model.read_bytes()
    return _ONNX["tiny"]


def mutate_onnx(rng: random.Random, raw: bytes, tmp: Path) -> bytes:
    """Corrupt metadata, initializers (dims, data, type, external data) or the protobuf bytes."""
    import onnx

    op = rng.randrange(10)
    if op == 9:  # the bytes themselves
        b = bytearray(raw)
        if rng.random() < 0.5:
            return bytes(b[: rng.randrange(len(b))])
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    proto = onnx.load_from_string(raw)
    props = {p.key: p for p in proto.metadata_props}
    inits = [t for t in proto.graph.initializer if t.name.startswith("layer_")]
    t = rng.choice(inits)
    if op == 0:  # a corrupt metadata value (the issue's: cutoff=abc; seen >= 2**32 with minor < 2)
        key, value = rng.choice(
            (
                ("cutoff", "abc"),
                ("cutoff", "-3"),
                ("header", json.dumps({"major": 0, "minor": 1, "revision": 0, "seen": 2**32})),
                ("header", json.dumps({"major": 0, "minor": 2, "revision": 5, "seen": 2**64})),
                ("header", "{bad"),
                ("header", "[" * 100_000 + "]" * 100_000),
                ("input", '{"width": "x"}'),
                ("dialect", "klingon"),
                ("fused", "maybe"),
                ("precision", "float16"),
                ("fused", "1"),
                ("cfg", "not a cfg"),
                ("cfg", "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\n"),
                ("format", "other"),
            )
        )
        if key in props:
            props[key].value = value
        else:
            e = proto.metadata_props.add()
            e.key, e.value = key, value
    elif op == 1:  # dims that disagree with the data
        dims = list(t.dims)
        dims[rng.randrange(len(dims))] += rng.choice((1, -1, 1000, 2**31))
        del t.dims[:]
        t.dims.extend(dims)
    elif op == 2:  # dims that agree with the data but not with the cfg
        n = int(np.prod(t.dims))
        del t.dims[:]
        t.dims.extend(rng.choice(([n], [1, n])))
    elif op == 3:  # data cut short
        t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)]
    elif op == 4:  # another data type
        t.data_type = rng.choice((0, 2, 6, 7, 10, 11, 16, 99))
    elif op == 5:  # external data: missing, outside the folder, shorter than the dims
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        where = rng.choice(("missing.bin", "../outside.bin", "/etc/passwd", "short.bin", ""))
        if where == "short.bin":
            (tmp / "short.bin").write_bytes(bytes(rng.choice((0, 4, 7))))
        for k, v in (("location", where), ("offset", rng.choice(("0", "-8", "x", "4")))):
            e = t.external_data.add()
            e.key, e.value = k, v
    elif op == 6:  # initializer removed, or renamed
        if rng.random() < 0.5:
            proto.graph.initializer.remove(t)
        else:
            t.name = t.name + "_x"
    elif op == 7:  # float_data instead of raw_data, of the wrong length
        n = len(t.raw_data) // 4
        t.ClearField("raw_data")
        t.float_data.extend([0.5] * max(n + rng.choice((-1, 0, 1)), 0))
    else:  # every metadata key removed (an export made by someone else)
        del proto.metadata_props[:]
    return proto.SerializeToString()


def gen_onnx(rng: random.Random, tmp: Path) -> Case:
    raw = mutate_onnx(rng, _seed_onnx(), tmp)
    path = tmp / "fuzz.onnx"
    path.write_bytes(raw)
    out = tmp / "fuzz-out.weights"
    cfg = tmp / "fuzz-onnx.cfg"
    cfg.write_text(TINY)
    given = cfg if rng.random() < 0.2 else None
    return Case(
        "onnx",
        f"ONNX export mutated ({len(raw)} bytes, cfg {'given' if given else 'embedded'})",
        lambda: _pack_onnx(path, out, given),
    )


def _pack_onnx(path: Path, out: Path, cfg: Path | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if out.exists():
            out.unlink()
        pack(path, out, cfg=cfg)


_IMAGES: dict[str, bytes] = {}


def _seed_images() -> dict[str, bytes]:
    if not _IMAGES:
        from PIL import Image

        rs = np.random.default_rng(0)
        rgb = Image.fromarray(rs.integers(0, 255, (20, 28, 3), dtype=np.uint8))
        for label, img, kwargs in (
            ("baseline.jpg", rgb, {"format": "JPEG", "quality": 80}),
            ("progressive.jpg", rgb, {"format": "JPEG", "progressive": True}),
            ("subsampled.jpg", rgb, {"format": "JPEG", "subsampling": 2}),
            ("gray.jpg", rgb.convert("L"), {"format": "JPEG"}),
            ("cmyk.jpg", rgb.convert("CMYK"), {"format": "JPEG"}),
            ("rgb.png", rgb, {"format": "PNG"}),
            ("palette.png", rgb.convert("P"), {"format": "PNG"}),
            ("gray16.png", Image.fromarray(rs.integers(0, 65535, (9, 7)).astype(np.uint16)), {"format": "PNG"}),
            ("rgba.png", rgb.convert("RGBA"), {"format": "PNG"}),
        ):
            out = io.BytesIO()
            img.save(out, **kwargs)
            _IMAGES[label] = out.getvalue()
    return _IMAGES


def mutate_image(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    op = rng.randrange(8)
    if op == 0:
        return bytes(b[: rng.randrange(len(b) + 1)])
    if op == 1:  # huge or zero declared dimensions (JPEG SOF / PNG IHDR)
        dims = struct.pack(">HH", rng.choice((0, 1, 65535, 40000)), rng.choice((0, 1, 65535, 40000)))
        if b[:2] == b"\xff\xd8":
            for m in (0xC0, 0xC1, 0xC2):
                i = b.find(bytes([0xFF, m]))
                if i > 0:
                    b[i + 5 : i + 9] = dims
                    break
        elif b[:8] == b"\x89PNG\r\n\x1a\n":
            big = struct.pack(
                ">II", rng.choice((0, 1, 2**31 - 1, 100000, 65535)), rng.choice((0, 1, 2**31 - 1, 100000))
            )
            b[16:24] = big
        return bytes(b)
    if op == 2:  # corrupt a marker
        markers = [i for i in range(len(b) - 1) if b[i] == 0xFF and b[i + 1] not in (0, 0xFF)]
        if markers:
            i = rng.choice(markers)
            b[i + 1] = rng.getrandbits(8)
            if rng.random() < 0.5 and i + 3 < len(b):
                b[i + 2 : i + 4] = struct.pack(">H", rng.choice((0, 1, 2, 65535)))
        return bytes(b)
    if op == 3:
        return rng.choice((b"", b"\xff\xd8", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\0" * 10))
    if op == 4:
        return bytes(b) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 100)))
    for _ in range(rng.randint(1, 12)):
        b[rng.randrange(len(b))] = rng.getrandbits(8)
    return bytes(b)


def _read_image(path: Path) -> None:
    from darkweights.detect.image import network_input

    network_input(path, 16, 12, letterbox=False)  # what detect feeds the network
    network_input(path, 16, 16, letterbox=True)


def gen_image(rng: random.Random, tmp: Path) -> Case:
    label, raw = rng.choice(sorted(_seed_images().items()))
    mutated = mutate_image(rng, raw)
    path = tmp / ("fuzz" + os.path.splitext(label)[1])
    path.write_bytes(mutated)
    return Case("image", f"{label} mutated ({len(mutated)} bytes)", lambda: _read_image(path))


GENERATORS: dict[str, Callable[[random.Random, Path], Case]] = {
    "cfg": gen_cfg,
    "cfg_big": gen_cfg_big,
    "weights": gen_weights,
    "arrays": gen_arrays,
    "array_file": gen_array_file,
    "image": gen_image,
    "safetensors_header": gen_safetensors_header,
    "archive_bomb": gen_archive_bomb,
    "onnx": gen_onnx,
}
WEIGHTS = {
    "cfg": 30,
    "cfg_big": 1,
    "weights": 25,
    "arrays": 12,
    "array_file": 15,
    "image": 17,
    "safetensors_header": 8,
    "archive_bomb": 4,
    "onnx": 8,
}


# ---------------------------------------------------------------------------------------------
# Running one case


class Hang(BaseException):
    """The per-case time limit passed (BaseException: library code must not be able to swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


class Outcome(NamedTuple):
    status: str  # ok | error | unexpected | hang | overalloc
    kind: str  # error class and message template, or the exception
    detail: str


_NUM = re.compile(r"-?\d[\d,_.e+]*|'[^']*'|\"[^\"]*\"|\([^)]*\)|\[[^\]]*\]")


def error_kind(exc: BaseException) -> str:
    """The error's class and message with numbers, quoted values and brackets folded: its template."""
    msg = getattr(exc, "message", str(exc))
    return f"{type(exc).__name__}: {_NUM.sub('#', msg)[:70]}"


def run_case(case: Case, time_limit: float = 10.0) -> Outcome:
    """Run one case with a limit of ``time_limit`` seconds of CPU time (what a hang burns; wall time
    would also count the other processes of a loaded machine)."""
    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, time_limit)
    try:
        case.thunk()
        status, kind, detail = "ok", "ok", ""
    except Hang:
        status, kind, detail = "hang", "hang", case.label
    except MemoryError as exc:
        status, kind, detail = "overalloc", "MemoryError", f"{case.label}: {exc}"
    except DarkweightsError as exc:
        # in-memory sources have no file: their layer (arrays) or byte offset is the location
        located = exc.file is not None or exc.line is not None or exc.offset is not None or exc.layer is not None
        status = "error" if located else "unexpected"
        kind = error_kind(exc)
        detail = f"{case.label}: {exc}" + ("" if located else " [no file/line/offset]")
    except Exception as exc:
        import traceback

        status, kind = "unexpected", f"{type(exc).__name__}: {str(exc)[:80]}"
        detail = f"{case.label}:\n{traceback.format_exc()}"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    return Outcome(status, kind, detail)
