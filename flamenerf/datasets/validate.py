# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.datasets.validate CAPTURE [--scale S] [--flame_model PATH]`.

Loads the capture exactly as training does, every check included: strictly typed JSON, ids
that are plain file names, every image and mask training reads decoded in full (8-bit PNG of
the camera's size), no capture file resolving outside the capture folder. Exits 0 with a
one-line summary, 1 with one line per problem found (each naming the file, the field or frame
id, what was found and what was expected), or 2 for bad arguments. Nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from flamenerf import errors, help_format
from flamenerf.datasets.capture import IMAGE_SCALES, CaptureError, load_capture


def summary(capture) -> str:
    """One line describing a loaded capture."""
    width, height = capture.image_size(capture.train_ids[0])
    model = capture.flame_model
    masks = "mask/" if capture.has_masks() else "rasterised masks"
    paths = capture.camera_path_names()
    return (
        f"{capture.root}: OK, {len(capture.train_ids)} train + {len(capture.val_ids)} val frames, "
        f"{width}x{height} at {capture.scale}x, FLAME {capture.scene.flame_model.name} "
        f"({model.num_vertices} vertices, {capture.scene.num_expression} expressions used), "
        f"{masks}, camera paths: {', '.join(paths) if paths else 'none'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.datasets.validate",
        formatter_class=help_format.HelpFormatter,
        description="Check a capture folder against the capture format, as training loads it.",
    )
    parser.add_argument("capture", help="the capture folder")
    parser.add_argument(
        "--scale", type=int, default=1, choices=IMAGE_SCALES, help="image scale to check"
    )
    parser.add_argument(
        "--flame_model", default=None, help="FLAME model file overriding scene.json flame.model"
    )
    args = parser.parse_args(argv)
    try:
        capture = load_capture(args.capture, args.scale, args.flame_model)
    except CaptureError as error:
        for line in error.problems:
            print(line, file=sys.stderr)
        return errors.EXIT_CHECK_FAILED
    except Exception as error:  # a reader bug: still one line, not a traceback
        print(f"{args.capture}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return errors.EXIT_CHECK_FAILED
    print(summary(capture))
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
