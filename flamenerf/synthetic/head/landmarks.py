# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Landmarks: the 51 inner iBUG points (17-67) embedded in the skin."""

from __future__ import annotations

import numpy as np

from flamenerf.synthetic.head.constants import (
    _ALMOND_TILT,
    _ALMOND_W,
    _EYE_PLANE,
    _MARGIN,
    _MOUTH_W,
    LEFT_EYE,
    RIGHT_EYE,
    STAR_CENTER,
)
from flamenerf.synthetic.head.eyes import _almond_margins
from flamenerf.synthetic.head.features import (
    _band_half_height,
    _brow_curve,
    _lower_lip_height,
    _mouth_seam_y,
    _upper_lip_height,
)
from flamenerf.synthetic.head.helpers import _normalize
from flamenerf.synthetic.head.surface import _directions_for_face_points, _surface


def _tip_height() -> float:
    """Face y of the nose tip: the most forward skin point on the midline."""
    ys = np.linspace(-0.016, 0.004, 41)
    points = _surface(_directions_for_face_points(np.column_stack([0.0 * ys, ys])))["points"]
    return float(ys[np.argmax(points[:, 2])])


def _landmark_directions() -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (51, 3) of iBUG points 17-67 and their lip constraint (51,).

    The constraint is 1 for the upper inner lip (embedded in upper-lip faces only), -1 for the
    lower inner lip, 0 otherwise. The subject's right (iBUG's first brow, eye and mouth corner,
    on the image's left) is at -x.
    """
    face_xy: list[tuple[float, float]] = []
    brow_x = np.array([0.058, 0.049, 0.039, 0.028, 0.017])
    for x in np.concatenate([-brow_x, brow_x[::-1]]):  # 17-21, 22-26
        face_xy.append((x, float(_brow_curve(np.abs(x)))))
    for y in (0.033, 0.021, 0.009, _tip_height()):  # 27-30
        face_xy.append((0.0, y))
    for x, y in zip(  # 31-35
        (-0.0105, -0.0055, 0.0, 0.0055, 0.0105),
        (-0.0185, -0.0210, -0.0225, -0.0210, -0.0185),
        strict=True,
    ):
        face_xy.append((x, y))
    dirs = [_directions_for_face_points(np.array(face_xy))]
    # Eyes 36-47: corners just outside the opening, lids on the outer margin rows.
    w, off, third = _ALMOND_W, 1.6 * _MARGIN, _ALMOND_W / 3.0
    for side, order in ((-1.0, (w, third, -third, -w, -third, third)),
                        (1.0, (-w, -third, third, w, third, -third))):  # fmt: skip
        uv = []
        for k, u in enumerate(order):
            v_up, v_lo = (float(m) for m in _almond_margins(np.array(u)))
            if abs(u) == w:
                uv.append((u + np.sign(u) * 0.0006, _ALMOND_TILT * u))
            elif k in (1, 2):
                uv.append((u, v_up + off))
            else:
                uv.append((u, v_lo - off))
        uv = np.array(uv)
        eye = LEFT_EYE if side > 0 else RIGHT_EYE
        on_plane = np.column_stack(
            [eye[0] + side * uv[:, 0], eye[1] + uv[:, 1], np.full(6, eye[2] + _EYE_PLANE)]
        )
        dirs.append(_normalize(on_plane - STAR_CENTER))
    # Mouth 48-67.
    w = _MOUTH_W
    seam = lambda x: float(_mouth_seam_y(np.array(x)))
    up = lambda x: seam(x) + float(_upper_lip_height(np.array(x)))
    lo = lambda x: seam(x) - float(_lower_lip_height(np.array(x)))
    hw = lambda x: float(_band_half_height(np.array(x)))
    outer_x = (-0.62 * w, -0.28 * w, 0.0, 0.28 * w, 0.62 * w)
    mouth = [(-w, seam(-w))]  # 48
    mouth += [(x, up(x)) for x in outer_x]  # 49-53
    mouth += [(w, seam(w))]  # 54
    mouth += [(x, lo(x)) for x in outer_x[::-1]]  # 55-59
    inner_x = (-0.4 * w, 0.0, 0.4 * w)
    mouth += [(-(w - 0.002), seam(-(w - 0.002)))]  # 60
    mouth += [(x, seam(x) + hw(x)) for x in inner_x]  # 61-63
    mouth += [(w - 0.002, seam(w - 0.002))]  # 64
    mouth += [(x, seam(x) - hw(x)) for x in inner_x[::-1]]  # 65-67
    dirs.append(_directions_for_face_points(np.array(mouth)))
    constraint = np.zeros(51, dtype=int)
    constraint[61 - 17 : 64 - 17] = 1
    constraint[65 - 17 : 68 - 17] = -1
    return np.concatenate(dirs), constraint


def _ray_barycentrics(dirs: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentrics (L, T, 3) where rays from STAR_CENTER cross the triangles' planes.

    dirs: (L, 3); triangles: (T, 3, 3). Möller-Trumbore; parallel planes give -inf weights.
    """
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e1, e2 = b - a, c - a  # (T, 3)
    pvec = np.cross(dirs[:, None, :], e2[None])  # (L, T, 3)
    det = np.einsum("ltk,tk->lt", pvec, e1)
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    tvec = STAR_CENTER - a  # (T, 3)
    u = np.einsum("ltk,tk->lt", pvec, tvec) * inv
    qvec = np.cross(tvec, e1)  # (T, 3)
    v = np.einsum("lk,tk->lt", dirs, qvec) * inv
    bary = np.stack([1.0 - u - v, u, v], axis=-1)
    return np.where(ok[..., None], bary, -np.inf)


def _landmark_embedding(mesh: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Face indices (51,) and barycentrics (51, 3) of the landmarks on the skin."""
    dirs, constraint = _landmark_directions()
    faces, vertices = mesh["faces"], mesh["vertices"]
    num_skin = len(mesh["base"])
    skin_faces = np.flatnonzero(np.all(faces < num_skin, axis=1))
    band_t = np.concatenate([mesh["band_t"], np.full(len(vertices) - num_skin, np.nan)])
    base = mesh["base"]
    q = base[:, 1] - _mouth_seam_y(base[:, 0])
    q = np.concatenate([q, np.zeros(len(vertices) - num_skin)])
    upper = np.where(np.isnan(band_t), q > 0.0, band_t == 1.0)
    lower = np.where(np.isnan(band_t), q < 0.0, band_t == -1.0)
    face_idx = np.zeros(51, dtype=np.int64)
    bary = np.zeros((51, 3))
    for sign, allowed in ((0, np.ones(len(vertices), bool)), (1, upper), (-1, lower)):
        rows = np.flatnonzero(constraint == sign)
        cand = skin_faces[np.all(allowed[faces[skin_faces]], axis=1)]
        # Only faces in front of the star centre along the ray count.
        centers = vertices[faces[cand]].mean(axis=1) - STAR_CENTER
        b = _ray_barycentrics(dirs[rows], vertices[faces[cand]])
        facing = np.einsum("lk,tk->lt", dirs[rows], centers) > 0.0
        score = np.where(facing, b.min(axis=-1), -np.inf)
        best = np.argmax(score, axis=1)
        face_idx[rows] = cand[best]
        chosen = np.clip(b[np.arange(len(rows)), best], 0.0, None)
        bary[rows] = chosen / chosen.sum(axis=1, keepdims=True)
    return face_idx, bary
