# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Where the subject stands: a capture's scene normalisation and the FLAME model's placement
(scene.json, `docs/capture-format.md`), and flamenerf's model frame
(docs/architecture.md#scene-bounds).

Three frames meet here:

    FLAME space --(ToWorld: scale * R @ x + t)--> capture world --((X - center) * scale)-->
    normalised scene frame

A capture's tool chose `center` and `scale`; `model_frame` re-expresses any capture around the
FLAME head with MODEL_UNITS_PER_METRE units per metre, so nothing downstream depends on that
choice. Reading scene.json is `flamenerf.datasets.capture.read_scene`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class ToWorld:
    """FLAME space -> capture world: X_world = scale * rotation @ X_flame + translation."""

    scale: float
    rotation: np.ndarray  # (3, 3) rotation matrix
    translation: np.ndarray  # (3,)


@dataclasses.dataclass(frozen=True)
class Scene:
    """scene.json: normalisation, ray bounds and the FLAME model's placement."""

    center: np.ndarray  # (3,) world point mapped to the origin
    scale: float  # world -> normalised scale factor
    near: float  # ray start, normalised units
    far: float  # ray end, normalised units
    flame_model: Path  # resolved FLAME model file
    to_world: ToWorld  # FLAME space -> world
    num_expression: int  # expression coefficients carried by flame/*.json
    bbox: np.ndarray | None  # (2, 3) optional normalised box holding the head

    def normalize(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> normalised scene frame."""
        return (points - self.center) * self.scale

    def flame_to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) FLAME-space points -> the capture's world frame."""
        t = self.to_world
        return t.scale * points @ t.rotation.T + t.translation

    def flame_to_scene(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) FLAME-space points -> normalised scene frame."""
        return self.normalize(self.flame_to_world(points))

    @property
    def units_per_metre(self) -> float:
        """Normalised units per metre of FLAME space (FLAME is in metres)."""
        return self.scale * self.to_world.scale

    def reframed(self, center: np.ndarray, scale: float) -> Scene:
        """The same scene under another normalisation `(X - center) * scale` of the world:
        near, far and bbox are re-expressed in the new units."""
        ratio = scale / self.scale
        bbox = None
        if self.bbox is not None:
            bbox = (self.bbox / self.scale + self.center - center) * scale
        return dataclasses.replace(
            self,
            center=center,
            scale=scale,
            near=self.near * ratio,
            far=self.far * ratio,
            bbox=bbox,
        )


# The model frame: whatever normalisation the capturing tool chose, flamenerf works in a frame
# centred on the FLAME head with this many units per metre (the head lies within about 0.5
# units of the origin, head and shoulders within about 1.1), so grid resolutions, encoding
# frequencies, sample spacing and fade lengths mean the same on every capture.
MODEL_UNITS_PER_METRE = 3.5


def model_frame(scene: Scene, flame_world: np.ndarray) -> Scene:
    """The scene re-expressed in the model frame (see MODEL_UNITS_PER_METRE).

    Args:
      scene: scene.json as written.
      flame_world: (F, V, 3) every frame's posed FLAME vertices in the capture's world.

    Returns:
      A Scene centred on the mean over frames of the FLAME head's box centre, with
      MODEL_UNITS_PER_METRE normalised units per metre.
    """
    centres = (flame_world.min(axis=1) + flame_world.max(axis=1)) / 2
    return scene.reframed(centres.mean(axis=0), MODEL_UNITS_PER_METRE / scene.to_world.scale)
