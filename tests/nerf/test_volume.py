# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of ray sampling, inverse-CDF resampling and volume rendering against analytic values."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from flamenerf.nerf import grid
from flamenerf.nerf import volume as rendering

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def render():
    return jax.jit(
        rendering.volumetric_rendering,
        static_argnames=("last_delta", "normalize_depth"),
    )


@pytest.fixture(scope="module")
def sample_pdf():
    return jax.jit(rendering.sample_pdf, static_argnames=("num_samples", "randomized"))


def _rays(n):
    origins = jnp.zeros((n, 3))
    directions = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (n, 1))
    return origins, directions


# ---------------------------------------------------------------- sample_along_rays


def test_stratified_samples_stay_in_their_strata():
    origins, directions = _rays(64)
    z, _ = rendering.sample_along_rays(KEY, origins, directions, 5, 1.0, 3.0, True)
    edges = np.array([1.0, 1.25, 1.75, 2.25, 2.75, 3.0])  # midpoints between 1, 1.5, ..., 3
    z = np.asarray(z)
    assert np.all(z >= edges[:-1] - 1e-6) and np.all(z <= edges[1:] + 1e-6)
    assert np.all(np.diff(z, axis=-1) >= 0)
    assert np.std(z[:, 2]) > 0.05  # actually random


class SamplingVariantsTest(chex.TestCase):
    """Deterministic sampling, traced by jax.jit and run op by op (chex variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_deterministic_samples_are_evenly_spaced(self):
        origins, directions = _rays(2)
        origins = origins.at[1].set(jnp.array([1.0, 2.0, 3.0]))
        sample = self.variant(rendering.sample_along_rays, static_argnums=(3, 6))
        z, pts = sample(KEY, origins, directions, 5, 1.0, 3.0, False)
        chex.assert_shape([z, pts], [(2, 5), (2, 5, 3)])
        np.testing.assert_allclose(z, [[1.0, 1.5, 2.0, 2.5, 3.0]] * 2, atol=1e-6)
        expected = 3.0 + np.array([1.0, 1.5, 2.0, 2.5, 3.0])
        np.testing.assert_allclose(pts[1, :, 2], expected, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_linear_disparity_and_per_ray_bounds(self):
        origins, directions = _rays(2)
        near, far = jnp.array([1.0, 2.0]), jnp.array([4.0, 8.0])
        sample = self.variant(rendering.sample_along_rays, static_argnums=(3, 6, 7))
        z, _ = sample(KEY, origins, directions, 4, near, far, False, "disparity")
        for r, (n, f) in enumerate([(1.0, 4.0), (2.0, 8.0)]):
            expected = np.linspace(1 / n, 1 / f, 4)
            np.testing.assert_allclose(1.0 / np.asarray(z[r]), expected, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_contracted_samples_inside_the_ball_are_linear(self):
        # A ray wholly inside the contraction's inner ball: contracted distance is depth / 2,
        # so "contracted" equals "linear" there (per-ray bounds too).
        origins, directions = _rays(2)
        origins = origins.at[1].set(jnp.array([0.1, 0.0, -0.5]))
        near, far = jnp.array([0.0, 0.1]), jnp.array([0.9, 0.8])
        sample = self.variant(rendering.sample_along_rays, static_argnums=(3, 6, 7))
        z, pts = sample(KEY, origins, directions, 5, near, far, False, "contracted")
        chex.assert_shape([z, pts], [(2, 5), (2, 5, 3)])
        np.testing.assert_allclose(z[0], np.linspace(0.0, 0.9, 5), atol=1e-5)
        np.testing.assert_allclose(z[1], np.linspace(0.1, 0.8, 5), atol=1e-5)


def test_linear_is_the_default_and_unknown_spacings_fail():
    origins, directions = _rays(4)
    for randomized in (False, True):
        default = rendering.sample_along_rays(KEY, origins, directions, 6, 1.0, 3.0, randomized)
        linear = rendering.sample_along_rays(
            KEY, origins, directions, 6, 1.0, 3.0, randomized, "linear"
        )
        np.testing.assert_array_equal(default[0], linear[0])
    with pytest.raises(ValueError, match=r"spacing must be one of .*'contracted'.*got 'lindisp'"):
        rendering.sample_along_rays(KEY, origins, directions, 6, 1.0, 3.0, False, "lindisp")


# ------------------------------------------------------- "contracted" spacing (grid.contract)


def _camera_rays(n, seed, miss=False):
    """Rays like the demo's: cameras 1.8-2.1 units from the centre (outside the contraction's
    unit ball) looking at points within 0.6 of it, or (`miss`) rays passing the centre at
    1.2-3 units (never entering the ball). Unit directions; float32."""
    rng = np.random.default_rng(seed)
    origins = rng.normal(size=(n, 3))
    origins *= rng.uniform(1.8, 2.1, (n, 1)) / np.linalg.norm(origins, axis=1, keepdims=True)
    if miss:
        side = np.cross(origins, rng.normal(size=(n, 3)))
        side /= np.linalg.norm(side, axis=1, keepdims=True)
        targets = side * rng.uniform(1.2, 3.0, (n, 1))
    else:
        targets = rng.normal(size=(n, 3)) * 0.3
    directions = targets - origins
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return jnp.asarray(origins, jnp.float32), jnp.asarray(directions, jnp.float32)


def _contracted_spacings(origins, directions, z):
    """Distances between consecutive samples' contracted points (grid.contract): (N, S - 1)."""
    points = (
        np.asarray(origins)[:, None] + np.asarray(z)[..., None] * np.asarray(directions)[:, None]
    )
    contracted = np.asarray(grid.contract(jnp.asarray(points)), np.float64)
    return np.linalg.norm(np.diff(contracted, axis=1), axis=-1)


