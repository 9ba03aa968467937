"""PyTorch rebuild: forward throughput against OpenCV DNN, and weight loading against an eager converter.

    python benchmarks/bench_torch.py [--iters N] [--json OUT]

1. yolov4-tiny at 416x416, batch 1, CPU: images/s of ``net.to_torch(fuse_bn=True)`` against OpenCV 4.x's
   Darknet importer on the same cfg + weights (target: at least OpenCV's throughput). Both use the
   machine's default thread settings and their default algorithms (Winograd for wide 3x3 stride-1
   convolutions in both); the model with ``winograd=False`` is timed too. One warm-up pass each, then
   ``--iters`` timed passes each, run in alternating blocks (so that all sample the same machine
   load); the medians are compared.
2. yolov4 (257,717,640 bytes): time to get a ready model, ``darkweights.load(cfg, weights).to_torch()``,
   against an eager baseline as common converters do: build the modules, ``np.fromfile`` of the whole file,
   then a tensor copy per array into the model (target: >= 3x faster). Both timed in-process after imports.
Random weights come from ``darkweights init`` (seeded), written to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import darkweights
from darkweights.progress import bar
from darkweights.synth import init

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def bench_forward(tmp: str, iters: int) -> dict:
    import cv2
    import torch

    cfg = str(DATA / "yolov4-tiny.cfg")
    weights = os.path.join(tmp, "yolov4-tiny.weights")
    init(darkweights.load(cfg), weights, seed=1)
    x = np.random.default_rng(0).random((1, 3, 416, 416), dtype=np.float32)

    model = darkweights.load(cfg, weights).to_torch(fuse_bn=True)
    direct = darkweights.load(cfg, weights).to_torch(fuse_bn=True, winograd=False)
    xt = torch.from_numpy(x)

    def run_ours() -> None:
        with torch.inference_mode():
            model(xt)

    def run_direct() -> None:
        with torch.inference_mode():
            direct(xt)

    cvnet = cv2.dnn.readNetFromDarknet(cfg, weights)
    cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names = cvnet.getUnconnectedOutLayersNames()

    def run_opencv() -> None:
        cvnet.setInput(x)
        cvnet.forward(names)

    run_ours()  # warm-up: weight packing, primitive creation, allocations
    run_direct()
    run_opencv()
    ours: list[float] = []
    plain: list[float] = []
    theirs: list[float] = []
    rounds = min(5, iters)
    progress = bar(total=3 * iters, desc="forward timings", unit="run")
    for r in range(rounds):  # alternating blocks, rotating which goes first
        block = iters // rounds + (r < iters % rounds)
        order = [(run_ours, ours), (run_opencv, theirs), (run_direct, plain)]
        for fn, times in order[r % 3 :] + order[: r % 3]:
            for _ in range(block):
                progress.update()
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
    progress.close()
    o, d, c = statistics.median(ours), statistics.median(plain), statistics.median(theirs)
    return {
        "torch_ms": o * 1e3,
        "opencv_ms": c * 1e3,
        "torch_fps": 1 / o,
        "opencv_fps": 1 / c,
        "throughput_vs_opencv": c / o,
        "torch_direct_ms": d * 1e3,
        "direct_throughput_vs_opencv": c / d,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
    }


EAGER = """
import sys, time, json
import numpy as np, torch
import darkweights
cfg, weights = sys.argv[1], sys.argv[2]
t = time.perf_counter()
net = darkweights.load(cfg)
model = net.to_torch()                       # build the modules (default init), as converters do
state = model.state_dict()
data = np.fromfile(weights, dtype=np.float32, offset=20)           # whole file into memory
pos = 0
with torch.no_grad():
    for p in net.layout():
        n = p.count
        arr = data[pos:pos + n].reshape(p.shape).copy()             # per-array copy
        state[p.torch].copy_(torch.tensor(arr))                      # and into the parameter
        pos += n
print(json.dumps(time.perf_counter() - t))
"""

OURS = """
import sys, time, json
import darkweights, torch
t = time.perf_counter()
model = darkweights.load(sys.argv[1], sys.argv[2]).to_torch()
print(json.dumps(time.perf_counter() - t))
"""


def bench_load(tmp: str, repeat: int) -> dict:
    import subprocess

    cfg = str(DATA / "yolov4.cfg")
    weights = os.path.join(tmp, "yolov4.weights")
    init(darkweights.load(cfg), weights, seed=1)
    py = sys.executable

    def run(code: str) -> float:
        subprocess.run([py, "-c", code, cfg, weights], check=True, capture_output=True)  # warm page cache
        return statistics.median(
            json.loads(
                subprocess.run([py, "-c", code, cfg, weights], check=True, capture_output=True, text=True).stdout
            )
            for _ in range(repeat)
        )

    ours, eager = run(OURS), run(EAGER)
    return {
        "load_ours_s": ours,
        "load_eager_s": eager,
        "load_speedup": eager / ours,
        "weights_bytes": os.path.getsize(weights),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        res = bench_forward(tmp, args.iters)
        res.update(bench_load(tmp, args.repeat))
    print(
        f"yolov4-tiny 416x416 forward: darkweights/torch {res['torch_ms']:.1f} ms ({res['torch_fps']:.1f}/s, "
        f"{res['torch_threads']} threads), OpenCV DNN {res['opencv_ms']:.1f} ms ({res['opencv_fps']:.1f}/s) -> "
        f"throughput ratio {res['throughput_vs_opencv']:.2f}x (target >= 1)"
    )
    print(
        f"  (with winograd=False, every convolution direct: {res['torch_direct_ms']:.1f} ms -> "
        f"{res['direct_throughput_vs_opencv']:.2f}x)"
    )
    print(
        f"yolov4 weights -> ready model: darkweights {res['load_ours_s'] * 1e3:.0f} ms, eager converter "
        f"{res['load_eager_s'] * 1e3:.0f} ms -> {res['load_speedup']:.1f}x faster (target >= 3x)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
