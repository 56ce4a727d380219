# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The data-parallel train step (the loss and its terms: `losses`).

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

from flamenerf import schedules, sharding
from flamenerf.configs import LossConfig, TrainConfig
from flamenerf.datasets.rays import RayBatch
from flamenerf.nerf.model import FlameNerf
from flamenerf.training.losses import TrainExtras, compute_loss

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


def train_step(
    state: TrainState,
    rays: RayBatch,
    key: Array,
    extras: TrainExtras,
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

    The returned function takes (state, rays, key, extras): the state, the `RayBatch` of
    `sharding.shard_batch`, the PRNG key and the `TrainExtras`; it donates the state.
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