def _reference_distance(origins, directions, near, far, z, pieces=20_000):
    """Contracted distance from near of depths z (N, M): a dense numpy polyline of the
    contraction written out here (mip-NeRF 360's, halved), independent of volume.py."""
    out = []
    for o, d, n, f, zr in zip(
        np.asarray(origins, np.float64),
        np.asarray(directions, np.float64),
        near,
        far,
        np.asarray(z, np.float64),
        strict=True,
    ):
        depths = np.linspace(n, f, pieces + 1)
        y = o + depths[:, None] * d
        norm = np.linalg.norm(y, axis=-1, keepdims=True)
        c = 0.5 * np.where(norm > 1, (2 - 1 / norm) * y / norm, y)
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=-1))])
        out.append(np.interp(zr, depths, s))
    return np.array(out)


@pytest.mark.parametrize("miss", [False, True], ids=["through_ball", "missing_ball"])
def test_contracted_samples_are_evenly_spaced_in_contracted_space(miss):
    origins, directions = _camera_rays(32, seed=1, miss=miss)
    near = np.full(32, 1.15)  # the demo's bounds, one ray with its own
    far = np.full(32, 8.98)
    near[0], far[0] = 0.5, 20.0
    z, points = rendering.sample_along_rays(
        KEY, origins, directions, 24, jnp.asarray(near), jnp.asarray(far), False, "contracted"
    )
    z = np.asarray(z, np.float64)
    np.testing.assert_allclose(z[:, 0], near, rtol=1e-6)
    np.testing.assert_allclose(z[:, -1], far, rtol=1e-6)
    assert np.all(np.diff(z, axis=1) > 0)
    spacings = _contracted_spacings(origins, directions, z)
    # Evenly spaced (polyline of 128 pieces: within ~1%), and the spacing is the ray's whole
    # contracted length over 23 (the reference's, from a 20,000-piece polyline).
    relative = spacings / spacings.mean(axis=1, keepdims=True)
    assert np.abs(relative - 1).max() < 0.02, np.abs(relative - 1).max()
    length = _reference_distance(origins, directions, near, far, far[:, None])[:, 0]
    np.testing.assert_allclose(spacings.mean(axis=1) * 23, length, rtol=2e-3)
    # Dense where the field's grid is fine: through the ball, the spacing in depth near the
    # head is under half the linear spacing (7.8 / 23 = 0.34 units).
    if not miss:
        inside = np.linalg.norm(np.asarray(points[1:]), axis=-1) < 0.5
        assert np.all(np.diff(z[1:], axis=1)[inside[:, :-1]] < 0.17)


