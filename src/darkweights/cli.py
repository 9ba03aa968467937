"""The ``darkweights`` command: a thin shell over the library.

User errors (bad cfg, mismatched weights, bad arrays) print one line on stderr and exit 2;
``verify`` exits 1 when outputs differ beyond tolerance. Warnings print as ``warning: ...``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .dialects import AUTO, DIALECTS
from .errors import DarkweightsError, DarkweightsWarning

EXIT_USAGE = 2
CFG_HELP = "the .cfg file, or a bundled model's name (see `darkweights models`)"
WEIGHTS_HELP = "the .weights file (the bundled yolo-fastest-1.1 brings its own)"
JSON_HELP = "print one JSON object instead of text"
DIALECT_CHOICES = (AUTO, *DIALECTS)
# optional module -> the extra that installs it
EXTRAS = {
    "torch": "torch",
    "cv2": "verify",
    "PIL": "detect",
    "matplotlib": "plot",
    "tqdm": "progress",
    "onnx": "onnx",
    "onnxruntime": "onnx",
}


def parse_layers(spec: str | None) -> list[int] | None:
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


def _info(args: argparse.Namespace, message: str) -> None:
    """A ``wrote ...`` line on stderr, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _check_output(args: argparse.Namespace, *inputs: str | None) -> None:
    """Refuse ``-o`` when it names an input, or an existing file without ``--force``, before any work."""
    from .atomic import check_output

    check_output(args.output, force=args.force, inputs=inputs)


def _load(args: argparse.Namespace, cfg: Any, weights: Any = None):
    from .network import load

    return load(
        cfg,
        weights,
        dialect=args.dialect,
        width=args.width,
        height=args.height,
        channels=getattr(args, "channels", None),
        cutoff=getattr(args, "cutoff", None),
    )


# -- inspect --------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from .report import inspect

    table = inspect(_load(args, args.cfg, args.weights), stats=args.stats)
    if args.json:
        print(table.to_json())
    else:
        tty = sys.stdout.isatty()
        color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        print(table.to_text(color=color, width=_terminal_width()))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import table

    report = table()
    print(report.to_json() if args.json else report.to_text(width=_terminal_width()))
    return 0


def _terminal_width() -> int | None:
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


# -- extract / pack / init ------------------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    from .export import export_arrays

    _check_output(args, args.cfg, args.weights)
    net = _load(args, args.cfg, args.weights)
    layers = parse_layers(args.layers)
    n = export_arrays(net, args.output, layers=layers)
    count = sum(1 for p in net.params() if layers is None or p.layer in layers)
    _info(args, f"wrote {args.output} ({n:,} bytes, {count} arrays)")
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
    if str(args.arrays).lower().endswith(".onnx"):
        from .onnx.home import pack_onnx

        n = pack_onnx(
            args.arrays, args.output, cfg=args.cfg, dialect=args.dialect, header=header, allow_fused=args.allow_fused
        )
    else:
        n = pack(args.arrays, args.output, cfg=args.cfg, dialect=args.dialect, header=header)
    _info(args, f"wrote {args.output} ({n:,} bytes)")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .synth import init

    _check_output(args, args.cfg)
    net = _load(args, args.cfg)
    n = init(net, args.output, seed=args.seed)
    _info(args, f"wrote {args.output} ({n:,} bytes, seed {args.seed})")
    return 0


