# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Mesh: graded directions relaxed on the unit sphere, triangulated by their convex hull.

Fixed rows of directions resolve the lip seam, the vermilion borders, the eyebrows, the
lid margins and the hairline; the rest is DistMesh (Persson and Strang 2004) on the
sphere. Also the eyeballs (closed UV spheres).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, cKDTree

from flamenerf.synthetic.head.base_head import _base_sdf, _ray_radius
from flamenerf.synthetic.head.constants import (
    _BAND_ROWS,
    _EYE_PLANE,
    _MARGIN,
    _MOUTH_W,
    _MOUTH_Y,
    EYE_RADIUS,
    IRIS,
    LEFT_EYE,
    PUPIL,
    RIGHT_EYE,
    SCLERA,
    STAR_CENTER,
)
from flamenerf.synthetic.head.eyes import _almond, _almond_signed_distance
from flamenerf.synthetic.head.features import (
    _BROW_X,
    _band_half_height,
    _brow_curve,
    _brow_half_thickness,
    _ear_weight,
    _hairline_y,
    _lower_lip_height,
    _mouth_seam_y,
    _upper_lip_height,
)
from flamenerf.synthetic.head.helpers import _gauss2, _normalize, _smoothstep
from flamenerf.synthetic.head.surface import _directions_for_face_points


def _target_edge_length(base: np.ndarray) -> np.ndarray:
    """Desired edge length (metres) on the skin at base points (N, 3)."""
    x, y, z = base[:, 0], base[:, 1], base[:, 2]
    ax = np.abs(x)
    h = np.full(len(base), 0.0098)
    blend = lambda h, w, target: h * (1.0 - w) + target * w
    h = blend(h, _smoothstep(z, -0.030, 0.030) * _smoothstep(y, -0.110, -0.085), 0.0052)
    h = blend(h, _gauss2(x, y, 0.0, 0.000, 0.045, 0.055) * _smoothstep(z, 0.02, 0.05), 0.0040)
    h = blend(h, _ear_weight(base), 0.0042)
    h = blend(h, _gauss2(x, y, 0.0, -0.006, 0.016, 0.024) * (z > 0.02), 0.0030)
    h = blend(
        h, _gauss2(ax, y, LEFT_EYE[0], LEFT_EYE[1] + 0.006, 0.026, 0.020) * (z > 0.02), 0.0026
    )
    h = blend(h, _gauss2(ax, y, LEFT_EYE[0], LEFT_EYE[1], 0.018, 0.010) * (z > 0.02), 0.0021)
    h = blend(h, _gauss2(x, y, 0.0, _MOUTH_Y, 0.034, 0.015) * (z > 0.02), 0.0019)
    return h


def _fibonacci_sphere(n: int) -> np.ndarray:
    """(n, 3) quasi-uniform unit vectors (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    y = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - y * y)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.sin(phi), y, r * np.cos(phi)], axis=-1)


class _AngularSizing:
    """Desired angular edge length (radians) on the unit sphere, by bilinear table look-up."""

    def __init__(self, n_polar: int = 91, n_azimuth: int = 181):
        polar = np.linspace(0.0, np.pi, n_polar)
        azimuth = np.linspace(-np.pi, np.pi, n_azimuth)
        pp, aa = np.meshgrid(polar, azimuth, indexing="ij")
        dirs = np.stack([np.sin(pp) * np.sin(aa), np.cos(pp), np.sin(pp) * np.cos(aa)], -1)
        dirs = dirs.reshape(-1, 3)
        radius = _ray_radius(_base_sdf, dirs, n_coarse=60)
        base = STAR_CENTER + radius[:, None] * dirs
        table = _target_edge_length(base) / radius
        self._table = table.reshape(n_polar, n_azimuth)
        self._n = (n_polar, n_azimuth)

    def __call__(self, dirs: np.ndarray) -> np.ndarray:
        polar = np.arccos(np.clip(dirs[:, 1], -1.0, 1.0)) / np.pi * (self._n[0] - 1)
        azimuth = (np.arctan2(dirs[:, 0], dirs[:, 2]) + np.pi) / (2 * np.pi) * (self._n[1] - 1)
        i0 = np.clip(np.floor(polar).astype(int), 0, self._n[0] - 2)
        j0 = np.clip(np.floor(azimuth).astype(int), 0, self._n[1] - 2)
        fi, fj = polar - i0, azimuth - j0
        t = self._table
        return (
            t[i0, j0] * (1 - fi) * (1 - fj)
            + t[i0 + 1, j0] * fi * (1 - fj)
            + t[i0, j0 + 1] * (1 - fi) * fj
            + t[i0 + 1, j0 + 1] * fi * fj
        )


def _lip_band_points() -> tuple[np.ndarray, np.ndarray]:
    """Face (x, y) of the fixed rows of the lip seam and their row parameter t (+1 = upper)."""
    step = 0.0017
    xy, rows = [], []
    for t in _BAND_ROWS:
        xs = np.arange(-_MOUTH_W, _MOUTH_W + 1e-9, step)
        if t == 0.0:
            xs = np.unique(np.concatenate([xs, [-_MOUTH_W, _MOUTH_W]]))
        else:
            xs = xs[_band_half_height(xs) >= 0.00045 + 0.0002 * abs(t)]
        xy.append(np.column_stack([xs, _mouth_seam_y(xs) + t * _band_half_height(xs)]))
        rows.append(np.full(len(xs), t))
    return np.concatenate(xy), np.concatenate(rows)


def _resample(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Points along an open polyline (N, 2), both ends included, about `spacing` apart."""
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(round(arc[-1] / spacing)), 1)
    s = np.linspace(0.0, arc[-1], n + 1)
    return np.column_stack([np.interp(s, arc, polyline[:, k]) for k in range(2)])


