# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Grid encodings: a K-planes-style multi-resolution tri-plane, and a scene contraction.

Not in FLAME-in-NeRF: a paper-size MLP cannot show a result within minutes on a CPU, a
grid-encoded canonical field can (a prototype reached ~29 dB on the demo capture in 10 minutes
with tri-planes at 64..512 and two one-layer heads).

Conventions:
- Grid coordinates are [-1, 1]^3 (docs/architecture.md#scene-bounds). Use `contract` to bring
normalised scene
  points, possibly unbounded, into that box first. Points outside the box are clamped to it.
- A plane of resolution r is an array (r, r, F); vertex (i, j) sits at
  (-1 + 2 i / (r - 1), -1 + 2 j / (r - 1)) ("align corners"), the first index along the
  plane's first axis. The three planes of one resolution are stacked as (3, r, r, F) in the
  order xy, xz, yz (`PLANE_AXES`).
- Bilinear interpolation gathers the 4 texels around a point, so the gradient of one point's
  features reaches only those 4 texels of each plane.
"""

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from flamenerf.nerf.layers import Initializer

Array = jax.Array

PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))


def contract(points: Array, inner_radius: float = 1.0) -> Array:
    """mip-NeRF 360's contraction, scaled into the unit ball (hence into [-1, 1]^3).

    With y = points / inner_radius, mip-NeRF 360 maps y to itself for |y| <= 1 and to
    (2 - 1/|y|) y/|y| (radius in (1, 2)) beyond; the result is divided by 2. So the ball of
    radius `inner_radius` maps linearly (scale 1 / (2 inner_radius)) onto the ball of radius
    1/2, everything beyond onto the shell between radii 1/2 and 1. With inner_radius = 0.5 the
    map is exactly the identity inside the ball of radius 0.5.

    Args:
      points: (..., 3) points in normalised scene coordinates.
      inner_radius: radius of the region kept undistorted (linear).

    Returns:
      (..., 3) contracted points, norm < 1. Continuous with a continuous first derivative;
      finite gradient everywhere (including 0).
    """
    y = points / inner_radius
    sq_norm = jnp.sum(y * y, axis=-1, keepdims=True)
    # Double `where`: the outer branch is evaluated only where |y| > 1, so 1/|y| never sees 0.
    outside = sq_norm > 1.0
    norm = jnp.sqrt(jnp.where(outside, sq_norm, 1.0))
    contracted = jnp.where(outside, (2.0 - 1.0 / norm) * y / norm, y)
    return 0.5 * contracted


def interpolate_plane(plane: Array, uv: Array) -> Array:
    """Bilinear interpolation of a feature plane at points of [-1, 1]^2 (align corners).

    The 4 corner texels are fetched with one gather from the flattened plane (its gradient is a
    single scatter-add, faster on CPU than four).

    Args:
      plane: (r, r, F) features, r >= 2; vertex (i, j) at (-1 + 2i/(r-1), -1 + 2j/(r-1)).
      uv: (N, 2) coordinates; values outside [-1, 1] are clamped.

    Returns:
      (N, F) interpolated features.
    """
    res = plane.shape[0]
    pos = jnp.clip((uv + 1.0) * (0.5 * (res - 1)), 0.0, res - 1.0)  # texel units
    corner = jnp.clip(jnp.floor(pos), 0, res - 2)
    frac = pos - corner  # (N, 2) in [0, 1]; a vertex on the last row uses frac = 1.
    base = corner[:, 0].astype(jnp.int32) * res + corner[:, 1].astype(jnp.int32)
    index = jnp.stack([base, base + res, base + 1, base + res + 1], axis=-1)  # (N, 4)
    fu, fv = frac[:, 0], frac[:, 1]
    weights = jnp.stack(
        [(1.0 - fu) * (1.0 - fv), fu * (1.0 - fv), (1.0 - fu) * fv, fu * fv], axis=-1
    )  # (N, 4): corners (i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)
    texels = plane.reshape(res * res, plane.shape[-1])[index]  # (N, 4, F)
    # Four explicit products, not a sum over the corner axis (nor einsum: TPU matmul
    # precision): XLA's CPU backend ran that size-4 reduction several times slower.
    term = lambda k: texels[:, k] * weights[:, k, None]
    return (term(0) + term(1)) + (term(2) + term(3))


def triplane_features(planes: Array, points: Array) -> Array:
    """K-planes features of one resolution: product of the xy, xz and yz planes' features.

    Args:
      planes: (3, r, r, F) planes in `PLANE_AXES` order.
      points: (N, 3) points in [-1, 1]^3.

    Returns:
      (N, F) Hadamard product of the three interpolated features.
    """
    # Checked when traced (static shapes, no run-time cost): points of 2 coordinates would
    # otherwise fail deep in the gather, and 4 would be silently truncated.
    chex.assert_shape(planes, (3, None, None, None), custom_message="planes: (3, r, r, F)")
    chex.assert_shape(points, (None, 3), custom_message="points: (N, 3)")
    uv = jnp.stack([points[:, axes] for axes in PLANE_AXES])  # (3, N, 2)
    per_plane = jax.vmap(interpolate_plane)(planes, uv)  # (3, N, F)
    return per_plane[0] * per_plane[1] * per_plane[2]


def total_variation(planes: Array) -> Array:
    """Mean squared difference between neighbouring texels, summed over both plane axes.

    Args:
      planes: (..., r, r, F) one or several planes.

    Returns:
      scalar: mean((p[i+1, j] - p[i, j])^2) + mean((p[i, j+1] - p[i, j])^2).
    """
    d_u = planes[..., 1:, :, :] - planes[..., :-1, :, :]
    d_v = planes[..., :, 1:, :] - planes[..., :, :-1, :]
    return jnp.mean(d_u * d_u) + jnp.mean(d_v * d_v)


def _uniform_range(low: float, high: float) -> Initializer:
    """An initializer drawing from uniform(low, high)."""

    def init(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, minval=low, maxval=high)

    return init


class TriPlaneEncoding(nn.Module):
    """Multi-resolution tri-plane features of points in [-1, 1]^3 (K-planes, static part).

    One parameter `planes_{r}` of shape (3, r, r, F) per resolution r. A point's features are,
    for each resolution, the product of its three bilinearly interpolated plane features;
    resolutions are concatenated (in the order of `resolutions`).

    The planes start in uniform(0.1, 0.5) (as K-planes): features multiply, so planes near 0
    would give near-zero products whose gradients (the product of the two other planes) vanish,
    while a positive range of moderate width keeps every product informative and lets the
    following MLP see distinct values from the start.

    Attributes:
      resolutions: texels per side of each level, e.g. (64, 128, 256, 512); each >= 2, distinct.
      features: F, channels per plane.
      plane_init: initializer of each (3, r, r, F) parameter.
    """

    resolutions: Sequence[int] = (64, 128, 256, 512)
    features: int = 8
    plane_init: Initializer = _uniform_range(0.1, 0.5)

    def setup(self):
        if len(set(self.resolutions)) != len(self.resolutions) or min(self.resolutions) < 2:
            raise ValueError(
                f"TriPlaneEncoding.resolutions: found {tuple(self.resolutions)}, "
                "expected distinct integers >= 2"
            )
        self.planes = [
            self.param(f"planes_{res}", self.plane_init, (3, res, res, self.features))
            for res in self.resolutions
        ]

    def __call__(self, points: Array) -> Array:
        """Encodes `points: (..., 3)` in [-1, 1]^3 -> `(..., len(resolutions) * features)`."""
        flat = points.reshape(-1, 3)
        feats = [triplane_features(planes, flat) for planes in self.planes]
        return jnp.concatenate(feats, axis=-1).reshape(*points.shape[:-1], -1)

    @property
    def num_outputs(self) -> int:
        """Width of the encoding."""
        return len(self.resolutions) * self.features
