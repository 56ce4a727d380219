# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The skin along unit directions: base radius plus feature heights, bent around the eyes."""

from __future__ import annotations

import numpy as np

from flamenerf.synthetic.head.base_head import _base_sdf, _ray_radius
from flamenerf.synthetic.head.constants import STAR_CENTER
from flamenerf.synthetic.head.eyes import _apply_eyes
from flamenerf.synthetic.head.features import _feature_height
from flamenerf.synthetic.head.helpers import _normalize


def _surface(dirs: np.ndarray) -> dict[str, np.ndarray]:
    """The skin along unit directions (N, 3).

    Returns `points` (N, 3), the base-head points `base` (N, 3) whose (x, y) are the face
    coordinates of every feature, the eye weights `lid`, `open` (N,) and `eye_uv` (N, 2).
    """
    r_base = _ray_radius(_base_sdf, dirs)
    base = STAR_CENTER + r_base[:, None] * dirs
    radius = r_base + _feature_height(base)
    eyes = _apply_eyes(dirs, radius)
    points = STAR_CENTER + eyes.pop("radius")[:, None] * dirs
    return {"points": points, "base": base, **eyes}


def _directions_for_face_points(xy: np.ndarray, iterations: int = 24) -> np.ndarray:
    """Unit directions whose base-head point has the given face (x, y); xy: (N, 2) front."""
    z = np.full(len(xy), 0.07)
    for _ in range(iterations):
        dirs = _normalize(np.column_stack([xy, z]) - STAR_CENTER)
        z = (STAR_CENTER + _ray_radius(_base_sdf, dirs)[:, None] * dirs)[:, 2]
    return _normalize(np.column_stack([xy, z]) - STAR_CENTER)
