# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of the tri-plane encoding (vertices, scipy interpolation, gradient locality) and
the scene contraction."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from flamenerf.nerf import grid

RESOLUTIONS = (5, 9)
FEATURES = 3


def _vertex(i, res):
    return -1.0 + 2.0 * i / (res - 1)


@pytest.fixture(scope="module")
def encoding():
    module = grid.TriPlaneEncoding(resolutions=RESOLUTIONS, features=FEATURES)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    return module, variables, jax.jit(module.apply)


def _random_plane(res=5, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(res, res, FEATURES)), jnp.float32)


def test_interpolate_plane_at_every_vertex():
    res = 5
    plane = _random_plane(res)
    ii, jj = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    uv = np.stack([_vertex(ii.ravel(), res), _vertex(jj.ravel(), res)], axis=-1)
    out = grid.interpolate_plane(plane, jnp.asarray(uv, jnp.float32))
    np.testing.assert_allclose(out, np.asarray(plane)[ii.ravel(), jj.ravel()], atol=1e-5)


class GridVariantsTest(chex.TestCase):
    """Interpolation and contraction, traced by jax.jit and run op by op (chex variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_interpolate_plane_matches_scipy_bilinear(self):
        res = 5
        plane = _random_plane(res, seed=1)
        uv = np.random.default_rng(2).uniform(-1.0, 1.0, size=(50, 2))
        axis = np.linspace(-1.0, 1.0, res)
        expected = RegularGridInterpolator((axis, axis), np.asarray(plane), method="linear")(uv)
        out = self.variant(grid.interpolate_plane)(plane, jnp.asarray(uv, jnp.float32))
        chex.assert_shape(out, (50, FEATURES))
        chex.assert_trees_all_close(out, expected, atol=1e-5, rtol=0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_contract_maps_far_points_into_the_box(self):
        rng = np.random.default_rng(1)
        dirs = rng.normal(size=(20, 3))
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        far = dirs * np.logspace(0.1, 8, 20)[:, None]
        out = np.asarray(self.variant(grid.contract)(jnp.asarray(far, jnp.float32)))
        assert np.all(np.abs(out) <= 1.0) and np.all(np.linalg.norm(out, axis=-1) < 1.0 + 1e-6)
        # mip-NeRF 360: radius (2 - 1/|x|) / 2 along the same direction.
        radius = (2.0 - 1.0 / np.linalg.norm(far, axis=-1)) / 2.0
        np.testing.assert_allclose(out, dirs * radius[:, None], atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_triplane_features_are_the_product_of_the_three_planes(self):
        planes = jnp.stack([_random_plane(5, seed=s) for s in (3, 4, 5)])
        points = np.random.default_rng(6).uniform(-1.0, 1.0, size=(7, 3))
        out = self.variant(grid.triplane_features)(planes, jnp.asarray(points, jnp.float32))
        axis = np.linspace(-1.0, 1.0, 5)
        expected = np.ones((7, FEATURES))
        for plane, axes in zip(np.asarray(planes), grid.PLANE_AXES, strict=True):
            interpolate = RegularGridInterpolator((axis, axis), plane, method="linear")
            expected *= interpolate(points[:, list(axes)])
        chex.assert_shape(out, (7, FEATURES))
        chex.assert_trees_all_close(out, expected, atol=1e-5, rtol=0.0)


def test_triplane_features_reject_points_of_the_wrong_size():
    planes = jnp.zeros((3, 5, 5, FEATURES))
    with pytest.raises(AssertionError, match=r"points"):
        grid.triplane_features(planes, jnp.zeros((4, 2)))
    with pytest.raises(AssertionError, match=r"planes"):
        grid.triplane_features(planes[:2], jnp.zeros((4, 3)))


def test_interpolate_plane_clamps_outside_points():
    plane = _random_plane()
    out = grid.interpolate_plane(plane, jnp.array([[-3.0, 5.0]]))
    np.testing.assert_allclose(out, np.asarray(plane)[0:1, -1], atol=1e-6)


def test_encoding_parameters_and_initial_range(encoding):
    _, variables, _ = encoding
    params = variables["params"]
    assert set(params) == {f"planes_{r}" for r in RESOLUTIONS}
    for r in RESOLUTIONS:
        p = params[f"planes_{r}"]
        assert p.shape == (3, r, r, FEATURES)
        assert float(p.min()) >= 0.1 and float(p.max()) <= 0.5


def test_encoding_at_a_shared_vertex_is_product_of_plane_vertices(encoding):
    _, variables, apply = encoding
    # Vertex (1, 3, 4) of the 5-grid is vertex (2, 6, 8) of the 9-grid (align corners).
    idx5 = (1, 3, 4)
    point = jnp.array([[_vertex(i, 5) for i in idx5]], jnp.float32)
    out = np.asarray(apply(variables, point))
    chex.assert_shape(out, (1, len(RESOLUTIONS) * FEATURES))
    expected = []
    for r in RESOLUTIONS:
        p = np.asarray(variables["params"][f"planes_{r}"])
        ix, iy, iz = (i * (r - 1) // 4 for i in idx5)
        expected.append(p[0, ix, iy] * p[1, ix, iz] * p[2, iy, iz])  # xy, xz, yz
    np.testing.assert_allclose(out[0], np.concatenate(expected), rtol=1e-5)


def test_encoding_keeps_leading_dims(encoding):
    _, variables, apply = encoding
    chex.assert_shape(apply(variables, jnp.zeros((2, 4, 3))), (2, 4, len(RESOLUTIONS) * FEATURES))


def test_gradient_reaches_only_the_four_surrounding_texels(encoding):
    module, variables, _ = encoding
    point = np.array([0.13, -0.42, 0.77])

    def total(params):
        return jnp.sum(module.apply({"params": params}, jnp.asarray(point[None], jnp.float32)))

    grads = jax.grad(total)(variables["params"])
    for r in RESOLUTIONS:
        g = np.abs(np.asarray(grads[f"planes_{r}"])).sum(axis=-1)  # (3, r, r)
        lower = np.floor((point + 1.0) / 2.0 * (r - 1)).astype(int)
        for k, (a, b) in enumerate(grid.PLANE_AXES):
            expected = np.zeros((r, r), bool)
            expected[lower[a] : lower[a] + 2, lower[b] : lower[b] + 2] = True
            np.testing.assert_array_equal(g[k] > 0, expected)


def test_encoding_rejects_duplicate_resolutions():
    module = grid.TriPlaneEncoding(resolutions=(8, 8))
    with pytest.raises(ValueError, match="resolutions"):
        module.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))


def test_total_variation_of_a_ramp():
    i, j = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    plane = np.stack([0.3 * i - 0.2 * j] * 2, axis=-1)
    np.testing.assert_allclose(grid.total_variation(jnp.asarray(plane)), 0.3**2 + 0.2**2, rtol=1e-5)


def test_contract_is_linear_inside_the_inner_ball():
    pts = np.random.default_rng(0).uniform(-0.57, 0.57, size=(20, 3))  # |x| < 1
    np.testing.assert_allclose(grid.contract(jnp.asarray(pts)), pts / 2, atol=1e-6)
    inner = pts * 0.5  # |x| < 0.5
    np.testing.assert_allclose(
        grid.contract(jnp.asarray(inner), inner_radius=0.5), inner, atol=1e-6
    )


def test_contract_is_continuous_at_the_unit_sphere():
    u = np.array([0.6, 0.0, -0.8])
    inside = grid.contract(jnp.asarray(u * (1.0 - 1e-4), jnp.float32))
    outside = grid.contract(jnp.asarray(u * (1.0 + 1e-4), jnp.float32))
    np.testing.assert_allclose(inside, u / 2, atol=1e-4)
    np.testing.assert_allclose(outside, u / 2, atol=1e-4)


def test_contract_gradient_is_finite_everywhere():
    jac0 = jax.jacfwd(grid.contract)(jnp.zeros(3))
    np.testing.assert_allclose(jac0, np.eye(3) / 2, atol=1e-7)
    chex.assert_tree_all_finite(jax.jacrev(grid.contract)(jnp.array([30.0, -4.0, 1.0])))
