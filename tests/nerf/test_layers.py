# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.nerf.layers against hand-computed values."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from flamenerf.nerf import layers as modules

NUM_FREQS = 6


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_anneal_weights_all_off_at_zero(alpha):
    np.testing.assert_array_equal(modules.anneal_weights(alpha, NUM_FREQS), np.zeros(NUM_FREQS))


@pytest.mark.parametrize("j", [0, 2, 5])
def test_anneal_weights_at_integer_alpha(j):
    expected = np.array([1.0] * j + [0.0] * (NUM_FREQS - j))
    np.testing.assert_allclose(modules.anneal_weights(float(j), NUM_FREQS), expected, atol=1e-7)


@pytest.mark.parametrize("j", [0, 3])
def test_anneal_weights_half_way(j):
    expected = np.array([1.0] * j + [0.5] + [0.0] * (NUM_FREQS - j - 1))
    np.testing.assert_allclose(modules.anneal_weights(j + 0.5, NUM_FREQS), expected, atol=1e-6)


@pytest.mark.parametrize("alpha", [NUM_FREQS, NUM_FREQS + 3.0])
def test_anneal_weights_all_on_at_num_freqs(alpha):
    np.testing.assert_allclose(modules.anneal_weights(alpha, NUM_FREQS), np.ones(NUM_FREQS))


def test_anneal_weights_quarter_way():
    # (1 - cos(pi / 4)) / 2 for the band being eased in.
    w = modules.anneal_weights(1.25, 3)
    np.testing.assert_allclose(w, [1.0, (1.0 - math.cos(math.pi / 4)) / 2, 0.0], atol=1e-6)


def test_posenc_one_dimensional_by_hand():
    x = 0.3
    out = modules.posenc(jnp.array([x]), 0, 3, include_identity=True)
    expected = [x]
    for deg in range(3):
        expected += [math.sin(2**deg * x), math.cos(2**deg * x)]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_posenc_layout_two_dimensional_with_min_deg():
    x0, x1 = 0.7, -1.1
    out = modules.posenc(jnp.array([[x0, x1]]), 1, 3, include_identity=False)
    expected = []
    for deg in (1, 2):
        expected += [math.sin(2**deg * x0), math.sin(2**deg * x1)]
        expected += [math.cos(2**deg * x0), math.cos(2**deg * x1)]
    assert out.shape == (1, 2 * 2 * 2)
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_posenc_shapes_and_dim_helper():
    x = jnp.zeros((4, 5, 3))
    assert modules.posenc_dim(3, 4) == 3 + 3 * 2 * 4
    chex.assert_shape(
        [modules.posenc(x, 0, 4), modules.posenc(x, 2, 4, include_identity=False)],
        [(4, 5, modules.posenc_dim(3, 4)), (4, 5, 3 * 2 * 2)],
    )


def test_posenc_rejects_reversed_degrees():
    with pytest.raises(ValueError, match="min_deg"):
        modules.posenc(jnp.zeros((1, 3)), 3, 1)


