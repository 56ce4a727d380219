# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering speed: milliseconds per frame at 64x64 and 128x128, against the matmul peak.

    python benchmarks/render_speed.py --base_folder EXP            # a trained experiment
    python benchmarks/render_speed.py --gin_configs gin/demo.gin   # a freshly initialised model
    python benchmarks/render_speed.py --base_folder EXP --gin_bindings \
        'ModelConfig.num_coarse_samples = 32'    # the trained model with other samples per ray

Frames are rendered with `evaluation.renderer.Renderer` (chunks sharded over every device) from a
camera looking at the origin; the first frame of each size (compilation) is not timed. The
same run measures the fp32 matmul peak of the devices (a jitted N x N matmul) and prints the
ratio of the renderer's achieved FLOP rate (XLA's cost analysis of one chunk) to that peak.
Run it on an otherwise idle machine; `--sizes 16 --repeats 1 --matmul 256` is a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import compiled_flops, matmul_peak_gflops

from flamenerf import cli_args, configs, sharding
from flamenerf.datasets import rays
from flamenerf.evaluation import renderer as evaluation
from flamenerf.geometry import camera as camera_lib
from flamenerf.nerf.model import dummy_grids, init_params, make_model
from flamenerf.training import experiment


def fresh_model(gin_configs: list[str], gin_bindings: list[str], condition_dim: int):
    """A model built from gin files, freshly initialised (no capture needed)."""
    experiment.parse_gin(gin_configs, gin_bindings)
    expression = configs.ExpressionConfig()
    spread = (1.0,) * condition_dim if expression.noise_scale == "spread" else None
    model = make_model(
        configs.ModelConfig(),
        configs.WarpConfig(),
        expression,
        num_codes=1,
        condition_dim=condition_dim,
        near=0.2,
        far=2.0,
        use_guide=configs.GuideConfig().enabled,
        condition_spread=spread,  # no capture: every component's spread 1 (noise is off here)
    )
    params = jax.jit(lambda key: init_params(model, key))(jax.random.PRNGKey(0))
    chunk = configs.TrainConfig().render_chunk
    return model, params, chunk, 0.0


def frame_rays(size: int, condition_dim: int) -> rays.RayBatch:
    """size x size rays of a camera at (0, 0, 1) looking at the origin; half inside the face."""
    camera = camera_lib.look_at(
        np.array([0.0, 0.0, 1.0]),
        np.zeros(3),
        np.array([0.0, 1.0, 0.0]),
        focal_length=1.2 * size,
        image_size=(size, size),
    )
    inside = np.zeros((size, size), bool)
    inside[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    return rays.camera_rays(
        camera,
        frame=0,
        warp_id=0,
        appearance_id=0,
        condition=np.full(condition_dim, 0.1, np.float32),
        inside=inside,
    )


def chunk_flops(model, params, chunk: int, condition_dim: int, grids) -> float | None:
    """XLA's FLOP count of rendering one chunk of rays (None when unavailable)."""
    batch = frame_rays(int(np.ceil(np.sqrt(chunk))), condition_dim)
    batch = rays.RayBatch(*[f[:chunk] for f in batch])
    fn = jax.jit(
        lambda p, r, g: model.apply({"params": p}, r, jnp.float32(0.0), False, g)["fine"]["rgb"]
    )
    flops = compiled_flops(fn, params, batch, grids)
    return flops if flops > 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    cli_args.add_base_folder(source, local=True, required=False)  # the latest checkpoint
    source.add_argument("--gin_configs", nargs="+", help="gin files of a fresh model")
    parser.add_argument(
        "--gin_bindings",
        nargs="*",
        default=[],
        help="extra gin bindings (with --base_folder: after its config, e.g. samples per ray)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="frame sides")
    parser.add_argument("--repeats", type=int, default=3, help="timed frames per size")
    parser.add_argument("--matmul", type=int, default=2048, help="matmul size for the peak")
    parser.add_argument("--chunk", type=int, default=None, help="rays per chunk override")
    parser.add_argument(
        "--condition_dim", type=int, default=13, help="conditioning size (fresh model)"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        return run(args, stack)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    """Measures and prints; a restored experiment stays open (in `stack`) while it renders."""
    try:
        if args.base_folder:
            restore = experiment.Experiment.restore(
                args.base_folder, chunk=args.chunk, bindings=args.gin_bindings
            )
            exp, state, step, _ = stack.enter_context(restore)
            model, params, chunk = exp.model, state.params, exp.renderer.chunk
            grids = exp.extras().guide
            alpha, condition_dim, mesh = exp.warp_alpha(step), exp.model.condition_dim, exp.mesh
        else:
            model, params, chunk, alpha = fresh_model(
                args.gin_configs, args.gin_bindings, args.condition_dim
            )
            chunk = args.chunk or chunk
            condition_dim, mesh = args.condition_dim, sharding.make_mesh()
            needs = model.use_guide or model.expression.spatial_prior == "mesh"
            grids = dummy_grids(rigid=model.model.pose_shading) if needs else None
    except (experiment.UserError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    renderer = evaluation.Renderer(model, mesh, chunk)
    params = jax.device_put(params, sharding.replicated(mesh))
    print(f"devices: {mesh.devices.size} x {jax.devices()[0].platform}, chunk {renderer.chunk}")

    peak = matmul_peak_gflops(args.matmul, max(args.repeats, 1)) * 1e9
    flops = chunk_flops(model, params, renderer.chunk, condition_dim, grids)
    peak_all = peak * mesh.devices.size
    print(f"fp32 matmul peak ({args.matmul}^2): {peak / 1e9:.1f} GFLOP/s per device")
    for size in args.sizes:
        batch = frame_rays(size, condition_dim)
        renderer.render(params, batch, alpha, grids)  # compile
        times = []
        for _ in range(max(args.repeats, 1)):
            start = time.perf_counter()
            renderer.render(params, batch, alpha, grids)
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        line = f"{size}x{size}: {1000 * seconds:.1f} ms/frame ({size * size / seconds:.0f} rays/s)"
        if flops is not None:
            chunks = -(-size * size // renderer.chunk)
            rate = flops * chunks / seconds
            line += f", {rate / 1e9:.1f} GFLOP/s = {rate / peak_all:.1%} of the matmul peak"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
