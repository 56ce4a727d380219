# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluating an experiment on its validation frames: renders, metrics, report and table.

`evaluate_frame` renders one frame and scores it (`metrics.frame_metrics`); training-time
validation (`Experiment.validate`) and `evaluate` both go through it. `evaluate` writes, on
process 0, `EXP/eval/step_N/` (or the folder given):

    metrics.json            {"step", "checkpoint", "scale", "frames": {id: {...}}, "mean": {...},
                             "distance": {...}}
    ID_prediction.png       the render
    ID_target.png           the validation image
    ID_error.png            mean absolute error heat-map (fixed scale, figures.ERROR_VMAX)
    ID_depth.png            depth, colormapped, normalised per image
    ID_acc.png              accumulated opacity
    ID_disent.png           disentanglement: render | render with another expression | change
    index.html              the page of the evaluation: metrics table, every frame's pictures
                            (`report_html`; relative links, opens from the folder)

and adds the means to TensorBoard (`EXP/tensorboard`, tag `eval/NAME`). The metrics are the
registry's (`metrics.METRICS`); the mean of a metric over frames is the mean of the per-frame
values (NaN values, e.g. the face PSNR of a frame without silhouette pixels, are left out);
non-finite values are written as null. `markdown_table` and `write_csv` show reports as one
row per experiment.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.datasets import rays
from flamenerf.errors import UserError
from flamenerf.evaluation import figures, metrics, report_html
from flamenerf.evaluation.disentanglement import disentanglement_pair, driver_frame
from flamenerf.evaluation.distance import (
    code_frame_distances,
    code_swap_report,
    distance_report,
    far_third_ids,
    nearest_training_frames,
)
from flamenerf.evaluation.renderer import Renderer
from flamenerf.io import paths
from flamenerf.io.media import write_png

# ------------------------------------------------------------------------------------------
# One frame.


@dataclasses.dataclass(frozen=True)
class FrameEvaluation:
    """One frame rendered with its own camera, codes and expression, and scored.

    Attributes:
      render: "rgb" (H, W, 3), "depth" (H, W) and "acc" (H, W).
      target: (H, W, 3) the frame's image in [0, 1].
      mask: bool (H, W) its FLAME silhouette (the capture's mask, else the rasterised mesh).
      metrics: `metrics.frame_metrics` of render["rgb"] against target.
    """

    render: dict[str, np.ndarray]
    target: np.ndarray
    mask: np.ndarray
    metrics: dict[str, float]


def evaluate_frame(
    renderer: Renderer,
    capture: Any,
    frame_id: str,
    params: Any,
    alpha: float,
    grids: Any = None,
    *,
    use_jaw: bool,
    source: rays.FrameSource | None = None,
    names: Iterable[str] | None = None,
    codes_from: str | None = None,
) -> FrameEvaluation:
    """Renders frame `frame_id` of the capture and computes its metrics.

    Args:
      renderer: the experiment's renderer; capture: its `flamenerf.datasets.capture.Capture`.
      params: the model parameters; alpha: the warp's annealing alpha.
      grids: the guide grids of every frame of the capture (None when the model reads none).
      use_jaw: the conditioning includes the jaw pose (`ExpressionConfig.use_jaw`).
      source: where the frame's image and mask are read (default: the capture folder).
      names: the frame metrics to compute (default: every registered one).
      codes_from: render with the warp and appearance codes of this frame (a training frame)
        instead of the frame's own; its camera, FLAME parameters and image stay its own.
    """
    batch = rays.frame_rays(capture, frame_id, use_jaw, source)
    if codes_from is not None:
        if codes_from not in capture.train_ids:
            raise ValueError(
                f"{capture.root / 'dataset.json'}: codes_from '{codes_from}' is no training frame"
            )
        info = capture.frames[codes_from]
        batch = batch._replace(
            warp_id=np.full_like(batch.warp_id, info.warp_id),
            appearance_id=np.full_like(batch.appearance_id, info.appearance_id),
        )
    shape = capture.cameras[frame_id].image_shape
    out = renderer.render_image(params, batch, alpha, shape, grids)
    target = batch.rgb.reshape(shape + (3,))
    mask = batch.inside.reshape(shape) > 0.5
    values = metrics.frame_metrics(out["rgb"], target, mask, names)
    return FrameEvaluation(out, target, mask, values)