class AnnealingVariantsTest(chex.TestCase):
    """The windowed encoding with alpha a traced argument (jax.jit) and a Python number."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_annealed_posenc_windows_bands_by_hand(self):
        x = 0.4
        encode = self.variant(modules.annealed_posenc, static_argnums=1)
        out = encode(jnp.array([x]), 3, 1.5)
        # Band 0 fully on, band 1 half on, band 2 off; the identity is never windowed.
        expected = [x, math.sin(x), math.cos(x), 0.5 * math.sin(2 * x), 0.5 * math.cos(2 * x), 0, 0]
        chex.assert_shape(out, (modules.posenc_dim(1, 3),))
        np.testing.assert_allclose(out, expected, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters((0.0, [0, 0, 0]), (1.25, [1, 0.1464466, 0]), (3.0, [1, 1, 1]))
    def test_anneal_weights_ease_each_band_in(self, alpha, expected):
        # (1 - cos(pi / 4)) / 2 = 0.1464466 for the band a quarter of the way in.
        weights = self.variant(modules.anneal_weights, static_argnums=1)(alpha, 3)
        chex.assert_shape(weights, (3,))
        np.testing.assert_allclose(weights, expected, atol=1e-6)


def test_annealed_posenc_accepts_traced_alpha():
    f = jax.jit(lambda a: modules.annealed_posenc(jnp.ones((2, 3)), 4, a))
    assert f(jnp.float32(0.0)).shape == (2, 3 + 3 * 2 * 4)
    np.testing.assert_array_equal(f(jnp.float32(0.0))[:, 3:], 0.0)


def test_mlp_skip_parameter_shapes():
    mlp = modules.MLP(depth=4, width=8, skips=(2,), output_dim=3)
    params = mlp.init(jax.random.PRNGKey(0), jnp.zeros((7, 5)))["params"]
    shapes = {name: layer["kernel"].shape for name, layer in params.items()}
    assert shapes == {
        "hidden_0": (5, 8),
        "hidden_1": (8, 8),
        "hidden_2": (8 + 5, 8),
        "hidden_3": (8, 8),
        "output": (8, 3),
    }


def test_mlp_output_shapes_and_activation():
    mlp = modules.MLP(depth=2, width=16, skips=(1,), output_dim=3, output_activation=nn.sigmoid)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 5)) * 10.0
    params = mlp.init(jax.random.PRNGKey(0), x)
    y = mlp.apply(params, x)
    chex.assert_shape(y, (2, 7, 3))
    assert bool(jnp.all((y > 0.0) & (y < 1.0)))


def test_mlp_without_output_layer_returns_hidden():
    mlp = modules.MLP(depth=2, width=16)
    x = jnp.ones((4, 5))
    params = mlp.init(jax.random.PRNGKey(0), x)
    y = mlp.apply(params, x)
    chex.assert_shape(y, (4, 16))
    assert bool(jnp.all(y >= 0.0))  # relu
    assert "output" not in params["params"]


@pytest.mark.parametrize("skips", [(0,), (3,)])
def test_mlp_rejects_bad_skips(skips):
    mlp = modules.MLP(depth=3, width=4, skips=skips)
    with pytest.raises(ValueError, match="skips"):
        mlp.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))


def test_uniform_symmetric_range_and_signs():
    init = modules.uniform_symmetric(1e-4)
    w = np.asarray(init(jax.random.PRNGKey(0), (64, 64)))
    assert np.abs(w).max() <= 1e-4
    assert (w < 0).mean() > 0.4 and (w > 0).mean() > 0.4


@pytest.fixture(scope="module")
def glo():
    embed = modules.GLOEmbed(num_embeddings=10, features=4)
    variables = embed.init(jax.random.PRNGKey(0), jnp.zeros((1,), jnp.int32))
    return embed, variables


def test_glo_embed_table_shape_and_small_init(glo):
    _, variables = glo
    table = variables["params"]["embed"]["embedding"]
    assert table.shape == (10, 4)
    assert 0.0 < float(jnp.std(table)) < 0.05


@pytest.mark.parametrize(
    ("ids_shape", "out_shape"), [((5,), (5, 4)), ((5, 1), (5, 4)), ((2, 3), (2, 3, 4))]
)
def test_glo_embed_shapes(glo, ids_shape, out_shape):
    embed, variables = glo
    ids = jnp.arange(np.prod(ids_shape), dtype=jnp.int32).reshape(ids_shape) % 10
    assert embed.apply(variables, ids).shape == out_shape


def test_glo_embed_looks_up_rows(glo):
    embed, variables = glo
    table = variables["params"]["embed"]["embedding"]
    out = embed.apply(variables, jnp.array([3, 7, 3]))
    np.testing.assert_array_equal(out, table[jnp.array([3, 7, 3])])


def test_glo_embed_rejects_float_ids(glo):
    embed, variables = glo
    with pytest.raises(ValueError, match="integers"):
        embed.apply(variables, jnp.array([1.0, 2.0]))


def test_broadcast_to_samples():
    per_ray = jnp.arange(8.0).reshape(4, 2)
    out = modules.broadcast_to_samples(per_ray, 5)
    chex.assert_shape(out, (4, 5, 2))
    for s in range(5):
        np.testing.assert_array_equal(out[:, s], per_ray)
