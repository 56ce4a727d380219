# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Losses and the data-parallel train step.

The train step is written once, for the global batch, and compiled with `jax.jit` over a
device mesh: the batch is sharded along the mesh's "data" axis and the parameters and
optimiser state are replicated. XLA inserts the gradient all-reduce, so this is `pmap`'s
data parallelism (which current JAX implements the same way) on one device, many, or a
multi-host pod slice alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from flamenerf import sharding
from flamenerf.configs import LossConfig, TrainConfig
from flamenerf.evaluation import metrics
from flamenerf.nerf import grid
from flamenerf.nerf.model import FlameNerf
from flamenerf.training import schedules

Array = jax.Array


@flax.struct.dataclass
class TrainState:
    """Everything a checkpoint holds: the step, the parameters and Adam's state."""

    step: Array
    params: Any
    opt_state: Any


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam with the configured learning-rate schedule (and optional global-norm clipping)."""
    lr = schedules.as_schedule(config.lr_schedule).to_optax()
    parts = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip > 0 else []
    return optax.chain(*parts, optax.adam(lr, eps=config.adam_eps))


def create_state(params: Any, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params)
    )


# --------------------------------------------------------------------------------------------
# Losses.


def geman_mcclure(x2: Array, scale: float) -> Array:
    """Geman-McClure robust loss of squared residuals x2: 2 x2/s^2 / (x2/s^2 + 4)."""
    x2 = x2 / scale**2
    return 2.0 * x2 / (x2 + 4.0)


def elastic_loss(jacobians: Array, scale: float) -> Array:
    """Nerfies' elastic energy: robust norm of the log singular values of the warp Jacobians.

    Args:
      jacobians: (N, 3, 3).

    Returns:
      (N,) losses; zero for rigid local deformations.
    """
    singular = jnp.linalg.svd(jacobians, compute_uv=False)
    log_sv = jnp.log(jnp.maximum(singular, 1e-6))
    return geman_mcclure(jnp.sum(log_sv**2, axis=-1), scale)


def background_loss(warped: Array, points: Array, inside: Array) -> Array:
    """Mean L1 displacement of points on rays outside the FLAME silhouette.

    Args:
      warped, points: (N, 3) warped and original sample points; inside: (N,) silhouette bits.

    Returns:
      Scalar; 0 when every ray is inside.
    """
    outside = 1.0 - inside
    moved = jnp.sum(jnp.abs(warped - points), axis=-1)
    return jnp.sum(outside * moved) / jnp.maximum(jnp.sum(outside), 1.0)


def triplane_tv(params: Any) -> Array:
    """Mean squared difference of neighbouring texels over every tri-plane parameter."""
    leaves = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if "planes_" in jax.tree_util.keystr(path)
    ]
    if not leaves:
        return jnp.zeros(())
    return sum(grid.total_variation(leaf) for leaf in leaves) / len(leaves)


def compute_loss(
    params: Any,
    rays: dict[str, Array],
    key: Array,
    step: Array,
    *,
    model: FlameNerf,
    loss_config: LossConfig,
    warp_alpha: Callable[[Array], Array],
    extras: dict[str, Any],
) -> tuple[Array, dict[str, Array]]:
    """The training loss of one batch and its components.

    Args:
      params: model parameters.
      rays: RayBatch fields; origins (N, 3), rgb (N, 3), frame (N,), ...
      key: PRNG key of this step.
      step: the training step (schedules).
      model: the model.
      loss_config: weights.
      warp_alpha: schedule of the warp annealing parameter.
      extras: per-capture arrays, replicated: "vertices" (F, V, 3) FLAME vertices of every
        frame where the learned warp sees them (normalised), for the FLAME warp penalty, or
        None; "vertex_targets" (F, V, 3) where the warp should take them (the canonical
        positions, when the FLAME guide already moved them), or None: where they are;
        "guide" the frames' `guide.GuideGrids`, or None.
    """
    flame_vertices, grids = extras.get("vertices"), extras.get("guide")
    k_sampling, k_condition, k_vertices = jax.random.split(key, 3)
    alpha = warp_alpha(step)
    outputs = model.apply(
        {"params": params},
        rays,
        alpha,
        True,
        grids,
        rngs={"sampling": k_sampling, "condition": k_condition},
    )
    stats = {}
    loss = jnp.zeros(())
    for level, weight in (("coarse", loss_config.coarse_weight), ("fine", loss_config.fine_weight)):
        mse = jnp.mean((outputs[level]["rgb"] - rays["rgb"]) ** 2)
        stats[f"mse_{level}"] = mse
        loss = loss + weight * mse
    stats["psnr"] = metrics.mse_to_psnr(stats["mse_fine"])

    warps = model.warp.warp_type != "none"
    flame_weight = schedules.as_schedule(loss_config.flame_warp_weight)(step)
    if warps and flame_vertices is not None:
        # Random FLAME vertices of the frames of random rays, warped with those frames' codes.
        n = loss_config.flame_warp_vertices
        k_rays, k_verts = jax.random.split(k_vertices)
        rows = jax.random.randint(k_rays, (n,), 0, rays["frame"].shape[0])
        verts = jax.random.randint(k_verts, (n,), 0, flame_vertices.shape[1])
        points = flame_vertices[rays["frame"][rows], verts]
        targets = extras.get("vertex_targets")
        target = points if targets is None else targets[rays["frame"][rows], verts]
        warped = model.apply(
            {"params": params}, points, rays["warp_id"][rows], alpha, method=FlameNerf.warp_points
        )
        # Only what the FLAME guide leaves unexplained: zero when the warp is the identity
        # and the guide took every vertex exactly to its canonical position.
        stats["flame_warp"] = jnp.mean(jnp.sum(jnp.abs(warped - target), axis=-1))
        loss = loss + flame_weight * stats["flame_warp"]

    # One random coarse sample per ray, for the warp regularisers: where the learned warp
    # sees it (after the FLAME guide, when on), so they regularise the warp the model applies.
    points = outputs["coarse"]["warp_inputs"]
    pick = jax.random.randint(k_vertices, (points.shape[0],), 0, points.shape[1])
    sample = points[jnp.arange(points.shape[0]), pick]
    elastic_weight = schedules.as_schedule(loss_config.elastic_weight)(step)
    if warps and _nonzero(loss_config.elastic_weight):
        jac = model.apply(
            {"params": params}, sample, rays["warp_id"], alpha, method=FlameNerf.warp_jacobian
        )
        stats["elastic"] = jnp.mean(elastic_loss(jac, loss_config.elastic_scale))
        loss = loss + elastic_weight * stats["elastic"]

    if warps and loss_config.background_weight > 0:
        stats["background"] = background_loss(
            model.apply(
                {"params": params}, sample, rays["warp_id"], alpha, method=FlameNerf.warp_points
            ),
            sample,
            rays["inside"],
        )
        loss = loss + loss_config.background_weight * stats["background"]

    if loss_config.triplane_tv_weight > 0:
        stats["triplane_tv"] = triplane_tv(params)
        loss = loss + loss_config.triplane_tv_weight * stats["triplane_tv"]
    stats["loss"] = loss
    stats["warp_alpha"] = alpha
    return loss, stats


def _nonzero(weight: schedules.Schedule | float) -> bool:
    return not (isinstance(weight, (int, float)) and weight == 0)


def train_step(
    state: TrainState,
    rays: dict[str, Array],
    key: Array,
    extras: dict[str, Any],
    *,
    model: FlameNerf,
    optimizer: optax.GradientTransformation,
    loss_config: LossConfig,
    train_config: TrainConfig,
) -> tuple[TrainState, dict[str, Array]]:
    """One optimisation step on the global batch (compile with `make_train_step`)."""
    step_key = jax.random.fold_in(key, state.step)
    warp_alpha = schedules.as_schedule(train_config.warp_alpha_schedule)
    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
    (_, stats), grads = grad_fn(
        state.params,
        rays,
        step_key,
        state.step,
        model=model,
        loss_config=loss_config,
        warp_alpha=warp_alpha,
        extras=extras,
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    stats["lr"] = schedules.as_schedule(train_config.lr_schedule)(state.step)
    stats["grad_norm"] = optax.tree.norm(grads)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), stats


def make_train_step(
    mesh: Mesh,
    model: FlameNerf,
    optimizer: optax.GradientTransformation,
    loss_config: LossConfig,
    train_config: TrainConfig,
) -> Callable[..., tuple[TrainState, dict[str, Array]]]:
    """`train_step` compiled over `mesh`: batch sharded on "data", everything else replicated.

    The returned function takes (state, rays, key, extras) and donates the state.
    """
    step = functools.partial(
        train_step,
        model=model,
        optimizer=optimizer,
        loss_config=loss_config,
        train_config=train_config,
    )
    rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    return jax.jit(
        step,
        in_shardings=(rep, data, rep, rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