def test_contracted_distance_matches_the_arc_length_and_inverts_exactly():
    origins, directions = _camera_rays(8, seed=2)
    near, far = np.full(8, 1.15), np.full(8, 8.98)
    z_knots, s_knots = rendering.contracted_distance(origins, directions, 1.15, 8.98)
    assert z_knots.shape == s_knots.shape == (8, rendering.CONTRACTED_KNOTS + 1)
    assert np.all(np.diff(np.asarray(s_knots), axis=1) > 0)  # strictly increasing
    reference = _reference_distance(origins, directions, near, far, z_knots)
    np.testing.assert_allclose(s_knots, reference, rtol=2e-3, atol=1e-5)
    # The polyline through the field's own contraction (`grid.contract`) of the knots.
    knots = grid.contract(rendering.points_along_rays(origins, directions, z_knots), 1.0)
    polyline = np.cumsum(np.linalg.norm(np.diff(np.asarray(knots), axis=1), axis=-1), axis=1)
    np.testing.assert_allclose(s_knots[:, 1:], polyline, rtol=1e-5)
    assert np.all(np.asarray(s_knots[:, 0]) == 0)
    # s -> z -> s and z -> s -> z: one map is the other's inverse (to float rounding).
    rng = np.random.default_rng(3)
    s = jnp.asarray(rng.uniform(0, 1, (8, 50)), jnp.float32) * s_knots[:, -1:]
    z = rendering.interpolate_rows(s, s_knots, z_knots)
    np.testing.assert_allclose(rendering.interpolate_rows(z, z_knots, s_knots), s, atol=2e-6)
    z = jnp.asarray(rng.uniform(1.15, 8.98, (8, 50)), jnp.float32)
    s = rendering.interpolate_rows(z, z_knots, s_knots)
    np.testing.assert_allclose(rendering.interpolate_rows(s, s_knots, z_knots), z, rtol=2e-6)


def test_interpolate_rows_is_numpys_interp_row_by_row():
    rng = np.random.default_rng(4)
    xp = np.sort(rng.uniform(-1, 3, (3, 9)), axis=1)
    fp = rng.normal(size=(3, 9))
    x = rng.uniform(-2, 4, (3, 40))  # beyond both ends too
    x = np.concatenate([x, xp], axis=1)  # and exactly at every knot
    got = rendering.interpolate_rows(jnp.asarray(x), jnp.asarray(xp), jnp.asarray(fp))
    for r in range(3):
        np.testing.assert_allclose(got[r], np.interp(x[r], xp[r], fp[r]), atol=1e-5)


def test_contracted_jitter_stays_inside_each_stratum():
    origins, directions = _camera_rays(64, seed=5)
    z, _ = rendering.sample_along_rays(KEY, origins, directions, 8, 1.15, 8.98, True, "contracted")
    z = np.asarray(z, np.float64)
    near, far = np.full(64, 1.15), np.full(64, 8.98)
    assert np.all((z >= 1.15 - 1e-5) & (z <= 8.98 + 1e-5)) and np.all(np.diff(z, axis=1) >= 0)
    # Stratum i of the contracted distance: between the midpoints around i L / 7.
    s = _reference_distance(origins, directions, near, far, z)
    length = _reference_distance(origins, directions, near, far, far[:, None])
    u = s / length  # (64, 8) in [0, 1]
    edges = np.concatenate([[0.0], (np.arange(7) + 0.5) / 7, [1.0]])
    assert np.all(u >= edges[:-1] - 3e-3) and np.all(u <= edges[1:] + 3e-3)
    assert np.std(u[:, 3]) > 0.03  # actually random


# ---------------------------------------------------------------- volumetric_rendering


def _slab(sigma, a, b, colour, spacing=1e-3, far=4.0):
    """One ray through density `sigma` on [a, b] (on the sample grid), nothing elsewhere."""
    n = round(far / spacing) + 1
    index = np.arange(n)
    z = index * spacing
    inside = (index >= round(a / spacing)) & (index < round(b / spacing))
    sig = np.where(inside, sigma, 0.0)
    rgb = np.broadcast_to(np.asarray(colour), (n, 3))
    return (
        jnp.asarray(rgb[None], jnp.float32),
        jnp.asarray(sig[None], jnp.float32),
        jnp.asarray(z[None], jnp.float32),
    )


