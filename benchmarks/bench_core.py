"""Core speed and memory, as ratios against baselines measured in the same run.

    python benchmarks/bench_core.py [--cfg CFG] [--repeat N] [--json OUT]

Synthesises a yolov4-sized weights file (257,717,640 bytes) with ``darkweights init``, then:

1. ``darkweights inspect CFG WEIGHTS`` (open + validate, no stats) vs ``python -c pass``:
   whole-process wall time, and inside one process the time and RSS that ``load()`` adds
   after the imports (target: <= 10 ms, <= 40 MB);
2. ``extract -> .safetensors`` vs ``cp`` of the same file (target: <= 1.3x, for the library call;
   the whole command, also reported, adds the interpreter start and imports, ~50 ms whatever
   the file size);
3. the same extract vs an eager converter (``np.fromfile`` of the whole file, then a copy
   per layer array, then ``safetensors``-style writing).

Each figure is the median of ``--repeat`` runs, after one warm-up (page cache warm).
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CFG = HERE.parent / "tests" / "data" / "yolov4.cfg"

PROBE = r"""
import resource, sys, time, json
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
import numpy, darkweights, darkweights.cli
r0, t0 = rss(), time.perf_counter()
net = darkweights.load(sys.argv[1], sys.argv[2])
t1 = time.perf_counter()
print(json.dumps({"load_ms": (t1 - t0) * 1e3, "rss_added_mb": rss() - r0, "arrays": len(net.params())}))
"""

# the library call alone, after the interpreter has started and imported darkweights
INPROC = r"""
import os, sys, time, json
import darkweights
from darkweights.export import export_arrays
times = []
for i in range(int(sys.argv[4])):
    if os.path.exists(sys.argv[3]):
        os.unlink(sys.argv[3]); os.sync()
    t = time.perf_counter()
    export_arrays(darkweights.load(sys.argv[1], sys.argv[2]), sys.argv[3])
    times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2]))
"""

EAGER = r"""
import json, struct, sys
import numpy as np
import darkweights
net = darkweights.load(sys.argv[1])
data = np.fromfile(sys.argv[2], dtype=np.uint8)           # whole file in memory
body = data[20:].view("<f4")
arrays, pos = {}, 0
for p in net.layout():
    n = p.count
    arrays[p.key] = body[pos:pos + n].reshape(p.shape).copy()   # per-layer copy, as converters do
    pos += n
head, off = {}, 0
for k, a in arrays.items():
    head[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
    off += a.nbytes
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[3], "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for a in arrays.values():
        f.write(a.tobytes())
"""


def timed(cmd: list[str], repeat: int, output: str = "") -> float:
    """Median wall time; ``output`` is deleted before each run so every run creates a new file."""
    from darkweights.progress import bar

    subprocess.run(cmd, check=True, capture_output=True)  # warm-up
    times = []
    for _ in bar(range(repeat), total=repeat, desc=" ".join(os.path.basename(c) for c in cmd[:3]), unit="run"):
        if output and os.path.exists(output):
            os.unlink(output)
            os.sync()
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cfg", default=str(DEFAULT_CFG))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    py = sys.executable
    dw = [py, "-m", "darkweights"]
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "model.weights")
        subprocess.run(dw + ["init", args.cfg, "-o", weights, "--seed", "1"], check=True, capture_output=True)
        size = os.path.getsize(weights)
        res: dict = {"cfg": args.cfg, "weights_bytes": size, "repeat": args.repeat}

        t_pass = timed([py, "-c", "pass"], args.repeat)
        t_inspect = timed(dw + ["inspect", args.cfg, weights], args.repeat)
        res["inspect_s"], res["python_pass_s"] = t_inspect, t_pass
        res["inspect_vs_python_pass"] = t_inspect / t_pass
        probes = [
            json.loads(
                subprocess.run([py, "-c", PROBE, args.cfg, weights], check=True, capture_output=True, text=True).stdout
            )
            for _ in range(args.repeat)
        ]
        res["open_validate_ms"] = statistics.median(p["load_ms"] for p in probes)
        res["open_validate_rss_mb"] = statistics.median(p["rss_added_mb"] for p in probes)

        out = os.path.join(tmp, "out.safetensors")
        copy, eager = os.path.join(tmp, "copy.weights"), os.path.join(tmp, "eager.safetensors")
        t_cp = timed(["cp", weights, copy], args.repeat, copy)
        t_extract = timed(dw + ["extract", args.cfg, weights, "-o", out], args.repeat, out)
        t_eager = timed([py, "-c", EAGER, args.cfg, weights, eager], args.repeat, eager)
        t_lib = json.loads(
            subprocess.run(
                [py, "-c", INPROC, args.cfg, weights, out, str(args.repeat)], check=True, capture_output=True, text=True
            ).stdout
        )
        res.update(
            cp_s=t_cp,
            extract_s=t_extract,
            eager_s=t_eager,
            extract_vs_cp=t_extract / t_cp,
            extract_vs_eager=t_extract / t_eager,
            extract_library_s=t_lib,
            extract_library_vs_cp=t_lib / t_cp,
        )

    print(f"weights file: {size:,} bytes ({Path(args.cfg).name}), median of {args.repeat}")
    print(
        f"open + validate, load():  {res['open_validate_ms']:7.2f} ms, RSS +{res['open_validate_rss_mb']:.1f} MB after "
        "the imports (target <= 10 ms, <= 40 MB)"
    )
    print(
        f"  whole `inspect` command: {res['inspect_s'] * 1e3:7.1f} ms against `python -c pass` {t_pass * 1e3:.1f} ms "
        f"({res['inspect_vs_python_pass']:.2f}x: interpreter start and imports included)"
    )
    print(
        f"extract -> safetensors:   {t_lib * 1e3:7.1f} ms   cp: {t_cp * 1e3:6.1f} ms   "
        f"ratio {res['extract_library_vs_cp']:.2f}x (target <= 1.3x; the library call, in-process)"
    )
    print(
        f"  whole `extract` command: {t_extract * 1e3:7.1f} ms ({res['extract_vs_cp']:.2f}x cp: plus the interpreter "
        "start and imports, constant in file size)"
    )
    print(f"  eager converter:         {t_eager * 1e3:7.1f} ms   (ours/eager {t_lib / t_eager:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
