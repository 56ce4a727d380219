# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training throughput of gin configs: rays/s and model FLOPs utilisation (MFU).

    python benchmarks/throughput.py [--configs gin/demo.gin gin/paper.gin] [--steps 20]
        [--data_dir CAPTURE] [--batch_size N]
    python benchmarks/throughput.py --configs gin/demo.gin gin/demo.gin,gin/ablations/proposal.gin

Each `--configs` item is one configuration: a gin file, or several joined by commas and
applied in order (a base config and an ablation). MFU = (XLA-counted FLOPs of one train step
x steps/s) / the fp32 matmul peak measured in this same process. Nothing else should run on
the machine meanwhile.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
from common import compiled_flops, matmul_peak_gflops

from flamenerf.training import experiment


def measure(config: str, steps: int, data_dir: str | None, batch_size: int | None) -> dict:
    """Times `steps` train steps of `config` (gin files joined by commas) after one untimed."""
    bindings = [f"TrainConfig.batch_size = {batch_size}"] if batch_size else []
    with tempfile.TemporaryDirectory() as folder:
        exp = experiment.Experiment.create(
            Path(folder), config.split(","), bindings, data_dir=data_dir, write_config=False
        )
        state, _ = exp.restore_or_init_state()
        step = exp.train_step()
        key, extras = jax.random.PRNGKey(0), exp.extras()
        with exp.ray_batches() as batches:
            batch = exp.shard(next(batches))
            sharded = [exp.shard(next(batches)) for _ in range(steps)]
        flops = compiled_flops(step, state, batch, key, extras)
        state, stats = step(state, batch, key, extras)  # compile and warm up
        jax.block_until_ready(stats)
        start = time.perf_counter()
        for batch in sharded:
            state, stats = step(state, batch, key, extras)
        jax.block_until_ready(stats)
        seconds = (time.perf_counter() - start) / steps
        size = exp.train_config.batch_size
    return {
        "config": " + ".join(config.split(",")),
        "batch": size,
        "step_s": seconds,
        "rays_per_s": size / seconds,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / seconds / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["gin/demo.gin", "gin/paper.gin"],
        help="configurations: a gin file each, or gin files joined by commas",
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per config")
    parser.add_argument("--data_dir", default=None, help="capture (default: the demo capture)")
    parser.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="override the configs' batch size (e.g. for paper.gin on a CPU)",
    )
    args = parser.parse_args(argv)
    peak = matmul_peak_gflops()
    print(f"devices: {jax.devices()}; fp32 matmul peak measured now: {peak:.0f} GFLOP/s")
    print("| config | batch | s/step | rays/s | GFLOP/step | GFLOP/s | MFU |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for config in args.configs:
        r = measure(config, args.steps, args.data_dir, args.batch_size)
        print(
            f"| {r['config']} | {r['batch']} | {r['step_s']:.3f} | {r['rays_per_s']:.0f} | "
            f"{r['gflop_per_step']:.3g} | {r['gflops']:.1f} | {r['gflops'] / peak:.1%} |"
        )
    print(f"peak after: {matmul_peak_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
