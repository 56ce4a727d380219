# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The subject in the scene: FLAME parameters and capture cameras turned into what the model
sees (docs/architecture.md#rendering-with-other-parameters).

`Subject(model, scene)` is the one place that

  * poses the FLAME mesh (`pose` in the scene's normalised frame, `pose_flame` in FLAME
    space): one jitted `flame.forward` over the whole batch, in float32, shared by every
    caller (each batch size compiles once);
  * makes neutrals (`neutral`: the same identity and eyes with zero expression and jaw and,
    with `undo_rigid`, the head at rest), and poses frames with their neutrals
    (`posed_and_neutral`, the FLAME guide's input) and the joints at rest (`rest_joints`);
  * pads expressions (`expression_and_jaw`: zero-padded or truncated to scene.json's
    `flame.num_expression`) and builds the conditioning vector (`condition`: expression, then
    the jaw pose when the model reads it);
  * normalises cameras (`camera`: a camera in capture world coordinates at 1x, scaled to an
    image scale and moved into the scene's normalised frame).

A capture's subject is `Capture.subject` (its FLAME model and its scene in the model frame).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.geometry.scene import Scene

JAW_SIZE = 3

_forward = jax.jit(flame.forward)  # the one posing path: compiled once per batch size


def _forward_batch(
    model: flame.FlameModel, params: Sequence[flame.FlameParams]
) -> flame.FlameOutput:
    """FLAME posed with N unbatched parameter sets: vertices (N, V, 3), joints (N, 5, 3)."""
    return _forward(model, flame.stack_params(list(params), model))


def pose_flame(model: flame.FlameModel, params: Sequence[flame.FlameParams]) -> np.ndarray:
    """The mesh posed with each of N parameter sets, in FLAME space.

    Args:
      model: the FLAME model.
      params: N unbatched parameter sets (missing or shorter fields are zero-padded).

    Returns:
      float64 (N, V, 3) vertices (computed in float32).
    """
    return np.asarray(_forward_batch(model, params).vertices, np.float64)


def expression_and_jaw(
    params: flame.FlameParams, num_expression: int
) -> tuple[np.ndarray, np.ndarray]:
    """The expression zero-padded or truncated to float32 (num_expression,) and the jaw pose,
    float32 (3,) (zeros when missing)."""
    expression = np.zeros(num_expression, np.float32)
    if params.expression is not None:
        values = np.asarray(params.expression, np.float32)[:num_expression]
        expression[: len(values)] = values
    jaw = (
        np.zeros(JAW_SIZE, np.float32)
        if params.jaw_pose is None
        else np.asarray(params.jaw_pose, np.float32).reshape(JAW_SIZE)
    )
    return expression, jaw


@dataclasses.dataclass(frozen=True, eq=False)
class Subject:
    """A FLAME model placed in a scene.

    Attributes:
      model: the FLAME model.
      scene: where FLAME space lies in the world and how the world is normalised (for a
        capture: its scene in the model frame).
    """

    model: flame.FlameModel
    scene: Scene

    @property
    def num_expression(self) -> int:
        """E, the expression coefficients the model is conditioned on (scene.json's)."""
        return self.scene.num_expression

    # ------------------------------------------------------------------------------ meshes
    def pose_flame(self, params: Sequence[flame.FlameParams]) -> np.ndarray:
        """float64 (N, V, 3): the mesh posed with each of N parameter sets, FLAME space."""
        return pose_flame(self.model, params)

    def pose(self, params: Sequence[flame.FlameParams]) -> np.ndarray:
        """float64 (N, V, 3): the mesh posed with each of N parameter sets, in the scene's
        normalised frame (FLAME -> world -> `(X - center) * scale`)."""
        return self.scene.flame_to_scene(self.pose_flame(params))

    @staticmethod
    def neutral(params: flame.FlameParams, undo_rigid: bool = False) -> flame.FlameParams:
        """The same identity (shape) and eyes with zero expression and jaw: FLAME's neutral
        face. With `undo_rigid` also zero global and neck pose and translation (the head at
        rest); without, the head pose is kept."""
        keep = params._replace(expression=None, jaw_pose=None)
        if undo_rigid:
            keep = keep._replace(global_pose=None, neck_pose=None, translation=None)
        return keep

    def posed_and_neutral(
        self, params: Sequence[flame.FlameParams], undo_rigid: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each of N frames posed, and its neutral (`neutral(p, undo_rigid)`) posed.

        Returns:
          posed, neutral: float64 (N, V, 3) vertices in the scene's normalised frame.
        """
        posed = self.pose(params)
        neutral = self.pose([self.neutral(p, undo_rigid) for p in params])
        return posed, neutral

    def rest_joints(self, params: Sequence[flame.FlameParams]) -> np.ndarray:
        """float64 (N, 5, 3): the joints (root, neck, jaw, left eye, right eye) of each
        parameter set's identity with the head at rest (`neutral(p, undo_rigid=True)`),
        FLAME space."""
        rest = [self.neutral(p, undo_rigid=True) for p in params]
        return np.asarray(_forward_batch(self.model, rest).joints).astype(np.float64)

    # ---------------------------------------------------------------------- conditioning
    def expression_and_jaw(self, params: flame.FlameParams) -> tuple[np.ndarray, np.ndarray]:
        """float32 (E,) expression (zero-padded or truncated) and float32 (3,) jaw pose."""
        return expression_and_jaw(params, self.num_expression)

    def condition(self, params: flame.FlameParams, jaw: bool) -> np.ndarray:
        """The model's conditioning vector: float32 (E + 3 * jaw,), the expression
        (`expression_and_jaw`), then the jaw pose when `jaw` (`ExpressionConfig.use_jaw`)."""
        expression, jaw_pose = self.expression_and_jaw(params)
        return np.concatenate([expression, jaw_pose] if jaw else [expression])

    # --------------------------------------------------------------------------- cameras
    def camera(self, camera: Camera, image_scale: int) -> Camera:
        """A camera in capture world coordinates at 1x -> the scene's frame at `image_scale`:
        intrinsics divided by `image_scale`, the position mapped by `(X - center) * scale`
        (the orientation is unchanged)."""
        if image_scale != 1:
            camera = camera.scale(image_scale)
        return dataclasses.replace(camera, position=self.scene.normalize(camera.position))
