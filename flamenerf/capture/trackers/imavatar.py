# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""IMavatar's (and PointAvatar's) tracking, for `import-flame --from imavatar PATH`; PATH is

IMavatar / PointAvatar `flame_params.json` (or its folder). Intrinsics are
normalised by the image size, read from the capture's rgb/1x images; FLAME is
scaled by 4 in that world, so `to_world.scale` carries the 4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flamenerf.capture import io
from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.conventions import OPENGL_TO_OPENCV, camera_from_opencv_w2c
from flamenerf.capture.trackers.parsing import field, stem, values, vector
from flamenerf.capture.trackers.track import Track, TrackerFrame, TrackerSpec
from flamenerf.geometry import flame

IMAVATAR_SCALE = 4.0  # IMavatar's FLAME vertices are 4x FLAME's


def read_imavatar(path: Path, image_size: tuple[int, int]) -> Track:
    """IMavatar / PointAvatar flame_params.json; `image_size` (width, height) of the frames."""
    json_path = path / "flame_params.json" if path.is_dir() else path
    raw = io.read_json(json_path)
    shape = vector(field(raw, "shape_params", json_path), json_path, "shape_params")
    intrinsics = vector(field(raw, "intrinsics", json_path), json_path, "intrinsics", 4)
    if intrinsics[0] >= 0:
        raise StepError(
            f"{json_path}: field 'intrinsics': expected [-fx/size, fy/size, cx/size, cy/size] "
            f"with a negative first value (IMavatar negates fx), found {intrinsics.tolist()}"
        )
    # An old IMavatar format stores pixels at 512x512 (cy > 1) instead of fractions.
    width, height = image_size
    per = np.array([width, height, width, height], float) / (512.0 if intrinsics[3] > 1 else 1.0)
    fx, fy, cx, cy = intrinsics * per * np.array([-1.0, 1.0, 1.0, 1.0])
    k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    raw_frames = field(raw, "frames", json_path)
    if not isinstance(raw_frames, list) or not raw_frames:
        raise StepError(f"{json_path}: field 'frames': expected a non-empty list")
    frames = []
    for n, frame in enumerate(raw_frames):
        source = f"{json_path}: frames[{n}]"
        world_mat = values(field(frame, "world_mat", source), source, "world_mat", (None, 4))
        if world_mat.shape[0] not in (3, 4):
            raise StepError(f"{source}: field 'world_mat': expected 3x4, found {world_mat.shape}")
        # An OpenGL-like camera (x right, y up, looking along -z): negate its y and z rows.
        w2c = OPENGL_TO_OPENCV @ world_mat[:3]
        camera = camera_from_opencv_w2c(w2c[:, :3], w2c[:, 3], k, image_size, source)
        pose = vector(field(frame, "pose", source), source, "pose", 15)
        params = flame.FlameParams(
            shape=shape,
            expression=vector(field(frame, "expression", source), source, "expression"),
            global_pose=pose[0:3],
            neck_pose=pose[3:6],
            jaw_pose=pose[6:9],
            eye_pose=pose[9:15],
        )
        name = stem(field(frame, "file_path", source))
        frames.append(TrackerFrame((name,), params, camera))
    return Track(frames, flame_scale=IMAVATAR_SCALE)


TRACKER = TrackerSpec(
    name="imavatar",
    title="IMavatar",
    doc=__doc__,
    read=read_imavatar,
    image_size_reason="IMavatar's intrinsics are fractions of the image size",
)
