# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""metrical-tracker's checkpoints, for `import-flame --from metrical PATH`; PATH is

a metrical-tracker output folder (its `checkpoint/*.frame`, or the folder of the
.frame files). Each is a torch.save zip read with a restricted unpickler that
allows numpy arrays only. 6-D rotations (PyTorch3D convention) for jaw and eyes;
the head is at the origin and the camera block `opencv` {R, t, K} moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.conventions import (
    camera_from_opencv_w2c,
    rotation_6d_to_axis_angle,
)
from flamenerf.capture.trackers.parsing import checked_image_size, field, values, vector
from flamenerf.capture.trackers.track import Track, TrackerFrame, TrackerSpec
from flamenerf.errors import UserError
from flamenerf.geometry import flame
from flamenerf.io import safe_pickle, torch_files


def read_torch_zip(path: Path) -> Any:
    """The object of a torch.save zip archive (`PREFIX/data.pkl`), read without torch.

    `flamenerf.io.torch_files.read_torch_zip` with the metrical-tracker allow-list
    (`safe_pickle.TORCH_FRAME`): numpy arrays and scalars of plain dtypes and `_codecs.encode`
    (how protocol 2 stores bytes); every other global, torch's persistent storages and pickle
    bombs are refused before anything runs or is allocated, and the result must be a small
    tree of dicts, lists, arrays, strings and numbers (`safe_pickle.check_tree`).

    Raises:
      StepError: not a zip archive, no single data.pkl, or a pickle naming anything but numpy
        arrays, a pickle bomb or an unreadable pickle (refused before it runs).
    """
    try:
        return torch_files.read_torch_zip(path, safe_pickle.TORCH_FRAME)
    except UserError as error:
        raise StepError(str(error)) from None


def read_metrical(path: Path) -> Track:
    """metrical-tracker: checkpoint/*.frame files (torch.save zips of numpy arrays)."""
    folder = path / "checkpoint" if (path / "checkpoint").is_dir() else path
    files = sorted(folder.glob("*.frame"))
    if not files:
        raise StepError(f"{folder}: no *.frame files (metrical-tracker's checkpoint folder)")
    frames, eyelids = [], False
    for file in files:
        payload = read_torch_zip(file)
        flame_raw = field(payload, "flame", file)
        opencv = field(payload, "opencv", file)

        in_flame, in_opencv = f"{file}: 'flame'", f"{file}: 'opencv'"
        jaw = vector(field(flame_raw, "jaw", in_flame), file, "flame.jaw", 6)
        eyes = vector(field(flame_raw, "eyes", in_flame), file, "flame.eyes", 12)
        params = flame.FlameParams(
            shape=vector(field(flame_raw, "shape", in_flame), file, "flame.shape"),
            expression=vector(field(flame_raw, "exp", in_flame), file, "flame.exp"),
            jaw_pose=rotation_6d_to_axis_angle(jaw, file, "flame.jaw"),
            eye_pose=rotation_6d_to_axis_angle(eyes, file, "flame.eyes"),
        )
        if "eyelids" in flame_raw:
            lids = vector(flame_raw["eyelids"], file, "flame.eyelids")
            eyelids = eyelids or bool(np.any(lids))
        rotation = values(field(opencv, "R", in_opencv), file, "opencv.R", (1, 3, 3))[0]
        translation = values(field(opencv, "t", in_opencv), file, "opencv.t", (1, 3))[0]
        k = values(field(opencv, "K", in_opencv), file, "opencv.K", (1, 3, 3))[0]
        height, width = values(field(payload, "img_size", file), file, "img_size", (2,))
        camera = camera_from_opencv_w2c(
            rotation, translation, k, checked_image_size(width, height, file), file
        )
        names = [file.stem]
        if isinstance(payload.get("frame_id"), str | int):
            names.append(str(payload["frame_id"]))
        frames.append(TrackerFrame(tuple(names), params, camera))
    notes = ["metrical-tracker: head at the origin (global pose and translation zero), no neck"]
    if eyelids:
        notes.append("metrical-tracker's eyelid blendshapes are not FLAME's; dropped")
    return Track(frames, notes=tuple(notes))


TRACKER = TrackerSpec(name="metrical", title="metrical-tracker", doc=__doc__, read=read_metrical)
