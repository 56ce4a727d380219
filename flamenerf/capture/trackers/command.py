# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""per-frame FLAME parameters from a face tracker ({titles})

    python -m flamenerf.capture import-flame CAPTURE --from TRACKER PATH [options]

Reads a tracker's output files (never its code, never torch) and writes, inside CAPTURE only,
`flame/ID.json` for every frame of dataset.json, scene.json's `flame` section (`model`,
`to_world`, `num_expression`) and, when the capture has no cameras yet, `camera/ID.json` from
the tracker's cameras. The tracker's folder is only read.

TRACKER and PATH:
{trackers}

Frame matching: a tracker frame is named by its file stem (image, .frame, .npz or folder) and,
for VHAP, its timestep_id. A capture id matches a name that is equal to it, or, when both are
all digits, equal as integers after adding --frame_offset to the tracker's number ("7" matches
"00007"). A capture frame matched by two tracker frames is an error. A capture frame without a
match is an error unless --drop_missing, which removes such frames from dataset.json and
metadata.json (reported); tracker frames outside the capture are ignored (counted).

Placement (`to_world`, FLAME space -> capture world: X = a R X_flame + t):
  * no camera/ in the capture: the tracker's cameras (OpenCV axes) are written and `to_world`
    is the tracker's own FLAME-to-world map (the identity; scale 4 for IMavatar). Tracker
    intrinsics are rescaled to the capture's image size when only the resolution differs.
  * the capture's cameras equal the tracker's: the same.
  * similarity (default when the tracker's camera centres span a plane): Umeyama's closed form
    on camera centres gives the similarity tracker world -> capture world; the RMS residual is
    printed in capture units and relative to the camera spread.
  * per-frame (default for DECA and for a tracker whose camera does not move, e.g. VHAP
    monocular): the head's pose relative to each tracker camera (for DECA: from the weak
    perspective, the crop similarity and the capture camera's focal length, at depth f / m
    with m the pixels per metre) is kept relative to the capture's camera of that frame. One
    scale (capture units per FLAME metre) and a head position are fit by linear least squares
    assuming the head is still in the capture's world; each frame's global pose and
    translation absorb the rest, so every frame keeps its tracked camera-relative pose.
    The head's RMS motion is printed.

Coefficients beyond the capture's FLAME model (shape) or beyond its expression count are
dropped (reported): the loader refuses longer vectors. scene.json's `num_expression` becomes
min(tracker, model). When scene.json lacks center/scale/near/far they are set from the cameras
and the head (1 FLAME metre = 3.5 normalised units, as in the demo capture).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from flamenerf.capture import io
from flamenerf.capture.io import StepError
from flamenerf.capture.trackers import registry
from flamenerf.capture.trackers.capture_side import (
    capture_image_size,
    fit_to_model,
    flame_model,
    scene_defaults,
)
from flamenerf.capture.trackers.matching import match_frames
from flamenerf.capture.trackers.parsing import read_npy, vector
from flamenerf.capture.trackers.placement import PLACEMENTS, place, posed_roots, root_joints
from flamenerf.capture.trackers.track import Track, TrackerSpec

# The docstring above is a template: {titles} and {trackers} are filled in from the registry
# (`description`), and the result is this module's __doc__, which is the step's --help.
_TEMPLATE = __doc__ or ""  # "" when Python runs with -OO (docstrings stripped)
_NAME_WIDTH = 8  # --help indents each tracker's documentation by 2 + 8 + 2 spaces


def _tracker_help(spec: TrackerSpec) -> str:
    """`  NAME      what PATH may be` for --help, continuation lines indented by 12 spaces."""
    lines = spec.path_help.split("\n")
    indent = " " * (_NAME_WIDTH + 4)
    if len(spec.name) > _NAME_WIDTH:
        head = [f"  {spec.name}"]
    else:
        head, lines = [f"  {spec.name:<{_NAME_WIDTH}}  {lines[0]}"], lines[1:]
    return "\n".join(head + [indent + line if line else "" for line in lines])


def description() -> str:
    """The command's help: this module's docstring with the registered trackers filled in."""
    specs = registry.TRACKERS.values()
    return _TEMPLATE.replace("{titles}", ", ".join(s.title for s in specs)).replace(
        "{trackers}", "\n".join(_tracker_help(s) for s in specs)
    )


__doc__ = description()


