# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Similarities X -> s R X + t: scene.json's `flame.to_world`, and Umeyama's closed-form fit."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from flamenerf.capture.io import StepError
from flamenerf.geometry.camera import Camera


@dataclasses.dataclass(frozen=True)
class Similarity:
    """X -> scale * rotation @ X + translation (scale > 0, rotation in SO(3))."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points -> (..., 3) mapped points."""
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation

    def after(self, first: Similarity) -> Similarity:
        """The composition self(first(X))."""
        return Similarity(
            self.scale * first.scale,
            self.rotation @ first.rotation,
            self.apply(first.translation),
        )

    def to_dict(self) -> dict[str, Any]:
        """scene.json's `flame.to_world` object."""
        return {
            "scale": float(self.scale),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }


def scaling(scale: float) -> Similarity:
    """The similarity X -> scale * X."""
    return Similarity(float(scale), np.eye(3), np.zeros(3))


def transform_camera(camera: Camera, similarity: Similarity) -> Camera:
    """The same camera in the world mapped by `similarity` (intrinsics unchanged)."""
    return dataclasses.replace(
        camera,
        orientation=camera.orientation @ similarity.rotation.T,
        position=similarity.apply(camera.position),
    )


def umeyama(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The similarity S minimising sum_i |target_i - S(source_i)|^2 (Umeyama 1991).

    With the means mu_s, mu_t, the centred sets X = source - mu_s, Y = target - mu_t, the
    variance var = sum |X_i|^2 / N and the SVD Y^T X / N = U D V^T:
        R = U E V^T with E = diag(1, 1, det(U V^T))   (no reflection)
        s = trace(D E) / var,   t = mu_t - s R mu_s.

    Args:
      source: (N, 3) points, N >= 3, not all on a line.
      target: (N, 3) corresponding points.

    Raises:
      StepError: fewer than 3 points, or points on a line (the rotation is undetermined).
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise StepError(
            f"umeyama: expected two (N, 3) arrays, found {source.shape}, {target.shape}"
        )
    if len(source) < 3:
        raise StepError(f"umeyama: need at least 3 camera centres, found {len(source)}")
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    x, y = source - mu_s, target - mu_t
    variance = np.sum(x * x) / len(x)
    u, d, vt = np.linalg.svd(y.T @ x / len(x))
    if variance == 0 or d[1] <= 1e-12 * d[0]:
        raise StepError("umeyama: the camera centres lie on a line or a point; no unique rotation")
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ e @ vt
    scale = float(np.trace(np.diag(d) @ e) / variance)
    return Similarity(scale, rotation, mu_t - scale * rotation @ mu_s)
