"""Record what darkweights computes, to compare two trees before and after a change that must not change it.

    PYTHONPATH=<tree>/src python tools/snapshot.py record OUT.json [cfg,roundtrip,detect,opencv,onnx,fixtures]
    python tools/snapshot.py compare A.json B.json [parts]

``record`` runs the tree on PYTHONPATH over this checkout's test data and ../shared: for every cfg (the shared
ones and tests/data) under each dialect its inspect table and JSON, layouts, warnings or error message,
synthesised weights (hash) and torch state_dict names; every fixture's verify rows (end to end and
teacher-forced); save/extract/pack round trips; ONNX exports (bytes, nodes, metadata, onnxruntime outputs);
detections on the sample photos; verify --against opencv rows. ``compare`` prints what differs.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import darkweights
import darkweights.api
import darkweights.onnx

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REPO_TESTS = REPO / "tests"
ORACLE = REPO_TESTS / "data" / "oracle"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def cfg_list() -> list[Path]:
    return sorted((SHARED / "cfg").rglob("*.cfg")) + sorted((REPO_TESTS / "data").glob("*.cfg"))


def part_cfg(out: dict) -> None:
    from darkweights.report import inspect
    from darkweights.synth import random_arrays

    res = {}
    for cfg in cfg_list():
        for dialect in ("auto", "alexeyab", "pjreddie", "hankai"):
            key = f"{cfg.name}:{dialect}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    net = darkweights.load(cfg, dialect=dialect)
                except darkweights.DarkweightsError as exc:
                    res[key] = {"error": str(exc), "type": type(exc).__name__}
                    continue
                t = inspect(net)
                entry = {
                    "text": sha(t.to_text().encode()),
                    "data": json.loads(t.to_json()),
                    "warnings": [str(w.message) for w in caught],
                    "layout": [(p.key, p.offset, p.torch, p.role, list(p.shape)) for p in net.layout()],
                    "load_layout": [(p.key, p.offset) for p in net.layout(mode="load")],
                }
                if net.param_count() < 30_000_000:
                    h = hashlib.sha256()
                    for _, arr in random_arrays(net, 3):
                        h.update(arr.tobytes())
                    entry["synth"] = h.hexdigest()[:16]
                if net.param_count() < 8_000_000:
                    try:
                        from darkweights.torch import build

                        m = build(net)
                        entry["state_dict"] = [(k, list(v.shape)) for k, v in m.state_dict().items()]
                        entry["repr"] = sha(repr(m).encode())
                    except darkweights.DarkweightsError as exc:
                        entry["torch_error"] = str(exc)
                res[key] = entry
    out["cfg"] = res


def fixture_dirs() -> list[Path]:
    shared = sorted(p.parent for p in (SHARED / "fixtures").glob("*/layers.json"))
    oracle = sorted(p.parent for p in ORACLE.glob("*/layers.json"))
    return shared + oracle


def part_fixtures(out: dict) -> None:
    from darkweights import verify

    res = {}
    for d in fixture_dirs():
        for tf in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    r = verify.compare_with_fixture(d, teacher_forcing=tf)
                except darkweights.DarkweightsError as exc:
                    res[f"{d.name}:{tf}"] = {"error": str(exc)}
                    continue
            res[f"{d.name}:{tf}"] = {
                "ok": r.ok,
                "max_rel": r.max_rel,
                "rows": [(row.index, row.type, row.rel, row.tolerance, row.note) for row in r.rows],
                "table": sha(r.to_table().encode()),
            }
    out["fixtures"] = res


def part_roundtrip(out: dict) -> None:
    res = {}
    for d in fixture_dirs():
        w = d / "model.weights"
        if not w.exists():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = darkweights.load(d / "model.cfg", w)
            buf = io.BytesIO()
            try:
                net.save_weights(buf)
            except darkweights.DarkweightsError as exc:
                res[d.name] = {"error": str(exc)}
                continue
            same = buf.getvalue() == w.read_bytes()
            entry = {"save_identical": same, "sha": sha(buf.getvalue())}
            with tempfile.TemporaryDirectory() as tmp:
                from darkweights.export import export_arrays, read_arrays

                for ext in (".npz", ".safetensors"):
                    try:
                        p = Path(tmp) / f"a{ext}"
                        export_arrays(net, p)
                        b2 = io.BytesIO()
                        darkweights.api.save_weights(read_arrays(p)[0], b2, net=net)
                        entry[ext] = b2.getvalue() == w.read_bytes()
                    except Exception as exc:
                        entry[ext] = f"{type(exc).__name__}: {exc}"
        res[d.name] = entry
    out["roundtrip"] = res


def _st(p: Path) -> dict:
    from darkweights.export import read_arrays

    return read_arrays(p)[0]


ONNX_CASES = [
    (SHARED / "fixtures" / "yolov4-tiny", ("raw", "decoded", "nms")),
    (SHARED / "fixtures" / "yolov2", ("raw", "decoded", "nms")),
    (SHARED / "fixtures" / "Gaussian_yolov3_BDD", ("raw", "decoded")),
    (SHARED / "fixtures" / "synth_geometry", ("raw",)),
    (SHARED / "fixtures" / "yolov4-sam-mish-csp-reorg-bfm", ("raw",)),
    (ORACLE / "hankai_tiny", ("raw", "nms")),
    (ORACLE / "alexeyab_detector", ("raw", "decoded", "nms")),
    (ORACLE / "pjreddie_image", ("raw",)),
    (ORACLE / "xnor_fused", ("raw",)),
    (ORACLE / "synth_conv_lstm", ("raw",)),
]


def part_onnx(out: dict) -> None:
    import onnx
    import onnxruntime as ort

    res = {}
    for d, kinds in ONNX_CASES:
        from darkweights.verify import load_fixture

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if (d / "layers.json").exists():
                net, meta, x, _ = load_fixture(d)
            else:
                net = darkweights.load(d / "model.cfg", d / "model.weights")
                x = np.random.default_rng(0).random(net.input.chw, dtype=np.float32)
            for kind in kinds:
                for fuse in (False, True):
                    key = f"{d.name}:{kind}:{fuse}"
                    with tempfile.TemporaryDirectory() as tmp:
                        p = Path(tmp) / "m.onnx"
                        try:
                            info = darkweights.onnx.export_onnx(net, p, outputs=kind, fuse_bn=fuse)
                        except darkweights.DarkweightsError as exc:
                            res[key] = {"error": str(exc)}
                            continue
                        data = p.read_bytes()
                        model = onnx.load(str(p))
                        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                        y = sess.run(None, {"input": x[None].astype(np.float32)})
                        res[key] = {
                            "bytes_sha": sha(data),
                            "nodes": [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node],
                            "meta": info.metadata,
                            "outputs": [sha(np.ascontiguousarray(a).tobytes()) for a in y],
                        }
    out["onnx"] = res


DETECT_CASES = [
    ("bundled", None, None, "auto"),
    ("yolov4-tiny", SHARED / "fixtures" / "yolov4-tiny", None, "auto"),
    ("yolov2", SHARED / "fixtures" / "yolov2", None, "auto"),
    ("Gaussian", SHARED / "fixtures" / "Gaussian_yolov3_BDD", None, "auto"),
    ("yolov7", SHARED / "fixtures" / "yolov7", None, "auto"),
    ("alexeyab_detector", ORACLE / "alexeyab_detector", None, "auto"),
    ("pjreddie_detector", ORACLE / "pjreddie_detector", None, "pjreddie"),
    ("yolov2-pj", SHARED / "fixtures" / "yolov2", None, "pjreddie"),
    ("yolo9000", ORACLE / "alexeyab_yolo9000", None, "auto"),
    ("xl", SHARED / "models" / "yolo-fastest-1.1-xl", None, "auto"),
]


def part_detect(out: dict) -> None:
    from darkweights.detect.run import Detector
    from darkweights.verify import load_fixture

    res = {}
    images = sorted((SHARED / "images").glob("*.jpg"))
    for name, d, _, dialect in DETECT_CASES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if d is None:
                bm = darkweights.default_model()
                net = darkweights.load(bm.cfg, bm.weights, dialect=dialect)
            elif (d / "layers.json").exists():
                net, *_ = load_fixture(d, dialect=dialect)
            else:
                cfgs = sorted(d.glob("*.cfg"))
                wts = sorted(d.glob("*.weights"))
                net = darkweights.load(cfgs[0], wts[0], dialect=dialect)
            try:
                det = Detector(net)
            except darkweights.DarkweightsError as exc:
                res[name] = {"error": str(exc)}
                continue
            for img in images:
                for thresh in (None, 0.05):
                    recs = det(img, thresh=thresh)
                    res[f"{name}:{img.name}:{thresh}"] = recs
            res[f"{name}:warnings"] = [str(w.message) for w in caught]
    out["detect"] = res


def part_opencv(out: dict) -> None:
    from darkweights.synth import init
    from darkweights.verify import compare_with_opencv

    res = {}
    for cfg in ("yolov4-tiny.cfg", "yolov2-tiny.cfg", "yolov3-tiny.cfg", "yolov2.cfg", "yolov4-tiny-3l.cfg"):
        path = SHARED / "cfg" / cfg
        if not path.exists():
            path = REPO_TESTS / "data" / cfg
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = darkweights.load(path, width=128, height=128)
            buf = io.BytesIO()
            init(net, buf, seed=1)
            net.load_weights(buf.getvalue())
            for eps in ("darknet", "opencv"):
                r = compare_with_opencv(net, bn_eps=eps)
                res[f"{cfg}:{eps}"] = [(row.index, row.type, row.rel, row.note) for row in r.rows] + [r.skipped]
    out["opencv"] = res


PARTS = {
    "cfg": part_cfg,
    "fixtures": part_fixtures,
    "roundtrip": part_roundtrip,
    "onnx": part_onnx,
    "detect": part_detect,
    "opencv": part_opencv,
}


def diff(x: object, y: object, path: str, out: list, limit: int = 40) -> None:
    if len(out) > limit:
        return
    if type(x) is not type(y):
        if not (isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == y):
            out.append((path, repr(x)[:200], repr(y)[:200]))
    elif isinstance(x, dict):
        assert isinstance(y, dict)
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                out.append(
                    (f"{path}/{k}", "missing" if k not in x else "present", "missing" if k not in y else "present")
                )
            else:
                diff(x[k], y[k], f"{path}/{k}", out, limit)
    elif isinstance(x, list):
        assert isinstance(y, list)
        if len(x) != len(y):
            out.append((path, f"len {len(x)}", f"len {len(y)}"))
        for i, (p, q) in enumerate(zip(x, y)):
            diff(p, q, f"{path}[{i}]", out, limit)
    elif x != y and not (isinstance(x, float) and math.isnan(x) and isinstance(y, float) and math.isnan(y)):
        out.append((path, repr(x)[:300], repr(y)[:300]))


def main() -> None:
    if sys.argv[1] == "compare":
        a, b = (json.loads(Path(p).read_text()) for p in sys.argv[2:4])
        for part in sys.argv[4].split(",") if len(sys.argv) > 4 else sorted(set(a) | set(b)):
            out: list = []
            diff(a.get(part), b.get(part), part, out)
            print(f"== {part}: {'IDENTICAL' if not out else f'{len(out)}+ differences'}")
            for o in out:
                print("  ", o)
        return
    dest = Path(sys.argv[2])
    parts = sys.argv[3].split(",") if len(sys.argv) > 3 else list(PARTS)
    out: dict = json.loads(dest.read_text()) if dest.exists() else {}
    for p in parts:
        t = time.time()
        PARTS[p](out)
        print(f"{p}: {time.time() - t:.1f} s", file=sys.stderr)
        dest.write_text(json.dumps(out, default=str, indent=0))


if __name__ == "__main__":
    main()
