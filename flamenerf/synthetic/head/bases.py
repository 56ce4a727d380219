# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Identity and expression bases: smooth, localised displacement fields.

20 identity fields (`SHAPE_NAMES`) and 16 expression fields (`EXPRESSION_NAMES`); over the
lids the skin's displacement blends into the eyeball's rigid one; `eyes_close` slides the
lids over the eyeballs.
"""

from __future__ import annotations

import numpy as np

from flamenerf.synthetic.head.base_head import _sphere_exit
from flamenerf.synthetic.head.constants import (
    _ALMOND_W,
    _EYE_PLANE,
    _LID_RADIUS,
    _MARGIN,
    _MOUTH_W,
    _MOUTH_Y,
    _SOCKET_RADIUS,
    LEFT_EYE,
    RIGHT_EYE,
    STAR_CENTER,
)
from flamenerf.synthetic.head.eyes import _almond_margins
from flamenerf.synthetic.head.features import _band_half_height, _ear_height, _mouth_seam_y
from flamenerf.synthetic.head.helpers import _gauss, _gauss2, _normalize, _smoothstep


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
