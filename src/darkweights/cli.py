"""The ``darkweights`` command: a thin shell over the library.

User errors (bad cfg, mismatched weights, bad arrays) print one line on stderr and exit 2;
``verify`` exits 1 when outputs differ beyond tolerance. Warnings print as ``warning: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Optional, Sequence

from .errors import DarkweightsError, DarkweightsWarning

EXIT_USAGE = 2


def parse_layers(spec: Optional[str]) -> Optional[list[int]]:
    """``"0,5-7"`` → ``[0, 5, 6, 7]``."""
    if not spec:
        return None
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
        except ValueError:
            raise DarkweightsError(f"--layers {spec!r}: expected indexes and ranges like 0,5-7") from None
    return out


def _check_output(args: argparse.Namespace, *inputs: Optional[str]) -> None:
    """Refuse ``-o`` when it names an input, or an existing file without ``--force``, before any work."""
    from .atomic import check_output

    check_output(args.output, force=args.force, inputs=inputs)


def _load(args: argparse.Namespace, cfg: Any, weights: Any = None):  # noqa: ANN202
    from .network import load

    return load(cfg, weights, dialect=args.dialect, width=args.width, height=args.height,
                channels=getattr(args, "channels", None), cutoff=getattr(args, "cutoff", None))


# -- inspect --------------------------------------------------------------------------------


def _stats(arr: Any) -> dict:
    import numpy as np

    a = np.asarray(arr)
    finite = np.isfinite(a)
    n_bad = int(a.size - np.count_nonzero(finite))
    vals = a[finite] if n_bad else a
    if vals.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "nan": int(np.isnan(a).sum()),
                "inf": int(np.isinf(a).sum())}
    return {"min": float(vals.min()), "max": float(vals.max()), "mean": float(vals.mean(dtype=np.float64)),
            "std": float(vals.std(dtype=np.float64)), "nan": int(np.isnan(a).sum()) if n_bad else 0,
            "inf": int(np.isinf(a).sum()) if n_bad else 0}


def inspect_report(net: Any, stats: bool = False) -> dict:
    """Everything ``inspect`` shows, as plain data (also the ``--json`` output)."""
    params = net.params()
    by_layer: dict[int, list] = {}
    for p in params:
        by_layer.setdefault(p.layer, []).append(p)
    arrays = net.arrays() if (stats and net.has_weights) else {}
    layers = []
    for layer in net.layers:
        inp, out = layer.input, layer.output
        ps = by_layer.get(layer.index, [])
        entry = {
            "index": layer.index, "type": layer.type, "section": layer.section.name, "line": layer.line,
            "in_c": inp.c, "in_h": inp.h, "in_w": inp.w, "inputs": inp.size,
            "out_c": out.c, "out_h": out.h, "out_w": out.w, "outputs": out.size,
            "params": sum(p.count for p in ps), "offset": ps[0].offset if ps else None,
            "bytes": sum(p.nbytes for p in ps), "summary": layer.describe(),
            "arrays": [{"name": p.name, "key": p.key, "shape": list(p.shape), "offset": p.offset,
                        "bytes": p.nbytes, **({"transposed": True} if p.transposed else {}),
                        **({"stats": _stats(arrays[p.key])} if p.key in arrays else {})} for p in ps],
        }
        if layer.next_input != out:
            entry["effective_output"] = list(layer.next_input.chw)  # antialiasing: what the next layer reads
        layers.append(entry)
    report = {
        "cfg": net.path, "dialect": net.dialect,
        "net": {"width": net.width, "height": net.height, "channels": net.channels, "inputs": net.inputs},
        "layers": layers,
        "params": net.param_count("save"),
        "weights_bytes": net.weights_bytes(),
    }
    if net.has_weights:
        report["weights"] = net.weights_path
        report["header"] = net.header.as_dict()
        report["file_bytes"] = params[-1].end if params else net.header.size
        if net.cutoff is not None:
            report["cutoff"] = net.cutoff
    return report


def _fmt_int(n: Optional[int]) -> str:
    return "" if n is None else f"{n:,}"


def print_inspect(report: dict, stats: bool) -> None:
    rows = []
    for L in report["layers"]:
        io_in = f"{L['in_c']}x{L['in_h']}x{L['in_w']}" if L["in_c"] else str(L["inputs"])
        io_out = f"{L['out_c']}x{L['out_h']}x{L['out_w']}" if L["out_c"] * L["out_h"] * L["out_w"] == L["outputs"] \
            and L["out_c"] else str(L["outputs"])
        rows.append((str(L["index"]), L["type"], L["summary"], f"{io_in} -> {io_out}", _fmt_int(L["params"] or None),
                     _fmt_int(L["offset"])))
    head = ("#", "type", "options", "input -> output", "params", "offset")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = "  ".join("{:>%d}" % widths[0] if i == 0 else "{:<%d}" % w for i, w in enumerate(widths))
    out = [line.format(*head)]
    for L, r in zip(report["layers"], rows):
        out.append(line.format(*r).rstrip())
        if stats:
            for a in L["arrays"]:
                s = a.get("stats")
                if s:
                    bad = f"  NaN {s['nan']} Inf {s['inf']}" if s["nan"] or s["inf"] else ""
                    fmt = (lambda v: "-" if v is None else f"{v:.4g}")
                    out.append(f"{'':>{widths[0]}}    {a['name']:<18} {str(tuple(a['shape'])):<20} "
                               f"min {fmt(s['min'])}  max {fmt(s['max'])}  mean {fmt(s['mean'])}  std {fmt(s['std'])}"
                               f"{bad}")
    net = report["net"]
    out.append("")
    out.append(f"input {net['channels']}x{net['height']}x{net['width']}, {len(report['layers'])} layers, "
               f"{report['params']:,} parameters, weights file {report['weights_bytes']:,} bytes ({report['dialect']})")
    if "weights" in report:
        h = report["header"]
        out.append(f"weights {report['weights']}: version {h['major']}.{h['minor']}.{h['revision']}, seen "
                   f"{h['seen']:,}, {h['header_bytes']}-byte header, {report['file_bytes']:,} bytes"
                   + (f", partial: layers 0..{report['cutoff'] - 1}" if "cutoff" in report else ""))
    print("\n".join(out))


def cmd_inspect(args: argparse.Namespace) -> int:
    net = _load(args, args.cfg, args.weights)
    report = inspect_report(net, stats=args.stats)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_inspect(report, args.stats)
    return 0


# -- extract / pack / init ------------------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    from .export import export_arrays

    _check_output(args, args.cfg, args.weights)
    net = _load(args, args.cfg, args.weights)
    layers = parse_layers(args.layers)
    n = export_arrays(net, args.output, layers=layers)
    count = sum(1 for p in net.params() if layers is None or p.layer in layers)
    print(f"wrote {args.output} ({n:,} bytes, {count} arrays)", file=sys.stderr)
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from .export import pack

    if args.arrays is None:  # `pack ARRAYS -o OUT`: the cfg comes from the file's metadata
        args.cfg, args.arrays = None, args.cfg
    _check_output(args, args.cfg, args.arrays)
    header = None
    if args.header:
        try:
            header = [int(v) for v in args.header.split(",")]
        except ValueError:
            raise DarkweightsError(f"--header {args.header!r}: expected major,minor,revision[,seen]") from None
    n = pack(args.arrays, args.output, cfg=args.cfg, dialect=args.dialect_explicit, header=header)
    print(f"wrote {args.output} ({n:,} bytes)", file=sys.stderr)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .synth import init

    _check_output(args, args.cfg)
    net = _load(args, args.cfg)
    n = init(net, args.output, seed=args.seed)
    print(f"wrote {args.output} ({n:,} bytes, seed {args.seed})", file=sys.stderr)
    return 0


# -- verify / detect (need the torch extra) -------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verify

    if args.fixture:
        report = verify.compare_with_fixture(args.fixture, teacher_forcing=args.teacher_forcing,
                                             winograd=not args.direct, float64=args.float64)
    else:
        if not (args.cfg and args.weights):
            raise DarkweightsError("verify needs CFG WEIGHTS, or --fixture DIR")
        if args.float64:
            raise DarkweightsError("--float64 applies to --fixture comparisons (OpenCV computes in float32)")
        net = _load(args, args.cfg, args.weights)
        if args.against != "opencv":
            raise DarkweightsError("without --fixture, compare --against opencv")
        report = verify.compare_with_opencv(net, bn_eps=args.bn_eps, winograd=not args.direct)
    if args.json:
        print(report.to_json())
    else:
        print(report.to_table())
    return 0 if report.ok else 1


def cmd_detect(args: argparse.Namespace) -> int:
    from .detect.run import run_detect

    return run_detect(args)


# -- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="darkweights", description="Read, write, convert and verify Darknet "
                                     ".cfg/.weights models exactly as Darknet does.")
    parser.add_argument("--version", action="version", version=f"darkweights {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dialect", default="alexeyab", choices=("alexeyab", "pjreddie", "hankai"),
                       help="which Darknet fork's rules to apply (default: alexeyab)")
        p.add_argument("--width", type=int, help="override [net] width")
        p.add_argument("--height", type=int, help="override [net] height")

    p = sub.add_parser("inspect", help="per-layer shapes, parameters and byte offsets")
    p.add_argument("cfg")
    p.add_argument("weights", nargs="?")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.add_argument("--stats", action="store_true", help="min/max/mean/std and NaN/Inf counts of every array")
    common(p)
    p.set_defaults(func=cmd_inspect)

    def writes(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--force", action="store_true", help="replace the output if it exists")

    p = sub.add_parser("extract", help="weights -> .npz or .safetensors")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("-o", "--output", required=True, help="OUT.npz or OUT.safetensors")
    p.add_argument("--layers", help="only these layers, e.g. 0,5-7")
    p.add_argument("--cutoff", type=int, help="read only layers 0..N-1, like darknet's `partial` (then pack -> .conv.N)")
    common(p)
    writes(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("pack", help=".npz/.safetensors/.pt state_dict -> weights (cfg optional when embedded)")
    p.add_argument("cfg", help="the cfg, or the array file when it carries its cfg")
    p.add_argument("arrays", nargs="?")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--header", help="major,minor,revision[,seen] (default: the source file's)")
    p.add_argument("--dialect", dest="dialect_explicit", choices=("alexeyab", "pjreddie", "hankai"))
    writes(p)
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("init", help="write a valid weights file of random values for a cfg")
    p.add_argument("cfg")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=0)
    common(p)
    writes(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("verify", help="compare our forward pass with Darknet's fixture or OpenCV, layer by layer")
    p.add_argument("cfg", nargs="?")
    p.add_argument("weights", nargs="?")
    p.add_argument("--fixture", help="a fixture directory (model.cfg, model.weights, input.npy, outputs.npz)")
    p.add_argument("--against", choices=("opencv",), help="cross-check with OpenCV's Darknet importer")
    p.add_argument("--teacher-forcing", action="store_true", help="feed each layer the reference inputs")
    p.add_argument("--bn-eps", choices=("darknet", "opencv"), default="darknet",
                   help="with --against opencv: run our model with OpenCV's BN epsilon (1e-6) to compare trained "
                        "weights tightly; default: Darknet's 1e-5 (use random-statistics weights)")
    p.add_argument("--direct", action="store_true",
                   help="compute every convolution directly (default: Winograd F(2,3) for wide 3x3 stride-1 ones)")
    p.add_argument("--float64", action="store_true",
                   help="with --fixture: run our model in float64, so that what differs is Darknet's own float32 "
                        "rounding (tells summation-order noise from a real divergence)")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("detect", help="run a detector on images (default: the bundled Yolo-Fastest 1.1)")
    p.add_argument("paths", nargs="*", metavar="[CFG WEIGHTS] IMAGE")
    p.add_argument("--sample", action="store_true", help="also run on the bundled sample photo (dog.jpg)")
    p.add_argument("--names", help="class names file (default: coco.names with the bundled model)")
    p.add_argument("-o", "--output", help="OUT.png with the boxes drawn (one image), or a directory")
    p.add_argument("--json", action="store_true", help="print detections as JSON")
    p.add_argument("--thresh", type=float, default=None,
                   help="class probability threshold (default: that of the dialect's `detector test`: 0.25, "
                        "0.5 with --dialect pjreddie)")
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold, 0 for none (default: 0.45)")
    p.add_argument("--letterbox", action="store_true",
                   help="force letterbox resizing (--dialect pjreddie always letterboxes, as its detector test)")
    common(p)
    writes(p)
    p.set_defaults(func=cmd_detect)
    for p in sub.choices.values():  # --debug also after the command; SUPPRESS keeps one given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    prefix = "warning" if issubclass(category, DarkweightsWarning) else category.__name__
    print(f"{prefix}: {message}", file=sys.stderr)


EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in darkweights, not in the user's files


def _error(message: str) -> None:
    print(f"darkweights: error: {message}", file=sys.stderr)


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush stays silent."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command. Exit status: 0 success, 1 a verification failed, 2 a user error (one line on
    stderr), 130/143 interrupted, 141 the reader of our output went away (``| head``)."""
    import os

    from .atomic import Terminated

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug or os.environ.get("DARKWEIGHTS_DEBUG"))
    warnings.showwarning = _show_warning
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a broken pipe surfaces here, inside the handlers
        return code
    except BrokenPipeError:  # before OSError, which it is a subclass of
        _quiet_stdout()
        return 141
    except KeyboardInterrupt:
        print("darkweights: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("darkweights: terminated", file=sys.stderr)
        return 143
    except Exception as exc:  # noqa: BLE001 - the one place every error becomes one line
        if debug:
            raise
        if isinstance(exc, DarkweightsError):
            _error(str(exc))
        elif isinstance(exc, ImportError):
            missing = getattr(exc, "name", None) or str(exc)
            _error(f"this command needs an optional dependency ({missing}); install `darkweights[torch]` (and "
                   "`[verify]` for OpenCV, `[detect]` for images)")
        elif isinstance(exc, OSError):
            where = f"{exc.filename}: " if exc.filename else ""
            _error(f"{where}{exc.strerror or exc}")
        elif isinstance(exc, MemoryError):
            _error("out of memory (does the cfg ask for absurdly large layers?)")
        else:
            _error(f"internal error {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''} "
                   "(a bug in darkweights: please report it with the output of --debug)")
            return EXIT_INTERNAL
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
