# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Command line: `python -m flamenerf.synthetic.head --out head.npz [--plot head.png]`."""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from flamenerf import errors, help_format
from flamenerf.synthetic.head.model_file import write_head
from flamenerf.synthetic.head.pictures import plot_head


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m flamenerf.synthetic.head --out head.npz [--plot head.png]`."""
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.synthetic.head",
        formatter_class=help_format.HelpFormatter,
        description="Writes the procedural FLAME-format head (the model flamenerf uses when no "
        "FLAME file is given) as a spec .npz, and optionally a picture of it.",
    )
    parser.add_argument(
        "--out", required=True, help="the .npz file to write (its folder must exist)"
    )
    parser.add_argument(
        "--plot",
        default=None,
        help="also draw the head with its semantic expressions, jaw opening and closed eyes "
        "(front and 3/4 views) to this image file, e.g. head.png",
    )
    parser.add_argument(
        "--size", type=int, default=300, help="pixels per panel side of --plot (default 300)"
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if not out.parent.is_dir():
        print(f"--out {out}: folder {out.parent} does not exist", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    if args.size < 32:
        print(f"--size: found {args.size}, expected at least 32 pixels", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    if args.plot is not None and not pathlib.Path(args.plot).parent.is_dir():
        print(f"--plot {args.plot}: folder does not exist", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    write_head(out)
    print(f"wrote {out}")
    if args.plot is not None:
        with np.load(out, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        plot_head(arrays, args.plot, args.size)
        print(f"wrote {args.plot}")
    return errors.EXIT_OK