def _outline_points() -> np.ndarray:
    """Face (x, y) of fixed rows along the vermilion borders and the eyebrow outlines."""
    xs = np.linspace(-_MOUTH_W, _MOUTH_W, 401)
    lips = []
    for sign, height in ((1.0, _upper_lip_height), (-1.0, _lower_lip_height)):
        curve = np.column_stack([xs, _mouth_seam_y(xs) + sign * height(xs)])
        points = _resample(curve, 0.0018)
        lips.append(points[np.abs(points[:, 0]) < _MOUTH_W - 0.0022])
    brows = []
    ax = np.linspace(_BROW_X[0], _BROW_X[1], 200)
    center = _brow_curve(ax)
    half = _brow_half_thickness(ax)
    for sign in (1.0, -1.0):
        for edge in (center + half, center - half):
            brows.append(_resample(np.column_stack([sign * ax, edge]), 0.0022))
        # The rounded medial end.
        k = np.array([0.25, 0.5, 0.75])
        end = np.column_stack(
            [
                sign * (_BROW_X[0] - 0.0012 * np.sin(np.pi * k)),
                center[0] + half[0] * np.cos(np.pi * k),
            ]
        )
        brows.append(end)
    return np.concatenate(lips + brows)


def _hairline_directions() -> np.ndarray:
    """Unit directions of a fixed row along the hairline (so the hair label has a clean edge)."""
    azimuth = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    lo, hi = np.full_like(azimuth, 0.05), np.full_like(azimuth, 2.8)  # polar angles from +y

    def direction(polar: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.sin(polar) * np.sin(azimuth), np.cos(polar), np.sin(polar) * np.cos(azimuth)], -1
        )

    for _ in range(30):
        mid = 0.5 * (lo + hi)
        dirs = direction(mid)
        base = STAR_CENTER + _ray_radius(_base_sdf, dirs)[:, None] * dirs
        above = base[:, 1] > _hairline_y(base)
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    dirs = direction(0.5 * (lo + hi))
    base = STAR_CENTER + _ray_radius(_base_sdf, dirs)[:, None] * dirs
    base = base[_ear_weight(base) < 0.5]
    # Resample the closed curve with spacing 0.8 x the local edge length.
    closed = np.concatenate([base, base[:1]])
    step = np.linalg.norm(np.diff(closed, axis=0), axis=1) / (0.8 * _target_edge_length(base))
    arc = np.concatenate([[0.0], np.cumsum(step)])
    keep = np.unique(np.searchsorted(arc, np.arange(0.0, arc[-1] - 0.5)))
    return _normalize(base[keep] - STAR_CENTER)


