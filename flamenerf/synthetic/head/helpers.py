# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Small numeric helpers shared by the head's geometry (numpy, elementwise)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
