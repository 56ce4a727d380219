# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Novel views of one expression: the capture's camera paths, orbits around the head, and
head sweeps (the camera stays, the head turns).

`path_views` builds the views of `python -m flamenerf.render path`:

  * a camera path of the capture (`camera-paths/NAME/*.json`), or an orbit of N cameras
    around the centre of the posed FLAME mesh (`orbit_cameras`); every view shows the same
    expression, so they share one condition and one posed mesh;
  * or the code frame's camera with the head turned about its neck joint by a yaw and/or a
    pitch swept from A to B degrees (`reanimation.turn_head`). Moving the head needs a model
    that undoes the head's motion (`view.check_head_motion`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flamenerf.errors import UserError
from flamenerf.geometry import camera as camera_lib
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.views import reanimation
from flamenerf.views.view import View, camera_views, check_frame, check_head_motion

if TYPE_CHECKING:  # annotations only: views do not import the training machinery
    from flamenerf.training import experiment

DEFAULT_ORBIT_FRAMES = 48
DEFAULT_ORBIT_DEGREES = 60.0  # arc of generated orbits (the capture covers about +-20 degrees)
DEFAULT_HEAD_SWEEP_FRAMES = 30


def orbit_cameras(
    camera: Camera, center: np.ndarray, frames: int, degrees: float = DEFAULT_ORBIT_DEGREES
) -> list[Camera]:
    """`frames` cameras orbiting `center` (3,) about the camera's up axis (`camera.orbit_path`).

    A full turn (degrees >= 360) starts at `camera`; a smaller arc is centred on it, from
    -degrees/2 to +degrees/2.
    """
    up = -camera.orientation[1]  # camera y points down in the image
    angle = np.deg2rad(min(degrees, 360.0))
    start = camera
    if degrees < 360:
        start = camera_lib.orbit_path(camera, center, up, 2, -angle)[1]  # at -angle / 2
        angle = angle * frames / max(frames - 1, 1)  # so the last frame reaches +angle / 2
    return camera_lib.orbit_path(start, center, up, frames, angle)


def path_views(
    exp: experiment.Experiment,
    expression_frame: str | None = None,
    path: str | None = None,
    orbit: int | None = None,
    orbit_degrees: float = DEFAULT_ORBIT_DEGREES,
    code_frame: str | None = None,
    head_yaw: tuple[float, float] | None = None,
    head_pitch: tuple[float, float] | None = None,
    num_frames: int | None = None,
) -> tuple[list[View], str]:
    """Novel views: the capture's camera path `path`, or an orbit of `orbit` cameras; or,
    with `head_yaw` and/or `head_pitch` (degrees, from A to B), the code frame's camera and
    the head turned (`reanimation.turn_head`) over `num_frames` frames (end points included;
    default DEFAULT_HEAD_SWEEP_FRAMES), the angle not given staying 0.

    The expression and jaw are those of `expression_frame` (default: the first training
    frame), posed on the code frame (default: the expression frame).

    Returns:
      The views and the code frame.

    Raises:
      UserError: unknown frames or camera path, conflicting or out-of-range
        arguments (naming the command-line flag), a head sweep the model cannot render.
    """
    capture = exp.capture
    expression_frame = check_frame(
        exp, expression_frame or capture.train_ids[0], "--expression_frame"
    )
    code_frame = check_frame(exp, code_frame or expression_frame, "--code_frame")
    if path is not None and orbit is not None:
        raise UserError("path: give --path NAME or --orbit N, not both")
    sweep = head_yaw is not None or head_pitch is not None
    if sweep and (path is not None or orbit is not None):
        raise UserError(
            "path: --head_yaw/--head_pitch keep the code frame's camera; not with --path or --orbit"
        )
    if num_frames is not None and not sweep:
        raise UserError(
            f"--num_frames {num_frames}: goes with --head_yaw/--head_pitch "
            "(an orbit's count is --orbit N)"
        )
    subject = capture.subject
    expression, jaw = subject.expression_and_jaw(capture.flame_params[expression_frame])
    driven = reanimation.with_expression(capture.flame_params[code_frame], expression, jaw)
    if sweep:
        views = _head_sweep_views(
            exp, driven, head_yaw, head_pitch, num_frames, code_frame, expression_frame
        )
        return views, code_frame
    vertices = subject.pose([driven])[0].astype(np.float32)
    if path is not None:
        try:
            cameras = capture.camera_path(path)
        except (FileNotFoundError, ValueError) as error:
            names = capture.camera_path_names()
            raise UserError(f"--path {path}: {error}; available: {names}") from None
        names = [f"{path}/{i:05d}" for i in range(len(cameras))]
    else:
        frames = DEFAULT_ORBIT_FRAMES if orbit is None else orbit
        if frames < 1:
            raise UserError(f"--orbit {frames}: expected at least 1 frame")
        if not 0 < orbit_degrees:
            raise UserError(f"--orbit_degrees {orbit_degrees}: expected > 0")
        center = vertices.astype(np.float64).mean(axis=0)
        cameras = orbit_cameras(capture.cameras[code_frame], center, frames, orbit_degrees)
        names = [f"orbit/{i:05d}" for i in range(len(cameras))]
    condition = subject.condition(driven, exp.expression_config.use_jaw)
    views = []
    for camera, name in zip(cameras, names, strict=True):
        inside = reanimation.silhouette(capture.flame_model, vertices, camera)
        label = {"camera": name, "expression": expression_frame}
        views.append(View(camera, condition, inside, driven, label))
    return views, code_frame


def _head_sweep_views(
    exp: experiment.Experiment,
    driven: flame.FlameParams,
    head_yaw: tuple[float, float] | None,
    head_pitch: tuple[float, float] | None,
    frames: int | None,
    code_frame: str,
    expression_frame: str,
) -> list[View]:
    """The code frame's camera, the head of `driven` turned from (yaw A, pitch A) to (B, B)."""
    flag = "--head_yaw" if head_yaw is not None else "--head_pitch"
    check_head_motion(exp, flag)
    frames = DEFAULT_HEAD_SWEEP_FRAMES if frames is None else frames
    if frames < 1:
        raise UserError(f"--num_frames {frames}: expected at least 1")
    for name, pair in (("--head_yaw", head_yaw), ("--head_pitch", head_pitch)):
        if pair is not None and not all(np.isfinite(pair)):
            raise UserError(f"{name} {pair[0]} {pair[1]}: expected finite degrees")
    weights = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    sweep = lambda pair: (
        np.zeros(frames) if pair is None else pair[0] + weights * (pair[1] - pair[0])
    )
    yaws, pitches = sweep(head_yaw), sweep(head_pitch)
    turned = [
        reanimation.turn_head(driven, float(y), float(p))
        for y, p in zip(yaws, pitches, strict=True)
    ]
    labels = [
        {
            "camera": code_frame,
            "expression": expression_frame,
            "head_yaw": float(y),
            "head_pitch": float(p),
        }
        for y, p in zip(yaws, pitches, strict=True)
    ]
    return camera_views(exp, exp.capture.cameras[code_frame], turned, labels)