# -- verify / detect (need the torch extra) -------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verify

    if args.onnx:
        from .onnx import home

        if args.fixture:
            report = home.compare_onnx_with_fixture(args.onnx, args.fixture, level=args.ort_level)
        elif args.cfg and args.weights:
            report = home.compare_onnx_with_torch(args.onnx, _load(args, args.cfg, args.weights), level=args.ort_level)
        else:
            raise DarkweightsError("verify --onnx MODEL needs --fixture DIR, or CFG WEIGHTS (our PyTorch model)")
    elif args.fixture:
        report = verify.compare_with_fixture(
            args.fixture,
            teacher_forcing=args.teacher_forcing,
            winograd=not args.direct,
            float64=args.float64,
            dialect=args.dialect,
        )
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


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx.exporter import export_onnx

    _check_output(args, args.cfg, args.weights)
    net = _load(args, args.cfg, args.weights)
    names = None
    if args.names:
        from pathlib import Path

        names = [line.strip() for line in Path(args.names).read_text().splitlines() if line.strip()]
    info = export_onnx(
        net,
        args.output,
        opset=args.opset,
        batch=args.batch,
        fp16=args.fp16,
        outputs=args.outputs,
        all_outputs=args.all_outputs,
        names=names,
        fuse_bn=args.fuse_bn,
        bug_compatible=args.bug_compatible,
        thresh=args.thresh,
        nms=args.nms,
        max_detections=args.max_detections,
    )
    shown = ", ".join(info.outputs[:6]) + (" ..." if len(info.outputs) > 6 else "")
    _info(args, f"wrote {args.output} ({info.bytes:,} bytes, opset {info.opset}, outputs {shown})")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .api import default_model
    from .detect.run import detect

    paths = list(args.paths)
    cfg = weights = None
    if len(paths) >= 2 and paths[0].endswith(".cfg"):
        cfg, weights, paths = paths[0], paths[1], paths[2:]
    if args.sample:
        paths.append(str(default_model().cfg.parent / "dog.jpg"))
    if not paths:
        raise DarkweightsError("detect: name at least one image (or --sample for the bundled dog.jpg)")
    out = Path(args.output) if args.output else None
    if out is not None and len(paths) > 1 and not out.is_dir():
        raise DarkweightsError(f"-o {out}: with several images, -o must be an existing directory")
    if out is not None:
        from .atomic import check_output

        for image in paths:
            target = out / (Path(image).stem + ".png") if out.is_dir() else out
            check_output(target, force=args.force, inputs=[cfg, weights, *paths])
    results = detect(
        paths,
        cfg,
        weights,
        names=args.names,
        dialect=args.dialect,
        width=args.width,
        height=args.height,
        thresh=args.thresh,
        nms_thresh=args.nms,
        letterbox=True if args.letterbox else None,
    )
    if out is not None:
        from .detect.draw import draw_detections

        for image, records in results.items():
            target = out / (Path(image).stem + ".png") if out.is_dir() else out
            draw_detections(image, records, target)
            _info(args, f"wrote {target}")
    if args.json:
        public = {
            img: [{k: r[k] for k in ("class", "class_id", "prob", "x", "y", "w", "h")} for r in recs]
            for img, recs in results.items()
        }
        print(json.dumps(public[paths[0]] if len(paths) == 1 else public, indent=1))
    else:
        for img, recs in results.items():
            print(f"{img}: {len(recs)} detections")
            for r in recs:
                print(
                    f"  {r['class']:<14} {r['prob'] * 100:5.1f}%  x {r['x']:7.1f}  y {r['y']:7.1f}  "
                    f"w {r['w']:7.1f}  h {r['h']:7.1f}"
                )
    return 0


# -- diff / plot / report -------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    from .compare import diff_report, open_weights
    from .progress import bar

    sides = [
        open_weights(path, args.cfg, dialect=args.dialect, width=args.width, height=args.height)
        for path in (args.a, args.b)
    ]
    table = diff_report(*sides, order=args.sort, progress=bar)
    print(table.to_json() if args.json else table.to_text())
    return 0 if table.data["identical"] else 1


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot

    _check_output(args, args.cfg, args.weights)
    n = plot(_load(args, args.cfg, args.weights), args.output, dpi=args.dpi)
    _info(args, f"wrote {args.output} ({n:,} bytes)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report_html import write_report

    _check_output(args, args.cfg, args.weights)
    n = write_report(_load(args, args.cfg, args.weights), args.output, plots=not args.no_plots)
    _info(args, f"wrote {args.output} ({n:,} bytes)")
    return 0


# -- entry point ----------------------------------------------------------------------------


def _formatter(width: int) -> type:
    """argparse's formatter with the terminal width asked once, not at every ``add_argument`` (which builds a
    formatter each time: measurable in ``darkweights --help``)."""

    class Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str, **kwargs: Any) -> None:
            super().__init__(prog, width=width, **kwargs)

    return Formatter


