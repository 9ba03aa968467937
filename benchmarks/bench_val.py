"""``darkweights val`` on a folder: images/s against Darknet's own ``detector map`` and against the forward alone.

    python benchmarks/bench_val.py [FOLDER] [--repeat N] [--rounds N] [--darknet DARKNET_BINARY] [--json OUT]

The set: every image of FOLDER (default: tests/data/val/repo5/img, plus ../shared/images when present) with the
label files beside them, listed ``--repeat`` times (default 4) so that the run is long enough to time; the model is
the bundled Yolo-Fastest 1.1 (320x320, 0.25 BFLOPs). Timed in the same run, in alternating rounds (so all sample
the same machine load), medians compared:

1. ``darkweights.val(data)``, in-process after imports: reading the dataset and labels, building the model, loading
   and resizing every image once (the next batch decoded in a thread while the backend runs), the forward in
   batches of 4, decoding at conf 0.005, NMS, the metric;
2. loading and resizing the images alone (Darknet-exact decoding, one thread), then the forward alone on the same
   batches: what (1) overlaps;
3. with ``--darknet`` (or ``$DARKNET``): ``darknet detector map`` on the same files, as a process (AlexeyAB's CPU
   build: 4 loader threads, one image per forward), wall time.

``--threads`` (default 1) sets torch's threads: AlexeyAB's CPU build without OpenMP computes on one thread, and
on a crowded machine torch's own default (one thread a core, spinning at barriers) can be ten times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import darkweights

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def make_set(folders: list[Path], root: Path, repeat: int) -> tuple[Path, int]:
    """``root/img`` with the folders' images and labels, ``valid.txt`` listing them ``repeat`` times, ``coco.data``."""
    bundled = darkweights.default_model()
    (root / "img").mkdir(parents=True)
    names = []
    for folder in folders:
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                shutil.copy(image, root / "img" / image.name)
                label = image.with_suffix(".txt")
                if label.exists():
                    shutil.copy(label, root / "img" / label.name)
                names.append(image.name)
    (root / "valid.txt").write_text("".join(f"img/{n}\n" for n in names) * repeat)
    shutil.copy(bundled.names, root / "coco.names")
    (root / "coco.data").write_text("classes=80\nvalid=valid.txt\nnames=coco.names\n")
    return root / "coco.data", len(names) * repeat


def time_val(data: Path, threads: int | None) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        darkweights.val(data, threads=threads)
    return time.perf_counter() - start


def time_forward(data: Path, threads: int | None) -> tuple[float, float]:
    """Loading and resizing every image (one thread), then the backend alone on every batch ``val`` runs."""
    from darkweights.val.run import Job, load_batch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = Job.open(data, None, None, None, "auto", None, None, data.parent, threads=threads)
    size = job.backend.batch or 4
    net = job.net
    paths = [e.path for e in job.images]
    geometry = (net.channels, net.height, net.width, job.detector.letterbox)
    start = time.perf_counter()
    batches = [load_batch(paths[i : i + size], *geometry)[0] for i in range(0, len(paths), size)]
    decode = time.perf_counter() - start
    job.backend.run(batches[0])  # warm-up: weight packing
    start = time.perf_counter()
    for x in batches:
        job.backend.run(x)
    return decode, time.perf_counter() - start


def time_darknet(darknet: str, data: Path) -> float:
    bundled = darkweights.default_model()
    start = time.perf_counter()
    subprocess.run(
        [darknet, "detector", "map", data.name, str(bundled.cfg), str(bundled.weights), "-dont_show"],
        cwd=data.parent,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", help="a folder of images (+ label files beside them)")
    ap.add_argument("--repeat", type=int, default=4, help="times the list names each image (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as Darknet's CPU build without OpenMP)"
    )
    ap.add_argument("--darknet", default=os.environ.get("DARKNET"), help="AlexeyAB's darknet binary, to compare")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.folder:
        folders = [Path(args.folder)]
    else:
        folders = [REPO / "tests" / "data" / "val" / "repo5" / "img"]
        shared = REPO.parent / "shared" / "images"
        if shared.exists():
            folders.append(shared)
    with tempfile.TemporaryDirectory() as tmp:
        data, n = make_set(folders, Path(tmp), args.repeat)
        time_val(data, args.threads)  # warm-up: imports, first-call allocations
        runs: dict[str, list[float]] = {"val": [], "decode": [], "forward": [], "darknet": []}
        for r in range(args.rounds):
            order = ["val", "forward", "darknet"] if r % 2 == 0 else ["darknet", "forward", "val"]
            for what in order:
                if what == "val":
                    runs["val"].append(time_val(data, args.threads))
                elif what == "forward":
                    decode, forward = time_forward(data, args.threads)
                    runs["decode"].append(decode)
                    runs["forward"].append(forward)
                elif args.darknet:
                    runs["darknet"].append(time_darknet(args.darknet, data))
    result: dict = {"images": n, "rounds": args.rounds, "threads": _threads()}
    for what, times in runs.items():
        if times:
            median = statistics.median(times)
            result[what] = {"seconds": median, "images_per_s": n / median, "all": times}
    lines = [f"val on {n} images (bundled Yolo-Fastest 1.1, 320x320), medians of {args.rounds} rounds:"]
    for what in ("val", "decode", "forward", "darknet"):
        if what in result:
            lines.append(f"  {what:8s} {result[what]['seconds']:7.2f} s  {result[what]['images_per_s']:7.1f} images/s")
    if "forward" in result:
        result["val_vs_forward"] = result["forward"]["seconds"] / result["val"]["seconds"]
        lines.append(f"  val runs at {result['val_vs_forward']:.2f}x the forward alone's speed")
    if "darknet" in result:
        result["val_vs_darknet"] = result["darknet"]["seconds"] / result["val"]["seconds"]
        lines.append(f"  val runs at {result['val_vs_darknet']:.2f}x Darknet's detector map's speed")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        return None


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
