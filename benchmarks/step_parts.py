# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Where the step's time goes: the config's train step (or its render) with parts switched off.

    python benchmarks/step_parts.py [--config gin/demo.gin] [--parts all | NAME ...]
        [--steps 16] [--rounds 2] [--forward] [--data_dir CAPTURE] [--bindings BINDING ...]

Each part (`PARTS`: a name and the gin bindings that switch it off or shrink it) is the
config with those bindings; `config` is the config itself. All of them are measured one after
the other, then again for each further round (so that a drift in the machine's load falls on
every part alike), and the table gives each round's seconds, their mean and the ratio to the
config's mean: 0.57 for "no_warp" means the learned warp is 43% of the step. The train step
is timed over `--steps` steps after one compiling step; with `--forward`, the render of the
capture's first validation frames instead (`Experiment.renderer`, the `eval` path),
milliseconds per frame. A part is an ablation, not a config to train: its figures say what
the step spends, not what the result would be. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax

from flamenerf.datasets import rays as rays_lib
from flamenerf.training import experiment

PARTS = {
    "config": [],
    "warp_everywhere": ["WarpConfig.coarse_capacity = 0.0", "WarpConfig.fine_capacity = 0.0"],
    "no_warp": ['WarpConfig.warp_type = "none"'],
    "ball_rigid": ['GuideConfig.rigid_weight = "ball"'],
    "no_guide": ["GuideConfig.enabled = False", "ModelConfig.pose_shading = False"],
    "no_pose_shading": ["ModelConfig.pose_shading = False"],
    "no_expression": ['ExpressionConfig.where = "none"'],
    "fine_triplane_2_levels": ["fine/FieldConfig.triplane_resolutions = (64, 128)"],
    "half_samples": ["ModelConfig.num_coarse_samples = 12", "ModelConfig.num_fine_samples = 8"],
}
FRAMES = 5  # --forward: the first validation frame compiles, the next 4 are timed (or it)


def measure(
    config: str, bindings: list[str], steps: int, forward: bool, data_dir: str | None
) -> float:
    """Seconds per train step (or per rendered validation frame with `forward`)."""
    with tempfile.TemporaryDirectory() as folder:
        exp = experiment.Experiment.create(
            Path(folder), [config], bindings, data_dir=data_dir, write_config=False
        )
        state, _ = exp.restore_or_init_state()
        if forward:
            ids = exp.validation_ids()[:FRAMES] or exp.capture.ids[:FRAMES]
            grids = exp.extras(ids).guide
            jaw = exp.expression_config.use_jaw
            frames = [rays_lib.frame_rays(exp.capture, i, jaw) for i in ids]
            alpha = exp.warp_alpha(exp.train_config.max_steps)
            exp.renderer.render(state.params, frames[0], alpha, grids)  # compiles
            timed = frames[1:] or frames
            start = time.perf_counter()
            for frame in timed:
                exp.renderer.render(state.params, frame, alpha, grids)
            return (time.perf_counter() - start) / len(timed)
        step = exp.train_step()
        key, extras = jax.random.PRNGKey(0), exp.extras()
        with exp.ray_batches() as batches:
            sharded = [exp.shard(next(batches)) for _ in range(steps + 1)]
        state, stats = step(state, sharded[0], key, extras)  # compiles
        jax.block_until_ready(stats)
        start = time.perf_counter()
        for batch in sharded[1:]:
            state, stats = step(state, batch, key, extras)
        jax.block_until_ready(stats)
        return (time.perf_counter() - start) / steps


def table(seconds: dict[str, list[float]], unit: str, digits: int = 3) -> str:
    """The markdown table: each part's rounds, their mean (`digits` decimals) and the ratio
    to "config"'s."""
    rounds = max(len(v) for v in seconds.values())
    base = statistics.mean(seconds["config"]) if "config" in seconds else None
    head = [f"round {r + 1} {unit}" for r in range(rounds)]
    lines = [
        "| part | " + " | ".join(head) + f" | mean {unit} | vs config |",
        "| --- | " + " | ".join("---" for _ in head) + " | --- | --- |",
    ]
    for name, values in seconds.items():
        mean = statistics.mean(values)
        ratio = f"{mean / base:.2f}" if base else "n/a"
        cells = " | ".join(f"{v:.{digits}f}" for v in values)
        lines.append(f"| {name} | {cells} | {mean:.{digits}f} | {ratio} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="gin/demo.gin", help="the config (gin/demo.gin)")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["all"],
        choices=["all", *PARTS],
        help="parts to measure (default: all); 'config' is always measured",
    )
    parser.add_argument("--steps", type=int, default=16, help="timed steps per part (16)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the parts (2)")
    parser.add_argument("--forward", action="store_true", help="time the render, not the step")
    parser.add_argument("--data_dir", default=None, help="capture (default: the config's)")
    parser.add_argument(
        "--bindings", nargs="*", default=[], help="gin bindings for every part, before its own"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    names = (
        list(PARTS)
        if "all" in args.parts
        else ["config", *(p for p in args.parts if p != "config")]
    )
    seconds: dict[str, list[float]] = {name: [] for name in names}
    print(f"devices: {jax.devices()}; {args.config}; {'render' if args.forward else 'train step'}")
    for _ in range(args.rounds):
        for name in names:
            bindings = [*args.bindings, *PARTS[name]]
            seconds[name].append(
                measure(args.config, bindings, args.steps, args.forward, args.data_dir)
            )
    if args.forward:
        milliseconds = {name: [1000 * v for v in values] for name, values in seconds.items()}
        print(table(milliseconds, "ms/frame", digits=1))
    else:
        print(table(seconds, "s/step"))


if __name__ == "__main__":
    main()
