# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluating a per-sample function on the samples that need it only, with static shapes.

The learned warp confined to the head region (`WarpConfig.region = "head"`) changes only the
samples inside the region and its fade: on the demo capture about 13% of the coarse and 29%
of the fine samples of a training batch. Evaluating its MLP on every sample spends most of
it on points whose result is multiplied by zero.

The samples (N rays x S samples) are split into B blocks of consecutive rays (`num_blocks`);
each block keeps the indices of its first K = ceil(capacity * N S / B) selected samples
(`select`, padded with a slot past the block's end), the function runs on the (B, K)
gathered samples (`gather`), and the results go back to their places (`scatter`), every other
sample keeping its input. Blocks of rays keep the work where the rays are: with the batch
split over devices along the ray axis, each device compacts its own rays. A block with more
than K selected samples overflows (`select` says so); the caller then evaluates everything,
so the result never depends on the capacity (`FlameNerf.warp_points` does this with a
conditional, which runs one branch only).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

MAX_BLOCKS = 32  # blocks per batch at most: B = gcd(N, MAX_BLOCKS) (a power of two)


def num_blocks(rays: int) -> int:
    """B: the blocks of consecutive rays that N rays are split into, gcd(N, MAX_BLOCKS).

    A power of two, so any power-of-two device count up to MAX_BLOCKS that divides N divides
    B too (each device holds whole blocks)."""
    return math.gcd(rays, MAX_BLOCKS)


def block_capacity(rays: int, samples: int, capacity: float) -> int:
    """K: samples evaluated per block, ceil(capacity * N S / B), at least 1."""
    per_block = rays * samples // num_blocks(rays)
    return max(1, min(per_block, math.ceil(capacity * per_block)))


def select(mask: Array, capacity: float) -> tuple[Array, Array]:
    """The selected samples of each block, and whether any block has more than fit.

    Args:
      mask: bool (N, S), the samples to evaluate.
      capacity: the share of each block's samples that fit (K = `block_capacity`).

    Returns:
      index: int32 (B, K), each block's selected samples in order (positions within the
        block's N S / B samples, ray-major), padded with N S / B (one past the end);
      overflow: bool (), some block has more than K selected samples.
    """
    rays, samples = mask.shape
    blocks = num_blocks(rays)
    size = rays * samples // blocks
    k = block_capacity(rays, samples, capacity)
    flat = mask.reshape(blocks, size)
    index = jax.vmap(lambda m: jnp.nonzero(m, size=k, fill_value=size)[0])(flat)
    overflow = jnp.any(jnp.sum(flat, axis=-1) > k)
    return index.astype(jnp.int32), overflow


def gather(values: Array, index: Array) -> Array:
    """(N, S, C) values -> (B, K, C) the selected ones (zeros at the padding)."""
    rays, samples, channels = values.shape
    blocks = index.shape[0]
    flat = values.reshape(blocks, rays * samples // blocks, channels)
    padded = jnp.concatenate([flat, jnp.zeros_like(flat[:, :1])], axis=1)
    return jnp.take_along_axis(padded, index[..., None], axis=1)


def scatter(base: Array, index: Array, updates: Array) -> Array:
    """(N, S, C) `base` with the selected samples replaced by (B, K, C) `updates`.

    The padding's updates land in a slot past each block's end that is dropped, so they
    change nothing and receive no gradient."""
    rays, samples, channels = base.shape
    blocks = index.shape[0]
    size = rays * samples // blocks
    flat = base.reshape(blocks, size, channels)
    padded = jnp.concatenate([flat, jnp.zeros_like(flat[:, :1])], axis=1)
    out = jax.vmap(lambda b, i, u: b.at[i].set(u))(padded, index, updates)
    return out[:, :size].reshape(rays, samples, channels)
