# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.eval --base_folder EXP [EXP ...] [--checkpoint STEP] [--scale S]`.

Evaluates one or many experiments on their captures' validation frames and prints one
markdown table (a row per experiment, the mean metrics as columns). For each experiment it
writes (process 0 only) `EXP/eval/step_N/`:

    metrics.json            {"step", "checkpoint", "scale", "frames": {id: {...}}, "mean": {...},
                             "distance": {...}}
    ID_prediction.png       the render
    ID_target.png           the validation image
    ID_error.png            mean absolute error heat-map (fixed scale, evaluation.ERROR_VMAX)
    ID_depth.png            depth, colormapped, normalised per image
    ID_acc.png              accumulated opacity
    ID_disent.png           disentanglement: render | render with another expression | change

and adds the means to TensorBoard (`EXP/tensorboard`, tag `eval/NAME`). With `--scale S`
other than the experiment's own image scale the files go to `EXP/eval/step_N/scale_S/`
instead, so that evaluations at the trained scale are never overwritten.

Metrics per frame (DESIGN.md 2.4): `psnr` (whole image), `psnr_face` (inside the frame's
FLAME silhouette: the capture's mask, else the rasterised mesh), `psnr_outside`, `ssim`
(dm-pix), `ms_ssim` and `ms_ssim_scales`, and the expression disentanglement figures
`disent_outside` / `disent_inside`: the frame's camera is rendered again with the expression
and jaw of another frame (`disent_driver`: the next evaluated frame, cyclically; the first
training frame when only one frame is evaluated), both renders with the silhouette of the mesh
posed with the parameters rendered (DESIGN.md 2.6), and the mean absolute colour change is
measured outside the union of the two silhouettes dilated by 1 px, and inside it. The mean of
a metric over frames is the mean of the per-frame values (NaN values, e.g. the face PSNR of a
frame without silhouette pixels, are left out); non-finite values are written as null.
`distance` is `evaluation.distance_report` of the frames' `psnr` against the distance (metres)
from each frame's camera to the camera of the training frame whose warp code it uses: the
Pearson correlation, the mean PSNR of the nearest and the farthest third of the frames
(the table's `psnr_near_third` / `psnr_far_third`), their difference, and the per-frame pairs.

Rendering shards every chunk of rays over all devices (and hosts), so this runs unchanged on a
pod slice; only process 0 writes files and prints.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from flamenerf import configs
from flamenerf.datasets import rays
from flamenerf.evaluation import renderer as evaluation
from flamenerf.io.media import write_png
from flamenerf.training import experiment
from flamenerf.views import reanimation

TABLE_COLUMNS = (
    "psnr",
    "psnr_face",
    "psnr_outside",
    "ssim",
    "ms_ssim",
    "ms_ssim_scales",
    "disent_outside",
    "disent_inside",
    "psnr_near_third",
    "psnr_far_third",
)
# Table columns read from the report's "distance" section (the rest are means).
DISTANCE_COLUMNS = {"psnr_near_third": "near_third_psnr", "psnr_far_third": "far_third_psnr"}
IMAGE_SCALES = (1, 2, 4, 8)


def add_checkpoint_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """--checkpoint, --scale and --chunk (shared with flamenerf.render)."""
    parser.add_argument(
        "--checkpoint",
        type=int,
        default=default,
        metavar="STEP",
        help="checkpoint step to restore (default: the latest)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        choices=IMAGE_SCALES,
        default=default,
        metavar="S",
        help="image scale 1, 2, 4 or 8 (binds DataConfig.scale; default: the experiment's)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=default,
        metavar="RAYS",
        help="rays per rendering chunk (binds TrainConfig.render_chunk; default: the experiment's)",
    )


class Loaded(NamedTuple):
    """An experiment restored for evaluation or rendering."""

    exp: experiment.Experiment
    state: Any  # the restored TrainState
    checkpoint: int  # its step
    trained_scale: int  # DataConfig.scale of the saved config.gin (before --scale)

    @property
    def eval_folder(self) -> Path:
        """EXP/eval/step_N, or EXP/eval/step_N/scale_S when --scale changed the image scale."""
        folder = self.exp.base_folder / "eval" / f"step_{self.checkpoint}"
        scale = self.exp.capture.scale
        return folder if scale == self.trained_scale else folder / f"scale_{scale}"


def load(
    base_folder: str | Path,
    checkpoint: int | None = None,
    scale: int | None = None,
    chunk: int | None = None,
) -> Loaded:
    """Loads an experiment folder (its saved config.gin) and restores a checkpoint.

    Args:
      base_folder: the experiment folder.
      checkpoint: the step to restore; None for the latest.
      scale: image scale overriding DataConfig.scale; chunk: overrides TrainConfig.render_chunk.

    Returns:
      Loaded(experiment, train state, checkpoint step, the experiment's own image scale).

    Raises:
      experiment.UserError: no experiment there, no such checkpoint (naming the folder and
        the steps available), a broken capture or configuration.
    """
    folder = Path(base_folder)
    if not (folder / "config.gin").is_file():
        raise experiment.UserError(f"{folder}: not an experiment folder (no config.gin)")
    if chunk is not None and chunk <= 0:
        raise experiment.UserError(f"--chunk {chunk}: expected a positive number of rays")
    bindings = []
    if scale is not None:
        bindings.append(f"DataConfig.scale = {int(scale)}")
    if chunk is not None:
        bindings.append(f"TrainConfig.render_chunk = {int(chunk)}")
    experiment.parse_gin([str(folder / "config.gin")], [])
    trained_scale = configs.DataConfig().scale
    exp = experiment.Experiment.create(folder, [], bindings, write_config=False)
    steps = sorted(exp.checkpoints.all_steps())
    if not steps:
        exp.close()
        raise experiment.UserError(
            f"{folder / 'checkpoints'}: no checkpoints (train the experiment first)"
        )
    if checkpoint is None:
        checkpoint = steps[-1]
    try:
        state, _ = exp.restore_or_init_state(checkpoint)
    except experiment.UserError:
        exp.close()
        raise
    return Loaded(exp, state, int(checkpoint), trained_scale)


# ------------------------------------------------------------------------------------------
# Metrics.

_jitted: dict[str, Any] = {}


def _metric(name: str):
    """jax.jit of flamenerf.evaluation.metrics.NAME (compiled once per image shape)."""
    if name not in _jitted:
        import jax

        from flamenerf.evaluation import metrics

        _jitted[name] = jax.jit(getattr(metrics, name))
    return _jitted[name]


def frame_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR (whole, face, outside), SSIM, MS-SSIM and its number of scales of one frame.

    Args:
      pred, target: (H, W, 3) in [0, 1]; mask: bool (H, W) FLAME silhouette.

    SSIM and MS-SSIM are NaN (and `ms_ssim_scales` 0) for images smaller than the 11-px
    SSIM window.
    """
    from flamenerf.evaluation import metrics

    values = evaluation.image_metrics(pred, target, mask)
    pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
    if min(pred.shape[:2]) >= metrics.SSIM_FILTER_SIZE:
        values["ssim"] = float(_metric("ssim")(pred, target))
        values["ms_ssim"] = float(_metric("ms_ssim")(pred, target))
        values["ms_ssim_scales"] = metrics.ms_ssim_num_scales(pred.shape)
    else:
        values.update(ssim=math.nan, ms_ssim=math.nan, ms_ssim_scales=0)
    return values


def mean_metrics(frames: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean of every numeric metric over frames, leaving NaN values out (NaN if all are)."""
    keys = [k for k, v in next(iter(frames.values())).items() if isinstance(v, int | float)]
    means = {}
    for key in keys:
        values = np.array([f[key] for f in frames.values()], np.float64)
        kept = values[~np.isnan(values)]
        means[key] = float(kept.mean()) if kept.size else math.nan
        if key == "ms_ssim_scales" and float(means[key]).is_integer():
            means[key] = int(means[key])
    return means


def _json_safe(value: Any) -> Any:
    """Non-finite floats -> None (strict JSON), recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------------------
# Rendering with another frame's expression.


def disentanglement_pair(
    exp: experiment.Experiment,
    params: Any,
    alpha: float,
    frame_id: str,
    driver_id: str,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two renders of frame `frame_id`'s camera and codes: its own expression and jaw, and
    `driver_id`'s, each on the frame's identity and head pose with the silhouette (and guide
    grids) of the mesh posed with the parameters rendered (DESIGN.md 2.6).

    Args:
      reference: (rgb, silhouette) of a render of the frame with its own parameters, reused
        when its silhouette is the rasterised one (and the model reads no guide grids).

    Returns:
      rgb_a (H, W, 3), mask_a (H, W) for the own expression; rgb_b, mask_b for the driver's.
    """
    capture = exp.capture
    num_expression = capture.scene.num_expression
    subject = capture.flame_params[frame_id]
    pairs = [
        reanimation.expression_and_jaw(subject, num_expression),
        reanimation.expression_and_jaw(capture.flame_params[driver_id], num_expression),
    ]
    driven = [reanimation.with_expression(subject, e, j) for e, j in pairs]
    vertices = reanimation.posed_vertices(capture.flame_model, capture.scene, driven)
    camera = capture.cameras[frame_id]
    masks = [reanimation.silhouette(capture.flame_model, v, camera) for v in vertices]
    grids = exp.grids_for(driven)
    info = capture.frames[frame_id]
    renders = []
    for k, ((expression, jaw), mask) in enumerate(zip(pairs, masks, strict=True)):
        if k == 0 and reference is not None and grids is None:
            if np.array_equal(reference[1], mask):
                renders.append(reference[0])
                continue
        batch = rays.camera_rays(
            camera,
            frame=k if grids is not None else capture.ids.index(frame_id),
            warp_id=info.warp_id,
            appearance_id=info.appearance_id,
            condition=reanimation.condition(
                expression, jaw, num_expression, exp.expression_config.use_jaw
            ),
            inside=mask,
        )
        out = exp.renderer.render_image(params, batch, alpha, camera.image_shape, grids)
        renders.append(out["rgb"])
    return renders[0], masks[0], renders[1], masks[1]


# ------------------------------------------------------------------------------------------
# One experiment.


def evaluate(
    exp: experiment.Experiment,
    state: Any,
    checkpoint: int,
    frames: int | None = None,
    show_progress: bool = True,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Renders the validation frames, computes the metrics and (process 0) writes the files.

    Args:
      exp: the experiment; state: its restored train state; checkpoint: the restored step.
      frames: evaluate only the first `frames` validation frames (None: all).
      out_dir: where the files go (default: EXP/eval/step_N).

    Returns:
      The metrics.json dictionary (with non-finite values as floats, not None).

    Raises:
      experiment.UserError: the capture has no validation frames.
    """
    import jax
    from tqdm.auto import tqdm

    capture = exp.capture
    ids = list(capture.val_ids)
    if frames is not None:
        ids = ids[: max(frames, 0)]
    if not ids:
        raise experiment.UserError(
            f"{capture.root / 'dataset.json'}: no validation frames to evaluate (val_ids is empty)"
            if not capture.val_ids
            else f"--frames {frames}: expected at least 1"
        )
    chief = jax.process_index() == 0
    out_dir = out_dir or exp.base_folder / "eval" / f"step_{checkpoint}"
    if chief:
        out_dir.mkdir(parents=True, exist_ok=True)
    alpha = exp.warp_alpha(checkpoint)
    source = rays.CaptureSource(capture)
    use_jaw = exp.expression_config.use_jaw
    grids = exp.extras()["guide"]
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(ids, desc=f"eval {exp.base_folder.name}", disable=not (chief and show_progress))
    for index, frame_id in enumerate(bar):
        batch = rays.frame_rays(capture, frame_id, use_jaw, source)
        shape = capture.cameras[frame_id].image_shape
        out = exp.renderer.render_image(state.params, batch, alpha, shape, grids)
        target = batch.rgb.reshape(shape + (3,))
        mask = batch.inside.reshape(shape) > 0.5
        values: dict[str, Any] = frame_metrics(out["rgb"], target, mask)
        driver = ids[(index + 1) % len(ids)] if len(ids) > 1 else capture.train_ids[0]
        rgb_a, mask_a, rgb_b, mask_b = disentanglement_pair(
            exp, state.params, alpha, frame_id, driver, reference=(out["rgb"], mask)
        )
        values.update(evaluation.disentanglement(rgb_a, rgb_b, mask_a, mask_b))
        values["disent_driver"] = driver
        results[frame_id] = values
        if chief:
            stem = out_dir / frame_id
            write_png(f"{stem}_prediction.png", out["rgb"])
            write_png(f"{stem}_target.png", target)
            write_png(f"{stem}_error.png", evaluation.error_map(out["rgb"], target))
            write_png(f"{stem}_depth.png", evaluation.depth_map(out["depth"], out["acc"]))
            write_png(f"{stem}_acc.png", out["acc"])
            figure = evaluation.disentanglement_figure(rgb_a, rgb_b, mask_a, mask_b)
            write_png(f"{stem}_disent.png", figure)
    bar.close()
    report = {
        "step": int(state.step),
        "checkpoint": str((exp.base_folder / "checkpoints" / str(checkpoint)).resolve()),
        "scale": capture.scale,
        "frames": results,
        "mean": mean_metrics(results),
        "distance": evaluation.distance_report(
            {i: results[i]["psnr"] for i in ids}, evaluation.code_frame_distances(capture, ids)
        ),
    }
    if chief:
        text = json.dumps(_json_safe(report), indent=2, allow_nan=False)
        tmp = out_dir / "metrics.json.tmp"
        tmp.write_text(text + "\n")
        tmp.replace(out_dir / "metrics.json")
        writer = exp.summary_writer()
        for name, value in report["mean"].items():
            if math.isfinite(value):
                writer.add_scalar(f"eval/{name}", value, checkpoint)
        for name in DISTANCE_COLUMNS:
            value = table_value(report, name)
            if math.isfinite(value):
                writer.add_scalar(f"eval/{name}", value, checkpoint)
        writer.close()
    return report


# ------------------------------------------------------------------------------------------
# The table and the command line.


def _cell(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "nan" if value is not None else ""
    if name == "ms_ssim_scales" or name == "step":
        return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
    if name.startswith("disent"):
        return f"{value:.2e}"
    if name.startswith("psnr"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def table_value(report: dict[str, Any], column: str) -> Any:
    """A table column's value: the mean metric, or (DISTANCE_COLUMNS) the distance section's."""
    if column in DISTANCE_COLUMNS:
        return report.get("distance", {}).get(DISTANCE_COLUMNS[column])
    return report["mean"].get(column)


def table_rows(reports: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings) of the results table: experiment, step, the mean metrics,
    the mean PSNR of the nearest and farthest third of the frames (by code-frame distance)."""
    header = ["experiment", "step", *TABLE_COLUMNS]
    rows = []
    for name, report in reports.items():
        cells = [name, _cell("step", report["step"])]
        cells += [_cell(k, table_value(report, k)) for k in TABLE_COLUMNS]
        rows.append(cells)
    return header, rows


def markdown_table(reports: dict[str, dict[str, Any]]) -> str:
    header, rows = table_rows(reports)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str | Path, reports: dict[str, dict[str, Any]]) -> None:
    """The table as CSV, with full-precision numbers (empty cells for NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["experiment", "step", *TABLE_COLUMNS])
        for name, report in reports.items():
            values = [table_value(report, k) for k in TABLE_COLUMNS]
            writer.writerow(
                [name, report["step"]]
                + ["" if v is None or not math.isfinite(v) else repr(v) for v in values]
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.eval",
        description="Evaluate experiments on their validation frames: metrics.json and PNGs "
        "in EXP/eval/step_N/, TensorBoard scalars, and one table over all experiments.",
    )
    parser.add_argument(
        "--base_folder",
        nargs="+",
        required=True,
        metavar="EXP",
        help="experiment folder(s) (shell globs work)",
    )
    add_checkpoint_flags(parser)
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="N",
        help="evaluate only the first N validation frames (default: all)",
    )
    parser.add_argument(
        "--table_csv", default=None, metavar="PATH", help="also write the table as CSV here"
    )
    experiment.add_distributed_flags(parser)
    return parser.parse_args(argv)


def initialize_distributed(settings: dict[str, Any] | None) -> None:
    """jax.distributed.initialize (gloo collectives on CPU) for a multi-host run; None: no-op."""
    if not settings:
        return
    import jax

    if jax.config.jax_platforms in (None, "", "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**settings)


def _chief() -> bool:
    import jax

    return jax.process_index() == 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.frames is not None and args.frames < 1:
        print(f"error: --frames {args.frames}: expected at least 1", file=sys.stderr)
        return 2
    initialize_distributed(experiment.distributed_settings(args))
    reports: dict[str, dict[str, Any]] = {}
    failed = 0
    for folder in args.base_folder:
        try:
            loaded = load(folder, args.checkpoint, args.scale, args.chunk)
            try:
                reports[folder] = evaluate(
                    loaded.exp,
                    loaded.state,
                    loaded.checkpoint,
                    args.frames,
                    out_dir=loaded.eval_folder,
                )
            finally:
                loaded.exp.close()
        except experiment.UserError as error:
            failed += 1
            if _chief():
                print(f"error: {error}", file=sys.stderr)
    if _chief() and reports:
        print(markdown_table(reports))
        if args.table_csv:
            write_csv(args.table_csv, reports)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
