# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Which expression mechanism generalises to unseen expressions? (issue 9)

    python benchmarks/expression_generalisation.py [--steps 1500] [--out bench_out]
        [--variants no_expression paper_conditioning flame_guided both]
        [--captures 0:static 1:motion] [--train_seed 0]
        [--bindings 'GuideConfig.sigma_m = 0.008' ...] [--tag _sigma8]
        [--head_motion 3] [--head_joint root|neck] [--vrig 0] [--normalisation head|room]
        [--expression_appearance] [--specular] [--size 64]

For each synthetic capture (seed, static head or head motion) it trains every variant on top
of gin/demo.gin with the same step budget, then reports on the validation frames (novel
cameras and novel expressions): PSNR of the whole image, inside the FLAME silhouette (face)
and outside, the expression disentanglement figure
(docs/architecture.md#rendering-with-other-parameters: mean absolute change outside / inside the
union of the two silhouettes when the expression is swapped), and the baselines of
docs/architecture.md#the-demo-capture on the same frames: the mean colour of the training images
and the nearest training frame by camera, and the mean PSNR of the nearest and the farthest third
of the frames by the distance from their camera to the camera of the training frame whose codes
they use (`evaluation.distance.distance_report`; `near - far` is their difference, `r` the Pearson
correlation of distance and PSNR), and the same two thirds over the covered pixels only
(`free_view_coverage.py`: surface points at least two training frames saw; `far cov.`,
`near - far cov.`), so content no training camera saw is told apart from the model's error,
and `eval`'s code dependence (`code dep.`: the farthest third rendered with the codes of the
training frame whose camera is nearest to each, minus with their own codes; near 0 when what
a view shows does not depend on whose codes render it).
The generator's options pick the captures: `--head_motion` the degrees of the "motion" captures
and `--head_joint` what turns their head, `--vrig N` second-phone validation frames,
`--normalisation room` another tool's scene.json, `--expression_appearance` wrinkles, flush,
teeth and tongue that no mesh deformation explains, `--specular` a highlight on the head that
moves with the camera (view-dependent colour). Nothing else should run on the machine
meanwhile.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from free_view_coverage import coverage, covered_report

from flamenerf import train
from flamenerf.evaluation import evaluate, metrics
from flamenerf.evaluation.distance import code_frame_distances, distance_report
from flamenerf.synthetic import generator as synthetic
from flamenerf.training import experiment

VARIANTS = ("no_expression", "paper_conditioning", "flame_guided", "both")
# The baselines are scored with the PSNRs of training-time validation.
BASELINE_METRICS = ("psnr", "psnr_face", "psnr_outside")


def nearest_training_frame(capture, frame_id: str) -> str:
    """The training frame whose camera is closest (position, then viewing direction)."""
    target = capture.cameras[frame_id]

    def distance(i: str) -> float:
        cam = capture.cameras[i]
        return float(
            np.linalg.norm(cam.position - target.position)
            + 0.1 * np.linalg.norm(cam.optical_axis - target.optical_axis)
        )

    return min(capture.train_ids, key=distance)


def baselines(capture) -> dict[str, dict[str, float]]:
    """Mean training colour and nearest training frame, scored like the models."""
    mean_colour = np.mean(
        [capture.image(i).reshape(-1, 3).mean(0) / 255.0 for i in capture.train_ids], axis=0
    )
    scores: dict[str, dict[str, dict[str, float]]] = {"mean colour": {}, "nearest frame": {}}
    for frame_id in capture.val_ids:
        target = capture.image(frame_id) / 255.0
        mask = capture.mask(frame_id)
        flat = np.broadcast_to(mean_colour, target.shape)
        scores["mean colour"][frame_id] = metrics.frame_metrics(
            flat, target, mask, BASELINE_METRICS
        )
        near = capture.image(nearest_training_frame(capture, frame_id)) / 255.0
        scores["nearest frame"][frame_id] = metrics.frame_metrics(
            near, target, mask, BASELINE_METRICS
        )
    distances = code_frame_distances(capture, capture.val_ids)
    table = {}
    for name, frames in scores.items():
        report = distance_report({i: v["psnr"] for i, v in frames.items()}, distances)
        table[name] = {**_mean(list(frames.values())), **_distance_columns(report)}
    return table


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def _distance_columns(report: dict) -> dict[str, float]:
    """The printed columns of a `distance_report`."""
    return {
        "near third": report["near_third_psnr"],
        "far third": report["far_third_psnr"],
        "near - far": report["near_minus_far"],
        "r": report["pearson"],
    }


