# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""INSTA's input data, for `import-flame --from insta PATH`; PATH is

an INSTA folder or its transforms.json (`transform_matrix` = inverse of the OpenCV
world-to-camera, `exp_path` text files). INSTA keeps expression only: shape, jaw
and eye poses are missing (pass --identity for the shape, or import the
metrical-tracker checkpoints INSTA was made from).
"""

from __future__ import annotations

from pathlib import Path

from flamenerf.capture.trackers.nerf_export import nerf_camera, nerf_frames
from flamenerf.capture.trackers.parsing import field, read_text_vector, stem
from flamenerf.capture.trackers.track import Track, TrackerFrame, TrackerSpec
from flamenerf.geometry import flame


def read_insta(path: Path) -> Track:
    """INSTA: transforms.json with OpenCV camera-to-world matrices and exp_path files."""
    json_path, top, raw_frames = nerf_frames(path)
    frames = []
    for k, raw in enumerate(raw_frames):
        source = f"{json_path}: frames[{k}]"
        camera = nerf_camera(raw, top, source, opengl=False, flip_cy=False)
        exp_path = json_path.parent / str(field(raw, "exp_path", source))
        params = flame.FlameParams(expression=read_text_vector(exp_path, "exp_path"))
        frames.append(TrackerFrame((stem(field(raw, "file_path", source)),), params, camera))
    notes = (
        "INSTA keeps expression only: shape (see --identity), jaw, neck and eye poses are "
        "missing (zeros); the head is at the origin",
    )
    return Track(frames, notes=notes)


TRACKER = TrackerSpec(name="insta", title="INSTA", doc=__doc__, read=read_insta)
