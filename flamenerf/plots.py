# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training curves from `EXP/metrics.jsonl`: `python -m flamenerf.plots EXP [--out PNG]`.

Two panels against the training step: PSNR (train; validation whole image, face and outside
the face) and the losses (total and each term logged, log scale), drawn by
`flamenerf.evaluation.figures.plot_training_curves`; the default output is `EXP/curves.png`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flamenerf import errors
from flamenerf.evaluation import figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.plots",
        description="Plot an experiment's training curves (PSNR and losses vs step) from "
        "EXP/metrics.jsonl.",
    )
    parser.add_argument("base_folder", metavar="EXP", help="the experiment folder")
    parser.add_argument(
        "--out", default=None, metavar="PNG", help="output image (default: EXP/curves.png)"
    )
    args = parser.parse_args(argv)
    folder = Path(args.base_folder)
    out = Path(args.out) if args.out else folder / "curves.png"
    try:
        written = figures.plot_training_curves(folder / "metrics.jsonl", out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    print(written)
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
