# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluating a per-sample function on the selected samples only (nerf/compaction.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flamenerf.nerf import compaction


def test_blocks_divide_the_rays_and_any_power_of_two_device_count():
    assert compaction.num_blocks(2048) == compaction.MAX_BLOCKS
    assert compaction.num_blocks(4096) % 4 == 0 and compaction.num_blocks(24) == 8
    assert compaction.num_blocks(7) == 1
    assert compaction.block_capacity(64, 10, 0.25) == 5  # 2 rays of 10 samples per block
    assert compaction.block_capacity(64, 10, 0.0) == 1
    assert compaction.block_capacity(64, 10, 1.0) == 20


def test_select_gather_scatter_against_a_loop():
    rng = np.random.default_rng(0)
    rays, samples = 64, 10  # 32 blocks of 2 rays, 20 samples each
    mask = rng.uniform(size=(rays, samples)) < 0.3
    mask[:2] = True  # block 0 is full: it overflows a capacity of 0.5
    values = rng.normal(size=(rays, samples, 3)).astype(np.float32)
    index, overflow = compaction.select(jnp.asarray(mask), 0.5)
    assert bool(overflow) and index.shape == (32, 10)
    _, fits = compaction.select(jnp.asarray(mask[2:]), 1.0)  # 62 rays: 2 blocks of 31 rays
    assert not bool(fits)
    gathered = np.asarray(compaction.gather(jnp.asarray(values), index))
    out = np.asarray(compaction.scatter(jnp.asarray(values), index, jnp.asarray(gathered + 1)))
    expected = values.copy()
    for block in range(32):
        rows = slice(2 * block, 2 * block + 2)
        chosen = np.flatnonzero(mask[rows].reshape(-1))[:10]  # the first K, ray-major
        flat = values[rows].reshape(-1, 3)
        np.testing.assert_array_equal(index[block, : len(chosen)], chosen)
        assert np.all(np.asarray(index[block, len(chosen) :]) == 20)  # padding: past the end
        np.testing.assert_array_equal(gathered[block, : len(chosen)], flat[chosen])
        np.testing.assert_array_equal(gathered[block, len(chosen) :], 0.0)
        block_out = expected[rows].reshape(-1, 3)
        block_out[chosen] += 1
        expected[rows] = block_out.reshape(2, samples, 3)
    np.testing.assert_array_equal(out, expected)


def test_gradients_reach_the_selected_samples_once_and_the_padding_never():
    rays, samples = 32, 4
    mask = np.zeros((rays, samples), bool)
    mask[::3, 1] = True
    values = jnp.asarray(np.random.default_rng(1).normal(size=(rays, samples, 3)), jnp.float32)
    index, overflow = compaction.select(jnp.asarray(mask), 0.75)
    assert not bool(overflow)

    def loss(v):
        moved = compaction.scatter(v, index, 2.0 * compaction.gather(v, index))
        return jnp.sum(moved**2)

    grad = np.asarray(jax.grad(loss)(values))
    # d/dv of (2v)^2 = 8 v at the selected samples; 2 v elsewhere.
    expected = np.where(mask[..., None], 8.0, 2.0) * np.asarray(values)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize("capacity", [0.0, 1.0])
def test_capacity_bounds_are_valid(capacity):
    index, overflow = compaction.select(jnp.ones((8, 4), bool), capacity)
    assert index.shape[1] == compaction.block_capacity(8, 4, capacity)
    assert bool(overflow) == (capacity < 1.0)
