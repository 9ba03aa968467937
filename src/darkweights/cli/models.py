"""``darkweights models``: the models usable by name."""

from __future__ import annotations

import argparse

from .common import add_json, terminal_width

EXAMPLE = "darkweights models --json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from ..models import table

    report = table()
    print(report.to_json() if args.json else report.to_text(width=terminal_width()))
    return 0
