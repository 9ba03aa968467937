"""The Darknet ``detector map`` cases of tests/data/val through every exit: a raw ONNX export in onnxruntime and in
OpenVINO (float32), and an ``--fp16`` export in onnxruntime; mAP against Darknet's and whether the whole printout is
Darknet's.

    python tools/val_exits.py            # from the repository root; needs ../shared (images, Yolo-Fastest 1.1-xl)

Not a test: it exports three models twice (about a minute on a quiet machine); tests/test_val.py checks the raw
export, OpenVINO and fp16 on the in-repo set.
"""

from __future__ import annotations

import re
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import darkweights
from darkweights.onnx import export_onnx
from darkweights.val.metric import printout
from darkweights.val.run import Job, score
from tests.val_cases import CASES, darknet_block, make_set, model_files

EXITS = (("raw", "onnxruntime"), ("raw", "openvino"), ("fp16", "onnxruntime"))


def main() -> int:
    warnings.simplefilter("ignore")
    root = Path(tempfile.mkdtemp(prefix="val-exits-"))
    exports: dict[tuple[str, str], Path] = {}
    sets: dict[tuple, Path] = {}
    print(f"{'case':18s} {'export':6s} {'backend':12s} {'Darknet':>9s} {'ours':>9s} {'diff':>10s}  printout")
    for case in CASES:
        if case.model not in {m for m, _ in exports}:
            cfg, weights = model_files(case.model, root)
            net = darkweights.load(cfg, weights)
            for kind in ("raw", "fp16"):
                exports[(case.model, kind)] = root / f"{case.model}-{kind}.onnx"
                export_onnx(net, exports[(case.model, kind)], batch="dynamic", fp16=kind == "fp16")
        key = (case.labels, case.shared)
        if key not in sets:
            sets[key] = make_set(root / f"set{len(sets)}", case.labels, case.shared)
        data = sets[key] / ("coco-difficult.data" if case.difficult else "coco.data")
        darknet = float(re.search(r"\(mAP@[\d.]+\) = ([\d.]+)", case.printout).group(1))
        for kind, backend in EXITS:
            job = Job.open(data, exports[(case.model, kind)], None, backend, "auto", None, None, root)
            record = score(job.detections(), job.classes, job.names, **case.settings)
            same = [line for line in printout(record) if line] == darknet_block(case.printout)
            print(
                f"{case.name:18s} {kind:6s} {backend:12s} {darknet:9.6f} {record['map']:9.6f} "
                f"{record['map'] - darknet:+10.6f}  {'identical' if same else 'differs'}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
