# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Carving: the surface where the NeRF's own renders become opaque, from depth maps.

A trained field is often soft: its opacity builds up over a shell up to centimetres thick, at
densities that differ between the face (tens per unit) and a far wall (about one), so no
single density level finds both. The bake's surface is therefore where the field becomes
opaque as the training cameras see it:

1. `choose_views` picks training cameras spread over their positions and directions;
   `view_camera` makes each distortion-free, rescaled to `pixels` along its longer side;
2. `view_depth` gives each a depth map (a `View`): along each pixel's ray, the distance where
   the optical depth of the density grid (trapezoids through the trilinear grid,
   `flamenerf.export.grids`) first reaches a level -ln(1 - opacity); SEE_THROUGH where it
   never does;
3. `free_depth` tells, for points (N, 3), how far in front of every view's surface they lie
   (K, N) and whether the view sees them; `carved_depth` turns that into the value marching
   cubes runs on (how far behind the surface the quorum-th view sees a point; UNSEEN where no
   view sees it): space carving by the depth at which the NeRF's own renders become opaque.

The depth maps are read bilinearly except across a silhouette (`_lookup`). Lengths are in
model-frame units.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flamenerf.export import grids
from flamenerf.geometry.camera import Camera

LOOKUP_CHUNK = 1 << 20  # grid points per jitted optical-depth lookup
UNSEEN = 1e4  # how far behind its surface a point no view sees counts
SEE_THROUGH = 1e4  # a view's depth where its ray never becomes opaque enough
DISCONTINUITY = 0.1  # a depth map's jump, relative to the nearer depth, read without blending


