# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.render --base_folder EXP SUBCOMMAND ... --out DIR`.

Renders a trained experiment with other cameras or other FLAME parameters and writes
`DIR/frames/00000.png, 00001.png, ...`, `DIR/video.mp4` (an animated `video.gif` when no
ffmpeg works) and `DIR/render.json` (what each frame shows). Subcommands (DESIGN.md 2.2):

  path        a camera path of the capture (`--path NAME`, from `camera-paths/NAME/`) or an
              orbit of N cameras around the FLAME mesh centre (`--orbit N`, the default), with
              the expression of one frame (`--expression_frame ID`): novel views. Or the
              camera stays (the code frame's) and the head turns: `--head_yaw A B` and/or
              `--head_pitch A B` (degrees, about the neck joint in the head's own frame,
              `reanimation.turn_head`) swept over `--frames N`.
  expression  one camera (`--camera_frame ID`); expressions interpolated from that frame's to
              another's (`--to_frame ID2`) or one coefficient swept (`--coefficient K
              --range A B`).
  reanimate   one frame per `--flame_dir DIR/*.json` (FLAME parameters, sorted by name) seen
              from `--camera CAMERA.json` (default: the code frame's camera), optionally
              transferred as offsets from a neutral (`--relative NEUTRAL.json`); the head
              pose stays the code frame's (`--head_pose code`) or follows the driving
              parameters (`--head_pose driving`).

Every frame uses the warp and appearance codes of one capture frame, the "code frame"
(`--code_frame`; by default the expression frame, the camera frame, or the first training
frame), whose identity (`shape`) and eyes are kept, and its head pose (FLAME's global pose,
neck pose and translation) unless `--head_pose driving` or a head sweep moves it. The
silhouette bit of each render, and the FLAME-guide grids, come from the mesh posed with the
parameters rendered (DESIGN.md 2.6). Relative transfer (`reanimate --relative`):

    expression = subject_neutral + (driving - driving_neutral)       (jaw pose alike)

where driving_neutral is NEUTRAL.json and the subject's neutral is FLAME's neutral face (zero
expression and jaw), or the expression and jaw of `--subject_neutral FRAME` when given. With
`--head_pose driving` the head pose transfers the same way onto the code frame's pose
(rotations composed, translations added: `reanimation.relative_head_pose`).

A head pose other than the code frame's needs a model that undoes the head's motion: the
FLAME guide with its rigid part (`GuideConfig.enabled`, `GuideConfig.undo_rigid`), which maps
the head's ball back to rest and leaves everything beyond its fade (torso, room) in place.
Without it only the silhouette would move, so such renders are refused.
Rendering is deterministic and sharded over all devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf import eval as eval_lib
from flamenerf.datasets import rays
from flamenerf.geometry import camera as camera_lib
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.io.media import VideoResult, write_png, write_video
from flamenerf.training import experiment
from flamenerf.views import reanimation

DEFAULT_ORBIT_FRAMES = 48
DEFAULT_ORBIT_DEGREES = 60.0  # arc of generated orbits (the capture covers about +-20 degrees)
DEFAULT_EXPRESSION_FRAMES = 30
DEFAULT_HEAD_SWEEP_FRAMES = 30
HEAD_POSE_CHOICES = ("code", "driving")


@dataclasses.dataclass
class View:
    """One frame to render: a camera and the FLAME parameters rendered (DESIGN.md 2.6)."""

    camera: Camera  # normalised frame, at the capture's scale
    condition: np.ndarray  # float32 (C,) conditioning vector of the parameters
    inside: np.ndarray  # bool (H, W) silhouette of the mesh posed with the parameters
    flame: flame.FlameParams  # the parameters (subject identity and head pose, driven face)
    label: dict[str, Any]  # provenance written to render.json


# ------------------------------------------------------------------------------------------
# Building views.


def _frame(exp: experiment.Experiment, frame_id: str, flag: str) -> str:
    """Checks that `frame_id` is a capture frame; UserError naming the flag otherwise."""
    capture = exp.capture
    if frame_id not in capture.frames:
        examples = ", ".join(capture.train_ids[:3] + capture.val_ids[:1])
        raise experiment.UserError(
            f"{flag} {frame_id}: no such frame in {capture.root / 'dataset.json'} "
            f"(ids look like {examples})"
        )
    return frame_id


def _condition(exp: experiment.Experiment, expression: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    return reanimation.condition(
        expression, jaw, exp.capture.scene.num_expression, exp.expression_config.use_jaw
    )


def check_head_motion(exp: experiment.Experiment, flag: str) -> None:
    """UserError naming `flag` unless the model can render another head pose.

    That needs the FLAME guide's rigid part (`GuideConfig.enabled` and `undo_rigid`): it
    carries the head's ball back to rest, so the canonical head follows the pose. Without it
    the rendered head stays where the code frame had it and only the silhouette would move.
    """
    cfg = exp.guide_config
    if not (cfg.enabled and cfg.undo_rigid):
        raise experiment.UserError(
            f"{flag}: this experiment cannot move the head (GuideConfig.enabled = "
            f"{cfg.enabled}, GuideConfig.undo_rigid = {cfg.undo_rigid}; expected both True, "
            f"see {exp.base_folder / 'config.gin'}): only its silhouette would follow the pose"
        )


def _views(
    exp: experiment.Experiment,
    camera: Camera,
    driven: list[flame.FlameParams],
    labels: list[dict[str, Any]],
    show_progress: bool = False,
) -> list[View]:
    """Views of one camera, one per parameter set rendered (condition and silhouette)."""
    from tqdm.auto import tqdm

    capture = exp.capture
    num_expression = capture.scene.num_expression
    vertices = reanimation.posed_vertices(capture.flame_model, capture.scene, driven)
    views = []
    items = zip(driven, vertices, labels, strict=True)
    for params, verts, label in tqdm(
        items, total=len(labels), desc="silhouettes", disable=not show_progress, leave=False
    ):
        expression, jaw = reanimation.expression_and_jaw(params, num_expression)
        inside = reanimation.silhouette(capture.flame_model, verts, camera)
        views.append(View(camera, _condition(exp, expression, jaw), inside, params, label))
    return views


def _one_camera_views(
    exp: experiment.Experiment,
    camera: Camera,
    subject: flame.FlameParams,
    expressions: list[tuple[np.ndarray, np.ndarray]],
    labels: list[dict[str, Any]],
    show_progress: bool = False,
) -> list[View]:
    """Views of one camera, one per (expression, jaw), posed on the subject."""
    driven = [reanimation.with_expression(subject, e, j) for e, j in expressions]
    return _views(exp, camera, driven, labels, show_progress)


def orbit_cameras(
    camera: Camera, center: np.ndarray, frames: int, degrees: float = DEFAULT_ORBIT_DEGREES
) -> list[Camera]:
    """`frames` cameras orbiting `center` about the camera's up axis (`camera.orbit_path`).

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
    frames: int | None = None,
) -> tuple[list[View], str]:
    """Novel views: the capture's camera path `path`, or an orbit of `orbit` cameras; or,
    with `head_yaw` and/or `head_pitch` (degrees, from A to B), the code frame's camera and
    the head turned (`reanimation.turn_head`) over `frames` frames (end points included;
    default DEFAULT_HEAD_SWEEP_FRAMES), the angle not given staying 0.

    The expression and jaw are those of `expression_frame` (default: the first training
    frame), posed on the code frame (default: the expression frame).

    Returns:
      The views and the code frame.
    """
    capture = exp.capture
    expression_frame = _frame(exp, expression_frame or capture.train_ids[0], "--expression_frame")
    code_frame = _frame(exp, code_frame or expression_frame, "--code_frame")
    if path is not None and orbit is not None:
        raise experiment.UserError("path: give --path NAME or --orbit N, not both")
    sweep = head_yaw is not None or head_pitch is not None
    if sweep and (path is not None or orbit is not None):
        raise experiment.UserError(
            "path: --head_yaw/--head_pitch keep the code frame's camera; not with --path or --orbit"
        )
    if frames is not None and not sweep:
        raise experiment.UserError(
            f"--frames {frames}: goes with --head_yaw/--head_pitch (an orbit's count is --orbit N)"
        )
    subject = capture.flame_params[code_frame]
    expression, jaw = reanimation.expression_and_jaw(
        capture.flame_params[expression_frame], capture.scene.num_expression
    )
    driven = reanimation.with_expression(subject, expression, jaw)
    if sweep:
        views = _head_sweep_views(
            exp, driven, head_yaw, head_pitch, frames, code_frame, expression_frame
        )
        return views, code_frame
    vertices = reanimation.posed_vertices(capture.flame_model, capture.scene, [driven])[0]
    if path is not None:
        try:
            cameras = capture.camera_path(path)
        except (FileNotFoundError, ValueError) as error:
            names = capture.camera_path_names()
            raise experiment.UserError(f"--path {path}: {error}; available: {names}") from None
        names = [f"{path}/{i:05d}" for i in range(len(cameras))]
    else:
        frames = DEFAULT_ORBIT_FRAMES if orbit is None else orbit
        if frames < 1:
            raise experiment.UserError(f"--orbit {frames}: expected at least 1 frame")
        if not 0 < orbit_degrees:
            raise experiment.UserError(f"--orbit_degrees {orbit_degrees}: expected > 0")
        center = vertices.astype(np.float64).mean(axis=0)
        cameras = orbit_cameras(capture.cameras[code_frame], center, frames, orbit_degrees)
        names = [f"orbit/{i:05d}" for i in range(len(cameras))]
    condition = _condition(exp, expression, jaw)
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
        raise experiment.UserError(f"--frames {frames}: expected at least 1")
    for name, pair in (("--head_yaw", head_yaw), ("--head_pitch", head_pitch)):
        if pair is not None and not all(np.isfinite(pair)):
            raise experiment.UserError(f"{name} {pair[0]} {pair[1]}: expected finite degrees")
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
    return _views(exp, exp.capture.cameras[code_frame], turned, labels)


def expression_views(
    exp: experiment.Experiment,
    camera_frame: str,
    to_frame: str | None = None,
    coefficient: int | None = None,
    value_range: tuple[float, float] | None = None,
    frames: int = DEFAULT_EXPRESSION_FRAMES,
    code_frame: str | None = None,
) -> tuple[list[View], str]:
    """One camera, expressions interpolated from `camera_frame`'s to `to_frame`'s (inclusive),
    or coefficient `coefficient` of `camera_frame`'s expression swept over `value_range`
    (default: the range of that coefficient over the training frames; +-1 around its value
    when it is constant there).

    Returns:
      The views and the code frame (default: the camera frame).
    """
    capture = exp.capture
    camera_frame = _frame(exp, camera_frame, "--camera_frame")
    code_frame = _frame(exp, code_frame or camera_frame, "--code_frame")
    if frames < 1:
        raise experiment.UserError(f"--frames {frames}: expected at least 1")
    if (to_frame is None) == (coefficient is None):
        raise experiment.UserError(
            "expression: give either --to_frame ID2 or --coefficient K (with --range A B)"
        )
    if value_range is not None and coefficient is None:
        raise experiment.UserError("expression: --range A B goes with --coefficient K")
    num_expression = capture.scene.num_expression
    start = capture.flame_params[camera_frame]
    weights = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    if to_frame is not None:
        to_frame = _frame(exp, to_frame, "--to_frame")
        expressions = reanimation.interpolate(
            start, capture.flame_params[to_frame], weights, num_expression
        )
        labels = [{"from": camera_frame, "to": to_frame, "t": float(t)} for t in weights]
    else:
        if value_range is None:
            values = [
                reanimation.expression_and_jaw(capture.flame_params[i], num_expression)[0]
                for i in capture.train_ids
            ]
            column = np.stack(values)[:, coefficient] if 0 <= coefficient < num_expression else [0]
            low, high = float(np.min(column)), float(np.max(column))
            if high - low < 1e-6:  # constant in training: sweep one unit either side
                low, high = low - 1.0, high + 1.0
            value_range = (low, high)
        sweep_values = value_range[0] + weights * (value_range[1] - value_range[0])
        try:
            expressions = reanimation.sweep(start, coefficient, sweep_values, num_expression)
        except ValueError as error:
            raise experiment.UserError(str(error)) from None
        labels = [{"coefficient": coefficient, "value": float(v)} for v in sweep_values]
    subject = capture.flame_params[code_frame]
    views = _one_camera_views(exp, capture.cameras[camera_frame], subject, expressions, labels)
    return views, code_frame


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
        "driving": the driving parameters' (needs `check_head_motion`).

    Raises:
      experiment.UserError: missing or invalid files (naming the file and the field), a bad
        `head_pose`, or a driven head pose the model cannot render.
    """
    capture = exp.capture
    if head_pose not in HEAD_POSE_CHOICES:
        raise experiment.UserError(
            f"--head_pose {head_pose}: expected one of {', '.join(HEAD_POSE_CHOICES)}"
        )
    if head_pose == "driving":
        check_head_motion(exp, "--head_pose driving")
    code_frame = _frame(exp, code_frame or capture.train_ids[0], "--code_frame")
    num_expression = capture.scene.num_expression
    try:
        sequence = reanimation.read_sequence(flame_dir, num_expression)
        driving_neutral = (
            None if relative is None else reanimation.read_params(relative, num_expression)
        )
        view_camera = (
            capture.cameras[code_frame]
            if camera is None
            else reanimation.read_camera(camera, capture.scene, capture.scale)
        )
    except (FileNotFoundError, ValueError) as error:
        raise experiment.UserError(str(error)) from None
    subject = capture.flame_params[code_frame]
    if subject_neutral is not None and relative is None:
        raise experiment.UserError("--subject_neutral needs --relative NEUTRAL.json")
    if driving_neutral is not None:
        neutral = reanimation.neutral_of(subject)
        if subject_neutral is not None:
            neutral = capture.flame_params[_frame(exp, subject_neutral, "--subject_neutral")]
        expressions = [
            reanimation.relative_transfer(p, driving_neutral, neutral, num_expression)
            for _, p in sequence
        ]
    else:
        expressions = [reanimation.expression_and_jaw(p, num_expression) for _, p in sequence]
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
    views = _views(exp, view_camera, driven, labels, show_progress)
    return views, code_frame


# ------------------------------------------------------------------------------------------
# Rendering and writing.


def view_rays(
    exp: experiment.Experiment, view: View, code_frame: str, frame: int | None = None
) -> rays.RayBatch:
    """All rays of a view, with the code frame's warp and appearance codes.

    Args:
      frame: the rays' frame index (into the FLAME-guide grids rendered with); default the
        code frame's index in the capture.
    """
    capture = exp.capture
    info = capture.frames[code_frame]
    return rays.camera_rays(
        view.camera,
        frame=capture.ids.index(code_frame) if frame is None else frame,
        warp_id=info.warp_id,
        appearance_id=info.appearance_id,
        condition=view.condition,
        inside=view.inside,
    )


def render_views(
    exp: experiment.Experiment,
    params: Any,
    alpha: float,
    views: list[View],
    code_frame: str,
    show_progress: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Renders every view: a list of {"rgb" (H, W, 3), "depth" (H, W), "acc" (H, W)}.

    When the model reads FLAME-guide grids, they are built from the views' parameters (one
    grid per distinct parameter set).
    """
    from tqdm.auto import tqdm

    distinct: dict[int, int] = {}
    for view in views:
        distinct.setdefault(id(view.flame), len(distinct))
    unique = {id(v.flame): v.flame for v in views}
    grids = exp.grids_for([unique[k] for k in distinct])
    outputs = []
    for view in tqdm(views, desc="rendering", disable=not show_progress):
        frame = distinct[id(view.flame)] if grids is not None else None
        batch = view_rays(exp, view, code_frame, frame)
        shape = view.camera.image_shape
        outputs.append(exp.renderer.render_image(params, batch, alpha, shape, grids))
    return outputs


def write_outputs(
    out_dir: Path, images: list[np.ndarray], info: dict[str, Any], fps: float
) -> VideoResult:
    """DIR/frames/NNNNN.png (older numbered frames removed), the video and render.json."""
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for stale in frames_dir.glob("*.png"):
        if re.fullmatch(r"\d{5}\.png", stale.name):
            stale.unlink()
    for index, image in enumerate(images):
        write_png(frames_dir / f"{index:05d}.png", image)
    for old in ("video.mp4", "video.gif"):
        (out_dir / old).unlink(missing_ok=True)
    try:
        result = write_video(out_dir / "video.mp4", images, fps)
    except ValueError as error:  # e.g. a camera path whose cameras differ in image size
        raise experiment.UserError(str(error)) from None
    info = dict(info, video=result.path.name, video_note=result.note)
    (out_dir / "render.json").write_text(json.dumps(info, indent=2) + "\n")
    return result


# ------------------------------------------------------------------------------------------
# The command line.


def _common_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Flags accepted before and after the subcommand (`suppress`: no defaults, subparsers)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--base_folder",
        default=default,
        metavar="EXP",
        help="the experiment folder (required)",
    )
    parser.add_argument(
        "--out",
        default=default,
        metavar="DIR",
        help="output folder for frames/, video.mp4 and render.json "
        "(default: EXP/renders/SUBCOMMAND)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=argparse.SUPPRESS if suppress else 30.0,
        help="video frames per second (default: 30)",
    )
    parser.add_argument(
        "--code_frame",
        default=default,
        metavar="ID",
        help="frame whose warp and appearance codes, identity and head pose are used "
        "(default: the expression/camera frame; reanimate: the first training frame)",
    )
    eval_lib.add_checkpoint_flags(parser, default)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.render",
        description="Render a trained experiment along camera paths, with other expressions, "
        "or reanimated by other FLAME parameters: DIR/frames/*.png and DIR/video.mp4. "
        "Flags before the subcommand may also come after it.",
    )
    _common_flags(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    path = commands.add_parser(
        "path",
        help="novel views: a capture camera path or an orbit, with one frame's expression; "
        "or the head turned before a fixed camera",
        description="Novel views along a camera path of the capture (camera-paths/NAME/) or "
        "an orbit around the FLAME mesh centre, with the expression of one frame; or, with "
        "--head_yaw/--head_pitch, the code frame's camera and the head turned (torso and "
        "room stay; needs the FLAME guide's rigid part).",
    )
    path.add_argument(
        "--path", default=None, metavar="NAME", help="camera path camera-paths/NAME/*.json"
    )
    path.add_argument(
        "--orbit",
        type=int,
        default=None,
        metavar="N",
        help=f"an orbit of N cameras around the head (default when no --path: "
        f"{DEFAULT_ORBIT_FRAMES})",
    )
    path.add_argument(
        "--orbit_degrees",
        type=float,
        default=DEFAULT_ORBIT_DEGREES,
        metavar="DEG",
        help="orbit angle; below 360 an arc centred on the code frame's camera (default "
        f"{DEFAULT_ORBIT_DEGREES:g}: a phone capture sees the head from the front only)",
    )
    path.add_argument(
        "--expression_frame",
        default=None,
        metavar="ID",
        help="frame whose expression and jaw are rendered (default: the first training frame)",
    )
    path.add_argument(
        "--head_yaw",
        type=float,
        nargs=2,
        default=None,
        metavar=("A", "B"),
        help="instead of moving the camera, keep the code frame's and turn the head about the "
        "neck from yaw A to B degrees (positive: towards the subject's left; default: no "
        "sweep, yaw 0 when only --head_pitch is given)",
    )
    path.add_argument(
        "--head_pitch",
        type=float,
        nargs=2,
        default=None,
        metavar=("A", "B"),
        help="the same for the pitch (positive: the face tilts down; default: no sweep, "
        "pitch 0 when only --head_yaw is given)",
    )
    path.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="N",
        help="frames of a --head_yaw/--head_pitch sweep, end points included (default "
        f"{DEFAULT_HEAD_SWEEP_FRAMES})",
    )
    _common_flags(path, suppress=True)

    expression = commands.add_parser(
        "expression",
        help="one camera, expressions interpolated between frames or one coefficient swept",
        description="One camera; expressions interpolated from --camera_frame's to "
        "--to_frame's, or expression coefficient K swept from A to B.",
    )
    expression.add_argument(
        "--camera_frame", required=True, metavar="ID", help="frame whose camera is used"
    )
    expression.add_argument(
        "--to_frame", default=None, metavar="ID2", help="interpolate to this frame's expression"
    )
    expression.add_argument(
        "--coefficient",
        type=int,
        default=None,
        metavar="K",
        help="sweep expression coefficient K (0-based)",
    )
    expression.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=None,
        metavar=("A", "B"),
        help="values of coefficient K swept (default: its range over the training frames, "
        "or its value +-1 when constant there)",
    )
    expression.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_EXPRESSION_FRAMES,
        metavar="N",
        help=f"number of frames, end points included (default {DEFAULT_EXPRESSION_FRAMES})",
    )
    _common_flags(expression, suppress=True)

    reanimate = commands.add_parser(
        "reanimate",
        help="one frame per FLAME parameter file of a driving sequence",
        description="Reanimate the subject: one frame per DIR/*.json (FLAME parameters in "
        "the capture's flame/ID.json form, sorted by file name). The head pose stays the "
        "code frame's unless --head_pose driving.",
    )
    reanimate.add_argument(
        "--flame_dir", required=True, metavar="DIR", help="folder of FLAME parameter files"
    )
    reanimate.add_argument(
        "--camera",
        default=None,
        metavar="CAMERA.json",
        help="camera in the capture's world coordinates at 1x (default: the code frame's)",
    )
    reanimate.add_argument(
        "--relative",
        default=None,
        metavar="NEUTRAL.json",
        help="transfer expressions and jaw as offsets from this neutral of the driving "
        "sequence onto the subject's neutral",
    )
    reanimate.add_argument(
        "--subject_neutral",
        default=None,
        metavar="ID",
        help="with --relative: frame whose expression and jaw are the subject's neutral "
        "(default: zero expression and jaw)",
    )
    reanimate.add_argument(
        "--head_pose",
        default="code",
        metavar="|".join(HEAD_POSE_CHOICES),
        help="head pose rendered (FLAME global pose, neck pose, translation): the code "
        "frame's, or the driving parameters' (with --relative: their offset from NEUTRAL.json "
        "composed onto the code frame's pose); torso and room stay (default: code)",
    )
    _common_flags(reanimate, suppress=True)
    args = parser.parse_args(argv)
    if args.base_folder is None:
        parser.error("the following arguments are required: --base_folder")
    return args


def run(args: argparse.Namespace) -> Path:
    """Loads the experiment, builds the views of the subcommand, renders and writes them."""
    import jax

    exp, state, checkpoint, _ = eval_lib.load(
        args.base_folder, args.checkpoint, args.scale, args.chunk
    )
    chief = jax.process_index() == 0
    try:
        if args.command == "path":
            views, code = path_views(
                exp,
                args.expression_frame,
                args.path,
                args.orbit,
                args.orbit_degrees,
                args.code_frame,
                None if args.head_yaw is None else tuple(args.head_yaw),
                None if args.head_pitch is None else tuple(args.head_pitch),
                args.frames,
            )
        elif args.command == "expression":
            views, code = expression_views(
                exp,
                args.camera_frame,
                args.to_frame,
                args.coefficient,
                None if args.range is None else tuple(args.range),
                args.frames,
                args.code_frame,
            )
        else:
            views, code = reanimate_views(
                exp,
                args.flame_dir,
                args.camera,
                args.code_frame,
                args.relative,
                args.subject_neutral,
                show_progress=chief,
                head_pose=args.head_pose,
            )
        outputs = render_views(
            exp, state.params, exp.warp_alpha(checkpoint), views, code, show_progress=chief
        )
        out_dir = Path(args.out) if args.out else exp.base_folder / "renders" / args.command
        if chief:
            info = {
                "command": args.command,
                "base_folder": str(exp.base_folder),
                "checkpoint": checkpoint,
                "code_frame": code,
                "frames": [v.label for v in views],
            }
            if args.command == "reanimate":
                info["head_pose"] = args.head_pose
            result = write_outputs(out_dir, [o["rgb"] for o in outputs], info, args.fps)
            if result.note:
                print(f"note: {result.note}", file=sys.stderr)
            print(f"{out_dir}: {len(views)} frames, {result.path.name}")
        return out_dir
    finally:
        exp.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fps is not None and not args.fps > 0:
        print(f"error: --fps {args.fps}: expected a number > 0", file=sys.stderr)
        return 2
    head_pose = getattr(args, "head_pose", "code")
    if head_pose not in HEAD_POSE_CHOICES:
        expected = " or ".join(HEAD_POSE_CHOICES)
        print(f"error: --head_pose {head_pose}: expected {expected}", file=sys.stderr)
        return 2
    try:
        run(args)
    except experiment.UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
