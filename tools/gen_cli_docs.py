"""Write docs/cli.md, the command-line reference, from the argparse parser itself.

    PYTHONPATH=src python tools/gen_cli_docs.py          # rewrite docs/cli.md
    PYTHONPATH=src python tools/gen_cli_docs.py --check  # exit 1 if docs/cli.md is stale

tests/test_docs.py checks that the file is what this script generates.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = "100"  # argparse wraps help to $COLUMNS


def render() -> str:
    from darkweights import cli

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        out = [
            "# Command-line reference",
            "",
            "Generated from the parser by `tools/gen_cli_docs.py` (a test checks it is current). Every command",
            "prints one line and exits 2 on bad input; `--json` prints one JSON object; a model name",
            "(`darkweights models`) may stand for a cfg file.",
            f"(Python {sys.version_info[0]}.{sys.version_info[1]} argparse layout.)",
            "",
            "```text",
            "$ darkweights --help",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for name, p in sub.choices.items():
            out += [
                f"## darkweights {name}",
                "",
                "```text",
                f"$ darkweights {name} --help",
                p.format_help().rstrip(),
                "```",
                "",
            ]
            printout = getattr(cli.command(name), "PRINTOUT", None)
            if printout:
                out += ["Example (a real run):", "", "```text", printout.rstrip("\n"), "```", ""]
        return "\n".join(out)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        return 0 if OUT.exists() and OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