class _Unbuilt:
    """Stands for the parser of a subcommand that is not running: its options are left out, since
    argparse builds a help formatter for every option and that adds up in ``darkweights --help``."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_defaults(self, **kwargs: Any) -> None:
        self.parser.set_defaults(**kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) the top level and that one subcommand's options."""
    import shutil

    from . import __version__

    # as argparse computes it: $COLUMNS or the terminal, less 2
    formatter = _formatter(shutil.get_terminal_size().columns - 2)
    parser = argparse.ArgumentParser(
        prog="darkweights",
        description="Read, write, convert and verify Darknet .cfg/.weights models exactly as Darknet does.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"darkweights {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=formatter),
    )
    built: list[argparse.ArgumentParser] = []

    def add(name: str, **kwargs: Any) -> Any:
        p = sub.add_parser(name, **kwargs)
        if only is not None and name != only:
            return _Unbuilt(p)
        built.append(p)
        return p

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dialect",
            default="auto",
            choices=DIALECT_CHOICES,
            help="which Darknet fork's rules apply (default: auto, told from the files)",
        )
        p.add_argument("--width", type=int, help="override [net] width")
        p.add_argument("--height", type=int, help="override [net] height")

    p = add("inspect", help="Darknet's layer table: shapes, BFLOPs, parameters, byte offsets")
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument(
        "--stats",
        action="store_true",
        help="min/max/mean/std, NaN/Inf counts and dead (all-zero) filters of every array",
    )
    common(p)
    p.set_defaults(func=cmd_inspect)

    p = add("models", help="list the models usable by name (bundled cfgs, Yolo-Fastest 1.1 with weights)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_models)

    def writes(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--force", action="store_true", help="replace the output if it exists")

    p = add("extract", help="weights -> .npz or .safetensors")
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", help=WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, help="OUT.npz or OUT.safetensors")
    p.add_argument("--layers", help="only these layers, e.g. 0,5-7")
    p.add_argument(
        "--cutoff", type=int, help="read only layers 0..N-1, like darknet's `partial` (then pack -> .conv.N)"
    )
    common(p)
    writes(p)
    p.set_defaults(func=cmd_extract)

    p = add("pack", help=".npz/.safetensors/.pt state_dict/.onnx -> weights (cfg optional when embedded)")
    p.add_argument("cfg", help="the cfg, or the array file when it carries its cfg")
    p.add_argument("arrays", nargs="?", help="the .npz, .safetensors or .pt file (when the first argument is the cfg)")
    p.add_argument("-o", "--output", required=True, help="OUT.weights")
    p.add_argument("--header", help="major,minor,revision[,seen] (default: the source file's)")
    p.add_argument(
        "--dialect",
        choices=DIALECT_CHOICES,
        help="the fork's rules (default: the one the array file records, else auto)",
    )
    p.add_argument(
        "--allow-fused",
        action="store_true",
        help="MODEL.onnx exported with --fuse-bn: write the folded weights with an identity BN",
    )
    writes(p)
    p.set_defaults(func=cmd_pack)

    p = add("export", help="cfg + weights -> ONNX model (extra [onnx])")
    p.add_argument("cfg")
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, help="OUT.onnx")
    p.add_argument("--opset", type=int, help="ONNX opset, 13 to 23 (default 20)")
    p.add_argument("--batch", default="1", help="batch size, or 'dynamic' (default: 1)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and activations (input/outputs float32)")
    p.add_argument(
        "--outputs",
        choices=("raw", "decoded", "nms"),
        default="raw",
        help="raw head outputs (Darknet's layout), decoded boxes + scores, or NMS in the graph",
    )
    p.add_argument("--all-outputs", action="store_true", help="every layer's output as layer_<i> (raw)")
    p.add_argument("--names", help="class names file, stored in the model's metadata")
    p.add_argument("--fuse-bn", action="store_true", help="fold batch-norm like darknet detector test")
    p.add_argument("--bug-compatible", action="store_true", help="reproduce Darknet CPU bugs instead of refusing")
    p.add_argument("--thresh", type=float, help="decoded/nms: score threshold (default 0.25)")
    p.add_argument("--nms", type=float, help="nms: IoU threshold (default 0.45)")
    p.add_argument("--max-detections", type=int, help="nms: per class (default: every candidate)")
    common(p)
    writes(p)
    p.set_defaults(func=cmd_export)

    p = add("init", help="write a valid weights file of random values for a cfg")
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("-o", "--output", required=True, help="OUT.weights")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0); the same seed, the same file")
    common(p)
    writes(p)
    p.set_defaults(func=cmd_init)

    p = add("verify", help="compare our forward pass with Darknet's fixture or OpenCV, layer by layer")
    p.add_argument("cfg", nargs="?", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("--fixture", help="a fixture directory (model.cfg, model.weights, input.npy, outputs.npz)")
    p.add_argument("--against", choices=("opencv",), help="cross-check with OpenCV's Darknet importer")
    p.add_argument("--teacher-forcing", action="store_true", help="feed each layer the reference inputs")
    p.add_argument(
        "--bn-eps",
        choices=("darknet", "opencv"),
        default="darknet",
        help="with --against opencv: OpenCV's BN eps 1e-6 (trained weights); default Darknet's 1e-5",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="compute every convolution directly (default: Winograd F(2,3) for wide 3x3 stride-1 ones)",
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="with --fixture: our model in float64 (what is left is Darknet's own float32 rounding)",
    )
    p.add_argument(
        "--onnx",
        metavar="MODEL",
        help="check an ONNX export in onnxruntime (against --fixture DIR or our model of CFG WEIGHTS)",
    )
    p.add_argument(
        "--ort-level",
        choices=("disable", "basic", "extended", "all"),
        default="extended",
        help="with --onnx: onnxruntime graph optimisation (default: extended)",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    common(p)
    p.set_defaults(func=cmd_verify)

    p = add("detect", help="run a detector on images (default: the bundled Yolo-Fastest 1.1)")
    p.add_argument(
        "paths",
        nargs="*",
        metavar="[CFG WEIGHTS] IMAGE",
        help="images, optionally after a cfg and its weights (default model: Yolo-Fastest 1.1)",
    )
    p.add_argument("--sample", action="store_true", help="also run on the bundled sample photo (dog.jpg)")
    p.add_argument("--names", help="class names file (default: coco.names with the bundled model)")
    p.add_argument("-o", "--output", help="OUT.png with the boxes drawn (one image), or a directory")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument(
        "--thresh",
        type=float,
        default=None,
        help="class probability threshold (default: that of the dialect's `detector test`: 0.25, "
        "0.5 with --dialect pjreddie)",
    )
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold, 0 for none (default: 0.45)")
    p.add_argument(
        "--letterbox",
        action="store_true",
        help="force letterbox resizing (--dialect pjreddie always letterboxes, as its detector test)",
    )
    common(p)
    writes(p)
    p.set_defaults(func=cmd_detect)

    p = add("diff", help="per-layer change between two weights of one cfg (exit 0 same, 1 different)")
    p.add_argument("a", metavar="A", help="A.weights, or an .npz/.safetensors export (carries its cfg)")
    p.add_argument("b", metavar="B")
    p.add_argument("--cfg", help="the cfg of both (needed for .weights files)")
    p.add_argument(
        "--sort",
        choices=("layer", "change"),
        default="layer",
        help="row order: layer order (default) or largest relative change first",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    common(p)
    p.set_defaults(func=cmd_diff)

    p = add("plot", help="PNG of per-layer weight distributions and the first conv's filters")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("-o", "--output", required=True, help="OUT.png")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNG (default: 100)")
    common(p)
    writes(p)
    p.set_defaults(func=cmd_plot)

    p = add("report", help="one self-contained HTML page: layers, graph, statistics, plots")
    p.add_argument("cfg")
    p.add_argument("weights", nargs="?")
    p.add_argument("-o", "--output", required=True, help="OUT.html")
    p.add_argument("--no-plots", action="store_true", help="leave the plots out (no matplotlib needed)")
    common(p)
    writes(p)
    p.set_defaults(func=cmd_report)

    for p in built:  # every subcommand, the same way
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or `wrote ...` lines")
    for p in built:  # --debug also after the command; SUPPRESS keeps one given before it
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command. Exit status: 0 success, 1 a verification failed, 2 a user error (one line on
    stderr), 130/143 interrupted, 141 the reader of our output went away (``| head``)."""
    import os

    from .atomic import Terminated

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")  # top-level options take no values
    args = build_parser(only=command).parse_args(argv)
    debug = bool(args.debug or os.environ.get("DARKWEIGHTS_DEBUG"))
    warnings.showwarning = _show_warning
    if getattr(args, "quiet", False):
        from .progress import set_quiet

        set_quiet()
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
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, DarkweightsError):
            _error(str(exc))
        elif isinstance(exc, ImportError):
            missing = getattr(exc, "name", None) or str(exc)
            extra = EXTRAS.get(str(missing).split(".")[0])
            _error(
                f"this command needs an optional dependency ({missing}); "
                + (
                    f"install `darkweights[{extra}]`"
                    if extra
                    else "install `darkweights[torch]` (and `[verify]` for "
                    "OpenCV, `[detect]` for images, `[plot]` for plots, `[onnx]` for ONNX)"
                )
            )
        elif isinstance(exc, OSError):
            where = f"{exc.filename}: " if exc.filename else ""
            _error(f"{where}{exc.strerror or exc}")
        elif isinstance(exc, MemoryError):
            _error("out of memory (does the cfg ask for absurdly large layers?)")
        else:
            _error(
                f"internal error {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''} "
                "(a bug in darkweights: please report it with the output of --debug)"
            )
            return EXIT_INTERNAL
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