def _read_track(spec: TrackerSpec, path: Path, capture: Path, ids: Sequence[str]) -> Track:
    """The tracker's output, read with the capture's image size when the reader needs it."""
    if spec.image_size_reason is None:
        return spec.read(path)
    size = next((s for s in (capture_image_size(capture, i) for i in ids) if s), None)
    if size is None:
        raise StepError(f"{capture / 'rgb' / '1x'}: no frame images; {spec.image_size_reason}")
    return spec.read(path, size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The description and --from are built now, so that trackers registered after this module
    # was imported are listed too.
    parser.description = description()
    parser.add_argument(
        "capture", metavar="CAPTURE", help="the capture folder (dataset.json must exist)"
    )
    parser.add_argument(
        "--from",
        dest="tracker",
        metavar="TRACKER",
        choices=tuple(registry.TRACKERS),
        required=True,
        help=f"the tracker: {', '.join(registry.TRACKERS)}",
    )
    parser.add_argument(
        "path", metavar="PATH", help="the tracker's output (file or folder, see above)"
    )
    parser.add_argument(
        "--flame_model",
        help="FLAME model file (.pkl or .npz) to use and record in scene.json "
        "(default: scene.json's flame.model)",
    )
    parser.add_argument(
        "--identity",
        help=".npy of shape coefficients (e.g. MICA's identity.npy) replacing the tracker's shape",
    )
    parser.add_argument(
        "--frame_offset",
        type=int,
        default=0,
        help="added to the tracker's numeric frame names before matching (default 0)",
    )
    parser.add_argument(
        "--drop_missing",
        action="store_true",
        help="drop capture frames the tracker lacks from dataset.json (default: an error)",
    )
    parser.add_argument(
        "--placement",
        choices=PLACEMENTS,
        default="auto",
        help="how FLAME is placed in the capture's world when it has cameras (default auto)",
    )


def run(args: argparse.Namespace) -> int:
    capture, source = Path(args.capture), Path(args.path)
    if not capture.is_dir():
        raise StepError(f"{capture}: capture folder not found")
    if not source.exists():
        raise StepError(f"{source}: tracker output not found")
    train, val = io.read_split(capture)
    scene_path = capture / "scene.json"
    scene = io.read_json(scene_path) if scene_path.exists() else {}
    if not isinstance(scene, dict):
        raise StepError(f"{scene_path}: expected a JSON object")
    model_entry, model = flame_model(capture, scene, args.flame_model)

    spec = registry.TRACKERS[args.tracker]
    track = _read_track(spec, source, capture, train + val)
    for note in track.notes:
        print(f"note: {note}")
    matched, unused = match_frames(train + val, track.frames, args.frame_offset)
    missing = [i for i in train + val if i not in matched]
    print(
        f"matched {len(matched)} of {len(train) + len(val)} capture frames; "
        f"{unused} tracker frames are not in the capture"
    )
    if missing and not args.drop_missing:
        raise StepError(
            f"{capture / 'dataset.json'}: {len(missing)} frames have no tracked parameters "
            f"(e.g. {missing[:5]}); pass --drop_missing to drop them from the split"
        )
    train = [i for i in train if i in matched]
    val = [i for i in val if i in matched]
    if not train:
        raise StepError(f"{capture / 'dataset.json'}: no training frame has tracked parameters")
    ids = train + val
    frames = [matched[i] for i in ids]
    params = [f.params for f in frames]
    if args.identity is not None:
        identity = Path(args.identity)
        shape = vector(read_npy(identity), identity, "identity")
        params = [p._replace(shape=shape) for p in params]
    elif spec.shared_shape is not None:
        shape = spec.shared_shape(ids, params, args.path)
        params = [p._replace(shape=shape) for p in params]
    params, num_expression = fit_to_model(params, model.num_shape, model.num_expression)
    roots = root_joints(model, params)
    to_world, params, cameras, positions = place(
        args.placement, track, frames, params, roots, capture, ids
    )

    if missing:
        print(f"dropping {len(missing)} frames without parameters from the split: {missing[:5]}")
        io.write_split(capture, train, val)
    for frame_id, camera in (cameras or {}).items():
        path = capture / "camera" / f"{frame_id}.json"
        io.check_output_inside(capture, path)
        io.write_json(path, camera.to_dict())
    for frame_id, p in zip(ids, params, strict=True):
        path = capture / "flame" / f"{frame_id}.json"
        io.check_output_inside(capture, path)
        io.write_json(path, io.flame_json(**p._asdict()))
    world_roots = to_world.apply(posed_roots(roots, params))
    section = {"to_world": to_world.to_dict(), "num_expression": num_expression}
    if model_entry is not None:
        section["model"] = model_entry
    io.update_scene(
        capture, flame=section, **scene_defaults(scene, to_world, world_roots, positions)
    )
    print(
        f"wrote flame/ for {len(ids)} frames, scene.json flame.to_world (scale "
        f"{to_world.scale:.6g}) and num_expression {num_expression}"
        + (f", camera/ for {len(cameras)} frames" if cameras else "")
    )
    return 0