def _lid_margin_directions() -> np.ndarray:
    """Unit directions of the fixed rows just outside and just inside both eye openings."""
    points, normals = _almond()
    seg = np.linalg.norm(np.roll(points, -1, axis=0) - points, axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    n = int(round(total / 0.0013))
    out = []
    for sign in (1.0, -1.0):
        s = np.arange(n) * total / n
        idx = np.searchsorted(arc, s, side="right") - 1
        uv = points[idx % len(points)] + sign * 1.6 * _MARGIN * normals[idx % len(points)]
        sd = _almond_signed_distance(uv)
        keep = sign * sd > 1.2 * _MARGIN
        out.append(uv[keep])
    uv = np.concatenate(out)
    dirs = []
    for side, eye in ((1.0, LEFT_EYE), (-1.0, RIGHT_EYE)):
        on_plane = np.column_stack(
            [eye[0] + side * uv[:, 0], eye[1] + uv[:, 1], np.full(len(uv), eye[2] + _EYE_PLANE)]
        )
        dirs.append(_normalize(on_plane - STAR_CENTER))
    return np.concatenate(dirs)


def _hull_faces(dirs: np.ndarray) -> np.ndarray:
    """Triangles of the convex hull of unit vectors, oriented outward. dirs: (N, 3)."""
    faces = ConvexHull(dirs).simplices.astype(np.int64)
    a, b, c = dirs[faces[:, 0]], dirs[faces[:, 1]], dirs[faces[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


def _unique_edges(faces: np.ndarray) -> np.ndarray:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(edges, axis=1), axis=0)


def _relax(dirs: np.ndarray, num_fixed: int, sizing: _AngularSizing, iters: int) -> np.ndarray:
    """DistMesh on the unit sphere: edges act as repulsive springs of the desired length.

    dirs: (N, 3) unit vectors, the first `num_fixed` stay put. Returns the relaxed (N, 3).
    """
    p = dirs.copy()
    edges = None
    for it in range(iters):
        if it % 4 == 0:
            edges = _unique_edges(_hull_faces(p))
        i, j = edges[:, 0], edges[:, 1]
        vec = p[i] - p[j]
        length = np.linalg.norm(vec, axis=1)
        h = sizing(p)
        hbar = 0.5 * (h[i] + h[j])
        target = 1.2 * hbar * np.sqrt(np.sum(length**2) / np.sum(hbar**2))
        force = np.maximum(target - length, 0.0) / np.maximum(length, 1e-12)
        fvec = force[:, None] * vec
        total = np.zeros_like(p)
        np.add.at(total, i, fvec)
        np.add.at(total, j, -fvec)
        total[:num_fixed] = 0.0
        p = _normalize(p + 0.2 * total)
    return p


def _skin_directions() -> tuple[np.ndarray, np.ndarray]:
    """Unit directions of the skin vertices and the row parameter of the lip-band ones.

    Returns dirs (N, 3) and band_t (N,) (NaN off the band).
    """
    sizing = _AngularSizing()
    band_xy, band_t = _lip_band_points()
    face_xy = np.concatenate([band_xy, _outline_points()])
    fixed = np.concatenate(
        [_directions_for_face_points(face_xy), _lid_margin_directions(), _hairline_directions()]
    )
    candidates = _fibonacci_sphere(60000)
    h = sizing(candidates)
    rng = np.random.default_rng(0)
    keep = rng.random(len(candidates)) < (h.min() / h) ** 2
    free = candidates[keep]
    # Drop free points that crowd the fixed rows.
    dist, _ = cKDTree(fixed).query(free)
    free = free[dist > 0.8 * sizing(free)]
    dirs = _relax(np.concatenate([fixed, free]), len(fixed), sizing, iters=60)
    band = np.full(len(dirs), np.nan)
    band[: len(band_t)] = band_t
    return dirs, band


def _eyeball(center: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed UV sphere looking along +z: vertices (M, 3), faces (G, 3), labels (M,)."""
    polar = np.array(
        [0.10, 0.19, 0.25, 0.33, 0.42, 0.50, 0.57, 0.68, 0.82, 0.98, 1.16, 1.36, 1.58, 1.82, 2.1,
         2.4, 2.75]
    )  # fmt: skip
    n_seg = 24
    azimuth = 2.0 * np.pi * np.arange(n_seg) / n_seg
    pp, aa = np.meshgrid(polar, azimuth, indexing="ij")
    ring = np.stack([np.sin(pp) * np.cos(aa), np.sin(pp) * np.sin(aa), np.cos(pp)], -1)
    unit = np.concatenate([[[0.0, 0.0, 1.0]], ring.reshape(-1, 3), [[0.0, 0.0, -1.0]]])
    faces = []
    ring_index = lambda r, s: 1 + r * n_seg + (s % n_seg)
    for s in range(n_seg):
        faces.append([0, ring_index(0, s), ring_index(0, s + 1)])
        last = len(unit) - 1
        faces.append([last, ring_index(len(polar) - 1, s + 1), ring_index(len(polar) - 1, s)])
        for r in range(len(polar) - 1):
            a, b = ring_index(r, s), ring_index(r, s + 1)
            c, d = ring_index(r + 1, s), ring_index(r + 1, s + 1)
            faces += [[a, c, d], [a, d, b]]
    angle = np.arccos(np.clip(unit[:, 2], -1.0, 1.0))
    labels = np.where(angle < 0.215, PUPIL, np.where(angle < 0.53, IRIS, SCLERA))
    return center + EYE_RADIUS * unit, np.array(faces), labels.astype(np.int8)
