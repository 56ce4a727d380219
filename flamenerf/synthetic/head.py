# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The procedural FLAME-format head: the embedded default model (no licence needed).

The real FLAME model cannot be redistributed, so flamenerf builds, deterministically and
without randomness, a head in the FLAME file layout (`docs/capture-format.md`, "FLAME model
file") that `flamenerf.geometry.flame.load_model` reads like the official one:

    path = default_head_path()       # $FLAMENERF_CACHE/head/procedural_head_v1.npz, built once
    model = flame.load_model(path)
    arrays = build_head()            # the same arrays as a dict

Geometry (metres; y up, the face looks along +z, the origin inside the head just above the jaw
joint, between the ears, FLAME-like; about 0.17 m across the ears, 0.30 m from the neck stub's
base to the crown). The skin is one closed surface that is star-shaped about `STAR_CENTER`: every
vertex is `STAR_CENTER + r(d) d` for a unit direction d. The radius r(d) is that of a smooth
signed-distance "base head" (cranium, face, mandible, chin and a neck stub, blended with a
smooth minimum) plus height fields in face coordinates for the nose, brow ridge, cheekbones,
lips, chin, ears and hair; around each eye the skin follows a sphere just in front of the
eyeball (the lids) and, inside the almond-shaped opening, a sphere just behind it, so the
separate eyeball shows through. The directions are a graded point set relaxed with DistMesh
(Persson and Strang 2004) on the unit sphere and triangulated by their convex hull, which makes
the surface a closed, consistently oriented 2-manifold whose every triangle faces away from
the star centre. Rows of fixed directions resolve the lid margins and the lip seam: the seam
is a band of `MOUTH_INTERIOR` vertices whose jaw weights go from 0 (upper lip) to 1 (lower
lip), so opening the jaw stretches it into a dark mouth opening, deepened by a jaw pose
corrective. The two eyeballs are separate closed UV spheres (pupil at the front pole),
skinned rigidly to the eye joints.

Bases. 20 identity components (`SHAPE_NAMES`: head size and proportions, nose, jaw, chin,
lips, ...) and 16 expression components (`EXPRESSION_NAMES`; the first six are semantic:
smile, brow raise, cheek puff, lip pucker, brow lowerer, upper-lip raise). Each is a smooth,
localised displacement field; a coefficient of 1 moves vertices by a few millimetres up to
about 1 cm, and over -1..2 the skin stays star-shaped (so it never intersects itself); the
exception is `eyes_close`, whose 1 is closed and which is meant for about -0.5 (wide-eyed)
to 1. Around the eyes displacements blend into the eyeball's own (rigid) motion so the lids
never cut into it. The jaw (positive x rotation opens the mouth, 0.35 rad is wide open) and
the eyes are FLAME joints as usual.

Vertex labels (`region`, int8; the names are in `REGION_NAMES`) tell a renderer how to
texture each vertex: `SKIN`, `LIPS`, `BROW`, `SCLERA`, `IRIS`, `PUPIL`, `HAIR`, `NECK`,
`MOUTH_INTERIOR`, `EYELID` (upper lid), `EYE_SOCKET` (the row of skin just inside the eye
opening, behind the eyeball: the strip at the lid margin reads as lashes; the skin deeper
inside is labelled `SCLERA`, so wide-open lids show white), `NOSTRIL`, `EAR`.

CLI: `python -m flamenerf.synthetic.head --out head.npz [--plot head.png]`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import nnls
from scipy.spatial import ConvexHull, cKDTree

from flamenerf.io import paths

# --------------------------------------------------------------------------------------------
# Public constants.

VERSION = 1  # bump whenever the generated arrays change (it names the cache file)
NUM_SHAPE = 20
NUM_EXPRESSION = 16

# Region labels of `region` (int8).
SKIN = 0
LIPS = 1
BROW = 2
SCLERA = 3
IRIS = 4
PUPIL = 5
HAIR = 6
NECK = 7
MOUTH_INTERIOR = 8
EYELID = 9
EYE_SOCKET = 10
NOSTRIL = 11
EAR = 12
REGION_NAMES = (
    "skin",
    "lips",
    "brow",
    "sclera",
    "iris",
    "pupil",
    "hair",
    "neck",
    "mouth_interior",
    "eyelid",
    "eye_socket",
    "nostril",
    "ear",
)

JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
PARENTS = (-1, 0, 1, 1, 1)

# Intended joint positions (metres); the left eye is the subject's left, at +x.
EYE_RADIUS = 0.0125
LEFT_EYE = np.array([0.0315, 0.0335, 0.0505])
RIGHT_EYE = LEFT_EYE * np.array([-1.0, 1.0, 1.0])
JOINTS = np.array(
    [
        [0.0, -0.100, -0.020],  # root: base of the neck stub
        [0.0, -0.030, -0.025],  # neck: top of the spine, behind the jaw
        [0.0, -0.006, -0.008],  # jaw: between the temporomandibular joints, below the ears
        LEFT_EYE,
        RIGHT_EYE,
    ]
)

SHAPE_NAMES = (
    "head_size",
    "head_width",
    "face_length",
    "head_depth",
    "nose_size",
    "nose_projection",
    "jaw_width",
    "chin_projection",
    "cheekbone_width",
    "forehead_slope",
    "eye_spacing",
    "lip_fullness",
    "mouth_width",
    "brow_ridge",
    "ear_size",
    "neck_width",
    "crown_height",
    "cheek_fullness",
    "nose_width",
    "face_asymmetry",
)
EXPRESSION_NAMES = (
    "smile",
    "brow_raise",
    "cheek_puff",
    "lip_pucker",
    "brow_lowerer",
    "upper_lip_raise",
    "eyes_close",
    "mouth_stretch",
    "lip_press",
    "nose_wrinkle",
    "mouth_sideways",
    "lip_corner_depressor",
    "chin_raise",
    "lower_lip_depressor",
    "inner_brow_raise",
    "nostril_flare",
)

# --------------------------------------------------------------------------------------------
# Private geometry constants (metres).

STAR_CENTER = np.array([0.0, 0.010, -0.030])  # every skin vertex is visible from here
_R_MAX = 0.30  # rays are searched up to this distance from the star centre

_MOUTH_Y = -0.0455  # lip seam height at the midline
_MOUTH_W = 0.0240  # half width of the mouth (corner x)
_BAND_HW = 0.0012  # half height of the lip-seam band at the midline
_BAND_ROWS = (1.0, 0.5, 0.0, -0.5, -1.0)  # band rows, +1 = upper lip's inner edge

_LID_RADIUS = EYE_RADIUS + 0.0016  # lids lie on this sphere about the eye centre
_SOCKET_RADIUS = EYE_RADIUS - 0.0018  # skin inside the eye opening, behind the eyeball
_ALMOND_W = 0.0125  # half width of the eye opening
_ALMOND_UP = 0.0046  # height of the upper lid margin above the eye centre
_ALMOND_LO = 0.0038  # depth of the lower lid margin below the eye centre
_ALMOND_TILT = 0.05  # outer corner higher than the inner one (dy/dx)
_EYE_PLANE = 0.011  # eye-local coordinates are taken on the plane z = eye z + this
_MARGIN = 0.00035  # half width of the lid-margin wall (inside: behind the eye, outside: lid)


# --------------------------------------------------------------------------------------------
# Small helpers.


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below lo, 1 above hi, cubic in between (works for lo > hi too)."""
    t = np.clip((np.asarray(x) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(x: np.ndarray, center: float, sigma: float) -> np.ndarray:
    return np.exp(-(((np.asarray(x) - center) / sigma) ** 2))


def _gauss2(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distances (blend width k)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def _ellipsoid(points: np.ndarray, center: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Approximate signed distance to an ellipsoid (exact on the surface). points: (..., 3)."""
    q = (points - np.asarray(center)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Geometry: the base head and the radial function.


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


# --------------------------------------------------------------------------------------------
# Features: face coordinates and the height fields added to the base radius.


def _mouth_seam_y(x: np.ndarray) -> np.ndarray:
    """Height of the lip seam at x (slightly curved up at the corners)."""
    return _MOUTH_Y + 0.0016 * (np.asarray(x) / _MOUTH_W) ** 2


def _band_half_height(x: np.ndarray) -> np.ndarray:
    """Half height of the lip-seam band (0 beyond the mouth corners)."""
    return _BAND_HW * np.sqrt(np.clip(1.0 - (np.asarray(x) / _MOUTH_W) ** 2, 0.0, 1.0))


def _upper_lip_height(x: np.ndarray) -> np.ndarray:
    """Height of the upper vermilion above the seam, with a cupid's bow."""
    u = np.clip(np.abs(x) / _MOUTH_W, 0.0, 1.0)
    bow = 0.0011 * _gauss(np.abs(x), 0.0055, 0.0035) - 0.0008 * _gauss(x, 0.0, 0.0022)
    return (0.0066 * np.sqrt(1.0 - u**2) + bow) * (u < 1.0)


def _lower_lip_height(x: np.ndarray) -> np.ndarray:
    """Depth of the lower vermilion below the seam."""
    u = np.clip(np.abs(x) / _MOUTH_W, 0.0, 1.0)
    return 0.0088 * (1.0 - u**2) ** 0.6


def _nose_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Radial height of the nose over the base face (metres)."""
    ax = np.abs(x)
    # Bridge: a ridge from the nasion (y 0.032) to the tip (y -0.006), rising and widening.
    t = np.clip((0.034 - y) / 0.040, 0.0, 1.0)  # 0 at the nasion, 1 at the tip
    ridge_h = 0.0030 + 0.0135 * t**1.25
    ridge_w = 0.0072 + 0.0055 * t
    ridge = ridge_h * np.exp(-((x / ridge_w) ** 2)) * _smoothstep(y, 0.046, 0.030)
    # The tip (a rounded bulb) and the alae (wings) either side of it.
    tip = 0.0072 * _gauss2(x, y, 0.0, -0.0070, 0.0095, 0.0082)
    alae = 0.0075 * _gauss2(ax, y, 0.0125, -0.0150, 0.0062, 0.0062)
    height = np.maximum(ridge + tip, alae + 0.35 * ridge)
    # Underside: everything falls steeply to the face below the tip.
    under = _smoothstep(y, -0.0235, -0.0125) * _smoothstep(ax, 0.024, 0.016)
    return height * under


def _nostril_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 at the nostrils under the nose tip."""
    return _gauss2(np.abs(x), y, 0.0072, -0.0195, 0.0038, 0.0026)


def _brow_curve(ax: np.ndarray) -> np.ndarray:
    """Height of the eyebrow centre line at |x| (an arch peaking laterally)."""
    return 0.0520 + 0.0055 * _gauss(ax, 0.041, 0.015) - 0.0025 * _smoothstep(ax, 0.048, 0.062)


_BROW_X = (0.0125, 0.0615)  # medial and lateral ends of an eyebrow (|x|)


def _brow_half_thickness(ax: np.ndarray) -> np.ndarray:
    """Half the eyebrow's thickness at |x| (thick medially, tapering laterally)."""
    return 0.0036 - 0.0018 * _smoothstep(ax, 0.020, _BROW_X[1])


def _brow_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 on the eyebrows (soft-edged), 0 elsewhere."""
    ax = np.abs(x)
    thickness = _brow_half_thickness(ax) + 0.0006
    along = _smoothstep(ax, _BROW_X[0] - 0.002, _BROW_X[0] + 0.002)
    along = along * _smoothstep(ax, _BROW_X[1] + 0.002, _BROW_X[1] - 0.002)
    across = _smoothstep(np.abs(y - _brow_curve(ax)), thickness, thickness - 0.0012)
    return along * across


def _on_brow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True on the eyebrows (edges included)."""
    ax = np.abs(x)
    along = (ax >= _BROW_X[0] - 1e-5) & (ax <= _BROW_X[1] + 1e-5)
    return along & (np.abs(y - _brow_curve(ax)) <= _brow_half_thickness(ax) + 2e-5)


def _feature_height(base: np.ndarray) -> np.ndarray:
    """Radial height (metres) added to the base head at base points (N, 3)."""
    x, y, z = base[:, 0], base[:, 1], base[:, 2]
    ax = np.abs(x)
    front = _smoothstep(z, 0.010, 0.045)  # face features live on the front
    h = _nose_height(x, y)
    h -= 0.0015 * _nostril_weight(x, y)
    # Brow ridge and glabella, nasion dip.
    h += 0.0036 * _gauss(y, 0.050, 0.0085) * _smoothstep(ax, 0.066, 0.045)
    h -= 0.0014 * _gauss2(x, y, 0.0, 0.035, 0.008, 0.006)
    h += 0.0008 * _brow_weight(x, y)
    # Cheekbones and the muzzle around the mouth.
    h += 0.0045 * _gauss2(ax, y, 0.047, 0.006, 0.016, 0.011)
    h += 0.0025 * _gauss2(x, y, 0.0, -0.044, 0.026, 0.020)
    # Nasolabial folds: shallow grooves from the nose wings to beside the mouth corners.
    fold_x = 0.020 + 0.35 * (0.0 - (y + 0.012))  # x of the fold at height y
    h -= (
        0.0012
        * _gauss(ax, fold_x, 0.0035)
        * _smoothstep(y, -0.058, -0.050)
        * (_smoothstep(y, -0.012, -0.018))
    )
    # Philtrum: a shallow groove between two ridges above the upper lip.
    phil = _smoothstep(y, -0.022, -0.026) * _smoothstep(y, _MOUTH_Y + 0.004, _MOUTH_Y + 0.007)
    h += phil * (0.0007 * _gauss(ax, 0.0055, 0.0018) - 0.0004 * _gauss(x, 0.0, 0.0025))
    # Lips.
    h += _lip_height(x, y)
    # Chin: the mentolabial sulcus and the chin boss.
    h -= 0.0016 * _gauss2(x, y, 0.0, -0.063, 0.016, 0.0045)
    h += 0.0040 * _gauss2(x, y, 0.0, -0.079, 0.015, 0.009)
    h *= front
    h += _ear_height(base)
    h += 0.0055 * _hair_weight(base)
    return h


def _lip_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vermilion bulges and the groove of the lip seam (radial metres)."""
    q = y - _mouth_seam_y(x)
    lateral = np.sqrt(np.clip(1.0 - (x / (_MOUTH_W + 0.0035)) ** 2, 0.0, 1.0))
    up_h = np.maximum(_upper_lip_height(x), 1e-4)
    lo_h = np.maximum(_lower_lip_height(x), 1e-4)
    upper = 0.0042 * np.exp(-(((q - 0.45 * up_h) / (0.55 * up_h + 0.0012)) ** 2))
    lower = 0.0050 * np.exp(-(((q + 0.45 * lo_h) / (0.55 * lo_h + 0.0012)) ** 2))
    hw = _band_half_height(x)
    in_band = np.clip(1.0 - (q / np.maximum(hw, 1e-5)) ** 2, 0.0, 1.0) * (hw > 1e-5)
    groove = 0.0030 * in_band * lateral
    return (
        lateral * (upper * (q > 0) + lower * (q <= 0))
        + 0.0015 * lateral * _gauss(q, 0.0, 0.003)
        - groove
    )


def _ear_height(base: np.ndarray) -> np.ndarray:
    """Radial height of the ears on the sides of the head."""
    ax, y, z = np.abs(base[:, 0]), base[:, 1], base[:, 2]
    side = _smoothstep(ax, 0.050, 0.065)
    yc, zc = 0.012, -0.022
    rho = np.sqrt(((y - yc) / 0.030) ** 2 + ((z - zc) / 0.017) ** 2)
    disc = _smoothstep(rho, 1.0, 0.75)
    rim = _gauss(rho, 0.80, 0.09)
    concha = _gauss2(y, z, yc - 0.005, zc + 0.003, 0.010, 0.0065)
    return side * (0.0090 * disc + 0.0030 * rim - 0.0055 * concha)


def _ear_weight(base: np.ndarray) -> np.ndarray:
    ax, y, z = np.abs(base[:, 0]), base[:, 1], base[:, 2]
    rho = np.sqrt(((y - 0.012) / 0.030) ** 2 + ((z + 0.022) / 0.017) ** 2)
    return _smoothstep(ax, 0.050, 0.065) * _smoothstep(rho, 1.0, 0.9)


def _hairline_y(base: np.ndarray) -> np.ndarray:
    """Height of the hairline as a function of the azimuth about the vertical axis."""
    azimuth = np.degrees(np.abs(np.arctan2(base[:, 0], base[:, 2] + 0.020)))
    table_az = np.array([0.0, 25.0, 45.0, 62.0, 72.0, 80.0, 96.0, 110.0, 135.0, 180.0])
    table_y = np.array([0.094, 0.090, 0.081, 0.064, 0.030, 0.030, 0.050, 0.040, -0.005, -0.045])
    return np.interp(azimuth, table_az, table_y)


def _hair_weight(base: np.ndarray) -> np.ndarray:
    """1 on the scalp (soft edge at the hairline), 0 elsewhere."""
    return _smoothstep(base[:, 1] - _hairline_y(base), -0.002, 0.006) * (1.0 - _ear_weight(base))


# --------------------------------------------------------------------------------------------
# Eyes: the almond-shaped opening and the lids.


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


# --------------------------------------------------------------------------------------------
# Mesh: graded directions relaxed on the unit sphere, triangulated by their convex hull.


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


# --------------------------------------------------------------------------------------------
# Assembly: skin + eyeballs, labels.


def _neck_line_y(z: np.ndarray) -> np.ndarray:
    """Height below which the skin is labelled neck, as a function of depth z."""
    return np.interp(z, [-0.10, -0.03, 0.015, 0.10], [-0.050, -0.068, -0.100, -0.100])


def _skin_regions(surface: dict[str, np.ndarray], band_t: np.ndarray) -> np.ndarray:
    """Region label of every skin vertex (N,) int8."""
    base = surface["base"]
    x, y, z = base[:, 0], base[:, 1], base[:, 2]
    front = z > 0.02
    labels = np.full(len(base), SKIN, dtype=np.int8)
    labels[y < _neck_line_y(z)] = NECK
    labels[(y >= _hairline_y(base) - 1e-5) & (_ear_weight(base) < 0.5)] = HAIR
    labels[_ear_weight(base) > 0.5] = EAR
    labels[_on_brow(x, y) & front] = BROW
    q = y - _mouth_seam_y(x)
    lips = (q <= _upper_lip_height(x) + 2e-5) & (q >= -_lower_lip_height(x) - 2e-5)
    lips &= np.abs(x) < _MOUTH_W
    labels[lips & front] = LIPS
    labels[(_nostril_weight(x, y) > 0.35) & front] = NOSTRIL
    u, v = surface["eye_uv"][:, 0], surface["eye_uv"][:, 1]
    upper, _ = _almond_margins(u)
    labels[(surface["lid"] > 0.5) & (v > upper) & (np.abs(u) < _ALMOND_W) & front] = EYELID
    # Inside the opening: the row at the lid margin reads as lashes, deeper skin (hidden by
    # the eyeball unless the lids open wide) as the white of the eye.
    socket = (surface["open"] > 0.5) & front
    sd = _almond_signed_distance(surface["eye_uv"][socket])
    labels[socket] = np.where(sd > -2.5 * _MARGIN, EYE_SOCKET, SCLERA)
    on_band = ~np.isnan(band_t)
    labels[on_band] = LIPS
    labels[on_band & (np.abs(np.nan_to_num(band_t)) < 0.9)] = MOUTH_INTERIOR
    return labels


def _mesh() -> dict[str, np.ndarray]:
    """The neutral mesh: skin then the left and right eyeballs.

    Returns `vertices` (V, 3), `faces` (F, 3), `region` (V,), `eye_index` (V,) = 0 skin,
    1 left, 2 right eyeball; and for the S skin vertices (the first S): `base` (S, 3) base
    points, `band_t` (S,) lip-band row (NaN off the band), `lid`, `open` (S,) eye weights and
    `eye_uv` (S, 2) eye-local coordinates.
    """
    dirs, band_t = _skin_directions()
    faces = _hull_faces(dirs)
    surface = _surface(dirs)
    vertices = [surface["points"]]
    all_faces = [faces]
    regions = [_skin_regions(surface, band_t)]
    eye_index = [np.zeros(len(dirs), dtype=np.int8)]
    offset = len(dirs)
    for k, center in enumerate((LEFT_EYE, RIGHT_EYE)):
        v, f, labels = _eyeball(center)
        vertices.append(v)
        all_faces.append(f + offset)
        regions.append(labels)
        eye_index.append(np.full(len(v), k + 1, dtype=np.int8))
        offset += len(v)
    return {
        "vertices": np.concatenate(vertices),
        "faces": np.concatenate(all_faces),
        "region": np.concatenate(regions),
        "eye_index": np.concatenate(eye_index),
        "base": surface["base"],
        "band_t": band_t,
        "lid": surface["lid"],
        "open": surface["open"],
        "eye_uv": surface["eye_uv"],
    }


# --------------------------------------------------------------------------------------------
# Skinning: weights, joint regressor, pose correctives.


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


# --------------------------------------------------------------------------------------------
# Identity and expression bases: smooth localised displacement fields.


def _soft_clip(x: np.ndarray, lo: float, hi: float, width: float) -> np.ndarray:
    """x clipped to [lo, hi] with rounded corners of the given width."""
    softplus = lambda t: width * np.logaddexp(0.0, t / width)
    return lo + softplus(x - lo) - softplus(x - hi)


def _vec(*components: np.ndarray | float) -> np.ndarray:
    """Stacks per-point components (scalars broadcast) into (N, 3)."""
    n = max(np.size(c) for c in components)
    return np.stack([np.broadcast_to(np.asarray(c, dtype=float), (n,)) for c in components], -1)


def _shape_fields(p: np.ndarray, b: np.ndarray, radial: np.ndarray) -> list[np.ndarray]:
    """The 20 identity displacement fields (N, 3), in `SHAPE_NAMES` order.

    p: (N, 3) points; b: (N, 3) their base points (face coordinates); radial: (N, 3) unit
    directions from STAR_CENTER (outward motions are radial, which cannot flip triangles).
    """
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    bx, by = b[:, 0], b[:, 1]
    ax, sx = np.abs(bx), np.tanh(bx / 0.004)  # a smooth sign
    front = _smoothstep(z, 0.0, 0.04)
    head = _smoothstep(y, -0.125, -0.085)
    q = by - _mouth_seam_y(bx)
    nose = _gauss2(bx, by, 0.0, -0.004, 0.016, 0.024) * _smoothstep(z, 0.060, 0.080)
    lips = _gauss(bx, 0.0, 0.020) * _gauss(q, 0.0, 0.008) * front
    zero = np.zeros_like(x)
    return [
        0.045 * (p - np.array([0.0, -0.010, -0.015])),  # head size
        _vec(0.060 * x * head, zero, zero),  # head width
        _vec(zero, 0.070 * (_soft_clip(y, -0.100, 0.030, 0.008) - 0.030), zero),  # face length
        _vec(zero, zero, 0.060 * _soft_clip(z, -0.130, 0.0, 0.010)),  # head depth
        0.160 * (p - np.array([0.0, 0.004, 0.082])) * nose[:, None],  # nose size
        _vec(zero, -0.15, 1.0)
        * (0.005 * _gauss2(bx, by, 0.0, -0.008, 0.010, 0.014) * front)[:, None],  # nose projection
        _vec(0.075 * x * _smoothstep(y, -0.020, -0.065) * head, zero, zero),  # jaw width
        _vec(zero, -0.2, 1.0)
        * (0.0055 * _gauss2(bx, by, 0.0, -0.082, 0.018, 0.016) * front)[:, None],  # chin projection
        _vec(sx * 0.0045, 0.001, 0.0015) * _gauss2(ax, by, 0.050, 0.008, 0.018, 0.016)[:, None],
        _vec(zero, zero, 0.006 * _smoothstep(y, 0.05, 0.12) * _smoothstep(z, -0.02, 0.05)),
        _vec(sx * 0.002 * _gauss2(ax, by, 0.0315, 0.030, 0.020, 0.020) * front, zero, zero),
        radial * (0.0025 * lips)[:, None],  # lip fullness
        _vec(0.25 * bx, zero, zero)
        * (_gauss2(bx, by, 0.0, _MOUTH_Y, 0.028, 0.016) * front)[:, None],  # mouth width
        _vec(zero, 0.0005, 0.0035)
        * (_gauss(by, 0.052, 0.010) * _smoothstep(ax, 0.065, 0.045) * front)[:, None],
        radial * (0.3 * _ear_height(b))[:, None],  # ear size (prominence)
        _vec(0.07 * x, zero, 0.07 * (z + 0.022)) * _smoothstep(y, -0.075, -0.110)[:, None],
        _vec(zero, 0.006 * _smoothstep(y, 0.04, 0.13), zero),  # crown height
        radial * (0.004 * _gauss2(ax, by, 0.045, -0.028, 0.018, 0.020) * front)[:, None],
        _vec(0.20 * bx, zero, zero)
        * (_gauss2(bx, by, 0.0, -0.012, 0.020, 0.014) * _smoothstep(z, 0.06, 0.08))[:, None],
        _vec(0.0015, 0.035 * x, zero) * (front * head)[:, None],  # face asymmetry
    ]


def _parting(bx: np.ndarray, q: np.ndarray, upper: bool) -> np.ndarray:
    """Rigid share of a lip for motions that open the lip band.

    0 on the other lip, 1 - (x / mouth half width)^2 on this lip, linear across the band
    rows in between. A vertical motion D times this opens the band by D at the midline; rows
    0.6 mm apart approach by D / 4 per unit coefficient, so a small D (with the smooth
    motions added) cannot fold the band for coefficients down to -1.
    """
    hw = _band_half_height(bx)
    ramp = np.clip((q + hw) / np.maximum(2.0 * hw, 1e-9), 0.0, 1.0)
    ramp = np.where(hw > 0.0, ramp, (q > 0.0).astype(float))
    share = ramp if upper else 1.0 - ramp
    return share * np.clip(1.0 - (bx / _MOUTH_W) ** 2, 0.0, None)


def _expression_fields(p: np.ndarray, b: np.ndarray, radial: np.ndarray) -> list[np.ndarray]:
    """The 16 expression displacement fields (N, 3); index 6 (eyes closing) is zero here.

    p: (N, 3) points; b: (N, 3) their base points (face coordinates); radial: (N, 3) unit
    directions from STAR_CENTER. Outward motions are radial (they can never flip a
    triangle of the star-shaped skin); vertical motions that differ between the lips change
    over ~1 cm, or across the band through `_parting`, so coefficients in -1..2 do not fold
    the lip band.
    """
    z = p[:, 2]
    bx, by = b[:, 0], b[:, 1]
    ax, sx = np.abs(bx), np.tanh(bx / 0.004)  # a smooth sign
    q = by - _mouth_seam_y(bx)
    front = _smoothstep(z, 0.02, 0.05)
    corner = _gauss2(ax, by, _MOUTH_W, float(_mouth_seam_y(_MOUTH_W)), 0.016, 0.016) * front
    mouth = _gauss2(bx, by, 0.0, _MOUTH_Y, 0.030, 0.020) * front
    lips_x = _smoothstep(ax, _MOUTH_W + 0.010, _MOUTH_W - 0.004) * front
    zero = np.zeros_like(z)
    col = lambda w: w[:, None]
    upper = _smoothstep(q, -0.004, 0.010)  # 0 on the lower lip, 1 on the upper one
    upper_wide = _smoothstep(q, -0.006, 0.012)
    lower = _smoothstep(q, 0.004, -0.010)
    up_fade = (1.0 - 0.6 * _smoothstep(q, 0.012, 0.030)) * _gauss(bx, 0.0, 0.026) * front
    lo_fade = _gauss(by, -0.055, 0.020) * _gauss(bx, 0.0, 0.024) * front
    brow_guard = _smoothstep(by, 0.030, 0.050)  # brow motions fade out above the lids

    smile = col(corner) * _vec(sx * 0.0045, 0.0065, -0.0025)
    smile += col(_gauss2(ax, by, 0.040, -0.012, 0.015, 0.013) * front) * _vec(
        sx * 0.001, 0.003, 0.0025
    )
    smile += col(mouth) * _vec(zero, 0.001, zero)
    smile += col(0.0008 * _parting(bx, q, True) * front) * _vec(zero, 1.0, zero)
    brow_raise = col(brow_guard * _gauss(by, 0.058, 0.030) * _smoothstep(ax, 0.072, 0.052)) * _vec(
        zero, 0.0090, 0.0008
    )
    brow_raise *= col(_smoothstep(z, 0.0, 0.03))
    puff = radial * col(0.0085 * _gauss2(ax, by, 0.040, -0.042, 0.016, 0.017) * front)
    puff += radial * col(0.0015 * mouth)
    pucker = col(_gauss2(bx, by, 0.0, _MOUTH_Y, 0.016, 0.011) * front) * _vec(zero, zero, 0.008)
    pucker += col(_gauss2(bx, by, 0.0, _MOUTH_Y, 0.026, 0.016) * front) * _vec(
        -0.30 * bx, zero, zero
    )
    lowerer = col(
        _gauss2(ax, by, 0.020, 0.050, 0.020, 0.016) * _smoothstep(by, 0.026, 0.046) * front
    )
    lowerer = lowerer * _vec(-sx * 0.0028, -0.0045, 0.0012)
    lowerer += col(_gauss2(bx, by, 0.0, 0.044, 0.008, 0.008) * front) * _vec(zero, zero, 0.0015)
    lip_raise = col((0.0032 * upper_wide + 0.0012 * _parting(bx, q, True)) * up_fade)
    lip_raise = lip_raise * _vec(zero, 1.0, 0.3)
    stretch = col(corner) * _vec(sx * 0.0065, -0.0015, -0.002)
    stretch += col(-0.18 * q * _gauss(q, 0.0, 0.009) * _gauss(bx, 0.0, 0.025) * front) * _vec(
        zero, 1.0, zero
    )
    press = col(_gauss(q, 0.0, 0.008) * lips_x) * _vec(zero, -0.40 * q, -0.0025)
    wrinkle = col(_gauss2(ax, by, 0.011, -0.008, 0.010, 0.014) * front) * _vec(zero, 0.0035, zero)
    wrinkle += col(_gauss2(bx, by, 0.0, 0.032, 0.012, 0.010) * front) * _vec(zero, -0.0025, zero)
    wrinkle += col(upper * _gauss(q, 0.008, 0.012) * _gauss(bx, 0.0, 0.02) * front) * _vec(
        zero, 0.0015, zero
    )
    sideways = col(_gauss2(bx, by, 0.0, _MOUTH_Y, 0.028, 0.022) * front) * _vec(0.006, zero, zero)
    depressor = col(corner) * _vec(sx * 0.0015, -0.0065, -0.001)
    chin = col(_gauss2(bx, by, 0.0, -0.078, 0.020, 0.020) * lower * front) * _vec(
        zero, 0.0035, zero
    )
    chin += col(_gauss2(bx, by, 0.0, -0.078, 0.020, 0.020) * front * 0.0015) * radial
    chin += col(0.002 * lower * lo_fade) * _vec(zero, 1.0, zero)
    chin += col(0.0025 * lower * lo_fade) * radial
    lower_dep = col((0.0030 * lower + 0.0018 * _parting(bx, q, False)) * lo_fade)
    lower_dep = lower_dep * _vec(zero, -1.0, 0.2)
    inner_brow = col(
        _gauss2(ax, by, 0.014, 0.050, 0.014, 0.016) * _smoothstep(by, 0.030, 0.048) * front
    ) * _vec(zero, 0.006, zero)
    flare = col(_gauss2(ax, by, 0.0135, -0.016, 0.0065, 0.0065) * front) * _vec(
        sx * 0.0025, 0.0005, zero
    )
    return [
        smile,
        brow_raise,
        puff,
        pucker,
        lowerer,
        lip_raise,
        np.zeros_like(p),  # eyes closing: see _eyes_closing
        stretch,
        press,
        wrinkle,
        sideways,
        depressor,
        chin,
        lower_dep,
        inner_brow,
        flare,
    ]


def _eye_surface_point(uv: np.ndarray, side: float, radius: float | np.ndarray) -> np.ndarray:
    """Points (N, 3) on spheres about an eye along the rays through eye-local uv (N, 2).

    radius: a scalar or (N,) radii of the spheres.
    """
    eye = LEFT_EYE if side > 0 else RIGHT_EYE
    on_plane = np.column_stack(
        [eye[0] + side * uv[:, 0], eye[1] + uv[:, 1], np.full(len(uv), eye[2] + _EYE_PLANE)]
    )
    dirs = _normalize(on_plane - STAR_CENTER)
    return STAR_CENTER + _sphere_exit(dirs, eye, radius)[:, None] * dirs


def _eyes_closing(mesh: dict[str, np.ndarray]) -> np.ndarray:
    """(S, 3) skin displacement that closes both eyes.

    The upper lid slides down the lid sphere until its margin rests on the lower one (the
    lid skin up to ~1 cm above the margin follows, less and less); the skin hidden inside the
    opening slides down behind the eyeball. Lid points move along chords of the lid sphere,
    which stay outside the eyeball for this travel, so the lid never cuts through the eye.
    """
    uv, lid, opening = mesh["eye_uv"], mesh["lid"], mesh["open"]
    skin_points = mesh["vertices"][: len(uv)]
    out = np.zeros((len(uv), 3))
    u, v = uv[:, 0], uv[:, 1]
    v_up, v_lo = _almond_margins(u)
    width = np.clip(1.0 - (u / _ALMOND_W) ** 2, 0.0, 1.0)
    inside = opening >= 0.5
    above = ~inside & (v > 0.5 * (v_up + v_lo)) & (lid > 0.0) & (np.abs(u) < _ALMOND_W)
    # The upper margin row (1.6 margins above the opening) comes to rest just below the lower
    # one, in front of it; lid skin up to `top` follows, less and less.
    v_up = v_up + 1.6 * _MARGIN * width
    rest = v_lo - (1.6 * _MARGIN + 0.0005) * width
    top = v_up + 0.011
    above &= v <= top
    v_new = v.copy()
    v_new[above] = top[above] - (top[above] - v[above]) * (top[above] - rest[above]) / (
        top[above] - v_up[above]
    )
    v_new[inside] = v_lo[inside] + (v[inside] - v_lo[inside]) * 0.08
    for side in (1.0, -1.0):
        on_side = skin_points[:, 0] * side > 0.0
        sel = above & on_side
        new_uv = np.column_stack([u[sel], v_new[sel]])
        # Near its margin the closing lid rides 0.5 mm proud, in front of the lower lid.
        proud = _LID_RADIUS + 0.0005 * np.clip((top[sel] - v[sel]) / (top[sel] - v_up[sel]), 0, 1)
        delta = _eye_surface_point(new_uv, side, proud) - _eye_surface_point(
            uv[sel], side, _LID_RADIUS
        )
        out[sel] = lid[sel, None] * delta
        sel = inside & on_side
        new_uv = np.column_stack([u[sel], v_new[sel]])
        out[sel] = _eye_surface_point(new_uv, side, _SOCKET_RADIUS) - skin_points[sel]
    return out


def _bases(mesh: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Identity (V, 3, 20) and expression (V, 3, 16) blendshapes.

    Skin displacements blend into the eyeball's own displacement over the lids, and the
    eyeballs move rigidly with the field at their centres.
    """
    vertices, eye_index = mesh["vertices"], mesh["eye_index"]
    num_skin = len(mesh["base"])
    skin = vertices[:num_skin]
    radial = _normalize(skin - STAR_CENTER)
    eyes = np.stack([LEFT_EYE, RIGHT_EYE])
    eye_radial = _normalize(eyes - STAR_CENTER)
    rigid = np.maximum(mesh["lid"], mesh["open"])[:, None]
    side = (skin[:, 0] < 0.0).astype(int)  # 0 left, 1 right
    results = []
    for fields_fn in (_shape_fields, _expression_fields):
        fields = fields_fn(skin, mesh["base"], radial)
        at_eyes = fields_fn(eyes, eyes, eye_radial)
        basis = np.zeros((len(vertices), 3, len(fields)))
        for k, (field, eye_field) in enumerate(zip(fields, at_eyes, strict=True)):
            basis[:num_skin, :, k] = (1.0 - rigid) * field + rigid * eye_field[side]
            basis[eye_index == 1, :, k] = eye_field[0]
            basis[eye_index == 2, :, k] = eye_field[1]
        results.append(basis)
    results[1][:num_skin, :, 6] = _eyes_closing(mesh)
    return results[0], results[1]


# --------------------------------------------------------------------------------------------
# Landmarks: the 51 inner iBUG points (17-67) embedded in the skin.


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


# --------------------------------------------------------------------------------------------
# The model file.


def build_head() -> dict[str, np.ndarray]:
    """Builds the procedural head in the spec's FLAME `.npz` layout (deterministic).

    Returns:
      A dict with `v_template` (V, 3) float32, `shapedirs` (V, 3, 36) float32 (20 identity
      then 16 expression columns), `posedirs` (V, 3, 36) float32, `J_regressor` (5, V)
      float32, `kintree_table` (2, 5) uint32, `weights` (V, 5) float32, `f` (F, 3) int32,
      scalar int64 `num_shape` (20) and `num_expression` (16), `lmk_faces_idx` (51,) int32,
      `lmk_bary_coords` (51, 3) float32 (iBUG points 17-67), `region` (V,) int8 (labels
      `SKIN`...`EAR`), and the extra keys `region_names`, `shape_names`, `expression_names`,
      `joint_names` (strings), `joints` (5, 3) float32 (the intended joint positions) and
      `version` (int64).
    """
    mesh = _mesh()
    shapedirs, exprdirs = _bases(mesh)
    lmk_faces_idx, lmk_bary_coords = _landmark_embedding(mesh)
    kintree = np.array([[0, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    kintree[0, 0] = np.iinfo(np.uint32).max
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return {
        "v_template": f32(mesh["vertices"]),
        "shapedirs": f32(np.concatenate([shapedirs, exprdirs], axis=2)),
        "posedirs": f32(_posedirs(mesh)),
        "J_regressor": f32(_joint_regressor(mesh["vertices"], mesh["eye_index"])),
        "kintree_table": kintree,
        "weights": f32(_skinning_weights(mesh)),
        "f": np.ascontiguousarray(mesh["faces"], dtype=np.int32),
        "num_shape": np.array(NUM_SHAPE, dtype=np.int64),
        "num_expression": np.array(NUM_EXPRESSION, dtype=np.int64),
        "lmk_faces_idx": lmk_faces_idx.astype(np.int32),
        "lmk_bary_coords": f32(lmk_bary_coords),
        "region": mesh["region"].astype(np.int8),
        "region_names": np.array(REGION_NAMES),
        "shape_names": np.array(SHAPE_NAMES),
        "expression_names": np.array(EXPRESSION_NAMES),
        "joint_names": np.array(JOINT_NAMES),
        "joints": f32(JOINTS),
        "version": np.array(VERSION, dtype=np.int64),
    }


def write_npz(file: Any, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez`, but byte-deterministic (fixed timestamps in the zip, no pickles)."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def write_head(path: str | os.PathLike[str]) -> pathlib.Path:
    """Builds the head and writes it to `path` as an `.npz` (no pickles), atomically.

    Returns the path written. The parent folder must exist.
    """
    path = pathlib.Path(path)
    arrays = build_head()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_npz(f, arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a cache is shared
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def default_head_path() -> pathlib.Path:
    """Path of the cached procedural head, `$FLAMENERF_CACHE/head/procedural_head_v1.npz`.

    Built on first use (atomically, so concurrent callers never see a partial file); the
    version in the name changes whenever the generator's output does.
    """
    path = paths.cache_root() / "head" / f"procedural_head_v{VERSION}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_head(path)
    return path


# --------------------------------------------------------------------------------------------
# Pictures.

_REGION_COLORS = np.array(
    [
        [0.87, 0.68, 0.57],  # skin
        [0.74, 0.38, 0.38],  # lips
        [0.30, 0.21, 0.14],  # brow
        [0.95, 0.94, 0.91],  # sclera
        [0.32, 0.48, 0.62],  # iris
        [0.04, 0.04, 0.05],  # pupil
        [0.30, 0.20, 0.12],  # hair
        [0.84, 0.65, 0.55],  # neck
        [0.28, 0.07, 0.08],  # mouth interior
        [0.80, 0.60, 0.52],  # eyelid
        [0.12, 0.08, 0.07],  # eye socket
        [0.35, 0.18, 0.15],  # nostril
        [0.85, 0.64, 0.55],  # ear
    ]
)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], n)
    return _normalize(normals + 1e-12)


def render_image(
    vertices: np.ndarray,
    faces: np.ndarray,
    region: np.ndarray,
    azimuth_deg: float = 0.0,
    elevation_deg: float = 0.0,
    size: int = 256,
    target: Sequence[float] = (0.0, -0.012, 0.0),
    field: float = 0.30,
) -> np.ndarray:
    """A shaded picture of the head (region colours, Lambert lighting), for plots.

    Args:
      vertices: (V, 3) posed vertices (metres).
      faces: (F, 3) triangles.
      region: (V,) region labels.
      azimuth_deg: camera azimuth about +y (0 = in front, 90 = the subject's left).
      elevation_deg: camera elevation (positive looks from above).
      size: image width and height in pixels.
      target: (3,) point at the image centre (metres).
      field: width of the view at the target's distance (metres).

    Returns:
      (size, size, 3) float image in [0, 1].
    """
    from flamenerf.geometry import camera as camera_lib
    from flamenerf.geometry import rasterize

    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    direction = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    target = np.asarray(target, dtype=np.float64)
    distance = 0.9
    cam = camera_lib.look_at(
        target + distance * direction,
        target,
        np.array([0.0, 1.0, 0.0]),
        focal_length=size * distance / field,
        image_size=(size, size),
    )
    fragments = rasterize.rasterize(vertices, faces, cam)
    normals = _normalize(rasterize.interpolate(fragments, _vertex_normals(vertices, faces)) + 1e-12)
    albedo = rasterize.interpolate(fragments, _REGION_COLORS[region])
    right = np.cross(direction, [0.0, 1.0, 0.0])
    right = right / max(np.linalg.norm(right), 1e-9)
    key = _normalize(direction + 0.55 * np.array([0.0, 1.0, 0.0]) - 0.45 * right)
    fill = _normalize(direction + 0.6 * right - 0.2 * np.array([0.0, 1.0, 0.0]))
    lambert = 0.62 * np.clip(normals @ key, 0.0, None) + 0.18 * np.clip(normals @ fill, 0.0, None)
    image = albedo * (0.28 + lambert[..., None])
    covered = fragments.face_index >= 0
    background = np.array([0.93, 0.94, 0.96])
    return np.clip(np.where(covered[..., None], image, background), 0.0, 1.0)


_PLOT_STATES = (
    ("neutral", {}),
    ("smile +1.5", {"expression": 0}),
    ("brow raise +1.5", {"expression": 1}),
    ("cheek puff +1.5", {"expression": 2}),
    ("lip pucker +1.5", {"expression": 3}),
    ("brow lowerer +1.5", {"expression": 4}),
    ("upper-lip raise +1.5", {"expression": 5}),
    ("jaw open 0.3 rad", {"jaw": 0.3}),
    ("eyes closed +1.0", {"expression": 6, "coefficient": 1.0}),
)


def _posed_vertices(arrays: dict[str, np.ndarray], states: Sequence[dict]) -> np.ndarray:
    """Vertices (len(states), V, 3) posed by `flamenerf.geometry.flame.forward`."""
    from flamenerf.geometry import flame

    model = flame.model_from_arrays(arrays, "procedural head")
    expression = np.zeros((len(states), NUM_EXPRESSION), np.float32)
    jaw = np.zeros((len(states), 3), np.float32)
    for i, state in enumerate(states):
        if "expression" in state:
            expression[i, state["expression"]] = state.get("coefficient", 1.5)
        jaw[i, 0] = state.get("jaw", 0.0)
    params = flame.FlameParams(expression=expression, jaw_pose=jaw)
    return np.asarray(flame.forward(model, params).vertices)


def plot_head(arrays: dict[str, np.ndarray], path: str | os.PathLike[str], size: int = 300) -> None:
    """Draws the head with its semantic expressions, jaw opening and closed eyes to `path`.

    Each state is shown from the front and from a three-quarter view (region colours,
    Lambert shading), posed through `flamenerf.geometry.flame.forward`.

    Args:
      arrays: the dict of `build_head` (or a loaded `.npz`).
      path: image file to write (any matplotlib format, e.g. `.png`).
      size: pixels per panel side.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    states = [state for _, state in _PLOT_STATES]
    vertices = _posed_vertices(arrays, states)
    faces, region = arrays["f"], arrays["region"]
    cols = 6
    rows = -(-2 * len(states) // cols)
    fig = Figure(figsize=(cols * 2.2, rows * 2.45), dpi=size / 2.2)
    FigureCanvasAgg(fig)
    for i, (title, _) in enumerate(_PLOT_STATES):
        for k, azimuth in enumerate((0.0, 35.0)):
            ax = fig.add_subplot(rows, cols, 2 * i + k + 1)
            image = render_image(
                vertices[i], faces, region, azimuth, 4.0, size, (0.0, 0.008, 0.0), 0.29
            )
            ax.imshow(image)
            ax.set_axis_off()
            ax.set_title(f"{title}" if k == 0 else "(3/4 view)", fontsize=9)
    fig.suptitle(
        f"flamenerf procedural FLAME-format head v{VERSION}: {len(arrays['v_template'])} "
        f"vertices, {len(faces)} faces, {NUM_SHAPE} shape + {NUM_EXPRESSION} expression bases",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)


# --------------------------------------------------------------------------------------------
# Command line.


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m flamenerf.synthetic.head --out head.npz [--plot head.png]`."""
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.synthetic.head",
        description="Writes the procedural FLAME-format head (the model flamenerf uses when no "
        "FLAME file is given) as a spec .npz, and optionally a picture of it.",
    )
    parser.add_argument(
        "--out", required=True, help="the .npz file to write (its folder must exist)"
    )
    parser.add_argument(
        "--plot",
        default=None,
        help="also draw the head with its semantic expressions, jaw opening and closed eyes "
        "(front and 3/4 views) to this image file, e.g. head.png",
    )
    parser.add_argument(
        "--size", type=int, default=300, help="pixels per panel side of --plot (default 300)"
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if not out.parent.is_dir():
        print(f"--out {out}: folder {out.parent} does not exist", file=sys.stderr)
        return 2
    if args.size < 32:
        print(f"--size: found {args.size}, expected at least 32 pixels", file=sys.stderr)
        return 2
    if args.plot is not None and not pathlib.Path(args.plot).parent.is_dir():
        print(f"--plot {args.plot}: folder does not exist", file=sys.stderr)
        return 2
    write_head(out)
    print(f"wrote {out}")
    if args.plot is not None:
        with np.load(out, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        plot_head(arrays, args.plot, args.size)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
