# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The bake's first stage: the box of the scene the training cameras see (`surface_box`).

Rays through an even subsample of each camera's pixels (`camera_ray_subset`) are rendered
through the canonical field (`flamenerf.export.field.CanonicalField.weights`, evenly spaced
samples); where a ray's accumulated opacity first passes 1/2 (`first_surface`) is a surface
point. The box spans those points between per-axis quantiles (dropping stray floaters),
widened by a margin: head, hair, torso and room. Lengths are in model-frame units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flamenerf.export.field import CanonicalField
from flamenerf.geometry.camera import Camera


def camera_ray_subset(
    cameras: Sequence[Camera], rays_per_camera: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rays through an even subsample of each camera's pixel centres.

    Returns:
      origins (N, 3), unit directions (N, 3), N <= about len(cameras) * rays_per_camera.
    """
    origins, directions = [np.zeros((0, 3))], [np.zeros((0, 3))]
    for camera in cameras:
        height, width = camera.image_shape
        stride = max(1, int(np.ceil(np.sqrt(height * width / rays_per_camera))))
        pixels = camera.get_pixel_centers()[stride // 2 :: stride, stride // 2 :: stride]
        o, d = camera.pixels_to_rays(pixels.reshape(-1, 2))
        origins.append(o)
        directions.append(d)
    return np.concatenate(origins), np.concatenate(directions)


def first_surface(
    weights: np.ndarray, z_vals: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Depth where each ray's accumulated opacity first reaches `threshold`.

    Args:
      weights: (N, S) volume-rendering weights; z_vals: (N, S) their depths.

    Returns:
      hit: bool (N,) (the opacity reaches it); depth: (N,) (z of that sample, nan where not).
    """
    cumulative = np.cumsum(weights, axis=1)
    hit = cumulative[:, -1] >= threshold
    index = np.argmax(cumulative >= threshold, axis=1)
    depth = np.where(hit, np.take_along_axis(z_vals, index[:, None], axis=1)[:, 0], np.nan)
    return hit, depth


def surface_box(
    field: CanonicalField,
    cameras: Sequence[Camera],
    near: float,
    far: float,
    samples: int = 256,
    rays_per_camera: int = 1024,
    margin: float = 0.05,
    quantile: float = 0.0,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The box of the surfaces the cameras see (module docstring).

    Args:
      field: the canonical field; cameras: the training cameras (model frame).
      near, far: the rays' bounds; samples: evenly spaced samples per ray.
      rays_per_camera: pixels per camera (an even subsample).
      margin: added on every side.
      quantile: per axis, the box spans the surface points' quantiles `quantile` and
        1 - `quantile` (0: all of them; a little more drops stray floaters far out).

    Returns:
      lower (3,), upper (3,); the cameras' box when no ray reaches opacity 1/2.
    """
    origins, directions = camera_ray_subset(cameras, rays_per_camera)
    z = np.broadcast_to(np.linspace(near, far, samples, dtype=np.float32), (len(origins), samples))
    weights = field.weights(origins, directions, z, "scene box", show_progress)
    hit, depth = first_surface(weights, z)
    if not hit.any():
        points = np.array([c.position for c in cameras])
    else:
        points = origins[hit] + depth[hit, None] * directions[hit]
    lower, upper = np.quantile(points, [quantile, 1.0 - quantile], axis=0)
    return lower - margin, upper + margin