def mean_metrics(frames: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean of every numeric metric over frames, leaving NaN values out (NaN if all are).

    The mean of an integer metric (`Metric.integer`) is an int when it is integral.
    """
    keys = [k for k, v in next(iter(frames.values())).items() if isinstance(v, int | float)]
    means = {}
    for key in keys:
        values = np.array([f[key] for f in frames.values()], np.float64)
        kept = values[~np.isnan(values)]
        means[key] = float(kept.mean()) if kept.size else math.nan
        metric = metrics.METRICS.get(key)
        if metric is not None and metric.integer and float(means[key]).is_integer():
            means[key] = int(means[key])
    return means


def json_safe(value: Any) -> Any:
    """Non-finite floats -> None (strict JSON), recursively."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------------------
# One experiment.


def evaluate(
    exp: Any,
    state: Any,
    checkpoint: int,
    frames: int | None = None,
    show_progress: bool = True,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Renders the validation frames, computes the metrics and (process 0) writes the files.

    For each frame: `evaluate_frame`, then the disentanglement metrics of the frame rendered
    with its own expression and with the next evaluated frame's (`driver_frame`; recorded as
    `disent_driver`). `distance` is `distance.distance_report` of the frames' PSNR against
    the distance to their code frame's camera (and to the nearest training camera), with
    its "code_swap" (`distance.code_swap_report`): the farthest third rendered again with the
    codes of the training frame whose camera is nearest to each (`_code_swap`: only where that
    changes its codes).

    Args:
      exp: the `flamenerf.training.experiment.Experiment`; state: its restored train state;
        checkpoint: the restored step.
      frames: evaluate only the first `frames` validation frames (None: all).
      show_progress: a progress bar (process 0).
      out_dir: where the files go (default: EXP/eval/step_N); a local path or a URL.

    Returns:
      The metrics.json dictionary (with non-finite values as floats, not None).

    Raises:
      UserError: the capture has no validation frames.
    """
    import jax
    from tqdm.auto import tqdm

    capture = exp.capture
    ids = list(capture.val_ids)
    if frames is not None:
        ids = ids[: max(frames, 0)]
    if not ids:
        raise UserError(
            f"{capture.root / 'dataset.json'}: no validation frames to evaluate (val_ids is empty)"
            if not capture.val_ids
            else f"--val_frames {frames}: expected at least 1"
        )
    chief = jax.process_index() == 0
    out_dir = paths.as_path(out_dir or exp.base_folder / "eval" / f"step_{checkpoint}")
    if chief:
        paths.make_folder(out_dir)
    alpha = exp.warp_alpha(checkpoint)
    source = rays.CaptureSource(capture)
    use_jaw = exp.expression_config.use_jaw
    grids = exp.frame_grids(ids, show_progress and chief)  # built for these frames only
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(ids, desc=f"eval {exp.base_folder.name}", disable=not (chief and show_progress))
    for index, frame_id in enumerate(bar):
        frame = evaluate_frame(
            exp.renderer,
            capture,
            frame_id,
            state.params,
            alpha,
            grids,
            use_jaw=use_jaw,
            source=source,
        )
        rgb = frame.render["rgb"]
        values: dict[str, Any] = dict(frame.metrics)
        driver = driver_frame(ids, index, capture.train_ids)
        rgb_a, mask_a, rgb_b, mask_b = disentanglement_pair(
            exp, state.params, alpha, frame_id, driver, reference=(rgb, frame.mask)
        )
        values.update(metrics.disentanglement(rgb_a, rgb_b, mask_a, mask_b))
        values["disent_driver"] = driver
        results[frame_id] = values
        if chief:
            stem = out_dir / frame_id
            write_png(f"{stem}_prediction.png", rgb)
            write_png(f"{stem}_target.png", frame.target)
            write_png(f"{stem}_error.png", figures.error_map(rgb, frame.target))
            depth = figures.depth_map(frame.render["depth"], frame.render["acc"])
            write_png(f"{stem}_depth.png", depth)
            write_png(f"{stem}_acc.png", frame.render["acc"])
            figure = figures.disentanglement_figure(rgb_a, rgb_b, mask_a, mask_b)
            write_png(f"{stem}_disent.png", figure)
    bar.close()
    nearest = nearest_training_frames(capture, ids)
    distance = distance_report(
        {i: results[i]["psnr"] for i in ids},
        code_frame_distances(capture, ids),
        {i: metres for i, (_, metres) in nearest.items()},
    )
    distance["code_swap"] = _code_swap(
        exp,
        capture,
        state.params,
        alpha,
        grids,
        far_third_ids(distance),
        nearest,
        results,
        show_progress and chief,
        source,
    )
    report = {
        "step": int(state.step),
        "checkpoint": str(paths.resolve(exp.base_folder / "checkpoints" / str(checkpoint))),
        "scale": capture.scale,
        "frames": results,
        "mean": mean_metrics(results),
        "distance": distance,
    }
    if chief:
        write_report(out_dir / "metrics.json", report)
        report_html.write_html(out_dir, report, f"{exp.base_folder.name}: step {checkpoint}")
        writer = exp.summary_writer()
        log_report(writer, report, checkpoint)
        writer.close()
    return report


def reads_codes(exp: Any) -> bool:
    """Whether the experiment's model reads per-frame codes (a learned warp or appearance)."""
    return exp.warp_config.warp_type != "none" or exp.model_config.appearance_dim > 0


def _code_swap(
    exp: Any,
    capture: Any,
    params: Any,
    alpha: float,
    grids: Any,
    ids: list[str],
    nearest: dict[str, tuple[str, float]],
    results: dict[str, dict[str, Any]],
    show_progress: bool,
    source: rays.FrameSource,
) -> dict[str, Any]:
    """`distance.code_swap_report` of `ids` rendered with their nearest training frame's codes.

    A frame is rendered again only where that changes its codes: not where the nearest
    training frame's warp and appearance ids are its own, nor for a model that reads no
    per-frame codes (`reads_codes`). Every process renders the same frames (the renders are
    sharded over all of them).
    """
    from tqdm.auto import tqdm

    codes_from: dict[str, str | None] = {}
    uses_codes = reads_codes(exp)
    for frame_id in ids:
        partner = nearest[frame_id][0]
        own, other = capture.frames[frame_id], capture.frames[partner]
        same = (own.warp_id, own.appearance_id) == (other.warp_id, other.appearance_id)
        codes_from[frame_id] = partner if uses_codes and not same else None
    swapped = {}
    todo = [i for i in ids if codes_from[i] is not None]
    for frame_id in tqdm(todo, desc="eval: nearest camera's codes", disable=not show_progress):
        frame = evaluate_frame(
            exp.renderer,
            capture,
            frame_id,
            params,
            alpha,
            grids,
            use_jaw=exp.expression_config.use_jaw,
            source=source,
            names=["psnr"],
            codes_from=codes_from[frame_id],
        )
        swapped[frame_id] = frame.metrics["psnr"]
    return code_swap_report({i: results[i]["psnr"] for i in ids}, codes_from, swapped)


def write_report(path: paths.AnyPath, report: dict[str, Any]) -> None:
    """Writes a report as strict JSON (non-finite values as null), atomically."""
    text = json.dumps(json_safe(report), indent=2, allow_nan=False)
    paths.write_atomic(path, text + "\n")


def log_report(writer: Any, report: dict[str, Any], step: int) -> None:
    """Adds a report's finite mean metrics, then its finite "report" metrics (a report without
    one, e.g. without "distance", has None there), to TensorBoard as `eval/NAME` scalars at
    `step`."""
    for name, value in report["mean"].items():
        if math.isfinite(value):
            writer.add_scalar(f"eval/{name}", value, step)
    for name in metrics.metric_names("report"):
        value = table_value(report, name)
        if value is not None and math.isfinite(value):
            writer.add_scalar(f"eval/{name}", value, step)


# ------------------------------------------------------------------------------------------
# The table over experiments.


def format_value(value: Any, spec: str, integer: bool = False) -> str:
    """A table cell: None -> "", NaN or inf -> "nan", an integral count -> int, else `spec`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "nan" if value is not None else ""
    if integer and float(value).is_integer():
        return str(int(value))
    return format(value, spec)


def table_columns() -> list[str]:
    """The metric columns of the results table (`Metric.in_table`, in registration order)."""
    return [m.name for m in metrics.METRICS.values() if m.in_table]


def table_value(report: dict[str, Any], column: str) -> Any:
    """A table column's value: the mean metric, or a "report" metric's value in the report."""
    metric = metrics.METRICS.get(column)
    if metric is not None and metric.kind == "report":
        return metric.fn(report)
    return report["mean"].get(column)


def _cell(column: str, value: Any) -> str:
    metric = metrics.METRICS[column]
    return format_value(value, metric.format, metric.integer)


def table_rows(reports: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings) of the results table: experiment, step, the table columns
    (the mean metrics, the mean PSNR of the nearest and farthest third of the frames by
    code-frame distance, the code swap's `code_dependence`)."""
    columns = table_columns()
    header = ["experiment", "step", *columns]
    rows = []
    for name, report in reports.items():
        cells = [name, format_value(report["step"], ".2f", integer=True)]
        cells += [_cell(k, table_value(report, k)) for k in columns]
        rows.append(cells)
    return header, rows


def markdown_table(reports: dict[str, dict[str, Any]]) -> str:
    """The results table in markdown, a row per experiment ({name: report})."""
    header, rows = table_rows(reports)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str | Path, reports: dict[str, dict[str, Any]]) -> None:
    """The table as CSV, with full-precision numbers (empty cells for NaN); `path` is a local
    path or a URL."""
    path = paths.as_path(path)
    paths.make_folder(path.parent)
    columns = table_columns()
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["experiment", "step", *columns])
    for name, report in reports.items():
        values = [table_value(report, k) for k in columns]
        writer.writerow(
            [name, report["step"]]
            + ["" if v is None or not math.isfinite(v) else repr(v) for v in values]
        )
    path.write_bytes(text.getvalue().encode())
