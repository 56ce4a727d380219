# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering a subject with other FLAME parameters: the pure parts
(docs/architecture.md#rendering-with-other-parameters).

A render with other parameters needs two things from them, both from the capture's
`Subject` (`flamenerf.geometry.subject`, `Capture.subject`):
  * the conditioning vector the model sees (`Subject.condition`, as `Capture.condition`: the
    expression padded or truncated to scene.json's `flame.num_expression`, then the jaw pose
    when `ExpressionConfig.use_jaw`);
  * the FLAME silhouette, from the mesh posed (`Subject.pose`) with the subject's identity
    (the chosen frame's `shape`), the driving expression and jaw, and the chosen frame's head
    pose (global and neck pose, eyes and translation).

Relative transfer (`relative_transfer`) moves a driving sequence onto the subject as offsets:

    expression = subject_neutral.expression + (driving.expression - driving_neutral.expression)
    jaw_pose   = subject_neutral.jaw_pose   + (driving.jaw_pose   - driving_neutral.jaw_pose)

The jaw offset is taken on the axis-angle vectors (exact for rotations about one axis, as jaw
opening nearly is). By default the subject's neutral is FLAME's neutral face (zero expression
and jaw, `Subject.neutral`); a frame of the capture in which the subject looks neutral can be used
instead.

The head pose (FLAME's global pose, neck pose and translation) is the chosen frame's unless
it is driven too (`with_head_pose`). Relative transfer of the head pose (`relative_head_pose`)
composes the driving pose's offset from the driving neutral's onto the chosen frame's pose:

    R_global = R_global(frame) R_global(driving_neutral)^T R_global(driving)     (neck alike)
    translation = translation(frame) + (translation(driving) - translation(driving_neutral))

The rotation offset R_neutral^T R_driving is taken in the joint's own frame: it does not
depend on how the driving capture's FLAME space is oriented (the translation offset does:
both captures should share their axes). `turn_head` turns a head about its neck joint by a yaw
and a pitch in the head's own frame. Everything here works on host NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf.datasets import capture as capture_lib
from flamenerf.geometry import flame, rasterize
from flamenerf.geometry.camera import Camera
from flamenerf.geometry.subject import JAW_SIZE, expression_and_jaw
from flamenerf.io import paths

HEAD_POSE_FIELDS = ("global_pose", "neck_pose", "translation")  # what `with_head_pose` moves


def check_expression_size(params: flame.FlameParams, num_expression: int, source: str) -> None:
    """ValueError naming `source` when params have more than `num_expression` coefficients."""
    if params.expression is not None and len(params.expression) > num_expression:
        raise ValueError(
            f"{source}: field 'expression' has {len(params.expression)} coefficients; "
            f"expected at most {num_expression} (scene.json's flame.num_expression)"
        )


def read_params(path: str | Path, num_expression: int) -> flame.FlameParams:
    """Reads a `flame/ID.json`-style file, validated, with at most `num_expression` coefficients.

    Raises:
      FileNotFoundError, ValueError: naming the file and the field.
    """
    path = paths.as_path(path)
    raw = capture_lib.read_json(path)
    params = flame.FlameParams.from_dict(raw, source=str(path))
    check_expression_size(params, num_expression, str(path))
    return params


def read_sequence(folder: str | Path, num_expression: int) -> list[tuple[str, flame.FlameParams]]:
    """Every `folder/*.json` (sorted by file name) as (file stem, FlameParams).

    Raises:
      FileNotFoundError: no such folder, or no *.json in it.
      ValueError: a file that is not valid FLAME parameters, or has too many expression
        coefficients (the message names the file and the field).
    """
    folder = paths.as_path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder of FLAME parameter files not found")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.json FLAME parameter files in it")
    return [(f.stem, read_params(f, num_expression)) for f in files]


def with_expression(
    subject: flame.FlameParams, expression: np.ndarray, jaw_pose: np.ndarray
) -> flame.FlameParams:
    """The subject's parameters (identity and head pose) with another expression and jaw.

    Args:
      subject: the frame whose shape, global/neck/eye pose and translation are kept.
      expression: (E,) expression coefficients; jaw_pose: (3,) axis-angle.
    """
    return subject._replace(
        expression=np.asarray(expression, np.float32),
        jaw_pose=np.asarray(jaw_pose, np.float32).reshape(JAW_SIZE),
    )


def head_pose(params: flame.FlameParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head pose: global pose (3,), neck pose (3,) (axis-angle) and translation (3,),
    float64, zeros for missing fields."""
    return tuple(
        np.zeros(3)
        if getattr(params, name) is None
        else np.asarray(getattr(params, name), np.float64).reshape(3)
        for name in HEAD_POSE_FIELDS
    )


def with_head_pose(
    params: flame.FlameParams,
    global_pose: np.ndarray | None,
    neck_pose: np.ndarray | None,
    translation: np.ndarray | None,
) -> flame.FlameParams:
    """`params` with another head pose (each (3,) or None for zeros); the rest is kept."""
    as_array = lambda v: None if v is None else np.asarray(v, np.float32).reshape(3)
    return params._replace(
        global_pose=as_array(global_pose),
        neck_pose=as_array(neck_pose),
        translation=as_array(translation),
    )


def _matrix(rotvec: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(rotvec, np.float64)).as_matrix()


def relative_head_pose(
    driving: flame.FlameParams,
    driving_neutral: flame.FlameParams,
    subject: flame.FlameParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The driving head pose's offset from its neutral, composed onto the subject's pose.

    Returns:
      global pose (3,) and neck pose (3,) as axis-angle vectors of R_subject R_neutral^T
      R_driving, and translation (3,) = subject + (driving - neutral) (module docstring).
    """
    (d_global, d_neck, d_shift), (n_global, n_neck, n_shift), (s_global, s_neck, s_shift) = (
        head_pose(p) for p in (driving, driving_neutral, subject)
    )
    compose = lambda d, n, s: Rotation.from_matrix(
        _matrix(s) @ _matrix(n).T @ _matrix(d)
    ).as_rotvec()
    return (
        compose(d_global, n_global, s_global),
        compose(d_neck, n_neck, s_neck),
        s_shift + (d_shift - n_shift),
    )


def turn_head(
    params: flame.FlameParams, yaw_degrees: float, pitch_degrees: float
) -> flame.FlameParams:
    """The head turned about its neck joint, in its own frame: neck R -> R R_y(yaw) R_x(pitch).

    FLAME's axes: y up, z out of the face, x towards the subject's left. A positive yaw turns
    the face towards the subject's left (+x), a positive pitch tilts it down (towards -y).
    Zero angles give `params` unchanged.
    """
    if yaw_degrees == 0 and pitch_degrees == 0:
        return params
    _, neck, _ = head_pose(params)
    turn = Rotation.from_euler("YX", [yaw_degrees, pitch_degrees], degrees=True)
    rotvec = (Rotation.from_rotvec(neck) * turn).as_rotvec()
    return params._replace(neck_pose=np.asarray(rotvec, np.float32))


def relative_transfer(
    driving: flame.FlameParams,
    driving_neutral: flame.FlameParams,
    subject_neutral: flame.FlameParams,
    num_expression: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Expression and jaw of `driving` transferred as offsets from its neutral onto the subject's.

    Returns:
      expression (num_expression,) = subject_neutral + (driving - driving_neutral), and
      jaw_pose (3,) the same on the axis-angle vectors (see the module docstring).
    """
    d_expr, d_jaw = expression_and_jaw(driving, num_expression)
    n_expr, n_jaw = expression_and_jaw(driving_neutral, num_expression)
    s_expr, s_jaw = expression_and_jaw(subject_neutral, num_expression)
    return s_expr + (d_expr - n_expr), s_jaw + (d_jaw - n_jaw)


def interpolate(
    a: flame.FlameParams, b: flame.FlameParams, weights: Sequence[float], num_expression: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expression and jaw linearly interpolated from `a` (weight 0) to `b` (weight 1).

    Returns:
      One (expression (num_expression,), jaw (3,)) pair per weight.
    """
    a_expr, a_jaw = expression_and_jaw(a, num_expression)
    b_expr, b_jaw = expression_and_jaw(b, num_expression)
    return [
        ((1 - t) * a_expr + t * b_expr, (1 - t) * a_jaw + t * b_jaw)
        for t in np.asarray(weights, np.float32)
    ]


def sweep(
    params: flame.FlameParams, coefficient: int, values: Sequence[float], num_expression: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`params`' expression with coefficient `coefficient` set to each of `values` (jaw kept).

    Raises:
      ValueError: `coefficient` outside 0..num_expression - 1.
    """
    if not 0 <= coefficient < num_expression:
        raise ValueError(
            f"--coefficient {coefficient}: expected 0..{num_expression - 1} "
            f"(scene.json's flame.num_expression = {num_expression})"
        )
    expression, jaw = expression_and_jaw(params, num_expression)
    out = []
    for value in values:
        e = expression.copy()
        e[coefficient] = value
        out.append((e, jaw.copy()))
    return out


def silhouette(model: flame.FlameModel, vertices: np.ndarray, camera: Camera) -> np.ndarray:
    """bool (H, W): pixel centres of `camera` covered by the mesh `vertices` (V, 3)."""
    return rasterize.silhouette(vertices, np.asarray(model.faces), camera)
