# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Driving sequences of FLAME parameter files as glTF animations of the avatar.

A folder of `*.json` FLAME parameter files (the capture format's `flame/ID.json`, sorted by
file name, read by `flamenerf.views.reanimation.read_sequence`) becomes one animation named
after the folder: key frame k at time k / fps seconds (LINEAR interpolation), with the
contract's channels per file: the head's morph weights = the expression coefficients
(`rig.pose_from_flame`), the jaw's rotation R_x(jaw_pose[0]), and FLAME's whole head motion
as the neck's translation and rotation (`rig.Placement.neck_motion`: the global rotation about
FLAME's root joint, the neck rotation with its roll, the translation; the guide's head
transform). Parameters are absolute, as the files give them (the capture's own flame/ folder
replays its frames; `flamenerf.views.reanimation` turns another capture's sequence into
offsets). Consecutive quaternions are kept in one hemisphere, so that interpolating between
key frames turns the short way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

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
    placement: rig.Placement,
    num_expression: int,
    fps: float = DEFAULT_FPS,
) -> Animation:
    """The animation of a sequence of FLAME parameters.

    Args:
      name: the animation's name.
      params: K parameter sets (one key frame each).
      placement: the rigged identity in the world (`rig.Placement`: the skeleton's joints).
      num_expression: E, morph targets of the head.
      fps: key frames per second (> 0).

    Returns:
      times (K,), expression (K, E), neck_translation (K, 3), neck and jaw (K, 4).
    """
    if not fps > 0:
        raise ValueError(f"fps: found {fps!r}, expected a number > 0")
    poses = [rig.pose_from_flame(p, num_expression) for p in params]
    times = np.arange(len(poses), dtype=np.float64) / fps
    motion = [placement.neck_motion(p) for p in params]
    jaw = [rig.jaw_rotation(p.jaw) for p in poses]
    return Animation(
        name=name,
        times=times.astype(np.float32),
        expression=np.array([p.expression for p in poses], np.float32).reshape(
            len(poses), num_expression
        ),
        neck=_one_hemisphere([m[1] for m in motion]).reshape(-1, 4).astype(np.float32),
        jaw=_one_hemisphere(jaw).reshape(-1, 4).astype(np.float32),
        neck_translation=np.array([m[0] for m in motion], np.float32).reshape(-1, 3),
    )


def read_animation(
    folder: str | Path, placement: rig.Placement, num_expression: int, fps: float
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
    return sequence_animation(folder.resolve().name, params, placement, num_expression, fps)


class Sample(NamedTuple):
    """An animation's values at one time.

    Attributes:
      expression: (E,) morph weights; neck, jaw: (4,) local rotations (x, y, z, w);
      neck_translation: (3,) the neck's local translation, None when the animation has none
        (the rest translation).
    """

    expression: np.ndarray
    neck: np.ndarray
    jaw: np.ndarray
    neck_translation: np.ndarray | None


def sample(animation: Animation, time: float) -> Sample:
    """glTF's LINEAR sampling of an animation at a time (clamped to its range): weights and
    translations linear, rotations spherical linear."""
    times = np.asarray(animation.times, np.float64)
    t = float(np.clip(time, times[0], times[-1]))
    translation = animation.neck_translation
    if len(times) == 1:
        first = None if translation is None else np.asarray(translation[0], np.float64)
        return Sample(animation.expression[0], animation.neck[0], animation.jaw[0], first)
    k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    u = (t - times[k]) / (times[k + 1] - times[k])
    lerp = lambda track: (1 - u) * np.asarray(track[k], np.float64) + u * track[k + 1]
    rotations = []
    for track in (animation.neck, animation.jaw):
        pair = Rotation.from_quat(np.asarray(track[k : k + 2], np.float64))
        rotations.append(Slerp([0.0, 1.0], pair)([u]).as_quat()[0])
    return Sample(
        lerp(animation.expression),
        rotations[0],
        rotations[1],
        None if translation is None else lerp(translation),
    )


def joint_matrices(
    inverse_bind: np.ndarray, skel: rig.Skeleton, animation: Animation, time: float
) -> tuple[np.ndarray, np.ndarray]:
    """The skinning matrices (3, 4, 4) (root, neck, jaw; world_j @ inverse_bind_j) and the
    morph weights (E,) of an animation at a time (`sample`)."""
    values = sample(animation, time)
    translation = values.neck_translation
    if translation is None:
        translation = skel.neck_translation
    worlds = rig.local_world_matrices(skel, translation, values.neck, values.jaw)
    return worlds @ np.asarray(inverse_bind, np.float64), np.asarray(values.expression)
