# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.eval --base_folder EXP [EXP ...] [--checkpoint STEP] [--scale S]
[--val_frames N]`.

Evaluates one or many experiments on their captures' validation frames and prints one
markdown table (a row per experiment, the mean metrics as columns). For each experiment it
writes (process 0 only) `EXP/eval/step_N/`:

    metrics.json            {"step", "checkpoint", "scale", "frames": {id: {...}}, "mean": {...},
                             "distance": {...}}
    ID_prediction.png       the render
    ID_target.png           the validation image
    ID_error.png            mean absolute error heat-map (fixed scale, figures.ERROR_VMAX)
    ID_depth.png            depth, colormapped, normalised per image
    ID_acc.png              accumulated opacity
    ID_disent.png           disentanglement: render | render with another expression | change
    index.html              a page with the metrics table and every frame's pictures: open
                            it in a browser (relative links; no server needed)

and adds the means to TensorBoard (`EXP/tensorboard`, tag `eval/NAME`). EXP may be a
gs:// URL, and `--table_csv` a URL too (`flamenerf.io.paths`). With `--scale S`
other than the experiment's own image scale the files go to `EXP/eval/step_N/scale_S/`
instead, so that evaluations at the trained scale are never overwritten.

Metrics per frame (docs/architecture.md#metrics; the registry
`flamenerf.evaluation.metrics.METRICS`): `psnr` (whole image), `psnr_face` (inside the frame's
FLAME silhouette: the capture's mask, else the rasterised mesh), `psnr_outside`, `ssim` (dm-pix),
`ms_ssim` and `ms_ssim_scales`, `lpips` (AlexNet LPIPS, `flamenerf.evaluation.lpips`; `lpips_vgg`
with `--lpips_net vgg`) when its weight files are in the `--lpips_weights` folder (default
`$FLAMENERF_LPIPS`, else the cache's `lpips/`; absent files: the column is skipped and one note
line on stderr says which files to put where), and the expression disentanglement figures
`disent_outside` / `disent_inside`: the frame's camera is rendered again with the expression and
jaw of another frame (`disent_driver`: the next evaluated frame, cyclically; the first training
frame when only one frame is evaluated), both renders with the silhouette of the mesh posed with
the parameters rendered (docs/architecture.md#rendering-with-other-parameters), and the mean
absolute colour change is measured outside the union of the two silhouettes dilated by 1 px, and
inside it. The mean of a metric over frames is the mean of the per-frame values (NaN values, e.g.
the face PSNR of a frame without silhouette pixels, are left out); non-finite values are written as
null. `distance` is `evaluation.distance.distance_report` of the frames' `psnr` against the
distance (metres) from each frame's camera to the camera of the training frame whose warp code it
uses: the Pearson correlation, the mean PSNR of the nearest and the farthest third of the frames
(the table's `psnr_near_third` / `psnr_far_third`), their difference, and the per-frame pairs;
each frame's distance to the nearest training camera (`nearest_train_m`), its correlation with
PSNR (`pearson_nearest_train`) and its mean over the two thirds (`*_nearest_train_m`); and
`code_swap`: the farthest third rendered again with the warp and appearance codes of the training
frame whose camera is nearest to each, where those differ from its own (the table's
`code_dependence`: the mean PSNR those frames gain; nan when no frame was rendered again or the
model reads no per-frame codes). A far view that loses quality because its codes carry what their
own frame's camera saw gains with the nearest camera's codes (a clearly positive
`code_dependence`); one that loses because no training camera filmed it from there does not
(near 0), and its `nearest_train_m` is large.

Rendering shards every chunk of rays over all devices (and hosts), so this runs unchanged on a
pod slice; only process 0 writes files and prints. The library behind this command line is
`flamenerf.evaluation` (`evaluate.evaluate`, `evaluate.markdown_table`) and
`Experiment.restore`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flamenerf import cli_args, compilation_cache, errors, help_format
from flamenerf.evaluation import evaluate as evaluation
from flamenerf.evaluation import lpips
from flamenerf.training import experiment


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.eval",
        formatter_class=help_format.HelpFormatter,
        description="Evaluate experiments on their validation frames: metrics.json and PNGs "
        "in EXP/eval/step_N/, TensorBoard scalars, and one table over all experiments.",
    )
    cli_args.add_base_folder(parser, many=True)
    experiment.add_checkpoint_flags(parser)
    parser.add_argument(
        "--val_frames",
        type=int,
        default=None,
        metavar="N",
        help="evaluate only the first N validation frames (default: all)",
    )
    parser.add_argument(
        "--table_csv", default=None, metavar="PATH", help="also write the table as CSV here"
    )
    parser.add_argument(
        "--lpips_weights",
        default=None,
        metavar="DIR",
        help="folder of the LPIPS weight files (the lpips wheel's weights/v0.1/alex.pth and "
        "torchvision's alexnet-owt-7be5be79.pth; for vgg: vgg.pth and vgg16-397923af.pth); "
        "default: $FLAMENERF_LPIPS, else the cache's lpips/ folder; absent files: no lpips "
        "column",
    )
    parser.add_argument(
        "--lpips_net",
        nargs="+",
        choices=sorted(lpips.NETWORKS),
        default=["alex"],
        help="LPIPS backbone(s): alex (column lpips, as papers report) and/or vgg (column "
        "lpips_vgg) (default: alex)",
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
    compilation_cache.enable()  # compiled programs persist across runs (docstring there)
    if args.val_frames is not None and args.val_frames < 1:
        print(f"error: --val_frames {args.val_frames}: expected at least 1", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    initialize_distributed(experiment.distributed_settings(args))
    try:  # LPIPS columns while this command runs, when the weight files are there
        note = lpips.enable(args.lpips_weights, args.lpips_net)
    except errors.UserError as error:
        if _chief():
            print(f"error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    try:
        return _evaluate_all(args, note)
    finally:
        lpips.disable(args.lpips_net)


def _evaluate_all(args: argparse.Namespace, note: str | None) -> int:
    """Evaluates every experiment, then prints the note (if any) and the table."""
    reports: dict[str, dict[str, Any]] = {}
    failed = 0
    for folder in args.base_folder:
        try:
            with experiment.Experiment.restore(
                folder, args.checkpoint, scale=args.scale, chunk=args.chunk
            ) as restored:
                reports[folder] = evaluation.evaluate(
                    restored.exp,
                    restored.state,
                    restored.checkpoint,
                    args.val_frames,
                    out_dir=restored.eval_folder,
                )
        except experiment.UserError as error:
            failed += 1
            if _chief():
                print(f"error: {error}", file=sys.stderr)
    if _chief() and reports:
        if note:  # on stderr: stdout holds the table only
            print(note, file=sys.stderr)
        print(evaluation.markdown_table(reports))
        if args.table_csv:
            evaluation.write_csv(args.table_csv, reports)
    return errors.EXIT_USER_ERROR if failed else errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
