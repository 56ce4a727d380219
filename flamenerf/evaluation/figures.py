# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Pictures: colormaps, error and depth maps, silhouette overlays, the disentanglement
figure, training curves.

The images are float (H, W, 3) arrays in [0, 1] (write them with
`flamenerf.io.media.write_png`); `plot_training_curves` draws `EXP/metrics.jsonl` into a PNG
on a bare matplotlib Figure (Agg, no pyplot and no display needed).
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.evaluation.metrics import disentanglement_region
from flamenerf.io import paths

ERROR_VMAX = 0.25  # mean absolute colour error mapped to the top of the error colormap


def colormap(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """(H, W) values in [0, 1] (clipped; NaN -> 0) -> (H, W, 3) float RGB of a matplotlib map."""
    import matplotlib

    values = np.nan_to_num(np.clip(np.asarray(values, np.float64), 0.0, 1.0))
    return matplotlib.colormaps[name](values)[..., :3].astype(np.float32)


def error_map(pred: np.ndarray, target: np.ndarray, vmax: float = ERROR_VMAX) -> np.ndarray:
    """Heat-map of the per-pixel mean absolute error: pred, target (H, W, 3) -> (H, W, 3).

    The scale is fixed (0 -> black, `vmax` and above -> white-yellow), so maps of different
    frames and experiments compare directly.
    """
    error = np.abs(np.asarray(pred, np.float32) - np.asarray(target, np.float32)).mean(axis=-1)
    return colormap(error / vmax, "inferno")


def depth_bounds(
    depths: list[np.ndarray], accs: list[np.ndarray] | None = None
) -> tuple[float, float]:
    """The depth range of images: the 1st and 99th percentiles of their depths (H, W) over
    the pixels with acc > 0.5 (every pixel when there are none or `accs` is None)."""
    depth = np.concatenate([np.ravel(d) for d in depths]).astype(np.float64)
    if accs is not None:
        opaque = np.concatenate([np.ravel(a) for a in accs]) > 0.5
        if opaque.any():
            depth = depth[opaque]
    low, high = np.percentile(depth, [1, 99])
    return float(low), float(high)


def depth_map(
    depth: np.ndarray, acc: np.ndarray | None = None, bounds: tuple[float, float] | None = None
) -> np.ndarray:
    """Colormapped (turbo) depth (H, W) -> (H, W, 3); near is blue, far is red.

    The range is `bounds` (near, far) when given (e.g. `depth_bounds` of a whole video, so
    its frames share one scale), else the image's own `depth_bounds`.
    """
    depth = np.asarray(depth, np.float64)
    low, high = (
        bounds if bounds is not None else depth_bounds([depth], None if acc is None else [acc])
    )
    return colormap((depth - low) / max(high - low, 1e-9), "turbo")


SILHOUETTE_COLOR = (0.0, 1.0, 1.0)  # cyan, as the region's edge in `disentanglement_figure`


def silhouette_overlay(
    rgb: np.ndarray, mask: np.ndarray, opacity: float = 0.35, color=SILHOUETTE_COLOR
) -> np.ndarray:
    """The FLAME silhouette over a render: rgb (H, W, 3), mask bool (H, W) -> (H, W, 3).

    Pixels inside the mask are blended with `color` (`opacity`), its edge pixels (inside,
    next to outside, 4-neighbours) are `color`; pixels outside are unchanged.
    """
    import scipy.ndimage

    out = np.clip(np.asarray(rgb, np.float32), 0.0, 1.0).copy()
    mask = np.asarray(mask, bool)
    tint = np.asarray(color, np.float32)
    out[mask] = (1.0 - opacity) * out[mask] + opacity * tint
    edge = mask & ~scipy.ndimage.binary_erosion(mask, border_value=1)
    out[edge] = tint
    return out


def disentanglement_figure(
    rgb_a: np.ndarray, rgb_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray
) -> np.ndarray:
    """(H, 3W, 3) image: render A | render B | their change (error_map) with the region's edge.

    Args:
      rgb_a, rgb_b: (H, W, 3) renders; mask_a, mask_b: bool (H, W) their silhouettes.

    The edge of the dilated silhouette union (the boundary of the "inside" region of
    `metrics.disentanglement`) is drawn in cyan on the change map.
    """
    import scipy.ndimage

    region = disentanglement_region(mask_a, mask_b)
    change = error_map(rgb_a, rgb_b)
    edge = region & ~scipy.ndimage.binary_erosion(region, np.ones((3, 3), bool))
    change[edge] = (0.0, 1.0, 1.0)
    return np.concatenate([np.clip(rgb_a, 0, 1), np.clip(rgb_b, 0, 1), change], axis=1)


# ------------------------------------------------------------------------------------------
# Training curves.

# Train records' loss terms plotted on the loss panel, when present.
# The total and every registered loss term's logged name (training/losses.py, LOSS_TERMS;
# a test keeps the two in step: evaluation does not import training).
LOSS_KEYS = (
    "loss",
    "mse_coarse",
    "mse_fine",
    "flame_warp",
    "elastic",
    "background",
    "triplane_tv",
    "distortion",
    "interlevel",
)
PSNR_SERIES = (
    ("train", "psnr", "train"),
    ("val", "psnr", "val (whole)"),
    ("val", "psnr_face", "val (face)"),
    ("val", "psnr_outside", "val (outside)"),
)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, in file order (blank lines skipped).

    Raises:
      FileNotFoundError: no such file. ValueError: a line that is not a JSON object with an
        integer "step" (naming the file and the line).
    """
    path = paths.as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file not found")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number}: not JSON ({error})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f'{path}: line {number}: expected an object with an integer "step"')
        records.append(record)
    return records


def read_metrics(path: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """metrics.jsonl -> {split: {key: [(step, value), ...]}} (sorted by step, finite only).

    Records are `{"step", "split", ...}` (docs/architecture.md#metrics); a resumed run's repeated
    step keeps its last value.

    Raises:
      FileNotFoundError, ValueError: as `read_records`.
    """
    series: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for record in read_records(path):
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


def plot_training_curves(metrics_jsonl: str | Path, out_png: str | Path) -> paths.AnyPath:
    """Plots PSNR (train, val whole/face/outside) and losses against the step into a PNG.

    Two panels against the training step: PSNR (train; validation whole image, face and
    outside the face) and the losses (total and each term logged, log scale).

    Args:
      metrics_jsonl: an experiment's metrics.jsonl.
      out_png: the image to write (its folder is created); both may be URLs.

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
    out_png = paths.as_path(out_png)
    paths.make_folder(out_png.parent)
    if paths.is_local(out_png):
        figure.savefig(out_png)
    else:  # matplotlib writes local files or file objects: encode, then upload
        data = io.BytesIO()
        figure.savefig(data, format=out_png.suffix.lstrip(".") or "png")
        out_png.write_bytes(data.getvalue())
    return out_png
