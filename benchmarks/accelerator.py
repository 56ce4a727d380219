# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""One-shot GPU/TPU benchmark: training throughput, MFU, render time and peak memory.

    python benchmarks/accelerator.py [--configs demo.gin paper.gin gpu.gin] [--size 512]
        [--train_frames 4] [--steps 10] [--batch_size N] [--timeout 300]
    python benchmarks/accelerator.py --quick      # a CPU smoke run with tiny sizes (~1-3 min)

For each config, on a synthetic capture of `--size` px images (generated once into the cache
by `flamenerf.synthetic.generator.default_capture`, `--train_frames` training frames and one
validation frame; about 6 s a frame at 512 px): the train step's rays/s and model FLOPs
utilisation (benchmarks/throughput.py), the time to render one `--size` x `--size` frame
(benchmarks/render_speed.py's camera, the config's render chunk) and the devices' peak
memory. It prints the devices and one markdown table. Written to finish within 10 minutes on
one GPU or TPU host with the defaults.

Each config runs in its own process, so its peak memory (`device.memory_stats()`'s
`peak_bytes_in_use`, the maximum over the local devices; "n/a" where the platform keeps no
statistics, e.g. CPU) is its own, and the parent never touches the devices (a GPU process
reserves most of the memory). MFU = achieved FLOP/s / peak FLOP/s, per device: the train
step's FLOPs from XLA's cost analysis (`jax.jit(...).lower(...).compile().cost_analysis()`,
which counts one device's share of the sharded step) per second, over the float32 matmul
peak (an N x N matmul at JAX's default precision, the model's compute dtype and precision)
measured in the same process just before (`--matmul`, default 8192 on accelerators, 2048 on
CPU). Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONFIGS = ["demo.gin", "paper.gin", "gpu.gin"]
RESULT = "RESULT "  # prefix of a child process's JSON line
# --quick: tiny sizes for a smoke run on a CPU (the numbers mean nothing).
QUICK = {
    "size": 16,
    "train_frames": 4,
    "steps": 2,
    "batch_size": 64,
    "matmul": 256,
    "repeats": 1,
    "render_chunk": 256,
}


def mfu(flops_per_step: float, step_seconds: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over peak FLOP/s (NaN when unknown).

    Args:
      flops_per_step: FLOPs of one train step (per device, as XLA's cost analysis counts
        a sharded step; or all devices', with an all-devices peak).
      step_seconds: wall time of one step.
      peak_flops_per_s: the peak of the same device(s), FLOP/s.
    """
    if flops_per_step <= 0 or step_seconds <= 0 or peak_flops_per_s <= 0:
        return math.nan
    return flops_per_step / step_seconds / peak_flops_per_s


def peak_memory_bytes(devices) -> int | None:
    """The largest `peak_bytes_in_use` of the devices; None when none keeps statistics."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in devices]
    peaks = [int(p) for p in peaks if p is not None]
    return max(peaks) if peaks else None


def device_description() -> str:
    """One line: platform, device kind and count, processes, JAX and jaxlib versions."""
    import jax
    import jaxlib

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (
        f"{len(devices)} x {', '.join(kinds)} ({devices[0].platform}), "
        f"{jax.process_count()} process(es); jax {jax.__version__}, jaxlib {jaxlib.__version__}"
    )


def measure_config(args: argparse.Namespace) -> dict:
    """Runs in the child process: every figure of one config (a JSON-able dict)."""
    import jax
    import numpy as np
    import render_speed
    import throughput
    from common import matmul_peak_gflops

    from flamenerf.synthetic import generator
    from flamenerf.training import experiment

    capture = generator.default_capture(
        size=args.size, frames=args.train_frames, val=1, show_progress=False
    )
    matmul = args.matmul or (2048 if jax.default_backend() == "cpu" else 8192)
    peak = matmul_peak_gflops(matmul, args.repeats) * 1e9
    train = throughput.measure(args.child, args.steps, str(capture), args.batch_size)

    bindings = [f"TrainConfig.render_chunk = {args.render_chunk}"] if args.render_chunk else []
    with tempfile.TemporaryDirectory() as folder:
        exp = experiment.Experiment.create(
            Path(folder), [args.child], bindings, data_dir=str(capture), write_config=False
        )
        state, _ = exp.restore_or_init_state()
        grids = exp.extras().guide
        alpha = exp.warp_alpha(exp.train_config.max_steps)  # the fully annealed warp
        batch = render_speed.frame_rays(args.size, exp.model.condition_dim)
        renderer = exp.renderer
        renderer.render(state.params, batch, alpha, grids)  # compile
        times = []
        for _ in range(max(args.repeats, 1)):
            start = time.perf_counter()
            renderer.render(state.params, batch, alpha, grids)
            times.append(time.perf_counter() - start)
        chunk = renderer.chunk
        exp.close()
    return {
        "config": args.child,
        "device": device_description(),
        "batch": train["batch"],
        "step_s": train["step_s"],
        "rays_per_s": train["rays_per_s"],
        "gflop_per_step": train["gflop_per_step"],
        "peak_gflops": peak / 1e9,
        "matmul": matmul,
        "mfu": mfu(train["gflop_per_step"] * 1e9, train["step_s"], peak),
        "render_s": float(np.median(times)),
        "chunk": chunk,
        "peak_memory": peak_memory_bytes(jax.local_devices()),
    }


def format_memory(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


def table(results: list[dict], size: int) -> str:
    """The markdown table of the configs' results (a failed config keeps its error)."""
    lines = [
        f"| config | batch | s/step | rays/s | GFLOP/step/device | matmul peak GFLOP/s/device "
        f"| MFU | render {size}x{size} s/frame | peak memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['error']} |  |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| {r['config']} | {r['batch']} | {r['step_s']:.3f} | {r['rays_per_s']:.0f} | "
            f"{r['gflop_per_step']:.1f} | {r['peak_gflops']:.0f} | {r['mfu']:.1%} | "
            f"{r['render_s']:.3g} | {format_memory(r['peak_memory'])} |"
        )
    return "\n".join(lines)


def run_child(config: str, args: argparse.Namespace) -> dict:
    """Measures one config in a fresh process; {"config", "error"} when it fails."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", config]
    for name in (
        "size",
        "train_frames",
        "steps",
        "batch_size",
        "matmul",
        "repeats",
        "render_chunk",
    ):
        value = getattr(args, name)
        if value is not None:
            command += [f"--{name}", str(value)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"config": config, "error": f"timed out after {args.timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"{config}: failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
    return {"config": config, "error": f"failed: {last[:120]}"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=DEFAULT_CONFIGS,
        help="gin files or packaged config names (default: %(default)s)",
    )
    parser.add_argument("--size", type=int, default=512, help="image side, px (default 512)")
    parser.add_argument(
        "--train_frames", type=int, default=4, help="training frames of the capture (default 4)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed train steps (default 10)")
    parser.add_argument(
        "--batch_size", type=int, default=None, help="override every config's batch size"
    )
    parser.add_argument(
        "--matmul", type=int, default=None, help="matmul side for the peak (8192; CPU 2048)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed matmuls and frames (default 3)"
    )
    parser.add_argument(
        "--render_chunk", type=int, default=None, help="override the configs' render chunk"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per config (default 300)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        with contextlib.redirect_stdout(sys.stderr):  # progress and library prints
            result = measure_config(args)
        print(RESULT + json.dumps(result), flush=True)
        return 0
    start = time.perf_counter()
    results = []
    for config in args.configs:
        results.append(run_child(config, args))
        print(f"{config}: done ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr)
    devices = next((r["device"] for r in results if "device" in r), "unknown (every run failed)")
    print(f"devices: {devices}")
    print(
        f"capture: synthetic, {args.size}x{args.size} px, {args.train_frames} training frames; "
        f"{args.steps} timed steps per config; total {time.perf_counter() - start:.0f} s"
    )
    print(table(results, args.size))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
