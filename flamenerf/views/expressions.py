# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""One camera, other FLAME parameters: expression sweeps and reanimation by a driving sequence.

`expression_views` builds the views of `python -m flamenerf.render expression`: one frame's
camera, the expression interpolated from that frame's to another's, or one coefficient swept.
`reanimate_views` builds those of `render reanimate`: one view per FLAME parameter file of a
driving sequence, optionally transferred as offsets from a neutral (relative transfer) and
optionally with the driving head pose:

    expression = subject_neutral + (driving - driving_neutral)       (jaw pose alike)

Every view keeps the code frame's identity (`shape`), eyes and, unless the head pose is
driven, its head pose; the arithmetic on parameters is `flamenerf.views.reanimation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flamenerf.datasets import capture as capture_lib
from flamenerf.errors import UserError
from flamenerf.views import reanimation
from flamenerf.views.view import View, camera_views, check_frame, check_head_motion

if TYPE_CHECKING:  # annotations only: views do not import the training machinery
    from flamenerf.training import experiment

DEFAULT_EXPRESSION_FRAMES = 30
HEAD_POSE_CHOICES = ("code", "driving")  # reanimate_views' head_pose


def expression_views(
    exp: experiment.Experiment,
    camera_frame: str,
    to_frame: str | None = None,
    coefficient: int | None = None,
    value_range: tuple[float, float] | None = None,
    num_frames: int = DEFAULT_EXPRESSION_FRAMES,
    code_frame: str | None = None,
) -> tuple[list[View], str]:
    """One camera, `num_frames` frames: expressions interpolated from `camera_frame`'s to
    `to_frame`'s (inclusive), or coefficient `coefficient` of `camera_frame`'s expression
    swept over `value_range` (default: the range of that coefficient over the training
    frames; +-1 around its value when it is constant there).

    Returns:
      The views and the code frame (default: the camera frame).

    Raises:
      UserError: unknown frames, a coefficient out of range, or conflicting
        arguments (naming the command-line flag).
    """
    capture = exp.capture
    camera_frame = check_frame(exp, camera_frame, "--camera_frame")
    code_frame = check_frame(exp, code_frame or camera_frame, "--code_frame")
    if num_frames < 1:
        raise UserError(f"--num_frames {num_frames}: expected at least 1")
    if (to_frame is None) == (coefficient is None):
        raise UserError(
            "expression: give either --to_frame ID2 or --coefficient K (with --range A B)"
        )
    if value_range is not None and coefficient is None:
        raise UserError("expression: --range A B goes with --coefficient K")
    num_expression = capture.scene.num_expression
    start = capture.flame_params[camera_frame]
    weights = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    if to_frame is not None:
        to_frame = check_frame(exp, to_frame, "--to_frame")
        expressions = reanimation.interpolate(
            start, capture.flame_params[to_frame], weights, num_expression
        )
        labels = [{"from": camera_frame, "to": to_frame, "t": float(t)} for t in weights]
    else:
        if value_range is None:
            expression_of = capture.subject.expression_and_jaw
            values = [expression_of(capture.flame_params[i])[0] for i in capture.train_ids]
            column = np.stack(values)[:, coefficient] if 0 <= coefficient < num_expression else [0]
            low, high = float(np.min(column)), float(np.max(column))
            if high - low < 1e-6:  # constant in training: sweep one unit either side
                low, high = low - 1.0, high + 1.0
            value_range = (low, high)
        sweep_values = value_range[0] + weights * (value_range[1] - value_range[0])
        try:
            expressions = reanimation.sweep(start, coefficient, sweep_values, num_expression)
        except ValueError as error:
            raise UserError(str(error)) from None
        labels = [{"coefficient": coefficient, "value": float(v)} for v in sweep_values]
    subject = capture.flame_params[code_frame]
    driven = [reanimation.with_expression(subject, e, j) for e, j in expressions]
    return camera_views(exp, capture.cameras[camera_frame], driven, labels), code_frame


def reanimate_views(
    exp: experiment.Experiment,
    flame_dir: str | Path,
    camera: str | Path | None = None,
    code_frame: str | None = None,
    relative: str | Path | None = None,
    subject_neutral: str | None = None,
    show_progress: bool = False,
    head_pose: str = "code",
) -> tuple[list[View], str]:
    """One view per `flame_dir/*.json` (sorted), on the code frame (default: first training).

    Args:
      camera: a camera JSON in capture world coordinates at 1x (default: the code frame's).
      relative: the driving sequence's neutral parameters; expressions (and with
        `head_pose = "driving"` the head pose) then transfer as offsets from it onto the
        subject's neutral (the code frame's pose; see the module docstring).
      subject_neutral: a capture frame whose expression and jaw are the subject's neutral
        (default: zeros). Only with `relative`.
      head_pose: "code": the code frame's global pose, neck pose and translation;
        "driving": the driving parameters' (needs `view.check_head_motion`).

    Raises:
      UserError: missing or invalid files (naming the file and the field), a bad
        `head_pose`, or a driven head pose the model cannot render.
    """
    capture = exp.capture
    if head_pose not in HEAD_POSE_CHOICES:
        raise UserError(f"--head_pose {head_pose}: expected one of {', '.join(HEAD_POSE_CHOICES)}")
    if head_pose == "driving":
        check_head_motion(exp, "--head_pose driving")
    code_frame = check_frame(exp, code_frame or capture.train_ids[0], "--code_frame")
    num_expression = capture.scene.num_expression
    try:
        sequence = reanimation.read_sequence(flame_dir, num_expression)
        driving_neutral = (
            None if relative is None else reanimation.read_params(relative, num_expression)
        )
        view_camera = (
            capture.cameras[code_frame]
            if camera is None
            else capture.subject.camera(capture_lib.read_camera(camera), capture.scale)
        )
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    subject = capture.flame_params[code_frame]
    if subject_neutral is not None and relative is None:
        raise UserError("--subject_neutral needs --relative NEUTRAL.json")
    if driving_neutral is not None:
        neutral = capture.subject.neutral(subject)
        if subject_neutral is not None:
            neutral = capture.flame_params[check_frame(exp, subject_neutral, "--subject_neutral")]
        expressions = [
            reanimation.relative_transfer(p, driving_neutral, neutral, num_expression)
            for _, p in sequence
        ]
    else:
        expressions = [capture.subject.expression_and_jaw(p) for _, p in sequence]
    driven = [reanimation.with_expression(subject, e, j) for e, j in expressions]
    if head_pose == "driving":
        if driving_neutral is None:  # the driving values as they are
            poses = [(p.global_pose, p.neck_pose, p.translation) for _, p in sequence]
        else:
            poses = [
                reanimation.relative_head_pose(p, driving_neutral, subject) for _, p in sequence
            ]
        driven = [
            reanimation.with_head_pose(d, *pose) for d, pose in zip(driven, poses, strict=True)
        ]
    labels = [{"flame": f"{name}.json"} for name, _ in sequence]
    views = camera_views(exp, view_camera, driven, labels, show_progress)
    return views, code_frame