def test_constant_slab_matches_analytic(render):
    sigma, a, b, colour = 1.3, 1.0, 2.5, np.array([0.2, 0.5, 0.9])
    rgb, sig, z = _slab(sigma, a, b, colour)
    out = render(rgb, sig, z, jnp.array([[0.0, 0.0, 1.0]]))
    length = b - a
    acc = 1.0 - math.exp(-sigma * length)
    # E[z; hit] = int_a^b z sigma exp(-sigma (z - a)) dz.
    depth = a * acc + 1.0 / sigma - math.exp(-sigma * length) * (length + 1.0 / sigma)
    np.testing.assert_allclose(out["acc"], [acc], atol=1e-5)
    np.testing.assert_allclose(out["rgb"], [acc * colour], atol=1e-5)
    # The quadrature puts each interval's mass at its left end: error <= spacing.
    np.testing.assert_allclose(out["depth"], [depth], atol=1e-3)
    out_n = render(rgb, sig, z, jnp.array([[0.0, 0.0, 1.0]]), normalize_depth=True)
    np.testing.assert_allclose(out_n["depth"], [depth / acc], atol=1e-3)
    assert out["weights"].shape == z.shape


def test_direction_norm_scales_optical_depth(render):
    rgb, sig, z = _slab(0.7, 1.0, 2.0, [1.0, 1.0, 1.0], spacing=1e-2)
    out = render(rgb, sig, z, jnp.array([[0.0, 2.0, 0.0]]))
    np.testing.assert_allclose(out["acc"], [1.0 - math.exp(-0.7 * 2.0 * 1.0)], atol=1e-5)


