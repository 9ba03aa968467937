"""SIGINT during ``darkweights export``, as a script's background job sends it: ``python fuzz/sigint.py --runs 16``.

The export (yolov4-tiny, random weights from a seed) is started by ``bash`` in the background, so it inherits
SIGINT as *ignored*, then ``kill -INT`` is sent at moments spread over the export's own run time (measured
first, in the same conditions). Each run must end with exit 130, the old output byte for byte, and no
temporary file. Prints one line per run and a summary; exits 1 unless every run holds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD = b"the old output\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--model", default="yolov4-tiny", help="a bundled cfg name")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    exe = f"{shlex.quote(sys.executable)} -m darkweights"
    with tempfile.TemporaryDirectory(prefix="dw-sigint-") as d:
        out = Path(d, "old.onnx")
        subprocess.run(
            [sys.executable, "-m", "darkweights", "init", args.model, "-o", str(Path(d, "m.weights")), "-q"],
            check=True,
            env=env,
        )
        cmd = f"{exe} export {args.model} {Path(d, 'm.weights')} -o {out} --force -q"
        out.write_bytes(OLD)
        start = time.perf_counter()
        subprocess.run(["bash", "-c", cmd], check=True, env=env, capture_output=True)
        span = time.perf_counter() - start
        print(f"export alone: {span:.2f} s", flush=True)
        held = 0
        for i in range(args.runs):
            delay = 0.25 + (0.9 * span - 0.25) * i / max(args.runs - 1, 1)
            out.write_bytes(OLD)
            r = subprocess.run(
                ["bash", "-c", f"{cmd} & pid=$!; sleep {delay:.3f}; kill -INT $pid; wait $pid"],
                capture_output=True,
                text=True,
                env=env,
            )
            intact = out.read_bytes() == OLD
            temps = sorted(p.name for p in Path(d).iterdir() if p.name.startswith("."))
            ok = r.returncode == 130 and intact and not temps
            held += ok
            print(
                f"{delay:5.2f} s -> exit {r.returncode}, old output intact {intact}, temporary files {temps}"
                + ("" if ok else f": {r.stderr.strip()[-200:]}"),
                flush=True,
            )
    print(f"{held} of {args.runs} SIGINTs: exit 130, the old output intact, no temporary file")
    return 0 if held == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
