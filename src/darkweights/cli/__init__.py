"""The ``darkweights`` command: a thin shell over the library, one module per subcommand.

:data:`COMMANDS` is the table of subcommands, in the order ``--help`` lists them. Each has a module
``darkweights.cli.<name>`` with ``add_arguments(parser)`` and ``run(args) -> exit code``; only the
running subcommand's module is imported and its options built, so ``darkweights --help`` stays fast.
Adding a subcommand: write its module (with an ``EXAMPLE`` command line, the last line of its ``--help``), add
its line here.

User errors (bad cfg, mismatched weights, bad arrays) print one line on stderr and exit 2;
``verify`` exits 1 when outputs differ beyond tolerance. Warnings print as ``warning: ...``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ..errors import DarkweightsError, DarkweightsWarning

EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in darkweights, not in the user's files

# subcommand -> its one-line help (the module darkweights.cli.<name> holds the rest)
COMMANDS: dict[str, str] = {
    "inspect": "Darknet's layer table: shapes, BFLOPs, parameters, byte offsets",
    "models": "list the models usable by name (bundled cfgs, Yolo-Fastest 1.1 with weights)",
    "extract": "weights -> .npz or .safetensors",
    "pack": ".npz/.safetensors/.pt state_dict/.onnx -> weights (cfg optional when embedded)",
    "export": "cfg + weights -> ONNX model (extra [onnx])",
    "init": "write a valid weights file of random values for a cfg",
    "verify": "compare our forward pass with Darknet's fixture or OpenCV, layer by layer",
    "detect": "run a detector on images (default: the bundled Yolo-Fastest 1.1)",
    "val": "mAP on a labelled set exactly as Darknet's `detector map` (torch, onnxruntime, openvino)",
    "diff": "per-layer change between two weights of one cfg (exit 0 same, 1 different)",
    "plot": "PNG of per-layer weight distributions and the first conv's filters",
    "report": "one self-contained HTML page: layers, graph, statistics, plots",
}

# optional module -> the extra that installs it
EXTRAS = {
    "torch": "torch",
    "cv2": "verify",
    "PIL": "detect",
    "matplotlib": "plot",
    "tqdm": "progress",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "pycocotools": "coco",
}


def command(name: str) -> ModuleType:
    """The module of subcommand ``name``."""
    return importlib.import_module(f"{__name__}.{name}")


def _formatter(width: int) -> Any:
    """argparse's formatter with the terminal width asked once, not at every ``add_argument`` (which builds a
    formatter each time: measurable in ``darkweights --help``)."""

    class Formatter(argparse.RawDescriptionHelpFormatter):  # the example epilog is shown as written
        def __init__(self, prog: str, **kwargs: Any) -> None:
            super().__init__(prog, width=width, **kwargs)

    return Formatter


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) the top level and that one subcommand's options: argparse
    builds a help formatter for every option, and that adds up in ``darkweights --help``."""
    import shutil

    from .. import __version__

    # as argparse computes it: $COLUMNS or the terminal, less 2
    formatter = _formatter(shutil.get_terminal_size().columns - 2)
    parser = argparse.ArgumentParser(
        prog="darkweights",
        description="Read, write, convert and verify Darknet .cfg/.weights models exactly as Darknet does.",
        formatter_class=formatter,
        epilog="example: darkweights detect --sample -o dog.png",
    )
    parser.add_argument("--version", action="version", version=f"darkweights {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, formatter_class=formatter)
        if only is not None and name != only:
            continue
        module = command(name)
        module.add_arguments(p)
        p.epilog = f"example: {module.EXAMPLE}"  # every subcommand's help ends with one
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or `wrote ...` lines")
        # --debug also after the command; SUPPRESS keeps one given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    prefix = "warning" if issubclass(category, DarkweightsWarning) else category.__name__
    print(f"{prefix}: {message}", file=sys.stderr)


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


def _missing_dependency(exc: ImportError) -> str:
    missing = getattr(exc, "name", None) or str(exc)
    extra = EXTRAS.get(str(missing).split(".")[0])
    if extra:
        return f"this command needs an optional dependency ({missing}); install `darkweights[{extra}]`"
    return (
        f"this command needs an optional dependency ({missing}); install `darkweights[torch]` (and `[verify]` for "
        "OpenCV, `[detect]` for images, `[plot]` for plots, `[onnx]` for ONNX)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command. Exit status: 0 success, 1 a verification failed, 2 a user error (one line on
    stderr), 130/143 interrupted, 141 the reader of our output went away (``| head``)."""
    from ..atomic import signals_as_exceptions

    with signals_as_exceptions():  # first: a SIGINT from now on stops the command (see _run)
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    import os

    from ..atomic import Terminated, interrupted, overwriting

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("DARKWEIGHTS_DEBUG"))
    try:
        name = next((a for a in argv if not a.startswith("-")), "")  # top-level options take no values
        args = build_parser(only=name).parse_args(argv)
        debug = debug or bool(args.debug)
        warnings.showwarning = _show_warning
        if getattr(args, "quiet", False):
            from ..progress import set_quiet

            set_quiet()
        # SIGINT/SIGTERM stop every stage of every command (also torch's, which may swallow the exception: an
        # output is never named after one) and no output replaces an existing file unless --force
        with overwriting(getattr(args, "force", False)):
            code = int(command(args.command).run(args) or 0)
            sys.stdout.flush()  # a broken pipe surfaces here, inside the handlers
        signum = interrupted()
        if signum is not None:  # the exception it raised was swallowed on the way: the exit status still tells
            import signal

            raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
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
            _error(_missing_dependency(exc))
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
