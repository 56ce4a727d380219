# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Regenerates the golden values in tests/golden/ (checked by tests/test_golden.py).

    python tests/golden/update.py [NAME ...] [--force]

NAME is one or more of (default: all):

    head               the procedural head (flamenerf.synthetic.head, VERSION)
    synthetic_capture  the synthetic captures' part digests and cache keys
                       (flamenerf.synthetic.generator, GENERATOR_VERSION and VRIG_VERSION;
                       also read by tests/synthetic/test_synthetic.py)
    guide              tiny FLAME-guide grids (flamenerf.training.experiment, GUIDE_VERSION)
    pack               a tiny pack (flamenerf.datasets.packing, PACK_VERSION)
    model_forward      rgb/depth/acc of four rays of the tiny model (tests/gin/tiny.gin)
    gin_differences    the fields where gin/demo.gin differs from flamenerf/configs.py

When an output changes on purpose: bump its version constant (the tests' failure message
names it and its file), run this script, and commit the constant and the JSON files together.
The versioned goldens are only rewritten when the version changed (or the file is new): if
the output changed under the same version, this script refuses, because caches keyed by that
version would go on handing out the old data; `--force` overrides (e.g. for a change that
leaves every cached file valid). A difference within the stored tolerance (float noise of
another machine) leaves the file as it is.

Everything runs on the CPU in a fresh, temporary FLAMENERF_CACHE, so nothing stale is read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS.parent)]  # golden_util and capture_util; this flamenerf
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import golden_util  # noqa: E402

# The captures whose part digests are recorded (tests/synthetic/test_synthetic.py generates TINY and
# MOTION8 with these arguments; tests/test_golden.py generates vrig8).
CAPTURES = {
    "tiny": {"size": 16, "frames": 6, "val": 2, "seed": 0},
    "motion8": {"size": 8, "frames": 3, "val": 1, "seed": 0, "head_motion": True},
    "vrig8": {"size": 8, "frames": 3, "val": 1, "seed": 0, "vrig": 2},
}
NAMES = (*golden_util.SPECS, golden_util.CAPTURE, golden_util.MODEL, golden_util.GIN_DIFFERENCES)


def _existing(name: str) -> dict | None:
    path = golden_util.golden_path(name)
    return golden_util.load(name) if path.is_file() else None


def _versioned(spec: golden_util.Spec, scratch: Path, force: bool) -> str:
    old, new = _existing(spec.name), golden_util.record(spec, scratch)
    if old is not None and old["versions"] == new["versions"]:
        problem = golden_util.output_problem(spec, old, new)
        if problem is None:
            return "unchanged"
        if not force:
            raise SystemExit(f"{spec.name}: not rewritten: {problem}\n(--force rewrites it anyway)")
    golden_util.save(spec.name, new)
    return "written"


def _capture(scratch: Path, force: bool) -> str:
    name = golden_util.CAPTURE
    old, new = _existing(name), golden_util.capture_record(scratch, CAPTURES)
    if old is not None and old["versions"] == new["versions"]:
        if old == new:
            return "unchanged"
        if not force:
            raise SystemExit(
                f"{name}: not rewritten: the captures changed but GENERATOR_VERSION and "
                f"VRIG_VERSION did not: bump one in flamenerf/synthetic/generator.py first "
                "(--force rewrites it anyway)"
            )
    golden_util.save(name, new)
    return "written"


def _unversioned(name: str, new: dict) -> str:
    old = _existing(name)
    golden_util.save(name, new)
    return "unchanged" if old == new else "written"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/golden/update.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of {', '.join(NAMES)}")
    parser.add_argument(
        "--force", action="store_true", help="rewrite even if a version did not change"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown golden {unknown}: expected some of {list(NAMES)}")
    cache = golden_util.fresh_cache()
    try:
        for name in args.names or NAMES:
            with golden_util.Scratch() as scratch:
                if name in golden_util.SPECS:
                    status = _versioned(golden_util.SPECS[name], scratch, args.force)
                elif name == golden_util.CAPTURE:
                    status = _capture(scratch, args.force)
                elif name == golden_util.MODEL:
                    status = _unversioned(name, golden_util.model_record())
                else:
                    status = _unversioned(name, golden_util.gin_record())
            print(f"{golden_util.golden_path(name).relative_to(TESTS.parent)}: {status}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
