# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Features: face coordinates and the height fields added to the base radius.

Nose, brow ridge, eyebrows, cheekbones, lips and the lip seam, chin, ears and hair, all as
functions of the base-head point's face coordinates (x, y) (or of the base point).
"""

from __future__ import annotations

import numpy as np

from flamenerf.synthetic.head.constants import _BAND_HW, _MOUTH_W, _MOUTH_Y
from flamenerf.synthetic.head.helpers import _gauss, _gauss2, _smoothstep


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
