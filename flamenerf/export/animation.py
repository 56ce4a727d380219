# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Driving sequences of FLAME parameter files as glTF animations of the avatar.

A folder of `*.json` FLAME parameter files (the capture format's `flame/ID.json`, sorted by
file name, read by `flamenerf.views.reanimation.read_sequence`) becomes one animation named
after the folder: key frame k at time k / fps seconds (LINEAR interpolation), with the
contract's channels (`rig.pose_from_flame` per file): the head's morph weights = the
expression coefficients, the neck's rotation rest * R_y(yaw) R_x(pitch) (yaw and pitch of
FLAME's global and neck pose together, the roll and the translation dropped) and the jaw's
R_x(jaw_pose[0]). Consecutive quaternions are kept in one hemisphere, so that interpolating
between key frames turns the short way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from flamenerf.errors import UserError
from flamenerf.export import rig
from flamenerf.export.gltf import Animation
from flamenerf.geometry import flame
from flamenerf.views import reanimation

DEFAULT_FPS = 30.0


def _one_hemisphere(quaternions: np.ndarray) -> np.ndarray:
    """(K, 4) quaternions with each one's sign chosen so that q_k . q_{k-1} >= 0."""
    out = np.array(quaternions, np.float64)
    for k in range(1, len(out)):
        if np.dot(out[k], out[k - 1]) < 0:
            out[k] = -out[k]
    return out


def sequence_animation(
    name: str,
    params: Sequence[flame.FlameParams],
    rest_neck_rotation: np.ndarray,
    num_expression: int,
    fps: float = DEFAULT_FPS,
) -> Animation:
    """The animation of a sequence of FLAME parameters.

    Args:
      name: the animation's name.
      params: K parameter sets (one key frame each).
      rest_neck_rotation: (4,) the neck joint's rest rotation (`rig.Skeleton.neck_rotation`).
      num_expression: E, morph targets of the head.
      fps: key frames per second (> 0).
    """
    if not fps > 0:
        raise ValueError(f"fps: found {fps!r}, expected a number > 0")
    poses = [rig.pose_from_flame(p, num_expression) for p in params]
    times = np.arange(len(poses), dtype=np.float64) / fps
    neck = [rig.neck_rotation(rest_neck_rotation, p.yaw, p.pitch) for p in poses]
    jaw = [rig.jaw_rotation(p.jaw) for p in poses]
    return Animation(
        name=name,
        times=times.astype(np.float32),
        expression=np.array([p.expression for p in poses], np.float32).reshape(
            len(poses), num_expression
        ),
        neck=_one_hemisphere(neck).astype(np.float32),
        jaw=_one_hemisphere(jaw).astype(np.float32),
    )


def read_animation(
    folder: str | Path, rest_neck_rotation: np.ndarray, num_expression: int, fps: float
) -> Animation:
    """The animation of `folder/*.json` (sorted by name), named after the folder.

    Raises:
      UserError: no such folder, no *.json in it, or a file that is not valid FLAME
        parameters or has more than `num_expression` coefficients (naming the file and field).
    """
    folder = Path(folder)
    try:
        sequence = reanimation.read_sequence(folder, num_expression)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(f"--animation {folder}: {error}") from None
    params = [p for _, p in sequence]
    return sequence_animation(
        folder.resolve().name, params, rest_neck_rotation, num_expression, fps
    )


def sample(animation: Animation, time: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """glTF's LINEAR sampling of an animation at a time (clamped to its range).

    Returns:
      expression (E,) (linear), neck (4,) and jaw (4,) quaternions (spherical linear).
    """
    times = np.asarray(animation.times, np.float64)
    t = float(np.clip(time, times[0], times[-1]))
    if len(times) == 1:
        return animation.expression[0], animation.neck[0], animation.jaw[0]
    k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    u = (t - times[k]) / (times[k + 1] - times[k])
    expression = (1 - u) * animation.expression[k] + u * animation.expression[k + 1]
    rotations = []
    for track in (animation.neck, animation.jaw):
        pair = Rotation.from_quat(np.asarray(track[k : k + 2], np.float64))
        rotations.append(Slerp([0.0, 1.0], pair)([u]).as_quat()[0])
    return expression, rotations[0], rotations[1]
