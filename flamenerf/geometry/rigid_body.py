# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rigid-body maths: skew matrices and the exponential maps of so(3) and se(3).

Formulas from Lynch & Park, "Modern Robotics" (2017), eqs. 3.30, 3.51 and 3.88. All
functions broadcast over leading dimensions.

Two forms of each exponential map:
- `exp_so3(axis, theta)` / `exp_se3(screw, theta)`: a unit axis (resp. screw axis) and a
  magnitude, exactly the book's formulas. They are polynomials in sin/cos of theta, so they
  are smooth at theta = 0, but the caller must supply a unit axis.
- `exp_so3_vector(w)` / `exp_se3_vector(twist)`: the exponential coordinates themselves
  (axis times angle). The angle is |w|, whose derivative is undefined at 0; these use Taylor
  series of sin(t)/t, (1 - cos t)/t^2 and (t - sin t)/t^3 near 0 so that values and
  gradients stay finite and exact there. Warp fields use this form.
"""

import jax
import jax.numpy as jnp

Array = jax.Array

# Below this squared angle the coefficients are evaluated by their Taylor series. With terms
# up to t^8 the truncation error at t^2 = 0.25 is below 1e-10, while the closed forms above it
# lose at most a few float32 ulps to cancellation.
_TAYLOR_THETA_SQ = 0.25


def skew(w: Array) -> Array:
    """Cross-product matrix: `w: (..., 3)` -> `W: (..., 3, 3)` with `W @ v == cross(w, v)`."""
    w0, w1, w2 = w[..., 0], w[..., 1], w[..., 2]
    zero = jnp.zeros_like(w0)
    rows = [
        jnp.stack([zero, -w2, w1], axis=-1),
        jnp.stack([w2, zero, -w0], axis=-1),
        jnp.stack([-w1, w0, zero], axis=-1),
    ]
    return jnp.stack(rows, axis=-2)


def _matvec(matrix: Array, vector: Array) -> Array:
    """`(..., 3, 3) @ (..., 3)` written elementwise (no reduced-precision TPU matmul)."""
    return jnp.sum(matrix * vector[..., None, :], axis=-1)


def _skew_squared(w: Array) -> Array:
    """skew(w) @ skew(w) = w w^T - |w|^2 I, for `w: (..., 3)` -> (..., 3, 3)."""
    outer = w[..., :, None] * w[..., None, :]
    return outer - jnp.sum(w * w, axis=-1)[..., None, None] * jnp.eye(3, dtype=w.dtype)


def rp_to_se3(rotation: Array, translation: Array) -> Array:
    """[[rotation, translation], [0, 0, 0, 1]]: `(..., 3, 3)`, `(..., 3)` -> `(..., 4, 4)`."""
    top = jnp.concatenate([rotation, translation[..., :, None]], axis=-1)  # (..., 3, 4)
    bottom = jnp.broadcast_to(
        jnp.array([0.0, 0.0, 0.0, 1.0], dtype=top.dtype), (*top.shape[:-2], 1, 4)
    )
    return jnp.concatenate([top, bottom], axis=-2)


def to_homogeneous(points: Array) -> Array:
    """Appends a 1: `points: (..., D)` -> `(..., D + 1)`."""
    return jnp.concatenate([points, jnp.ones_like(points[..., :1])], axis=-1)


def from_homogeneous(points: Array) -> Array:
    """Divides by the last coordinate: `points: (..., D + 1)` -> `(..., D)`."""
    return points[..., :-1] / points[..., -1:]


def apply_transform(transform: Array, points: Array) -> Array:
    """Applies a rigid `transform: (..., 4, 4)` to `points: (..., 3)` -> `(..., 3)`."""
    return _matvec(transform[..., :3, :3], points) + transform[..., :3, 3]


def exp_so3(axis: Array, theta: Array | float) -> Array:
    """Rodrigues' formula (Modern Robotics eq. 3.51): rotation by `theta` about a unit `axis`.

    Args:
      axis: (..., 3) unit rotation axis.
      theta: (...) angle in radians.

    Returns:
      (..., 3, 3) rotation matrix I + sin(theta) W + (1 - cos(theta)) W^2, W = skew(axis).
    """
    theta = jnp.asarray(theta)[..., None, None]
    w_hat = skew(axis)
    eye = jnp.eye(3, dtype=w_hat.dtype)
    return eye + jnp.sin(theta) * w_hat + (1.0 - jnp.cos(theta)) * _skew_squared(axis)


def exp_se3(screw: Array, theta: Array | float) -> Array:
    """Exponential of a screw motion (Modern Robotics eq. 3.88).

    Args:
      screw: (..., 6) screw axis (w, v): unit w for a rotation, or w = 0 and unit v for a pure
        translation.
      theta: (...) magnitude of the motion along the screw axis.

    Returns:
      (..., 4, 4) homogeneous transform [[R, p], [0, 1]] with R = exp_so3(w, theta) and
      p = (I theta + (1 - cos theta) W + (theta - sin theta) W^2) v.
    """
    w, v = screw[..., :3], screw[..., 3:]
    t = jnp.asarray(theta)[..., None, None]
    w_hat = skew(w)
    w_hat_sq = _skew_squared(w)
    eye = jnp.eye(3, dtype=w_hat.dtype)
    rotation = eye + jnp.sin(t) * w_hat + (1.0 - jnp.cos(t)) * w_hat_sq
    v_map = t * eye + (1.0 - jnp.cos(t)) * w_hat + (t - jnp.sin(t)) * w_hat_sq
    translation = _matvec(v_map, v)
    return rp_to_se3(rotation, translation)


def _exp_coefficients(theta_sq: Array) -> tuple[Array, Array, Array]:
    """sin(t)/t, (1 - cos t)/t^2 and (t - sin t)/t^3 as functions of t^2, safe at t = 0."""
    small = theta_sq < _TAYLOR_THETA_SQ
    # Closed forms, evaluated only where t^2 is large (the double `where` keeps the unused
    # branch's gradient finite).
    safe_sq = jnp.where(small, 1.0, theta_sq)
    t = jnp.sqrt(safe_sq)
    sin_t, half_sin = jnp.sin(t), jnp.sin(0.5 * t)
    a_closed = sin_t / t
    b_closed = 2.0 * half_sin * half_sin / safe_sq  # (1 - cos t) / t^2 without cancellation
    c_closed = (t - sin_t) / (safe_sq * t)
    # Taylor series to t^8.
    x = theta_sq
    a_taylor = 1.0 - x / 6.0 * (1.0 - x / 20.0 * (1.0 - x / 42.0 * (1.0 - x / 72.0)))
    b_taylor = 0.5 * (1.0 - x / 12.0 * (1.0 - x / 30.0 * (1.0 - x / 56.0 * (1.0 - x / 90.0))))
    c_taylor = (1.0 - x / 20.0 * (1.0 - x / 42.0 * (1.0 - x / 72.0 * (1.0 - x / 110.0)))) / 6.0
    return (
        jnp.where(small, a_taylor, a_closed),
        jnp.where(small, b_taylor, b_closed),
        jnp.where(small, c_taylor, c_closed),
    )


def exp_so3_vector(w: Array) -> Array:
    """Rotation matrix of exponential coordinates `w: (..., 3)` (axis * angle) -> (..., 3, 3).

    Finite value and gradient at w = 0 (identity).
    """
    a, b, _ = _exp_coefficients(jnp.sum(w * w, axis=-1))
    w_hat = skew(w)
    eye = jnp.eye(3, dtype=w_hat.dtype)
    return eye + a[..., None, None] * w_hat + b[..., None, None] * _skew_squared(w)


def exp_se3_vector(twist: Array) -> Array:
    """Transform of exponential coordinates `twist: (..., 6)` = (w, v) -> (..., 4, 4).

    `twist` is the screw axis times the magnitude: `exp_se3_vector(theta * S)` equals
    `exp_se3(S, theta)` and `scipy.linalg.expm` of the 4x4 matrix [[skew(w), v], [0, 0]].
    Finite value and gradient at twist = 0 (identity).
    """
    w, v = twist[..., :3], twist[..., 3:]
    a, b, c = _exp_coefficients(jnp.sum(w * w, axis=-1))
    a, b, c = a[..., None, None], b[..., None, None], c[..., None, None]
    w_hat = skew(w)
    w_hat_sq = _skew_squared(w)
    eye = jnp.eye(3, dtype=w_hat.dtype)
    rotation = eye + a * w_hat + b * w_hat_sq
    v_map = eye + b * w_hat + c * w_hat_sq
    translation = _matvec(v_map, v)
    return rp_to_se3(rotation, translation)
