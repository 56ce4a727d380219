# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training curves from `EXP/metrics.jsonl`: `python -m flamenerf.plots EXP [--out PNG]`.

Two panels against the training step: PSNR (train; validation whole image, face and outside
the face) and the losses (total and each term logged, log scale). Drawn on a bare matplotlib
Figure (Agg, no pyplot and no display needed); the default output is `EXP/curves.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

# Train records' loss terms plotted on the loss panel, when present.
LOSS_KEYS = ("loss", "mse_coarse", "mse_fine", "flame_warp", "elastic", "triplane_tv")
PSNR_SERIES = (
    ("train", "psnr", "train"),
    ("val", "psnr", "val (whole)"),
    ("val", "psnr_face", "val (face)"),
    ("val", "psnr_outside", "val (outside)"),
)


def read_metrics(path: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """metrics.jsonl -> {split: {key: [(step, value), ...]}} (sorted by step, finite only).

    Records are `{"step", "split", ...}` (DESIGN.md 2.4); a resumed run's repeated step keeps
    its last value.

    Raises:
      FileNotFoundError: no such file. ValueError: a line that is not a JSON object with an
        integer "step" (naming the file and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file not found")
    series: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number}: not JSON ({error})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f'{path}: line {number}: expected an object with an integer "step"')
        split = str(record.get("split", "train"))
        for key, value in record.items():
            if key in ("step", "split", "wall_s") or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                series[split][key][record["step"]] = float(value)
    return {
        split: {key: sorted(points.items()) for key, points in keys.items()}
        for split, keys in series.items()
    }


def plot_training_curves(metrics_jsonl: str | Path, out_png: str | Path) -> Path:
    """Plots PSNR (train, val whole/face/outside) and losses against the step into a PNG.

    Args:
      metrics_jsonl: an experiment's metrics.jsonl.
      out_png: the image to write (its folder is created).

    Returns:
      The path written.

    Raises:
      FileNotFoundError, ValueError: see `read_metrics`; ValueError also when the file holds
        no plottable record.
    """
    from matplotlib.figure import Figure  # not pyplot: no backend or display involved

    series = read_metrics(metrics_jsonl)
    if not any(series.values()):
        raise ValueError(f"{metrics_jsonl}: no metrics records to plot")
    figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    psnr_axis, loss_axis = figure.subplots(1, 2)
    for split, key, label in PSNR_SERIES:
        points = series.get(split, {}).get(key)
        if points:
            steps, values = zip(*points, strict=True)
            marker = "o" if split == "val" else None
            psnr_axis.plot(steps, values, label=label, marker=marker, markersize=3)
    psnr_axis.set(xlabel="step", ylabel="PSNR (dB)", title="PSNR")
    plotted_loss = False
    for key in LOSS_KEYS:
        points = [(s, v) for s, v in series.get("train", {}).get(key, []) if v > 0]
        if points:
            steps, values = zip(*points, strict=True)
            loss_axis.plot(steps, values, label=key)
            plotted_loss = True
    loss_axis.set(xlabel="step", title="training losses")
    if plotted_loss:
        loss_axis.set_yscale("log")
    for axis in (psnr_axis, loss_axis):
        axis.grid(True, alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    return out_png


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
        written = plot_training_curves(folder / "metrics.jsonl", out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
