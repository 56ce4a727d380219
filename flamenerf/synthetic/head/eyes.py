# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Eyes: the almond-shaped opening and the lids that bend the skin around the eyeballs."""

from __future__ import annotations

import numpy as np

from flamenerf.synthetic.head.base_head import _sphere_exit
from flamenerf.synthetic.head.constants import (
    _ALMOND_LO,
    _ALMOND_TILT,
    _ALMOND_UP,
    _ALMOND_W,
    _EYE_PLANE,
    _LID_RADIUS,
    _MARGIN,
    _SOCKET_RADIUS,
    LEFT_EYE,
    RIGHT_EYE,
    STAR_CENTER,
)
from flamenerf.synthetic.head.helpers import _normalize, _smoothstep


def _almond(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Dense closed polyline of the eye opening in eye-local (u lateral, v up) metres.

    Returns (n, 2) points in counter-clockwise order and (n, 2) outward unit normals.
    """
    s = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    u = _ALMOND_W * np.cos(s)
    c = np.clip(1.0 - (u / _ALMOND_W) ** 2, 0.0, 1.0)
    upper = _ALMOND_UP * c**0.62 * (1.0 - 0.18 * u / _ALMOND_W)
    lower = -_ALMOND_LO * c**0.70 * (1.0 + 0.20 * u / _ALMOND_W)
    v = np.where(np.sin(s) >= 0.0, upper, lower) + _ALMOND_TILT * u
    points = np.stack([u, v], axis=-1)
    tangent = np.roll(points, -1, axis=0) - np.roll(points, 1, axis=0)
    normal = _normalize(np.stack([tangent[:, 1], -tangent[:, 0]], axis=-1))
    return points, normal


def _eye_uv(dirs: np.ndarray, side: float) -> np.ndarray:
    """Eye-local coordinates of rays: where they cross a plane just behind the lids' front.

    dirs: (N, 3) unit directions from STAR_CENTER; side: +1 left eye, -1 right eye.
    Returns (N, 2) (u, v) metres, u pointing away from the nose, v up; rays that do not
    reach the plane in front of the star centre get a large offset.
    """
    eye = LEFT_EYE if side > 0 else RIGHT_EYE
    dz = np.maximum(dirs[:, 2], 1e-3)
    t = (eye[2] + _EYE_PLANE - STAR_CENTER[2]) / dz
    x = STAR_CENTER[0] + t * dirs[:, 0]
    y = STAR_CENTER[1] + t * dirs[:, 1]
    uv = np.stack([(x - eye[0]) * side, y - eye[1]], axis=-1)
    return np.where((dirs[:, 2] > 0.05)[:, None], uv, 1.0)


def _almond_margins(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid margins v(u) of the eye opening (eye-local metres)."""
    c = np.clip(1.0 - (u / _ALMOND_W) ** 2, 0.0, 1.0)
    upper = _ALMOND_UP * c**0.62 * (1.0 - 0.18 * u / _ALMOND_W) + _ALMOND_TILT * u
    lower = -_ALMOND_LO * c**0.70 * (1.0 + 0.20 * u / _ALMOND_W) + _ALMOND_TILT * u
    return upper, lower


def _almond_signed_distance(uv: np.ndarray) -> np.ndarray:
    """Signed distance (metres, positive outside) to the eye opening; uv: (N, 2) eye-local."""
    points, _ = _almond()
    dist = np.full(len(uv), 1.0)
    for start in range(0, len(uv), 2048):
        chunk = uv[start : start + 2048]
        d2 = np.sum((chunk[:, None, :] - points[None]) ** 2, axis=-1)
        dist[start : start + 2048] = np.sqrt(d2.min(axis=1))
    upper, lower = _almond_margins(uv[:, 0])
    inside = (np.abs(uv[:, 0]) < _ALMOND_W) & (uv[:, 1] < upper) & (uv[:, 1] > lower)
    return np.where(inside, -dist, dist)


def _eye_region_weight(uv: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """1 where the skin follows the lid sphere (near the opening), fading out over the orbit.

    uv: (N, 2) eye-local coordinates; sd: (N,) signed distance to the opening.
    """
    fade = np.where(uv[:, 1] > 0.0, 0.0105, 0.0070) + 0.0020 * np.clip(uv[:, 0] / 0.012, 0, 1)
    return _smoothstep(sd, 0.0025 + fade, 0.0025)


def _apply_eyes(dirs: np.ndarray, radius: np.ndarray) -> dict[str, np.ndarray]:
    """Bends the skin around the eyeballs.

    Returns the new `radius` (N,); the lid weight `lid` and the opening weight `open`
    (1 inside the opening), (N,) each; and `eye_uv` (N, 2), the eye-local coordinates for the
    eye on the vertex's side of the face.
    """
    lid_total = np.zeros(len(dirs))
    open_total = np.zeros(len(dirs))
    eye_uv = np.zeros((len(dirs), 2))
    for side, eye in ((1.0, LEFT_EYE), (-1.0, RIGHT_EYE)):
        uv = _eye_uv(dirs, side)
        on_side = dirs[:, 0] * side >= 0.0
        eye_uv[on_side] = uv[on_side]
        near = (np.abs(uv[:, 0]) < 0.03) & (np.abs(uv[:, 1]) < 0.025)
        lid = np.zeros(len(dirs))
        opening = np.zeros(len(dirs))
        sd = _almond_signed_distance(uv[near])
        lid[near] = _eye_region_weight(uv[near], sd)
        opening[near] = _smoothstep(sd, _MARGIN, -_MARGIN)
        r_lid = _sphere_exit(dirs, eye, _LID_RADIUS)
        r_socket = _sphere_exit(dirs, eye, _SOCKET_RADIUS)
        radius = (1.0 - lid) * radius + lid * r_lid
        radius = (1.0 - opening) * radius + opening * r_socket
        lid_total = np.maximum(lid_total, lid)
        open_total = np.maximum(open_total, opening)
    return {"radius": radius, "lid": lid_total, "open": open_total, "eye_uv": eye_uv}
