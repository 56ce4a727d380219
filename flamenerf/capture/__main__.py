# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.capture {all,frames,cameras,import-flame,fit,check} ...` (the package)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flamenerf import errors, help_format
from flamenerf.errors import UserError

# Subcommand -> module; each module has `add_arguments(parser)`, `run(args) -> int` and a
# docstring whose first line is the subcommand's help. `all` runs the others (`pipeline`).
STEPS = {
    "all": "flamenerf.capture.pipeline",
    "frames": "flamenerf.capture.frames",
    "cameras": "flamenerf.capture.cameras",
    "import-flame": "flamenerf.capture.trackers.command",
    "fit": "flamenerf.capture.fit",
    "check": "flamenerf.capture.check",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.capture",
        formatter_class=help_format.HelpFormatter,
        description="Turn a phone video, or a face tracker's output, into a checked capture.",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, module_name in STEPS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        sub = steps.add_parser(
            name,
            help=doc.split("\n")[0],
            description=doc,
            formatter_class=help_format.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as error:  # StepError and the readers' errors
        print(f"error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