def run_variant(
    capture_dir: Path,
    variant: str,
    steps: int,
    out: Path,
    train_seed: int,
    bindings: list[str],
    tag: str,
    counts: dict[str, np.ndarray],
) -> dict[str, float]:
    """Trains and evaluates one variant; counts: `coverage` of the capture's val frames."""
    folder = out / capture_dir.name / f"{variant}-seed{train_seed}{tag}"
    exp = experiment.Experiment.create(
        folder,
        ["gin/demo.gin", f"gin/ablations/{variant}.gin"],
        [
            f"TrainConfig.max_steps = {steps}",
            "TrainConfig.max_minutes = 0",
            "TrainConfig.val_every = 0",
            "TrainConfig.val_frames = 0",
            f"lr/ExponentialSchedule.num_steps = {steps}",
            f"TrainConfig.seed = {train_seed}",
            *bindings,
        ],
        data_dir=str(capture_dir),
    )
    start = time.time()
    train.train(exp)
    minutes = (time.time() - start) / 60
    state, step = exp.restore_or_init_state()
    report = evaluate.evaluate(exp, state, step, show_progress=False)
    result = {**report["mean"], **_distance_columns(report["distance"])}
    covered = covered_report(folder / "eval" / f"step_{step}", counts, min_views=2)
    result["far cov."] = covered["far_covered"]
    result["near - far cov."] = covered["near_covered"] - covered["far_covered"]
    result["code dep."] = report["distance"]["code_swap"]["code_dependence_db"]
    result["minutes"] = minutes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per variant")
    parser.add_argument("--out", default="bench_out/expression", help="experiment folders")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument(
        "--captures",
        nargs="+",
        default=["0:static", "1:motion"],
        help="SEED:static|motion synthetic captures",
    )
    parser.add_argument(
        "--train_seed",
        type=int,
        default=0,
        help="initialisation and ray-shuffling seed (run two to measure run-to-run noise)",
    )
    parser.add_argument(
        "--bindings",
        nargs="*",
        default=[],
        help="extra gin bindings for every variant, e.g. 'GuideConfig.sigma_m = 0.008'",
    )
    parser.add_argument("--tag", default="", help="suffix of the experiment folders")
    parser.add_argument(
        "--head_motion",
        type=float,
        default=synthetic.HEAD_ROTATION_DEG,
        metavar="DEGREES",
        help="head motion of the 'motion' captures (0..30 degrees; default 3)",
    )
    parser.add_argument(
        "--head_joint",
        choices=synthetic.HEAD_JOINTS,
        default="root",
        help=(
            "what turns the head of the 'motion' captures: 'root' (default: the whole FLAME "
            "mesh, its neck sliding through the collar) or 'neck' (FLAME's neck joint)"
        ),
    )
    parser.add_argument(
        "--vrig", type=int, default=0, help="second-phone validation frames per capture"
    )
    parser.add_argument(
        "--normalisation",
        choices=synthetic.NORMALISATIONS,
        default="head",
        help="scene.json of the captures: 'head' (default) or 'room' (another tool's)",
    )
    parser.add_argument(
        "--expression_appearance",
        action="store_true",
        help="captures with wrinkles, flush, teeth and tongue that follow the expression",
    )
    parser.add_argument(
        "--specular",
        action="store_true",
        help="captures whose head has a highlight that moves with the camera (view dependence)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=synthetic.DEFAULTS["size"],
        help="the captures' image width and height in pixels (the generator's default: 64)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    options = {
        "size": args.size,
        "vrig": args.vrig,
        "normalisation": args.normalisation,
        "expression_appearance": args.expression_appearance,
        "specular": args.specular,
    }
    for spec in args.captures:
        seed, kind = spec.split(":")
        motion = {"head_motion": args.head_motion, "head_joint": args.head_joint}
        capture_dir = synthetic.default_capture(
            seed=int(seed), **(motion if kind == "motion" else {}), **options
        )
        exp = experiment.Experiment.create(
            out / "baselines", ["gin/demo.gin"], [], data_dir=str(capture_dir), write_config=False
        )
        table = {f"baseline: {k}": v for k, v in baselines(exp.capture).items()}
        counts = coverage(capture_dir, exp.capture.val_ids, tolerance=0.01)
        for variant in args.variants:
            table[variant] = run_variant(
                capture_dir,
                variant,
                args.steps,
                out,
                args.train_seed,
                args.bindings,
                args.tag,
                counts,
            )
        print(
            f"\n## capture seed {seed}, {kind} head, {args.steps} steps each, "
            f"training seed {args.train_seed}, bindings {args.bindings}, "
            f"{len(exp.capture.val_ids)} validation frames (devices: {jax.device_count()})"
        )
        print(
            f"capture {capture_dir.name}: head motion "
            f"{args.head_motion if kind == 'motion' else 0:g} degrees"
            f"{f' (about the {args.head_joint} joint)' if kind == 'motion' else ''}, "
            f"vrig {args.vrig}, "
            f"{args.normalisation} normalisation, expression appearance "
            f"{'on' if args.expression_appearance else 'off'}, specular highlight "
            f"{'on' if args.specular else 'off'}; 'near third' / 'far third': "
            "mean PSNR of the validation frames nearest to / farthest from their code "
            "frame's camera"
        )
        keys = [
            "psnr",
            "psnr_face",
            "psnr_outside",
            "ssim",
            "disent_outside",
            "disent_inside",
            "near third",
            "far third",
            "near - far",
            "far cov.",
            "near - far cov.",
            "r",
            "code dep.",
            "minutes",
        ]
        print("| variant | " + " | ".join(keys) + " |")
        print("| --- " * (len(keys) + 1) + "|")
        for name, row in table.items():
            cells = [f"{row[k]:.3f}" if k in row else "" for k in keys]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
