# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Samples where the surfaces are (issue 19): sample spacing and counts against quality and time.

    python benchmarks/sampling.py [--steps 1000] [--seeds 0 1] [--out bench_out/sampling]
        [--variants linear_32_24 contracted_32_24 contracted_16_16 contracted_24_16
                    proposal_32_24 proposal_contracted_32_24 proposal_contracted_24_16
                    proposal_contracted_24_8]
        [--bindings 'TrainConfig.batch_size = 1024' ...] [--size 64] [--frames 120] [--val 16]
        [--no_mfu]

Each variant trains gin/demo.gin with its sampler, `ModelConfig.spacing` and sample counts
(coarse + fine) for `--steps` steps and each training seed, on the default synthetic capture
(the demo capture; `--size`, `--frames`, `--val` pick a smaller one for a smoke run), then
evaluates it on the validation frames through the project's eval path
(`flamenerf.evaluation.evaluate`: novel cameras and expressions). The sampler is "coarse"
(gin/ablations/coarse_sampler.gin on top of the demo: a coarse tri-plane radiance field
trained on colour places the fine samples) or "proposal" (gin/ablations/proposal.gin, the
demo's: the coarse tri-plane gives density only and is trained by mip-NeRF 360's interlevel
loss). Variants:

    linear_32_24                an earlier demo: 32 coarse samples linear in depth + 24 fine
    contracted_32_24            the same counts, coarse samples evenly in the field's
                                contracted space
    contracted_16_16            contracted, 16 + 16
    contracted_24_16            contracted, 24 + 16 (the demo's before the proposal sampler)
    proposal_32_24              linear_32_24's counts and spacing with the proposal
                                sampler: the same budget of samples per ray (the proposal's
                                are cheaper: no colour branch) and of steps as linear_32_24
    proposal_contracted_32_24   the proposal sampler at contracted_32_24's counts and spacing
    proposal_contracted_24_16   the proposal sampler at contracted_24_16's counts and spacing
    proposal_contracted_24_8    the same with half the fine samples (the demo's now)

The learning rate decays over `--steps` (as the demo's over its 1,000); everything else is the
demo's. The markdown table has, per variant and seed, the validation PSNR of the whole image
and inside the FLAME silhouette (face), the training rays/s (median of the logged windows:
compilation and checkpoints left out), the training wall time (start-up, compilation, steps
and the final checkpoint; the capture's pack and guide grids are built into the cache before
the first variant, so no variant pays for them) and the train step's model FLOPs utilisation
(XLA's FLOP count of the step, `benchmarks/common.py`, at that rays/s, over an fp32 matmul
peak measured at the start of the run), then the mean over seeds. JAX's persistent
compilation cache is not turned on: every run compiles its programs. The experiment folders
are `OUT/VARIANT-seedS` (they must not exist yet). Nothing else should run on the machine
meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple


class Variant(NamedTuple):
    """What a variant changes in the demo config."""

    spacing: str  # ModelConfig.spacing
    coarse: int  # ModelConfig.num_coarse_samples
    fine: int  # ModelConfig.num_fine_samples
    sampler: str = "coarse"  # ModelConfig.sampler: its gin file in SAMPLER_CONFIGS


VARIANTS: dict[str, Variant] = {
    "linear_32_24": Variant("linear", 32, 24),
    "contracted_32_24": Variant("contracted", 32, 24),
    "contracted_16_16": Variant("contracted", 16, 16),
    "contracted_24_16": Variant("contracted", 24, 16),
    "proposal_32_24": Variant("linear", 32, 24, "proposal"),
    "proposal_contracted_32_24": Variant("contracted", 32, 24, "proposal"),
    "proposal_contracted_24_16": Variant("contracted", 24, 16, "proposal"),
    "proposal_contracted_24_8": Variant("contracted", 24, 8, "proposal"),
}
CONFIG = "demo.gin"  # a packaged config: found from any folder
# Applied on top of the demo's for each sampler (each sets the sampler and its losses).
SAMPLER_CONFIGS = {"coarse": "ablations/coarse_sampler.gin", "proposal": "ablations/proposal.gin"}
COLUMNS = ("psnr", "psnr_face", "rays_per_s", "wall_s", "mfu")


def variant_configs(variant: str) -> list[str]:
    """The gin files of `variant`: the demo's, and its sampler's on top."""
    return [CONFIG, SAMPLER_CONFIGS[VARIANTS[variant].sampler]]


def variant_bindings(variant: str) -> list[str]:
    """The gin bindings that make `variant` out of its gin files (`variant_configs`)."""
    spacing, coarse, fine, _ = VARIANTS[variant]
    return [
        f'ModelConfig.spacing = "{spacing}"',
        f"ModelConfig.num_coarse_samples = {coarse}",
        f"ModelConfig.num_fine_samples = {fine}",
    ]


def run_bindings(steps: int, seed: int) -> list[str]:
    """Bindings every run shares: the step budget, no validation during training, the seed."""
    return [
        f"TrainConfig.max_steps = {steps}",
        "TrainConfig.max_minutes = 0",
        "TrainConfig.val_every = 0",
        "TrainConfig.val_frames = 0",
        f"lr/ExponentialSchedule.num_steps = {steps}",
        f"TrainConfig.seed = {seed}",
    ]


def folder_of(out: Path, variant: str, seed: int) -> Path:
    return out / f"{variant}-seed{seed}"


def logged_rays_per_second(metrics_path: Path) -> float:
    """The median `rays_per_s` of a run's training records (NaN without any)."""
    from flamenerf.evaluation import figures

    if not metrics_path.is_file():
        return math.nan
    records = figures.read_records(metrics_path)
    values = [
        float(r["rays_per_s"]) for r in records if r.get("split") == "train" and "rays_per_s" in r
    ]
    return statistics.median(values) if values else math.nan


def warm_caches(capture_dir: Path, out: Path, bindings: list[str]) -> None:
    """Builds the capture's pack and every frame's guide grids into the cache (untimed)."""
    from flamenerf.training import experiment

    exp = experiment.Experiment.create(
        out / "warmup", [CONFIG], bindings, data_dir=str(capture_dir), write_config=False
    )
    exp.frame_source  # noqa: B018  packs the capture into the cache on first use
    if exp.guide_config.enabled:
        exp.guide_grids(show_progress=False)
    exp.close()


def step_gflops(exp) -> float:
    """GFLOPs of one train step of the experiment (XLA's cost analysis; 0 if unknown)."""
    import jax
    from common import compiled_flops

    state, _ = exp.restore_or_init_state()
    with exp.ray_batches() as batches:
        batch = exp.shard(next(batches))
    extras = exp.extras(exp.training_frames())
    return compiled_flops(exp.train_step(), state, batch, jax.random.PRNGKey(0), extras) / 1e9


def run(
    capture_dir: Path,
    variant: str,
    seed: int,
    steps: int,
    out: Path,
    bindings: list[str],
    peak_gflops: float | None,
) -> dict[str, float]:
    """Trains and evaluates one variant with one seed: the table's values."""
    from flamenerf import errors, train
    from flamenerf.evaluation import evaluate
    from flamenerf.training import experiment

    folder = folder_of(out, variant, seed)
    exp = experiment.Experiment.create(
        folder,
        variant_configs(variant),
        [*variant_bindings(variant), *run_bindings(steps, seed), *bindings],
        data_dir=str(capture_dir),
    )
    start = time.perf_counter()
    code = train.train(exp)
    wall = time.perf_counter() - start
    if code != errors.EXIT_OK:
        raise RuntimeError(f"{folder}: training exited with code {code}")
    state, step = exp.restore_or_init_state()
    report = evaluate.evaluate(exp, state, step, show_progress=False)
    rays_per_s = logged_rays_per_second(exp.metrics_path)
    mfu = math.nan
    if peak_gflops:
        steps_per_s = rays_per_s / exp.train_config.batch_size
        mfu = step_gflops(exp) * steps_per_s / peak_gflops
    exp.close()
    return {
        "psnr": float(report["mean"]["psnr"]),
        "psnr_face": float(report["mean"]["psnr_face"]),
        "rays_per_s": rays_per_s,
        "wall_s": wall,
        "mfu": mfu,
    }


def _cell(name: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if name == "mfu":
        return f"{value:.1%}"
    if name in ("rays_per_s", "wall_s"):
        return f"{value:.0f}"
    return f"{value:.2f}"


def table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """The markdown table: one row per variant and seed, then the variant's mean over seeds
    (when it ran more than one); a failed run keeps its error."""
    lines = [
        "| variant | sampler | spacing | samples | seed | PSNR whole | PSNR face | rays/s "
        "| train wall s | MFU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, runs in results.items():
        spacing, coarse, fine, sampler = VARIANTS[variant]
        head = f"| {variant} | {sampler} | {spacing} | {coarse} + {fine}"
        done = []
        for seed, row in runs.items():
            if "error" in row:
                lines.append(f"{head} | {seed} | {row['error']} |  |  |  |  |")
                continue
            done.append(row)
            lines.append(f"{head} | {seed} | " + " | ".join(_cell(k, row[k]) for k in COLUMNS))
            lines[-1] += " |"
        if len(done) > 1:
            mean = {k: float(statistics.fmean(r[k] for r in done)) for k in COLUMNS}
            cells = " | ".join(_cell(k, mean[k]) for k in COLUMNS)
            lines.append(f"{head} | mean of {len(done)} | {cells} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run (1000)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default: 0 1)"
    )
    parser.add_argument(
        "--out", default="bench_out/sampling", help="experiment folders (default: %(default)s)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="variants to run, in this order (default: all)",
    )
    parser.add_argument(
        "--bindings",
        nargs="*",
        default=[],
        help="extra gin bindings for every run, e.g. 'TrainConfig.batch_size = 1024'",
    )
    parser.add_argument("--size", type=int, default=None, help="capture image side, px (64)")
    parser.add_argument("--frames", type=int, default=None, help="training frames (120)")
    parser.add_argument("--val", type=int, default=None, help="validation frames (16)")
    parser.add_argument(
        "--no_mfu", action="store_true", help="skip the matmul peak and the step's FLOP count"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    existing = [
        str(folder_of(out, v, s))
        for v in args.variants
        for s in args.seeds
        if folder_of(out, v, s).exists()
    ]
    if existing:
        print(f"error: experiment folders exist already: {', '.join(existing)}", file=sys.stderr)
        return 2

    import jax
    from common import matmul_peak_gflops

    from flamenerf.synthetic import generator

    options = {k: getattr(args, k) for k in ("size", "frames", "val") if getattr(args, k)}
    with contextlib.redirect_stdout(sys.stderr):
        capture_dir = generator.default_capture(show_progress=False, **options)
        warm_caches(capture_dir, out, args.bindings)
    peak = None if args.no_mfu else matmul_peak_gflops()
    start = time.perf_counter()
    results: dict[str, dict[int, dict]] = {}
    for variant in args.variants:
        results[variant] = {}
        for seed in args.seeds:
            try:
                with contextlib.redirect_stdout(sys.stderr):  # the library's progress lines
                    results[variant][seed] = run(
                        capture_dir, variant, seed, args.steps, out, args.bindings, peak
                    )
            except Exception as error:  # a failed run keeps its row
                print(f"{variant} seed {seed}: failed: {error!r}", file=sys.stderr)
                results[variant][seed] = {"error": f"failed: {str(error)[:120]}"}
            print(
                f"{variant} seed {seed}: done ({time.perf_counter() - start:.0f} s so far)",
                file=sys.stderr,
            )
    devices = jax.devices()
    print(
        f"devices: {len(devices)} x {devices[0].device_kind} ({devices[0].platform}); "
        + ("no MFU" if peak is None else f"fp32 matmul peak measured now: {peak:.0f} GFLOP/s")
    )
    print(
        f"capture: {capture_dir.name}; {args.steps} steps per run, seeds {args.seeds}, "
        f"config {CONFIG}, bindings {args.bindings}"
    )
    print(table(results))
    failed = any("error" in row for runs in results.values() for row in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
