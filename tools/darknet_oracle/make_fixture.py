"""Make a reference fixture (the ../shared/fixtures layout) from a cfg with a real Darknet build.

    python tools/darknet_oracle/make_fixture.py CASE_DIR --darknet DIR [--dialect D] [--seed N] [--input-seed N]

CASE_DIR holds model.cfg. Writes model.weights (``darkweights init``), input.npy, outputs.npz and
layers.json. DIR holds the fork's libdarknet.so and the dump_layers binary built from dump_layers.c
(AlexeyAB), dump_layers_pjreddie.c (pjreddie) or dump_layers_hankai.cpp (hank-ai; README.md). Darknet re-saves the weights it loaded,
and the bytes must be equal: a layout check of its own.
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


def run_darknet(darknet: Path, case: Path, x: np.ndarray, tmp: Path, fuse: bool, n: int) -> list[np.ndarray]:
    x.astype("<f4").tofile(tmp / "input.f32")
    prefix = tmp / f"out{int(fuse)}_"
    cmd = [str(darknet / "dump_layers"), str(case / "model.cfg"), str(case / "model.weights"), str(tmp / "input.f32"),
           str(prefix), str(int(fuse))]
    if not fuse:
        cmd.append(str(tmp / "resaved.weights"))
    env = dict(os.environ, LD_LIBRARY_PATH=str(darknet))
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    if not fuse and (tmp / "resaved.weights").read_bytes() != (case / "model.weights").read_bytes():
        sys.exit("Darknet re-saved different bytes: the cfg and darkweights' layout disagree")
    return [np.fromfile(f"{prefix}{i:03d}.f32", "<f4") for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--darknet", type=Path, required=True)
    ap.add_argument("--dialect", default="alexeyab", choices=("alexeyab", "pjreddie", "hankai"))
    ap.add_argument("--fuse", action="store_true", help="store the outputs of the fused run (AlexeyAB, as "
                    "`darknet detector test` runs), not the plain one")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--input-seed", type=int, default=0)
    args = ap.parse_args()
    case = args.case
    warnings.simplefilter("ignore", darkweights.DarkweightsWarning)
    net = darkweights.load(case / "model.cfg", dialect=args.dialect)
    init(net, case / "model.weights", seed=args.seed)
    x = np.random.default_rng(args.input_seed).random(net.input.chw, dtype=np.float32)
    np.save(case / "input.npy", x)
    with tempfile.TemporaryDirectory() as tmp:
        plain = run_darknet(args.darknet, case, x, Path(tmp), False, len(net.layers))
        # pjreddie has no fuse_conv_batchnorm: no float-sensitivity measure, the default tolerance applies
        fused = run_darknet(args.darknet, case, x, Path(tmp), True, len(net.layers)) \
            if args.dialect != "pjreddie" else None
    outputs, layers, worst = {}, [], 0.0
    stored = fused if args.fuse and fused else plain
    for L, a, p, f in zip(net.layers, stored, plain, fused or plain):
        o = L.output
        chw = o.is_image and o.c * o.h * o.w == a.size
        outputs[f"layer_{L.index:03d}"] = a.reshape(o.chw) if chw else a
        scale = float(np.abs(a).max())
        worst = max(worst, float(np.abs(p - f).max()) / scale if scale else 0.0)  # Darknet fused vs plain
        layers.append({"index": L.index, "type": L.type, "out_c": o.c, "out_h": o.h, "out_w": o.w,
                       "outputs": int(a.size), "saved": True, "layout": "chw" if chw else "flat",
                       "max_abs": scale})
    np.savez_compressed(case / "outputs.npz", **outputs)
    if any(getattr(L, "xnor", 0) for L in net.layers):
        fused = None  # unfused CPU xnor skips BN: fused vs plain measures that, not float rounding
    fork = {"alexeyab": "AlexeyAB", "pjreddie": "pjreddie", "hankai": "hank-ai"}[args.dialect]
    meta = {"darknet": f"{fork} (libdarknet.so, CPU build)", "dialect": args.dialect, "fuse": bool(args.fuse and args.dialect != "pjreddie"),
            "input_shape": list(net.input.chw),
            "weights_bytes": net.weights_bytes(), "seed": args.seed, "input_seed": args.input_seed, "calib_k": 0,
            "real_weights": False, "network_output_layer": net.output_index,
            "float_sensitivity": {"fused_vs_plain_worst_layer_rel": worst} if fused else None,
            "notes": "made by tools/darknet_oracle/make_fixture.py: weights from darkweights init (random BN "
                     "statistics), " + ("parse_network_cfg_custom(cfg,1,1) + load_weights + "
                                        + ("fuse_conv_batchnorm + " if args.fuse else "") + "calculate_binary_weights"
                                        if args.dialect != "pjreddie"
                                        else "parse_network_cfg + load_weights + set_batch_network(1)") +
                     " + network_predict; Darknet re-saved the weights byte for byte",
            "layers": layers}
    (case / "layers.json").write_text(json.dumps(meta, indent=1) + "\n")
    sens = f"{worst:.1e}" if fused else "n/a"
    print(f"{case}: {len(layers)} layers, weights {net.weights_bytes():,} bytes, float sensitivity {sens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
