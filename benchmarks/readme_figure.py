# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The README's picture from an evaluated experiment: ground truth, prediction, error, depth.

    python benchmarks/readme_figure.py --base_folder EXP --out docs/results.png
        [--frames N | --ids ID ...] [--zoom 2] [--title TEXT]

Reads the latest `EXP/eval/step_*/` folder (`ID_target.png`, `ID_prediction.png`,
`ID_error.png`, `ID_depth.png` per validation frame, as `eval` writes them) and lays out N
frames (evenly spread over the evaluated frames, or the given ids) as columns, the four
images as rows, each scaled by `--zoom` (nearest neighbour), with row labels and a title
line. Nothing is rendered again: the picture shows exactly what `eval` scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from flamenerf import cli_args

ROWS = (("target", "ground truth"), ("prediction", "prediction"), ("error", "error"))
ROWS += (("depth", "depth"),)
LABEL_WIDTH = 90
TITLE_HEIGHT = 18


def latest_eval(base_folder: Path) -> Path:
    """EXP/eval/step_N with the largest N (exits with a message when there is none)."""
    steps = [p for p in (base_folder / "eval").glob("step_*") if p.name[5:].isdigit()]
    if not steps:
        sys.exit(f"{base_folder}: no eval/step_N folder (run `python -m flamenerf.eval` first)")
    return max(steps, key=lambda p: int(p.name[5:]))


def evaluated_ids(folder: Path) -> list[str]:
    """The frame ids with a prediction in an eval folder, sorted."""
    return sorted(p.name[: -len("_prediction.png")] for p in folder.glob("*_prediction.png"))


def spread(ids: list[str], count: int) -> list[str]:
    """`count` ids evenly spread over `ids` (all of them when there are fewer)."""
    if count >= len(ids):
        return list(ids)
    return [ids[i] for i in np.linspace(0, len(ids) - 1, count).round().astype(int)]


def compose(folder: Path, ids: list[str], zoom: int, title: str) -> Image.Image:
    """The picture: one column per id, one row per image kind, labels and title."""
    tiles = {}
    for frame_id in ids:
        for kind, _ in ROWS:
            path = folder / f"{frame_id}_{kind}.png"
            if not path.is_file():
                sys.exit(f"{path}: missing (was the folder written by `flamenerf.eval`?)")
            image = Image.open(path).convert("RGB")
            tiles[frame_id, kind] = image.resize(
                (image.width * zoom, image.height * zoom), Image.NEAREST
            )
    width = max(t.width for t in tiles.values())
    height = max(t.height for t in tiles.values())
    canvas = Image.new(
        "RGB", (LABEL_WIDTH + width * len(ids), TITLE_HEIGHT + height * len(ROWS)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 3), title, fill="black")
    for row, (kind, label) in enumerate(ROWS):
        top = TITLE_HEIGHT + row * height
        draw.text((4, top + height // 2 - 6), label, fill="black")
        for column, frame_id in enumerate(ids):
            canvas.paste(tiles[frame_id, kind], (LABEL_WIDTH + column * width, top))
    return canvas


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli_args.add_base_folder(parser, local=True)  # evaluated (python -m flamenerf.eval)
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--frames", type=int, default=6, help="columns (evenly spread)")
    parser.add_argument("--ids", nargs="+", help="these frame ids instead of --frames")
    parser.add_argument("--zoom", type=int, default=2, help="pixel zoom (nearest neighbour)")
    parser.add_argument("--title", default="", help="the line above the picture")
    args = parser.parse_args(argv)
    folder = latest_eval(args.base_folder)
    ids = args.ids or spread(evaluated_ids(folder), args.frames)
    compose(folder, ids, args.zoom, args.title).save(args.out)
    print(f"{args.out}: {len(ids)} frames of {folder} ({', '.join(ids)})")


if __name__ == "__main__":
    main()
