# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Skinning: linear-blend-skinning weights, the joint regressor and the pose correctives."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from flamenerf.synthetic.head.constants import _MOUTH_W, _MOUTH_Y, JOINTS
from flamenerf.synthetic.head.features import _band_half_height, _mouth_seam_y
from flamenerf.synthetic.head.helpers import _smoothstep


def _jaw_weight(points: np.ndarray, base: np.ndarray, band_t: np.ndarray) -> np.ndarray:
    """Weight of the jaw joint for skin vertices (S,): lower face 1, upper face 0.

    Away from the mouth the boundary is the plane through the jaw joint's x axis and the lip
    seam (soft across the cheeks); at the lips it is the seam itself, through the band rows.
    """
    x, y, z = base[:, 0], base[:, 1], base[:, 2]
    jaw = JOINTS[2]
    psi = np.degrees(np.arctan2(jaw[1] - points[:, 1], points[:, 2] - jaw[2]))
    seam_psi = np.degrees(np.arctan2(jaw[1] - _MOUTH_Y, 0.095 - jaw[2]))
    side = _smoothstep(psi, seam_psi - 9.0, seam_psi + 11.0)
    side *= _smoothstep(points[:, 2], jaw[2] + 0.004, jaw[2] + 0.050)
    side *= _smoothstep(points[:, 1], -0.118, -0.092)  # the throat belongs to the neck
    # At the mouth: 0 on the upper lip, 1 on the lower one, across the band rows in between;
    # towards the corners the lips share the motion (the mouth opens as an oval), and beyond
    # them the seam softens into the cheeks. Monotonic in the height, so the lips and band
    # rows never cross when the jaw opens.
    q = y - _mouth_seam_y(x)
    on_band = ~np.isnan(band_t)
    hw = _band_half_height(x)
    q[on_band] = band_t[on_band] * hw[on_band]
    share = 0.38 * np.clip(np.abs(x) / _MOUTH_W, 0.0, 1.0) ** 3
    across = _smoothstep(np.clip((1.0 - q / np.maximum(hw, 1e-9)) / 2.0, 0.0, 1.0), 0.0, 1.0)
    lens = np.where(
        q > hw,
        share * _smoothstep(q - hw, 0.014, 0.0),
        np.where(
            q < -hw,
            1.0 - share * _smoothstep(-q - hw, 0.014, 0.0),
            share + (1.0 - 2.0 * share) * across,
        ),
    )
    half = 0.0035 + 0.55 * np.maximum(np.abs(x) - _MOUTH_W, 0.0)
    beyond = _smoothstep(np.clip((1.0 - q / half) / 2.0, 0.0, 1.0), 0.0, 1.0)
    k = _smoothstep(np.abs(x), _MOUTH_W - 0.004, _MOUTH_W + 0.004)
    mouth = (1.0 - k) * lens + k * beyond
    near_mouth = _smoothstep(np.abs(x), _MOUTH_W + 0.014, _MOUTH_W + 0.002)
    near_mouth *= _smoothstep(np.abs(q), 0.022, 0.012) * (z > 0.03)
    return near_mouth * mouth + (1.0 - near_mouth) * side


def _skinning_weights(mesh: dict[str, np.ndarray]) -> np.ndarray:
    """(V, 5) LBS weights: neck stub to root, lower face to jaw, eyeballs to the eyes."""
    vertices, eye_index = mesh["vertices"], mesh["eye_index"]
    skin = eye_index == 0
    weights = np.zeros((len(vertices), 5))
    p = vertices[skin]
    root = _smoothstep(p[:, 1], -0.088, -0.135)
    jaw = _jaw_weight(p, mesh["base"], mesh["band_t"]) * (1.0 - root)
    weights[skin, 0] = root
    weights[skin, 2] = jaw
    weights[skin, 1] = 1.0 - root - jaw
    weights[eye_index == 1, 3] = 1.0
    weights[eye_index == 2, 4] = 1.0
    return weights


def _joint_regressor(vertices: np.ndarray, eye_index: np.ndarray) -> np.ndarray:
    """(5, V) rows of convex weights whose regressed joints are `JOINTS`.

    Root, neck and jaw: a non-negative least-squares combination of a ring of skin vertices
    around the joint's height (the joint lies inside the ring's convex hull); eyes: the mean
    of the eyeball's two poles (its centre).
    """
    regressor = np.zeros((5, len(vertices)))
    skin = np.flatnonzero(eye_index == 0)
    for j in range(3):
        target = JOINTS[j]
        ring = skin[np.abs(vertices[skin, 1] - target[1]) < 0.004]
        a = np.vstack([vertices[ring].T, 10.0 * np.ones(len(ring))])
        b = np.concatenate([target, [10.0]])
        w, _ = nnls(a, b)
        regressor[j, ring] = w / w.sum()
    for j, k in ((3, 1), (4, 2)):
        eye = np.flatnonzero(eye_index == k)
        regressor[j, eye[[0, -1]]] = 0.5  # the front and back poles
    return regressor


def _posedirs(mesh: dict[str, np.ndarray]) -> np.ndarray:
    """(V, 3, 36) pose correctives: only the jaw deepens the mouth opening.

    The corrective is driven by the jaw's (R - I)[1, 1] = cos(angle) - 1 (feature 9 + 4),
    even in the angle: an opening of 0.35 rad pushes the middle of the lip band about 1.9 cm
    into the mouth, a small one barely at all.
    """
    posedirs = np.zeros((len(mesh["vertices"]), 3, 36))
    band_t = mesh["band_t"]
    on_band = np.flatnonzero(~np.isnan(band_t))
    x = mesh["base"][on_band, 0]
    depth = (1.0 - band_t[on_band] ** 2) * np.sqrt(np.clip(1.0 - (x / _MOUTH_W) ** 2, 0, 1))
    feature = 9 + 4  # jaw joint, entry (1, 1)
    posedirs[on_band, 2, feature] = 0.31 * depth
    return posedirs
