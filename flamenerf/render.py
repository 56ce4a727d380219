# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.render --base_folder EXP SUBCOMMAND ... --out DIR`.

Renders a trained experiment with other cameras or other FLAME parameters and writes
`DIR/frames/00000.png, 00001.png, ...`, `DIR/video.mp4` (an animated `video.gif` when no
ffmpeg works) and `DIR/render.json` (what each frame shows); with `--depth` also
`DIR/depth/*.png` and `DIR/depth.mp4` (depth, one colour scale for the whole video), with
`--silhouette` `DIR/silhouette/*.png` and `DIR/silhouette.mp4` (the FLAME mesh's silhouette,
the spatial prior's bit, over the render). Subcommands
(docs/architecture.md#command-lines):

  path        a camera path of the capture (`--path NAME`, from `camera-paths/NAME/`) or an
              orbit of N cameras around the FLAME mesh centre (`--orbit N`, the default), with
              the expression of one frame (`--expression_frame ID`): novel views. Or the
              camera stays (the code frame's) and the head turns: `--head_yaw A B` and/or
              `--head_pitch A B` (degrees, about the neck joint in the head's own frame,
              `views.reanimation.turn_head`) swept over `--num_frames N`.
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
parameters rendered (docs/architecture.md#rendering-with-other-parameters). Relative transfer
(`reanimate --relative`):

    expression = subject_neutral + (driving - driving_neutral)       (jaw pose alike)

where driving_neutral is NEUTRAL.json and the subject's neutral is FLAME's neutral face (zero
expression and jaw), or the expression and jaw of `--subject_neutral FRAME` when given. With
`--head_pose driving` the head pose transfers the same way onto the code frame's pose
(rotations composed, translations added: `views.reanimation.relative_head_pose`).

A head pose other than the code frame's needs a model that undoes the head's motion: the
FLAME guide with its rigid part (`GuideConfig.enabled`, `GuideConfig.undo_rigid`), which maps
the head's ball back to rest and leaves everything beyond its fade (torso, room) in place.
Without it only the silhouette would move, so such renders are refused.
Rendering is deterministic and sharded over all devices.

The library behind this command line is `flamenerf.views`: `paths.path_views`,
`expressions.expression_views` and `expressions.reanimate_views` build the views (each
subcommand's flags are named as their arguments), `output.render_to_folder` renders and
writes them, and `Experiment.restore` opens the experiment.
"""

from __future__ import annotations

import argparse
import inspect
import sys

from flamenerf import cli_args, compilation_cache, errors, help_format
from flamenerf.io import paths as io_paths
from flamenerf.training import experiment
from flamenerf.views import expressions, output, paths

# Kinds of flag shared by several subcommands (argparse keywords; default None unless given).
_FRAME_ID = {"metavar": "ID"}  # a capture frame id
_COUNT = {"type": int, "metavar": "N"}  # a number of frames
_FROM_TO = {"type": float, "nargs": 2, "metavar": ("A", "B")}  # a sweep from A to B


def _common_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Flags accepted before and after the subcommand (`suppress`: no defaults, subparsers)."""
    default = argparse.SUPPRESS if suppress else None
    cli_args.add_base_folder(parser, checked_later=True, default=default)
    parser.add_argument(
        "--out",
        default=default,
        metavar="DIR",
        help="output folder for frames/, video.mp4 and render.json, a local path or a URL "
        "(default: EXP/renders/SUBCOMMAND)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=argparse.SUPPRESS if suppress else output.DEFAULT_FPS,
        help="video frames per second (default: 30)",
    )
    parser.add_argument(
        "--code_frame",
        **_FRAME_ID,
        default=default,
        help="frame whose warp and appearance codes, identity and head pose are used "
        "(default: the expression/camera frame; reanimate: the first training frame)",
    )
    for name, what in (
        ("depth", "depth (turbo colormap, one scale for every frame)"),
        (
            "silhouette",
            "the render with the FLAME mesh's silhouette (the spatial prior's bit) over it",
        ),
    ):
        parser.add_argument(
            f"--{name}",
            action="store_true",
            default=argparse.SUPPRESS if suppress else False,
            help=f"also write {what} as DIR/{name}/*.png and DIR/{name}.mp4 (default: off)",
        )
    experiment.add_checkpoint_flags(parser, default)


def _path_flags(parser: argparse.ArgumentParser) -> None:
    """`path`: a camera path or an orbit; or a head sweep before the code frame's camera."""
    parser.add_argument("--path", metavar="NAME", help="camera path camera-paths/NAME/*.json")
    parser.add_argument(
        "--orbit",
        **_COUNT,
        help="an orbit of N cameras around the head (default when no --path: "
        f"{paths.DEFAULT_ORBIT_FRAMES})",
    )
    parser.add_argument(
        "--orbit_degrees",
        type=float,
        default=paths.DEFAULT_ORBIT_DEGREES,
        metavar="DEG",
        help="orbit angle; below 360 an arc centred on the code frame's camera (default "
        f"{paths.DEFAULT_ORBIT_DEGREES:g}: a phone capture sees the head from the front only)",
    )
    parser.add_argument(
        "--expression_frame",
        **_FRAME_ID,
        help="frame whose expression and jaw are rendered (default: the first training frame)",
    )
    parser.add_argument(
        "--head_yaw",
        **_FROM_TO,
        help="instead of moving the camera, keep the code frame's and turn the head about the "
        "neck from yaw A to B degrees (positive: towards the subject's left; default: no "
        "sweep, yaw 0 when only --head_pitch is given)",
    )
    parser.add_argument(
        "--head_pitch",
        **_FROM_TO,
        help="the same for the pitch (positive: the face tilts down; default: no sweep, "
        "pitch 0 when only --head_yaw is given)",
    )
    parser.add_argument(
        "--num_frames",
        **_COUNT,
        help="frames of a --head_yaw/--head_pitch sweep, end points included (default "
        f"{paths.DEFAULT_HEAD_SWEEP_FRAMES})",
    )


def _expression_flags(parser: argparse.ArgumentParser) -> None:
    """`expression`: one camera; an interpolation between frames or one coefficient swept."""
    parser.add_argument(
        "--camera_frame", **_FRAME_ID, required=True, help="frame whose camera is used"
    )
    parser.add_argument("--to_frame", metavar="ID2", help="interpolate to this frame's expression")
    parser.add_argument(
        "--coefficient",
        type=int,
        metavar="K",
        help="sweep expression coefficient K (0-based)",
    )
    parser.add_argument(
        "--range",
        **_FROM_TO,
        dest="value_range",
        help="values of coefficient K swept (default: its range over the training frames, "
        "or its value +-1 when constant there)",
    )
    parser.add_argument(
        "--num_frames",
        **_COUNT,
        default=expressions.DEFAULT_EXPRESSION_FRAMES,
        help="number of frames, end points included (default "
        f"{expressions.DEFAULT_EXPRESSION_FRAMES})",
    )


def _reanimate_flags(parser: argparse.ArgumentParser) -> None:
    """`reanimate`: a driving sequence of FLAME parameter files."""
    parser.add_argument(
        "--flame_dir", required=True, metavar="DIR", help="folder of FLAME parameter files"
    )
    parser.add_argument(
        "--camera",
        metavar="CAMERA.json",
        help="camera in the capture's world coordinates at 1x (default: the code frame's)",
    )
    parser.add_argument(
        "--relative",
        metavar="NEUTRAL.json",
        help="transfer expressions and jaw as offsets from this neutral of the driving "
        "sequence onto the subject's neutral",
    )
    parser.add_argument(
        "--subject_neutral",
        **_FRAME_ID,
        help="with --relative: frame whose expression and jaw are the subject's neutral "
        "(default: zero expression and jaw)",
    )
    parser.add_argument(
        "--head_pose",
        default="code",
        metavar="|".join(expressions.HEAD_POSE_CHOICES),
        help="head pose rendered (FLAME global pose, neck pose, translation): the code "
        "frame's, or the driving parameters' (with --relative: their offset from NEUTRAL.json "
        "composed onto the code frame's pose); torso and room stay (default: code)",
    )


# name: (one-line help, description, its own flags, the library call building its views)
_SUBCOMMANDS = {
    "path": (
        "novel views: a capture camera path or an orbit, with one frame's expression; "
        "or the head turned before a fixed camera",
        "Novel views along a camera path of the capture (camera-paths/NAME/) or "
        "an orbit around the FLAME mesh centre, with the expression of one frame; or, with "
        "--head_yaw/--head_pitch, the code frame's camera and the head turned (torso and "
        "room stay; needs the FLAME guide's rigid part).",
        _path_flags,
        paths.path_views,
    ),
    "expression": (
        "one camera, expressions interpolated between frames or one coefficient swept",
        "One camera; expressions interpolated from --camera_frame's to "
        "--to_frame's, or expression coefficient K swept from A to B.",
        _expression_flags,
        expressions.expression_views,
    ),
    "reanimate": (
        "one frame per FLAME parameter file of a driving sequence",
        "Reanimate the subject: one frame per DIR/*.json (FLAME parameters in "
        "the capture's flame/ID.json form, sorted by file name). The head pose stays the "
        "code frame's unless --head_pose driving.",
        _reanimate_flags,
        expressions.reanimate_views,
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.render",
        formatter_class=help_format.HelpFormatter,
        description="Render a trained experiment along camera paths, with other expressions, "
        "or reanimated by other FLAME parameters: DIR/frames/*.png and DIR/video.mp4. "
        "Flags before the subcommand may also come after it.",
    )
    _common_flags(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, (summary, description, add_flags, _) in _SUBCOMMANDS.items():
        subparser = commands.add_parser(
            name,
            help=summary,
            description=description,
            formatter_class=help_format.HelpFormatter,
        )
        add_flags(subparser)
        _common_flags(subparser, suppress=True)
    args = parser.parse_args(argv)
    if args.base_folder is None:
        parser.error("the following arguments are required: --base_folder")
    return args


def _views(args: argparse.Namespace, exp: experiment.Experiment, show_progress: bool):
    """The views of the subcommand and their code frame: `paths.path_views`,
    `expressions.expression_views` or `expressions.reanimate_views`, called with the flags
    (each subcommand's flags are named as the arguments of its library call)."""
    build = _SUBCOMMANDS[args.command][3]
    parameters = inspect.signature(build).parameters
    arguments = {
        name: tuple(value) if isinstance(value, list) else value  # the A B pairs
        for name, value in vars(args).items()
        if name in parameters
    }
    if "show_progress" in parameters:
        arguments["show_progress"] = show_progress
    return build(exp, **arguments)


def run(args: argparse.Namespace) -> io_paths.AnyPath:
    """Restores the experiment, builds the views of the subcommand, renders and writes them."""
    import jax

    with experiment.Experiment.restore(
        args.base_folder, args.checkpoint, scale=args.scale, chunk=args.chunk
    ) as restored:
        exp, checkpoint = restored.exp, restored.checkpoint
        chief = jax.process_index() == 0
        views, code = _views(args, exp, show_progress=chief)
        out_dir = (
            io_paths.as_path(args.out) if args.out else exp.base_folder / "renders" / args.command
        )
        info = {
            "command": args.command,
            "base_folder": str(exp.base_folder),
            "checkpoint": checkpoint,
            "code_frame": code,
            "frames": [v.label for v in views],
        }
        if args.command == "reanimate":
            info["head_pose"] = args.head_pose
        alpha = exp.warp_alpha(checkpoint)
        result = output.render_to_folder(
            exp,
            restored.state.params,
            alpha,
            views,
            code,
            out_dir,
            info,
            args.fps,
            chief,
            depth=args.depth,
            silhouette=args.silhouette,
        )
        if result is not None:
            if result.note:
                print(f"note: {result.note}", file=sys.stderr)
            videos = [result.path.name] + [
                f"{name}{result.path.suffix}"
                for name in output.EXTRA_STREAMS
                if getattr(args, name)
            ]
            print(f"{out_dir}: {len(views)} frames, {', '.join(videos)}")
        return out_dir


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compilation_cache.enable()  # compiled programs persist across runs (docstring there)
    if args.fps is not None and not args.fps > 0:
        print(f"error: --fps {args.fps}: expected a number > 0", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    head_pose = getattr(args, "head_pose", "code")
    if head_pose not in expressions.HEAD_POSE_CHOICES:
        expected = " or ".join(expressions.HEAD_POSE_CHOICES)
        print(f"error: --head_pose {head_pose}: expected {expected}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    try:
        run(args)
    except experiment.UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
