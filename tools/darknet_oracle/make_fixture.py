"""Make a reference fixture (the ../shared/fixtures layout) from a cfg with a real Darknet build.

    python tools/darknet_oracle/make_fixture.py CASE_DIR --darknet DIR [--dialect D] [--seed N] [--input-seed N]

CASE_DIR holds model.cfg. Writes model.weights (``darkweights init``), input.npy, outputs.npz and
layers.json. DIR holds the fork's libdarknet.so and the dump_layers binary built from dump_layers.c
(AlexeyAB), dump_layers_pjreddie.c (pjreddie) or dump_layers_hankai.cpp (hank-ai; README.md). Darknet
re-saves the weights it loaded, and the bytes must be equal: a layout check of its own.

A cfg naming ``tree=``/``map=`` files (YOLO9000) gets synthetic ones (``darkweights.synth.tree_text``/
``map_text``, seeded, of the layer's class count) written beside it for the run and deleted afterwards;
layers.json ``synthetic_files`` says how to make them again (tests/oracle_cases.py does). With
``--no-weights`` model.weights is deleted too and regenerated from ``seed`` by the tests (big 9000-class
heads). With pjreddie ``numload`` the weights follow the loader's layout and Darknet's re-saved file must
equal the full arrays darkweights builds (``darkweights.torch`` numload_arrays; the harness zeroes the
weights Darknet would draw from rand()).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

import darkweights
from darkweights.synth import init
from darkweights.verify import fixture_files

KINDS = ("tree", "map")  # the options naming data files


def synthetic_files(net, seed: int, roots: int = 0, branching: tuple = ()) -> dict:
    """``{file name: {"kind", "classes", "seed"[, "roots"]}}`` for every tree=/map= the cfg names (relative
    paths); ``roots=1``: one root node (its softmax is 1), so that hierarchical products pass ``> .5``."""
    files = {}
    for L in net.layers:
        count = L.classes if L.type == "region" else L.input.size
        for kind in KINDS:
            name = getattr(L, kind, None) if L.type in ("region", "softmax") else None
            if name:
                files[name] = {"kind": kind, "classes": count, "seed": seed + L.index}
                if kind == "tree" and roots:
                    files[name]["roots"] = roots
                if kind == "tree" and branching:
                    files[name]["branching"] = list(branching)
    return files


def write_synthetic(case: Path, files: dict) -> None:
    for name, text in fixture_files({"synthetic_files": files}).items():
        (case / name).parent.mkdir(parents=True, exist_ok=True)
        (case / name).write_text(text)


def expected_resave(case: Path, dialect: str) -> bytes:
    """What Darknet's save_weights writes after loading: numload layers in full (darkweights' fill)."""
    import io

    from darkweights.torch.base import BuildContext
    from darkweights.torch.families.convolutional import numload_arrays

    net = darkweights.load(case / "model.cfg", case / "model.weights", dialect=dialect)
    ctx = BuildContext(net, fuse_bn=False, bug_compatible=False)
    arrays = {}
    for L in net.layers:
        got = numload_arrays(L, ctx) if getattr(L, "numload", 0) else ctx.loaded(L.index)
        arrays.update({f"layer_{L.index:03d}.{k}": v for k, v in got.items()})
    buf = io.BytesIO()
    net.save_weights(buf, arrays)
    return buf.getvalue()


def run_darknet(
    darknet: Path, case: Path, x: np.ndarray, tmp: Path, fuse: bool, n: int, expected: bytes
) -> list[np.ndarray]:
    x.astype("<f4").tofile(tmp / "input.f32")
    prefix = tmp / f"out{int(fuse)}_"
    cmd = [
        str(darknet / "dump_layers"),
        "model.cfg",
        "model.weights",
        str(tmp / "input.f32"),
        str(prefix),
        str(int(fuse)),
    ]
    if not fuse:
        cmd.append(str(tmp / "resaved.weights"))
    env = dict(os.environ, LD_LIBRARY_PATH=str(darknet))
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=case)  # tree=/map= relative to the case
    if not fuse and (tmp / "resaved.weights").read_bytes() != expected:
        sys.exit("Darknet re-saved different bytes: the cfg and darkweights' layout disagree")
    if not fuse and expected != (case / "model.weights").read_bytes():
        (case / "darknet_resaved.weights").write_bytes(expected)  # numload: what Darknet's saver wrote
    return [np.fromfile(f"{prefix}{i:03d}.f32", "<f4") for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--darknet", type=Path, required=True)
    ap.add_argument("--dialect", default="alexeyab", choices=("alexeyab", "pjreddie", "hankai"))
    ap.add_argument(
        "--fuse",
        action="store_true",
        help="store the outputs of the fused run (AlexeyAB, as `darknet detector test` runs), not the plain one",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--input-seed", type=int, default=0)
    ap.add_argument("--note", default="", help="appended to layers.json notes (where the cfg came from)")
    ap.add_argument("--source-cfg", default=None, help="the shared cfg the case was derived from")
    ap.add_argument(
        "--tree-roots", type=int, default=0, help="root nodes of the synthetic trees (default: 2 to 7, seeded)"
    )
    ap.add_argument(
        "--tree-branching",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="group sizes of the synthetic trees (default 2 12)",
    )
    ap.add_argument(
        "--no-weights",
        action="store_true",
        help="do not keep model.weights (the tests regenerate it from --seed with darkweights init)",
    )
    args = ap.parse_args()
    case = args.case.resolve()
    darknet = args.darknet.resolve()
    warnings.simplefilter("ignore", darkweights.DarkweightsWarning)
    net = darkweights.load(case / "model.cfg", dialect=args.dialect)
    numload = any(getattr(L, "numload", 0) for L in net.layers)
    init(net, case / "model.weights", seed=args.seed, mode="load" if numload else "save")
    files = synthetic_files(net, args.seed, args.tree_roots, tuple(args.tree_branching or ()))
    write_synthetic(case, files)
    expected = expected_resave(case, args.dialect) if numload else (case / "model.weights").read_bytes()
    x = np.random.default_rng(args.input_seed).random(net.input.chw, dtype=np.float32)
    np.save(case / "input.npy", x)
    with tempfile.TemporaryDirectory() as tmp:
        plain = run_darknet(darknet, case, x, Path(tmp), False, len(net.layers), expected)
        # pjreddie has no fuse_conv_batchnorm: no float-sensitivity measure, the default tolerance applies
        fused = (
            run_darknet(darknet, case, x, Path(tmp), True, len(net.layers), expected)
            if args.dialect != "pjreddie"
            else None
        )
    for name in files:
        (case / name).unlink()
    weights_bytes = (case / "model.weights").stat().st_size
    if args.no_weights:
        (case / "model.weights").unlink()
    outputs, layers, worst = {}, [], 0.0
    stored = fused if args.fuse and fused else plain
    for L, a, p, f in zip(net.layers, stored, plain, fused or plain):
        o = L.output
        chw = o.is_image and o.c * o.h * o.w == a.size
        outputs[f"layer_{L.index:03d}"] = a.reshape(o.chw) if chw else a
        scale = float(np.abs(a).max())
        worst = max(worst, float(np.abs(p - f).max()) / scale if scale else 0.0)  # Darknet fused vs plain
        layers.append(
            {
                "index": L.index,
                "type": L.type,
                "out_c": o.c,
                "out_h": o.h,
                "out_w": o.w,
                "outputs": int(a.size),
                "saved": L.type != "cost",  # [cost] holds nothing at inference
                "layout": "chw" if chw else "flat",
                "max_abs": scale,
            }
        )
    np.savez_compressed(case / "outputs.npz", **outputs)
    if any(getattr(L, "xnor", 0) for L in net.layers):
        fused = None  # unfused CPU xnor skips BN: fused vs plain measures that, not float rounding
    fork = {"alexeyab": "AlexeyAB", "pjreddie": "pjreddie", "hankai": "hank-ai"}[args.dialect]
    meta = {
        "darknet": f"{fork} (libdarknet.so, CPU build)",
        "dialect": args.dialect,
        "fuse": bool(args.fuse and args.dialect != "pjreddie"),
        "input_shape": list(net.input.chw),
        "weights_bytes": weights_bytes,
        "seed": args.seed,
        "weights_stored": not args.no_weights,
        "weights_mode": "load" if numload else "save",
        "synthetic_files": files or None,
        "input_seed": args.input_seed,
        "calib_k": 0,
        "real_weights": False,
        "network_output_layer": net.output_index,
        "float_sensitivity": {"fused_vs_plain_worst_layer_rel": worst} if fused else None,
        "notes": "made by tools/darknet_oracle/make_fixture.py: weights from darkweights init (random BN "
        "statistics), "
        + (
            "parse_network_cfg_custom(cfg,1,1) + load_weights + "
            + ("fuse_conv_batchnorm + " if args.fuse else "")
            + "calculate_binary_weights"
            if args.dialect != "pjreddie"
            else "parse_network_cfg + load_weights + set_batch_network(1)"
        )
        + " + network_predict; Darknet re-saved the weights byte for byte"
        + (
            " (numload layers in full: the file's filters, then bias 0, BN scale 1, mean and variance 0, "
            "weights zeroed by the harness)"
            if numload
            else ""
        ),
        "source_cfg": args.source_cfg,
        "layers": layers,
    }
    if args.note:
        meta["notes"] += ". " + args.note
    (case / "layers.json").write_text(json.dumps(meta, indent=1) + "\n")
    sens = f"{worst:.1e}" if fused else "n/a"
    print(f"{case}: {len(layers)} layers, weights {weights_bytes:,} bytes, float sensitivity {sens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
