# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Geometry: the base head (a smooth signed-distance function) and the radial function.

Every skin vertex is `STAR_CENTER + r(d) d`; `_ray_radius` finds r(d) of a signed
distance, `_sphere_exit` the radius at which a ray from `STAR_CENTER` leaves a sphere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flamenerf.synthetic.head.constants import _R_MAX, STAR_CENTER
from flamenerf.synthetic.head.helpers import _ellipsoid, _smin


def _neck_sdf(points: np.ndarray) -> np.ndarray:
    """Signed distance to the neck stub: an elliptic cylinder with a rounded bottom edge."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    ax, az, cz = 0.052, 0.054, -0.022
    radial = (np.sqrt((x / ax) ** 2 + ((z - cz) / az) ** 2) - 1.0) * min(ax, az)
    y_bottom, y_top, rounding = -0.160, -0.020, 0.012
    half = 0.5 * (y_top - y_bottom)
    qx = radial + rounding
    qy = np.abs(y - 0.5 * (y_top + y_bottom)) - half + rounding
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - rounding


def _base_sdf(points: np.ndarray) -> np.ndarray:
    """Signed distance (approximate) of the base head: no nose, eyes, lips or ears.

    points: (..., 3) -> (...,); negative inside.
    """
    cranium = _ellipsoid(points, (0.0, 0.040, -0.016), (0.0745, 0.094, 0.104))
    face = _ellipsoid(points, (0.0, -0.008, 0.006), (0.0650, 0.082, 0.081))
    mandible = _ellipsoid(points, (0.0, -0.058, 0.017), (0.0555, 0.040, 0.070))
    mirrored = np.concatenate([np.abs(points[..., :1]), points[..., 1:]], axis=-1)
    angles = _ellipsoid(mirrored, (0.046, -0.062, -0.004), (0.014, 0.028, 0.030))
    chin = _ellipsoid(points, (0.0, -0.079, 0.073), (0.0220, 0.021, 0.021))
    d = _smin(cranium, face, 0.020)
    d = _smin(d, mandible, 0.016)
    d = _smin(d, angles, 0.012)
    d = _smin(d, chin, 0.010)
    return _smin(d, _neck_sdf(points), 0.014)


def _ray_radius(
    sdf: Callable[[np.ndarray], np.ndarray], dirs: np.ndarray, n_coarse: int = 120
) -> np.ndarray:
    """Distance from STAR_CENTER to the outermost zero of `sdf` along each direction.

    dirs: (N, 3) unit vectors -> (N,) radii (bisection after a coarse march).
    """
    ts = np.linspace(0.0, _R_MAX, n_coarse)
    values = sdf(STAR_CENTER + ts[:, None, None] * dirs[None])  # (n_coarse, N)
    inside = values < 0.0
    last = n_coarse - 1 - np.argmax(inside[::-1], axis=0)  # last inside sample
    last = np.minimum(last, n_coarse - 2)
    lo, hi = ts[last], ts[last + 1]
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        is_in = sdf(STAR_CENTER + mid[:, None] * dirs) < 0.0
        lo = np.where(is_in, mid, lo)
        hi = np.where(is_in, hi, mid)
    return 0.5 * (lo + hi)


def _sphere_exit(dirs: np.ndarray, center: np.ndarray, radius: float | np.ndarray) -> np.ndarray:
    """Far intersection of rays STAR_CENTER + t d with a sphere (closest approach if missed)."""
    oc = STAR_CENTER - center
    b = np.sum(dirs * oc, axis=-1)
    c = np.sum(oc * oc) - radius * radius
    disc = b * b - c
    return -b + np.sqrt(np.maximum(disc, 0.0))
