# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.geometry.rigid_body against scipy.linalg.expm and hand-derived derivatives."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy.linalg import expm

from flamenerf.geometry import rigid_body

ATOL = 1e-5


def _skew_np(w):
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _twist_matrix(twist):
    """The 4x4 element of se(3) of exponential coordinates (w, v)."""
    m = np.zeros((4, 4))
    m[:3, :3] = _skew_np(twist[:3])
    m[:3, 3] = twist[3:]
    return m


def _random_unit(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_skew_is_cross_product():
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=(2, 5, 3))
    got = np.einsum("nij,nj->ni", rigid_body.skew(jnp.asarray(w)), v)
    np.testing.assert_allclose(got, np.cross(w, v), atol=1e-5)


def test_exp_so3_matches_expm():
    rng = np.random.default_rng(1)
    axes = _random_unit(rng, 8)
    thetas = rng.uniform(-np.pi, np.pi, size=8)
    got = rigid_body.exp_so3(jnp.asarray(axes, jnp.float32), jnp.asarray(thetas, jnp.float32))
    for k in range(8):
        np.testing.assert_allclose(got[k], expm(thetas[k] * _skew_np(axes[k])), atol=ATOL)


def test_exp_se3_matches_expm():
    rng = np.random.default_rng(2)
    w = _random_unit(rng, 8)
    v = rng.normal(size=(8, 3))
    thetas = rng.uniform(-np.pi, np.pi, size=8)
    screws = np.concatenate([w, v], axis=-1)
    got = rigid_body.exp_se3(jnp.asarray(screws, jnp.float32), jnp.asarray(thetas, jnp.float32))
    for k in range(8):
        np.testing.assert_allclose(got[k], expm(_twist_matrix(thetas[k] * screws[k])), atol=ATOL)


def test_exp_se3_pure_translation():
    screw = jnp.array([0.0, 0.0, 0.0, 0.0, 0.6, 0.8])
    got = rigid_body.exp_se3(screw, 2.5)
    expected = np.eye(4)
    expected[:3, 3] = [0.0, 1.5, 2.0]
    np.testing.assert_allclose(got, expected, atol=ATOL)


class ExponentialVariantsTest(chex.TestCase):
    """The vector exponentials against scipy's expm, traced by jax.jit and run op by op.

    Their small-angle Taylor branches are chosen by `jnp.where` on theta^2; XLA fuses and
    reorders the compiled program, so each magnitude is checked both ways (chex variants).
    """

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(3.0, 1.0, 0.5, 0.49, 1e-2, 1e-4, 1e-7)
    def test_exp_se3_vector_matches_expm_at_all_magnitudes(self, scale):
        rng = np.random.default_rng(3)
        twists = np.concatenate([_random_unit(rng, 6) * scale, rng.normal(size=(6, 3))], axis=-1)
        got = self.variant(rigid_body.exp_se3_vector)(jnp.asarray(twists, jnp.float32))
        expected = np.stack([expm(_twist_matrix(t)) for t in twists])
        chex.assert_shape(got, (6, 4, 4))
        chex.assert_trees_all_close(got, expected, atol=ATOL, rtol=0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_exp_so3_vector_matches_expm(self):
        rng = np.random.default_rng(4)
        ws = _random_unit(rng, 6) * rng.uniform(0.0, 3.0, size=(6, 1))
        got = self.variant(rigid_body.exp_so3_vector)(jnp.asarray(ws, jnp.float32))
        chex.assert_shape(got, (6, 3, 3))
        chex.assert_trees_all_close(got, np.stack([expm(_skew_np(w)) for w in ws]), atol=ATOL)


def test_exponentials_are_identity_at_zero():
    np.testing.assert_array_equal(rigid_body.exp_se3_vector(jnp.zeros(6)), np.eye(4))
    np.testing.assert_array_equal(rigid_body.exp_so3_vector(jnp.zeros(3)), np.eye(3))
    screw = jnp.array([0.0, 0.0, 1.0, 0.3, -0.2, 0.5])
    np.testing.assert_array_equal(rigid_body.exp_se3(screw, 0.0), np.eye(4))
    np.testing.assert_array_equal(rigid_body.exp_so3(screw[:3], 0.0), np.eye(3))


def test_rotations_are_orthonormal():
    rng = np.random.default_rng(5)
    ws = jnp.asarray(rng.normal(size=(10, 3)) * 2.0, jnp.float32)
    r = rigid_body.exp_so3_vector(ws)
    np.testing.assert_allclose(
        jnp.swapaxes(r, -1, -2) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-5
    )
    np.testing.assert_allclose(jnp.linalg.det(r), np.ones(10), atol=1e-5)


def test_gradient_at_zero_twist_is_the_generator():
    # d/d(w, v) of exp(twist) p at twist = 0 is d(w x p + v) = [-skew(p) | I].
    p = jnp.array([0.3, -1.2, 0.7])

    def moved(twist):
        return rigid_body.apply_transform(rigid_body.exp_se3_vector(twist), p)

    jac = jax.jacfwd(moved)(jnp.zeros(6))
    expected = np.concatenate([-_skew_np(np.asarray(p)), np.eye(3)], axis=-1)
    np.testing.assert_allclose(jac, expected, atol=1e-6)
    jac_rev = jax.jacrev(moved)(jnp.zeros(6))
    np.testing.assert_allclose(jac_rev, expected, atol=1e-6)


def test_gradient_of_loss_finite_at_zero():
    def loss(twist):
        return jnp.sum(rigid_body.exp_se3_vector(twist) ** 2)

    grad = jax.grad(loss)(jnp.zeros(6))
    grad_so3 = jax.grad(lambda w: jnp.sum(rigid_body.exp_so3_vector(w) ** 2))(jnp.zeros(3))
    chex.assert_tree_all_finite((grad, grad_so3))


def test_exp_se3_derivative_in_theta_at_zero():
    screw = jnp.array([0.0, 0.6, 0.8, 1.0, 2.0, 3.0])
    d = jax.jacfwd(lambda t: rigid_body.exp_se3(screw, t))(0.0)
    np.testing.assert_allclose(d, _twist_matrix(np.asarray(screw)), atol=1e-6)


def test_homogeneous_round_trip_and_division():
    pts = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    h = rigid_body.to_homogeneous(pts)
    np.testing.assert_array_equal(h[:, 3], [1.0, 1.0])
    np.testing.assert_array_equal(rigid_body.from_homogeneous(h), pts)
    np.testing.assert_allclose(
        rigid_body.from_homogeneous(jnp.array([2.0, 4.0, 6.0, 2.0])), [1, 2, 3]
    )


def test_apply_transform_matches_homogeneous_product():
    rng = np.random.default_rng(6)
    twist = rng.normal(size=6)
    pts = rng.normal(size=(4, 3))
    t = expm(_twist_matrix(twist))
    expected = (t @ np.concatenate([pts, np.ones((4, 1))], axis=-1).T).T[:, :3]
    got = rigid_body.apply_transform(jnp.asarray(t, jnp.float32), jnp.asarray(pts, jnp.float32))
    np.testing.assert_allclose(got, expected, atol=1e-5)