def choose_views(cameras: Sequence[Camera], count: int) -> np.ndarray:
    """Indices of `count` cameras spread over their positions and viewing directions:
    farthest-point sampling (in the distance |dp| + s |da|, s the cameras' spread in position
    over their spread in direction) from the camera nearest to their mean."""
    positions = np.array([c.position for c in cameras], np.float64).reshape(-1, 3)
    axes = np.array([c.optical_axis for c in cameras], np.float64).reshape(-1, 3)
    spread = lambda a: float(np.linalg.norm(a - a.mean(axis=0), axis=1).mean())
    weight = spread(positions) / max(spread(axes), 1e-9)
    features = np.concatenate([positions, weight * axes], axis=1)
    count = min(count, len(features))
    chosen = [int(np.argmin(np.linalg.norm(features - features.mean(axis=0), axis=1)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    while len(chosen) < count:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(features - features[chosen[-1]], axis=1))
    return np.array(chosen)


@dataclasses.dataclass(frozen=True)
class View:
    """Where one camera sees the surface: a depth map.

    Attributes:
      camera: the (pinhole, distortion-free) camera whose pixel centres the rays go through.
      near, far: the rays' bounds (distance along the unit ray).
      depth: float32 (H, W) distance along each pixel's ray where its optical depth from
        `near` first reaches the surface's level; SEE_THROUGH where it never does.
    """

    camera: Camera
    near: float
    far: float
    depth: np.ndarray


def view_camera(camera: Camera, pixels: int) -> Camera:
    """The camera without distortion, rescaled to `pixels` along its longer image side."""
    pinhole = dataclasses.replace(
        camera, radial_distortion=np.zeros(3), tangential_distortion=np.zeros(2)
    )
    return pinhole.scale(max(camera.image_size) / pixels)


def _disparity_depths(near: float, far: float, samples: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)
    return 1.0 / ((1.0 - t) / near + t / far)


def _grid_density(grid, axes, points):
    index, inside = grids.grid_index(axes, points.reshape(-1, 3))
    return jnp.where(inside, grids.trilinear(grid, index), 0.0).reshape(points.shape[:-1])


@functools.partial(jax.jit, static_argnums=(6,))
def _ray_depth(grid, axes, origins, directions, depths, level, refine):
    """(N,) distance where each ray's optical depth through a rectilinear density grid first
    reaches `level` (SEE_THROUGH where it does not): trapezoids over `depths`, then `refine`
    trapezoids inside the interval where it crosses, linear within the last one."""
    points = origins[:, None] + depths[None, :, None] * directions[:, None]
    sigma = _grid_density(grid, axes, points)
    delta = jnp.diff(depths)
    steps = 0.5 * (sigma[:, :-1] + sigma[:, 1:]) * delta
    tau = jnp.concatenate([jnp.zeros_like(steps[:, :1]), jnp.cumsum(steps, axis=1)], axis=1)
    crossed = tau[:, -1] >= level
    i = jnp.clip(jnp.argmax(tau >= level, axis=1) - 1, 0, depths.shape[0] - 2)  # tau_i < level
    z0, z1 = depths[i], depths[i + 1]
    t = jnp.linspace(0.0, 1.0, refine + 1)
    z = z0[:, None] + t[None] * (z1 - z0)[:, None]  # (N, refine + 1)
    fine = _grid_density(grid, axes, origins[:, None] + z[..., None] * directions[:, None])
    fine_steps = 0.5 * (fine[:, :-1] + fine[:, 1:]) * (z1 - z0)[:, None] / refine
    start = jnp.take_along_axis(tau, i[:, None], axis=1)
    fine_tau = start + jnp.concatenate(
        [jnp.zeros_like(start), jnp.cumsum(fine_steps, axis=1)], axis=1
    )
    j = jnp.clip(jnp.argmax(fine_tau >= level, axis=1) - 1, 0, refine - 1)
    a = jnp.take_along_axis(fine_tau, j[:, None], axis=1)[:, 0]
    b = jnp.take_along_axis(fine_tau, j[:, None] + 1, axis=1)[:, 0]
    za = jnp.take_along_axis(z, j[:, None], axis=1)[:, 0]
    zb = jnp.take_along_axis(z, j[:, None] + 1, axis=1)[:, 0]
    fraction = jnp.clip((level - a) / jnp.maximum(b - a, 1e-12), 0.0, 1.0)
    depth = za + fraction * (zb - za)
    return jnp.where(crossed, jnp.where(tau[:, 0] >= level, depths[0], depth), SEE_THROUGH)


def view_depth(
    grid: np.ndarray,
    axes: Sequence[np.ndarray],
    camera: Camera,
    near: float,
    far: float,
    samples: int,
    level: float,
    refine: int = 16,
    rays_per_step: int = 2048,
) -> View:
    """A camera's `View` of a density grid (the density is 0 outside the grid's box).

    Args:
      grid: (Gx, Gy, Gz) density on the rectilinear grid `axes`.
      camera: a distortion-free camera (`view_camera`); near, far: ray bounds (> 0).
      samples: depths per ray, evenly spaced in disparity; refine: trapezoids within the
        interval where the optical depth crosses `level`.
    """
    height, width = camera.image_shape
    origins, directions = camera.pixels_to_rays(camera.get_pixel_centers().reshape(-1, 2))
    depths = jnp.asarray(_disparity_depths(near, far, samples), jnp.float32)
    grid_j = jnp.asarray(grid, jnp.float32)
    axes_j = [jnp.asarray(a, jnp.float32) for a in axes]
    parts = []
    for start in range(0, len(origins), rays_per_step):
        part = slice(start, start + rays_per_step)
        depth = _ray_depth(
            grid_j,
            axes_j,
            jnp.asarray(origins[part], jnp.float32),
            jnp.asarray(directions[part], jnp.float32),
            depths,
            jnp.float32(level),
            refine,
        )
        parts.append(np.asarray(depth))
    return View(camera, float(near), float(far), np.concatenate(parts).reshape(height, width))


def _view_arrays(view: View) -> tuple[jax.Array, ...]:
    c = view.camera
    return (
        jnp.asarray(view.depth, jnp.float32),
        jnp.asarray(c.orientation, jnp.float32),
        jnp.asarray(c.position, jnp.float32),
        jnp.asarray(
            [c.focal_length, c.focal_length * c.pixel_aspect_ratio, c.skew, *c.principal_point],
            jnp.float32,
        ),
        jnp.asarray([view.near, view.far], jnp.float32),
    )


@jax.jit
def _lookup(depth, orientation, position, intrinsics, bounds, points):
    """How far in front of one view's surface points (N, 3) are, and whether it sees them.

    The depth map is read bilinearly, except across a discontinuity (its four pixels spread
    over more than DISCONTINUITY of their nearest depth), where the nearest pixel is used:
    a silhouette stays within half a pixel instead of being eroded by a blend of the
    foreground's depth with the background's.
    """
    height, width = depth.shape
    local = (points - position) @ orientation.T
    z = local[:, 2]
    safe_z = jnp.where(z > 1e-6, z, 1.0)
    xn, yn = local[:, 0] / safe_z, local[:, 1] / safe_z
    fx, fy, skew, cx, cy = (intrinsics[k] for k in range(5))
    u = fx * xn + skew * yn + cx
    v = fy * yn + cy
    r = jnp.linalg.norm(points - position, axis=-1)
    seen = (z > 1e-6) & (u >= 0) & (u <= width) & (v >= 0) & (v <= height) & (r <= bounds[1])
    fu = jnp.clip(u - 0.5, 0.0, width - 1.0)
    fv = jnp.clip(v - 0.5, 0.0, height - 1.0)
    u0 = jnp.minimum(jnp.floor(fu).astype(jnp.int32), max(width - 2, 0))
    v0 = jnp.minimum(jnp.floor(fv).astype(jnp.int32), max(height - 2, 0))
    u1, v1 = jnp.minimum(u0 + 1, width - 1), jnp.minimum(v0 + 1, height - 1)
    a, b = fu - u0, fv - v0
    d00, d01, d10, d11 = depth[v0, u0], depth[v0, u1], depth[v1, u0], depth[v1, u1]
    bilinear = (1 - b) * ((1 - a) * d00 + a * d01) + b * ((1 - a) * d10 + a * d11)
    corners = jnp.stack([d00, d01, d10, d11], axis=-1)
    nearest = jnp.where(b < 0.5, jnp.where(a < 0.5, d00, d01), jnp.where(a < 0.5, d10, d11))
    spread = corners.max(axis=-1) - corners.min(axis=-1)
    jump = spread > DISCONTINUITY * corners.min(axis=-1)
    surface = jnp.where(jump, nearest, bilinear)
    return jnp.where(seen, surface - r, -UNSEEN), seen


def free_depth(views: Sequence[View], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far in front of every view's surface points are.

    Args:
      views: K views; points: (N, 3).

    Returns:
      free float32 (K, N): the view's surface depth at the point's pixel minus the point's
      distance (> 0: the view sees through the point; -UNSEEN where the view does not see it:
      behind the camera, outside its image or beyond `far`), seen bool (K, N).
    """
    points = np.asarray(points, np.float32).reshape(-1, 3)
    frees, seens = [], []
    for view in (_view_arrays(v) for v in views):
        free, seen = [np.zeros(0, np.float32)], [np.zeros(0, bool)]
        for start in range(0, len(points), LOOKUP_CHUNK):
            f, s = _lookup(*view, jnp.asarray(points[start : start + LOOKUP_CHUNK]))
            free.append(np.asarray(f))
            seen.append(np.asarray(s))
        frees.append(np.concatenate(free))
        seens.append(np.concatenate(seen))
    return np.stack(frees), np.stack(seens)


def carved_depth(views: Sequence[View], points: np.ndarray, quorum: int = 1) -> np.ndarray:
    """How far behind the surface the `quorum`-th view that sees farthest sees each point.

    Args:
      views: K views; points: (N, 3); quorum: at most K (a point is free space when at least
        `quorum` views see it in front of their surface).

    Returns:
      float32 (N,): < 0 in free space, > 0 behind the surface; UNSEEN where fewer than
      `quorum` views see the point.
    """
    quorum = min(quorum, len(views))
    free = free_depth(views, points)[0]
    return -np.partition(free, len(views) - quorum, axis=0)[len(views) - quorum]
