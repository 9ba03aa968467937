"""What the subcommands share: the options every model-reading command takes, loading, output checks."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..dialects import AUTO, DIALECTS
from ..errors import DarkweightsError

CFG_HELP = "the .cfg, or a bundled model's name (see `models`)"
WEIGHTS_HELP = "the .weights (yolo-fastest-1.1 brings its own)"
JSON_HELP = "print one JSON object instead of text"
DIALECT_CHOICES = (AUTO, *DIALECTS)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """``--dialect``, ``--width``, ``--height``: how the cfg is read."""
    p.add_argument(
        "--dialect",
        default="auto",
        choices=DIALECT_CHOICES,
        metavar="FORK",
        help="the fork's rules: auto (default: told from the files), " + ", ".join(DIALECTS),
    )
    p.add_argument("--width", type=int, metavar="W", help="override [net] width")
    p.add_argument("--height", type=int, metavar="H", help="override [net] height")


def add_force(p: argparse.ArgumentParser) -> None:
    """``-f/--force`` for a command that writes ``-o``."""
    p.add_argument("-f", "--force", action="store_true", help="replace the output if it exists")


def add_usable_options(p: argparse.ArgumentParser) -> None:
    """``--allow-partial``, ``--allow-nonfinite``: run weights that :mod:`darkweights.policy` refuses."""
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="run a partial weights file (.conv.N) anyway",
    )
    p.add_argument("--allow-nonfinite", action="store_true", help="run weights holding NaN/Inf values anyway")


def check_usable(args: argparse.Namespace, net: Any, purpose: str) -> None:
    """The policy of :meth:`darkweights.network.Network.check_usable` with the command's flags."""
    net.check_usable(purpose, allow_partial=args.allow_partial, allow_nonfinite=args.allow_nonfinite)


def count(value: str) -> int:
    """An argparse type: an integer >= 0 (``--cutoff``)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, not {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, not {n} (a layer count, not a Python slice)")
    return n


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)


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


def info(args: argparse.Namespace, message: str) -> None:
    """A ``wrote ...`` line on stderr, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def check_output(args: argparse.Namespace, *inputs: str | None) -> None:
    """Refuse ``-o`` when it names an input, or an existing file without ``--force``, before any work."""
    from ..atomic import check_output as check

    check(args.output, force=args.force, inputs=inputs)


def load(args: argparse.Namespace, cfg: Any, weights: Any = None) -> Any:
    """The network of ``cfg`` (+ ``weights``) read with the command's ``--dialect``/``--width``/``--height``."""
    from ..network import load as load_network

    return load_network(
        cfg,
        weights,
        dialect=args.dialect,
        width=args.width,
        height=args.height,
        channels=getattr(args, "channels", None),
        cutoff=getattr(args, "cutoff", None),
    )


def terminal_width() -> int | None:
    """The terminal's width when stdout is one (tables fit it), else ``None``."""
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns
