# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""NeRF-style transforms.json, as VHAP's NeRF export and INSTA write it.

`{"frames": [{"transform_matrix": (4, 4) camera-to-world, "file_path": ..., ...}, ...]}` with
the intrinsics `fl_x fl_y cx cy w h` per frame or at the top level.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flamenerf.capture import io
from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.conventions import camera_from_c2w
from flamenerf.capture.trackers.parsing import checked_image_size, field, values
from flamenerf.geometry.camera import Camera


def nerf_frames(path: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """transforms.json (a file, or the one in a folder) -> (its path, top level, frames)."""
    if path.is_dir():
        path = path / "transforms.json"
    raw = io.read_json(path)
    frames = field(raw, "frames", path)
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise StepError(f"{path}: field 'frames': expected a non-empty list of objects")
    return path, raw, frames


def nerf_camera(
    frame: Mapping[str, Any], top: Mapping[str, Any], source: str, opengl: bool, flip_cy: bool
) -> Camera:
    """The camera of one transforms.json frame; intrinsics per frame or at the top level.

    `opengl`: the matrix's camera axes are OpenGL's (else OpenCV's). `flip_cy`: cy is measured
    from the bottom of the image (VHAP's OpenGL intrinsics).
    """

    def get(key: str) -> Any:
        return frame[key] if key in frame else field(top, key, source)

    size = checked_image_size(get("w"), get("h"), source)
    fx, fy, cx, cy = (float(values(get(k), source, k, ())) for k in ("fl_x", "fl_y", "cx", "cy"))
    if flip_cy:
        cy = size[1] - cy
    c2w = values(field(frame, "transform_matrix", source), source, "transform_matrix", (4, 4))
    return camera_from_c2w(c2w, (fx, fy, cx, cy), size, source, opengl=opengl)
