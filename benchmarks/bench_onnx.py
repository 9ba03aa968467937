"""ONNX export: export cost for yolov4, and onnxruntime's forward against our PyTorch model and OpenCV DNN.

    python benchmarks/bench_onnx.py [--iters N] [--json OUT] [--skip-export]

1. yolov4 (full size, 608x608, random weights from ``darkweights init``): wall time of
   ``load(cfg, weights)`` + ``export_onnx(net, path)`` in a fresh process (imports excluded: timed
   in-process after them), the file size against the ``.weights`` size, and the process's peak RSS growth
   during the export against the weights file size (targets: <= 10 s, peak RSS growth <= 2x the weights
   file). The export runs in a child process so that its peak RSS (``ru_maxrss``) is its own. A second
   child then checks the written file (``onnx.checker.check_model(path, full_check=True)``, onnxruntime
   loads it and its heads equal our PyTorch model's on one input).
2. yolov4-tiny at 416x416, batch 1, 2 threads: images/s of the raw export in onnxruntime (default
   optimisation level ``ORT_ENABLE_ALL``) against ``net.to_torch(fuse_bn=True)`` (``torch.set_num_threads(2)``)
   and OpenCV's Darknet importer (``cv2.setNumThreads(2)``) in the same run, timed in alternating blocks so
   that all sample the same machine load; medians compared (target: onnxruntime >= 1.0x our PyTorch model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import darkweights
from darkweights.synth import init

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
THREADS = 2

CHILD = r"""
import json, os, resource, sys, time, warnings
warnings.simplefilter("ignore")
import darkweights, torch, onnx, onnxruntime  # imports outside the timing
from darkweights.onnx.exporter import export_onnx
cfg, weights, out = sys.argv[1:4]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = time.perf_counter()
net = darkweights.load(cfg, weights)
info = export_onnx(net, out)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": dt, "bytes": info.bytes, "rss_before": before, "rss_peak": peak}))
"""

CHECK = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, onnx, onnxruntime, torch, darkweights
cfg, weights, out = sys.argv[1:4]
onnx.checker.check_model(out, full_check=True)
session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
net = darkweights.load(cfg, weights)
x = np.random.default_rng(0).random((1,) + tuple(net.input.chw), dtype=np.float32)
got = session.run(None, {"input": x})
want = net.to_torch()(torch.from_numpy(x))
rel = max(float(np.abs(g - w.numpy()).max() / np.abs(w.numpy()).max()) for g, w in zip(got, want))
print(json.dumps({"checked": True, "max_rel_vs_torch": rel}))
"""


def bench_export(tmp: str) -> dict:
    cfg = str(DATA / "yolov4.cfg")
    weights = os.path.join(tmp, "yolov4.weights")
    init(darkweights.load(cfg), weights, seed=1)
    out = os.path.join(tmp, "yolov4.onnx")
    env = dict(os.environ)
    src = str(Path(darkweights.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = json.loads(
        subprocess.run(
            [sys.executable, "-c", CHILD, cfg, weights, out], capture_output=True, text=True, check=True, env=env
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    res.update(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", CHECK, cfg, weights, out], capture_output=True, text=True, check=True, env=env
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    )
    size = os.path.getsize(weights)
    res.update(
        {
            "weights_bytes": size,
            "file_ratio": res["bytes"] / size,
            "rss_growth_ratio": (res["rss_peak"] - res["rss_before"]) / size,
            "rss_peak_ratio": res["rss_peak"] / size,
            "targets": {
                "seconds<=10": res["seconds"] <= 10,
                "peak_rss_growth<=2x_weights": (res["rss_peak"] - res["rss_before"]) <= 2 * size,
            },
        }
    )
    return res


def bench_forward(tmp: str, iters: int) -> dict:
    import cv2
    import onnxruntime as ort
    import torch

    cfg = str(DATA / "yolov4-tiny.cfg")
    weights = os.path.join(tmp, "yolov4-tiny.weights")
    init(darkweights.load(cfg), weights, seed=1)
    net = darkweights.load(cfg, weights, width=416, height=416)
    path = os.path.join(tmp, "yolov4-tiny.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.to_onnx(path)
    x = np.random.default_rng(0).random((1, 3, 416, 416), dtype=np.float32)

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    torch.set_num_threads(THREADS)
    model = net.to_torch(fuse_bn=True)
    direct = net.to_torch(fuse_bn=True, winograd=False)  # context: oneDNN's direct kernels only
    xt = torch.from_numpy(x)
    cv2.setNumThreads(THREADS)
    cvnet = cv2.dnn.readNetFromDarknet(cfg, weights)
    cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    cv_names = cvnet.getUnconnectedOutLayersNames()
    cv_in = cv2.dnn.blobFromImage(np.ascontiguousarray(x[0].transpose(1, 2, 0)), size=(416, 416))

    def run_ort() -> None:
        session.run(None, {"input": x})

    def run_torch() -> None:
        with torch.inference_mode():
            model(xt)

    def run_torch_direct() -> None:
        with torch.inference_mode():
            direct(xt)

    def run_opencv() -> None:
        cvnet.setInput(cv_in)
        cvnet.forward(cv_names)

    fns = {"onnxruntime": run_ort, "torch": run_torch, "torch_direct": run_torch_direct, "opencv": run_opencv}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    rounds = min(5, iters)
    order = list(fns)
    for r in range(rounds):
        block = iters // rounds + (r < iters % rounds)
        for name in order[r % len(order) :] + order[: r % len(order)]:
            for _ in range(block):
                t = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "threads": THREADS,
        "iters": iters,
        "median_seconds": med,
        "images_per_second": {k: 1.0 / v for k, v in med.items()},
        "onnxruntime_vs_torch": med["torch"] / med["onnxruntime"],
        "onnxruntime_vs_torch_direct": med["torch_direct"] / med["onnxruntime"],
        "onnxruntime_vs_opencv": med["opencv"] / med["onnxruntime"],
        "targets": {"onnxruntime>=1.0x_torch": med["torch"] / med["onnxruntime"] >= 1.0},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--skip-export", action="store_true", help="only the forward comparison")
    args = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_export:
            results["export_yolov4"] = e = bench_export(tmp)
            print(
                f"yolov4 export: {e['seconds']:.2f} s, {e['bytes']:,} bytes ({e['file_ratio']:.3f}x the weights), "
                f"peak RSS growth {e['rss_growth_ratio']:.2f}x the weights ({e['rss_peak'] / 2**20:.0f} MiB peak); "
                f"check_model(full_check) passed, onnxruntime vs torch rel {e['max_rel_vs_torch']:.1e}"
            )
        results["forward_yolov4_tiny_416"] = f = bench_forward(tmp, args.iters)
        ips = f["images_per_second"]
        print(
            f"yolov4-tiny 416 batch 1, {THREADS} threads: onnxruntime {ips['onnxruntime']:.1f} img/s, torch "
            f"{ips['torch']:.1f} (direct convolutions {ips['torch_direct']:.1f}), opencv {ips['opencv']:.1f}; "
            f"onnxruntime/torch {f['onnxruntime_vs_torch']:.2f}x (/direct {f['onnxruntime_vs_torch_direct']:.2f}x), "
            f"onnxruntime/opencv {f['onnxruntime_vs_opencv']:.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
