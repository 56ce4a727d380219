# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Does a novel view depend on whose per-frame codes it is rendered with?

    python benchmarks/code_dependence.py --base_folder EXP [EXP ...]

For every validation frame of each trained experiment, renders the frame's own camera three
times, changing only the per-frame codes (warp and appearance ids): its own codes (its
metadata's, as evaluation does), the codes of the training frame whose camera is nearest to
this camera, and the codes of the training frame whose camera is farthest from it. If the
codes carried the view (the failure issue 14, "Free view for real", describes: a training
view explained by its codes instead of by the scene), the second would beat the first on
frames far from their code frame, and the third would collapse. The thirds and correlations
are `flamenerf.evaluation.distance.distance_report`'s, as `eval` computes them (whose code
swap is this script's second row restricted to the farthest third): how PSNR follows two
distances, from the camera to its code frame's camera and to the nearest training camera
(extrapolation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from flamenerf import cli_args
from flamenerf.datasets import rays
from flamenerf.evaluation import distance, evaluate
from flamenerf.training.experiment import Experiment

VARIANTS = ("own codes", "nearest camera's codes", "farthest camera's codes")


def measure(folder: Path) -> list[str]:
    """Markdown rows for one experiment: one per variant, then the distances' ranges."""
    with Experiment.restore(folder) as restored:
        exp = restored.exp
        capture = exp.capture
        ids = list(capture.val_ids)
        alpha = exp.warp_alpha(restored.checkpoint)
        grids = exp.extras().guide
        source = rays.CaptureSource(capture)
        train = list(capture.train_ids)
        to_code = distance.code_frame_distances(capture, ids)
        nearest = distance.nearest_training_frames(capture, ids)
        psnr = {name: {} for name in VARIANTS}
        outside = {name: [] for name in VARIANTS}
        for frame_id in ids:
            position = capture.cameras[frame_id].position
            gaps = [np.linalg.norm(capture.cameras[i].position - position) for i in train]
            donors = (None, nearest[frame_id][0], train[int(np.argmax(gaps))])
            for name, donor in zip(VARIANTS, donors, strict=True):
                frame = evaluate.evaluate_frame(
                    exp.renderer,
                    capture,
                    frame_id,
                    restored.state.params,
                    alpha,
                    grids,
                    use_jaw=exp.expression_config.use_jaw,
                    source=source,
                    names=["psnr", "psnr_outside"],
                    codes_from=donor,
                )
                psnr[name][frame_id] = frame.metrics["psnr"]
                outside[name].append(frame.metrics["psnr_outside"])
    to_train = {i: metres for i, (_, metres) in nearest.items()}
    rows = []
    for name in VARIANTS:
        report = distance.distance_report(psnr[name], to_code, to_train)
        rows.append(
            f"| {folder.name} | {name} | {np.mean(list(psnr[name].values())):.2f} | "
            f"{np.nanmean(outside[name]):.2f} | {report['near_third_psnr']:.2f} | "
            f"{report['far_third_psnr']:.2f} | {report['near_minus_far']:.2f} | "
            f"{report['pearson']:+.2f} | {report['pearson_nearest_train']:+.2f} |"
        )
    codes, trains = np.array(list(to_code.values())), np.array(list(to_train.values()))
    rows.append(
        f"| {folder.name} | distances (m): to the code frame's camera "
        f"{codes.min():.3f}-{codes.max():.3f}, to the nearest training camera "
        f"{trains.min():.3f}-{trains.max():.3f} | | | | | | | |"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli_args.add_base_folder(parser, local=True, many=True)
    args = parser.parse_args()
    print(
        "| experiment | codes rendered with | PSNR | outside the face | near third | far third "
        "| near - far | r(PSNR, distance to code frame) | r(PSNR, distance to training) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.base_folder:
        for row in measure(folder):
            print(row, flush=True)


if __name__ == "__main__":
    main()
