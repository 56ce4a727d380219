# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""DECA's (EMOCA's, SPECTRE's) codes, for `import-flame --from deca PATH`; PATH is

a folder with one entry per frame: `NAME.npz` with keys shape, exp, pose, cam,
tform, or `NAME/` with shape.npy, exp.npy, pose.npy, cam.npy, tform.npy (EMOCA's
save_codes layout plus cam and tform). `cam` = weak perspective [s, tx, ty] on the
224x224 crop, `tform` = DECA's 3x3 crop similarity (image pixels -> crop pixels, as
its TestData returns). The capture must already have cameras (COLMAP). Shape is
averaged over the frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.parsing import field, read_npy, read_npz, values, vector
from flamenerf.capture.trackers.track import Track, TrackerFrame, TrackerSpec, WeakPerspective
from flamenerf.geometry import flame


def _deca_arrays(entry: Path) -> dict[str, Any]:
    """The codes of one DECA frame: NAME.npz, or NAME/ with one .npy per key."""
    if entry.is_dir():
        return {
            key: read_npy(entry / f"{key}.npy")
            for key in ("shape", "exp", "pose", "cam", "tform")
            if (entry / f"{key}.npy").is_file()
        }
    return read_npz(entry)


def read_deca(path: Path) -> Track:
    """DECA / EMOCA / SPECTRE codes with weak-perspective cameras and crop similarities."""
    if not path.is_dir():
        raise StepError(f"{path}: expected a folder of NAME.npz files or NAME/ folders")
    entries = sorted(
        p for p in path.iterdir() if p.suffix == ".npz" or (p.is_dir() and (p / "exp.npy").exists())
    )
    if not entries:
        raise StepError(f"{path}: no NAME.npz files or NAME/exp.npy folders of DECA codes")
    frames = []
    for entry in entries:
        raw = _deca_arrays(entry)
        pose = vector(field(raw, "pose", entry), entry, "pose", 6)
        params = flame.FlameParams(
            shape=vector(field(raw, "shape", entry), entry, "shape"),
            expression=vector(field(raw, "exp", entry), entry, "exp"),
            global_pose=pose[:3],
            jaw_pose=pose[3:],
        )
        if "cam" not in raw or "tform" not in raw:
            raise StepError(
                f"{entry}: missing field 'cam' or 'tform': DECA's weak-perspective camera and "
                "its crop similarity (TestData's 'tform') are needed to place the head"
            )
        cam = vector(raw["cam"], entry, "cam", 3)
        tform = values(np.asarray(raw["tform"]).reshape(-1), entry, "tform", (9,)).reshape(3, 3)
        if cam[0] <= 0:
            raise StepError(f"{entry}: field 'cam': expected a scale s > 0, found {cam[0]}")
        frames.append(TrackerFrame((entry.stem,), params, None, WeakPerspective(cam, tform)))
    notes = ("DECA: neck and eye poses are not estimated (zeros)",)
    return Track(frames, notes=notes)


def average_shape(
    ids: Sequence[str], params: Sequence[flame.FlameParams], source: str
) -> np.ndarray:
    """The mean of the matched frames' shapes (DECA estimates one per frame).

    Raises:
      StepError: the frames' shape vectors differ in length (naming the odd frame).
    """
    lengths = {i: len(p.shape) for i, p in zip(ids, params, strict=True)}
    if len(set(lengths.values())) != 1:
        odd = min(lengths, key=lambda i: list(lengths.values()).count(lengths[i]))
        raise StepError(
            f"{source}: DECA codes of frame {odd}: 'shape' has {lengths[odd]} values, "
            f"other frames {max(lengths.values(), key=list(lengths.values()).count)}"
        )
    shapes = np.stack([p.shape for p in params])
    print(f"DECA: shape averaged over {len(shapes)} frames (std {shapes.std(axis=0).max():.3g})")
    return shapes.mean(axis=0)


TRACKER = TrackerSpec(
    name="deca", title="DECA", doc=__doc__, read=read_deca, shared_shape=average_shape
)
