"""``darkweights report``: one self-contained HTML page (layers, graph, statistics, plots)."""

from __future__ import annotations

import argparse

from .common import CFG_HELP, WEIGHTS_HELP, add_force, add_model_options, check_output, info, load

EXAMPLE = "darkweights report yolov4.cfg yolov4.weights -o report.html"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP + "; without it: the cfg alone")
    p.add_argument("-o", "--output", required=True, help="OUT.html")
    p.add_argument("--no-plots", action="store_true", help="leave the plots out (no matplotlib needed)")
    add_model_options(p)
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from ..report_html import write_report

    check_output(args, args.cfg, args.weights)
    n = write_report(load(args, args.cfg, args.weights), args.output, plots=not args.no_plots)
    info(args, f"wrote {args.output} ({n:,} bytes)")
    return 0