def test_single_opaque_sample(render):
    colour = jnp.array([[[0.3, 0.6, 0.1]]])
    out = render(colour, jnp.array([[5.0]]), jnp.array([[2.0]]), jnp.array([[1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out["weights"], [[1.0]], atol=1e-6)
    np.testing.assert_allclose(out["rgb"], colour[:, 0], atol=1e-6)
    np.testing.assert_allclose(out["depth"], [2.0], atol=1e-6)
    np.testing.assert_allclose(out["acc"], [1.0], atol=1e-6)


class RenderingVariantsTest(chex.TestCase):
    """Compositing, traced by jax.jit and run op by op (chex variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_opaque_sample_hides_what_is_behind(self):
        z = jnp.linspace(1.0, 2.0, 11)[None]
        sigma = jnp.zeros((1, 11)).at[0, 4].set(1e4).at[0, 7:].set(3.0)
        rgb = jnp.zeros((1, 11, 3)).at[0, 4].set(jnp.array([1.0, 0.0, 0.5])).at[0, 7:, 1].set(1.0)
        out = self.variant(rendering.volumetric_rendering)(rgb, sigma, z, jnp.array([[0, 0, 1.0]]))
        expected = {
            "weights": np.eye(11)[4:5],
            "rgb": np.array([[1.0, 0.0, 0.5]]),
            "depth": np.array([1.4]),
            "acc": np.array([1.0]),
        }
        chex.assert_trees_all_close(out, expected, atol=1e-6, rtol=0.0)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(False, True)
    def test_coarse_slab_matches_analytic(self, normalize_depth):
        sigma, a, b, colour = 1.3, 1.0, 2.5, np.array([0.2, 0.5, 0.9])
        rgb, sig, z = _slab(sigma, a, b, colour, spacing=1e-2)
        render = self.variant(rendering.volumetric_rendering, static_argnames="normalize_depth")
        out = render(rgb, sig, z, jnp.array([[0.0, 0.0, 1.0]]), normalize_depth=normalize_depth)
        acc = 1.0 - math.exp(-sigma * (b - a))
        depth = a * acc + 1.0 / sigma - math.exp(-sigma * (b - a)) * (b - a + 1.0 / sigma)
        shapes = [(1, 3), (1,), (1,), z.shape]
        chex.assert_shape([out["rgb"], out["depth"], out["acc"], out["weights"]], shapes)
        chex.assert_tree_all_finite(out)
        chex.assert_trees_all_close(out["acc"], np.array([acc]), atol=1e-5)
        chex.assert_trees_all_close(out["rgb"], np.array([acc * colour]), atol=1e-5)
        # The quadrature puts each interval's mass at its left end: error <= spacing.
        expected_depth = depth / acc if normalize_depth else depth
        chex.assert_trees_all_close(out["depth"], np.array([expected_depth]), atol=1e-2)


def test_background_fills_transparency(render):
    rgb, sig, z = _slab(0.5, 1.0, 2.0, [1.0, 0.0, 0.0], spacing=1e-2)
    out = render(rgb, sig, z, jnp.array([[0.0, 0.0, 1.0]]), background=jnp.array([0.0, 0.0, 1.0]))
    acc = 1.0 - math.exp(-0.5)
    np.testing.assert_allclose(out["rgb"], [[acc, 0.0, 1.0 - acc]], atol=1e-5)


def test_empty_ray_black_and_normalised_depth_at_near(render):
    z = jnp.linspace(1.0, 2.0, 8)[None]
    out = render(jnp.ones((1, 8, 3)), jnp.zeros((1, 8)), z, jnp.ones((1, 3)), normalize_depth=True)
    np.testing.assert_allclose(out["rgb"], [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(out["acc"], [0.0])
    np.testing.assert_allclose(out["depth"], [1.0])


def test_rendering_rejects_sigma_with_channel_axis():
    with pytest.raises(ValueError, match="sigma"):
        rendering.volumetric_rendering(
            jnp.zeros((2, 4, 3)), jnp.zeros((2, 4, 1)), jnp.zeros((2, 4)), jnp.ones((2, 3))
        )


# ---------------------------------------------------------------- inverse-CDF sampling

BINS = np.array([[0.0, 1.0, 3.0, 3.5, 6.0], [2.0, 2.5, 3.0, 3.5, 4.0]])
WEIGHTS = np.array([[0.1, 0.5, 0.0, 0.4], [1.0, 0.0, 0.0, 3.0]])


def _analytic_cdf(bins, weights, x):
    """CDF of the piecewise-constant density with the given bin masses, at points x."""
    masses = weights / weights.sum()
    cdf_edges = np.concatenate([[0.0], np.cumsum(masses)])
    return np.interp(x, bins, cdf_edges)


@pytest.mark.parametrize("randomized", [False, True])
def test_inverse_cdf_matches_pdf(sample_pdf, randomized):
    m = 2000
    samples = np.asarray(
        sample_pdf(
            KEY, jnp.asarray(BINS), jnp.asarray(WEIGHTS), num_samples=m, randomized=randomized
        )
    )
    assert samples.shape == (2, m)
    for r in range(2):
        s = np.sort(samples[r])
        # Kolmogorov-Smirnov distance between the empirical and the true CDF.
        true = _analytic_cdf(BINS[r], WEIGHTS[r], s)
        ecdf_hi = np.arange(1, m + 1) / m
        ecdf_lo = np.arange(m) / m
        ks = max(np.max(np.abs(ecdf_hi - true)), np.max(np.abs(ecdf_lo - true)))
        assert ks < 0.02
        assert s[0] >= BINS[r, 0] and s[-1] <= BINS[r, -1]
        assert np.all(np.diff(samples[r]) >= 0)  # sorted as returned
    # Zero-weight bins receive (almost) nothing: padding gives them ~1e-5 of the mass.
    assert np.sum((samples[0] > 3.0 + 1e-4) & (samples[0] < 3.5 - 1e-4)) <= 1


def test_inverse_cdf_of_empty_weights_puts_equal_mass_per_bin(sample_pdf):
    bins = jnp.array([[0.0, 1.0, 2.0, 4.0]])
    samples = sample_pdf(KEY, bins, jnp.zeros((1, 3)), num_samples=8, randomized=False)
    assert bool(jnp.all(jnp.isfinite(samples)))
    u = (np.arange(8) + 0.5) / 8
    expected = np.interp(u, [0.0, 1 / 3, 2 / 3, 1.0], [0.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(samples[0], expected, atol=1e-5)


def test_inverse_cdf_has_no_gradient():
    def total(weights, bins):
        return jnp.sum(rendering.sample_pdf(KEY, bins, weights, 16, True))

    gw, gb = jax.grad(total, argnums=(0, 1))(jnp.asarray(WEIGHTS), jnp.asarray(BINS))
    np.testing.assert_array_equal(gw, 0.0)
    np.testing.assert_array_equal(gb, 0.0)


@pytest.mark.parametrize("include_input", [True, False])
def test_resample_along_rays_shapes(include_input):
    origins, directions = _rays(3)
    z, _ = rendering.sample_along_rays(KEY, origins, directions, 8, 1.0, 3.0, False)
    weights = jnp.zeros((3, 8)).at[:, 3].set(1.0)
    z_new, pts = rendering.resample_along_rays(
        KEY, origins, directions, z, weights, 6, True, include_input
    )
    total = 8 + 6 if include_input else 6
    assert z_new.shape == (3, total) and pts.shape == (3, total, 3)
    assert bool(jnp.all(jnp.diff(z_new, axis=-1) >= 0))
    np.testing.assert_allclose(pts[..., 2], z_new, atol=1e-6)
    new = np.setdiff1d(np.asarray(z_new[0]), np.asarray(z[0])) if include_input else z_new[0]
    # All the weight is on sample 3, i.e. the interval [z_3, z_4].
    assert np.all((new >= float(z[0, 3]) - 1e-3) & (new <= float(z[0, 4]) + 1e-3))


def test_resampling_contracted_bins_follows_their_spacing_and_weights():
    origins, directions = _camera_rays(16, seed=6)
    z, _ = rendering.sample_along_rays(KEY, origins, directions, 9, 1.15, 8.98, False, "contracted")
    z = np.asarray(z)
    # Empty rays (all weights 0): equal mass per bin, 3 new samples in each of the 8 intervals,
    # so the fine samples keep the coarse (contracted) spacing.
    z_new, _ = rendering.resample_along_rays(
        KEY, origins, directions, jnp.asarray(z), jnp.zeros((16, 9)), 24, False, False
    )
    z_new = np.asarray(z_new)
    for r in range(16):
        counts = np.histogram(z_new[r], bins=z[r])[0]
        np.testing.assert_array_equal(counts, 3)
    assert np.all(np.diff(z_new, axis=1) >= 0)
    # All the weight on one far interval (beyond the ball, long in depth): every new sample in
    # it, spread over it (jittered: the samples' pdf is uniform in depth inside the bin).
    weights = jnp.zeros((16, 9)).at[:, 6].set(1.0)
    z_new, pts = rendering.resample_along_rays(
        KEY, origins, directions, jnp.asarray(z), weights, 64, True, False
    )
    z_new = np.asarray(z_new)
    lo, hi = z[:, 6:7], z[:, 7:8]
    assert np.all((z_new >= lo - 1e-4) & (z_new <= hi + 1e-4))
    fraction = (z_new - lo) / (hi - lo)
    assert abs(fraction.mean() - 0.5) < 0.05 and fraction.std() > 0.25
    np.testing.assert_allclose(
        pts,
        np.asarray(origins)[:, None] + z_new[..., None] * np.asarray(directions)[:, None],
        atol=1e-5,
    )


# ---------------------------------------------------------------- proposal histograms


def _np_outer_bound(edges, proposal_edges, proposal_weights):
    """The outer bound by brute force: every fine interval against every proposal interval."""
    edges, proposal_edges = np.asarray(edges, np.float64), np.asarray(proposal_edges, np.float64)
    proposal_weights = np.asarray(proposal_weights, np.float64)
    bound = np.zeros((edges.shape[0], edges.shape[1] - 1))
    for r in range(edges.shape[0]):
        for i in range(edges.shape[1] - 1):
            lo, hi = edges[r, i], edges[r, i + 1]
            for j in range(proposal_edges.shape[1] - 1):
                if proposal_edges[r, j] < hi and proposal_edges[r, j + 1] > lo:
                    bound[r, i] += proposal_weights[r, j]
    return bound


def _random_histograms(seed, n=12, s=9, p=7):
    """Sorted edges on a coarse lattice (so that edges coincide and repeat, as a merged
    fine pass's do), some ending at +inf, and random non-negative proposal weights."""
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.integers(0, 12, (n, s + 1)).astype(np.float32) / 4.0, axis=-1)
    proposal_edges = np.sort(rng.integers(0, 12, (n, p + 1)).astype(np.float32) / 4.0, axis=-1)
    edges[: n // 2, -1] = np.inf
    proposal_edges[n // 3 :, -1] = np.inf
    weights = rng.uniform(0.0, 1.0, (n, p)).astype(np.float32)
    weights[rng.uniform(size=(n, p)) < 0.3] = 0.0
    return edges, proposal_edges, weights


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outer_bound_matches_the_brute_force_over_intervals(seed):
    edges, proposal_edges, weights = _random_histograms(seed)
    bound = jax.jit(rendering.outer_bound)(edges, proposal_edges, weights)
    assert bound.shape == (edges.shape[0], edges.shape[1] - 1)
    np.testing.assert_allclose(
        bound, _np_outer_bound(edges, proposal_edges, weights), rtol=1e-6, atol=1e-6
    )


def test_outer_bound_of_equal_nested_and_disjoint_histograms():
    z = np.array([[1.0, 1.5, 2.0, 3.0, 4.0]], np.float32)
    w = np.array([[0.1, 0.6, 0.2, 0.05]], np.float32)
    edges = rendering.sample_intervals(jnp.asarray(z))
    np.testing.assert_array_equal(edges, [[1.0, 1.5, 2.0, 3.0, 4.0, np.inf]])
    # Equal histograms: each interval overlaps only itself.
    w5 = np.concatenate([w, [[0.05]]], -1)
    np.testing.assert_allclose(rendering.outer_bound(edges, edges, w5), w5, rtol=1e-6)
    # A finer histogram inside the proposal's intervals gets the mass of the one around it.
    fine = np.array([[1.0, 1.2, 1.5, 1.7, 1.9, 2.5]], np.float32)
    np.testing.assert_allclose(
        rendering.outer_bound(fine, z, w), [[0.1, 0.1, 0.6, 0.6, 0.8]], rtol=1e-6
    )
    # Intervals before, after, or touching the proposal's support only at an edge get 0; one
    # spanning it all gets all its mass.
    outside = np.array([[0.0, 0.5, 1.0, 1.0, 4.0, 5.0]], np.float32)
    np.testing.assert_allclose(
        rendering.outer_bound(outside, z, w), [[0, 0, 0, 0.95, 0]], rtol=1e-6, atol=0
    )


def test_outer_bound_gradient_is_the_overlap_indicator():
    edges, proposal_edges, weights = _random_histograms(3, n=4)
    cotangent = np.random.default_rng(4).normal(size=(4, edges.shape[1] - 1))
    grad = jax.grad(lambda w: jnp.sum(rendering.outer_bound(edges, proposal_edges, w) * cotangent))(
        jnp.asarray(weights)
    )
    # d bound_i / d w_j = 1 if proposal interval j overlaps interval i: the brute force with
    # one-hot weights.
    expected = np.zeros_like(weights, np.float64)
    for j in range(weights.shape[1]):
        one_hot = np.zeros_like(weights)
        one_hot[:, j] = 1.0
        expected[:, j] = np.sum(_np_outer_bound(edges, proposal_edges, one_hot) * cotangent, -1)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_density_rendering_is_volumetric_rendering_without_colour(render):
    rng = np.random.default_rng(5)
    z = np.sort(rng.uniform(1.0, 3.0, (6, 10)), axis=-1).astype(np.float32)
    sigma = rng.uniform(0.0, 3.0, (6, 10)).astype(np.float32)
    directions = rng.normal(size=(6, 3)).astype(np.float32)
    rgb = rng.uniform(size=(6, 10, 3)).astype(np.float32)
    full = render(rgb, sigma, z, directions)
    out = jax.jit(rendering.density_rendering)(sigma, z, directions)
    assert set(out) == {"depth", "acc", "weights"}
    for name in out:
        np.testing.assert_array_equal(out[name], full[name])
    with pytest.raises(ValueError, match=r"density_rendering: found sigma \(6, 10, 1\)"):
        rendering.density_rendering(sigma[..., None], z, directions)
