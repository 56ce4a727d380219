# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training curves: `python -m flamenerf.plots --base_folder EXP [EXP ...] [--out PNG]`.

Two panels against the training step: PSNR (train; validation whole image, face and outside
the face) and the losses (total and each term logged, log scale), drawn by
`flamenerf.evaluation.figures.plot_training_curves` from `EXP/metrics.jsonl`; the default
output is `EXP/curves.png`. EXP and PNG may be URLs (gs://...; `flamenerf.io.paths`).
"""

from __future__ import annotations

import argparse
import sys

from flamenerf import cli_args, errors, help_format
from flamenerf.evaluation import figures
from flamenerf.io import paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.plots",
        formatter_class=help_format.HelpFormatter,
        description="Plot experiments' training curves (PSNR and losses vs step) from "
        "EXP/metrics.jsonl into EXP/curves.png.",
    )
    cli_args.add_base_folder(parser, many=True)
    parser.add_argument(
        "--out",
        default=None,
        metavar="PNG",
        help="output image, with one experiment only (default: EXP/curves.png)",
    )
    args = parser.parse_args(argv)
    if args.out and len(args.base_folder) > 1:
        print(
            f"error: --out {args.out}: goes with one --base_folder, got "
            f"{len(args.base_folder)} (each experiment's curves go to EXP/curves.png)",
            file=sys.stderr,
        )
        return errors.EXIT_USER_ERROR
    failed = 0
    for name in args.base_folder:
        try:
            folder = paths.as_path(name)
            out = paths.as_path(args.out) if args.out else folder / "curves.png"
            written = figures.plot_training_curves(folder / "metrics.jsonl", out)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        print(written)
    return errors.EXIT_USER_ERROR if failed else errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
