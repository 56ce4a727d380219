# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Writing the parts of a capture folder, atomically, for the `flamenerf.capture` steps.

Every write goes to a temporary file in the same folder and is renamed into place, so an
interrupted step never leaves a half-written JSON file behind; rerunning the step resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.errors import UserError


class StepError(UserError):
    """Bad input to a capture step; the message names the file, the field and the expectation."""


def _plain(value: Any) -> Any:
    """Numpy arrays and scalars -> lists and Python numbers, recursively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes (read in 1 MiB chunks): how the capture steps
    recognise an input they have already processed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, value: Any) -> None:
    """Writes `value` (numpy arrays allowed) as indented JSON, atomically."""
    write_bytes_atomic(Path(path), (json.dumps(_plain(value), indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    """Reads a JSON file; a missing or malformed file is a StepError naming it."""
    path = Path(path)
    if not path.is_file():
        raise StepError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StepError(f"{path}: not valid JSON ({error})") from None


def write_split(capture: Path, train_ids: Sequence[str], val_ids: Sequence[str]) -> None:
    """Writes dataset.json and metadata.json; frame ids must sort in time order.

    (The capture steps name frames by zero-padded frame numbers, so they do.) Training frames
    get latent codes 0..N-1 in the order given; a validation frame uses the code of the
    nearest training frame in time (the earlier one on a tie).
    """
    if not train_ids:
        raise StepError(f"{capture / 'dataset.json'}: train_ids would be empty")
    ordered = sorted([*train_ids, *val_ids])
    position = {frame_id: i for i, frame_id in enumerate(ordered)}
    train_positions = np.array([position[f] for f in train_ids])
    code = {frame_id: n for n, frame_id in enumerate(train_ids)}
    metadata = {}
    for frame_id in ordered:
        nearest = train_ids[int(np.argmin(np.abs(train_positions - position[frame_id])))]
        metadata[frame_id] = {
            "warp_id": code[nearest],
            "appearance_id": code[nearest],
            "camera_id": 0,
        }
    write_json(
        capture / "dataset.json",
        {
            "count": len(ordered),
            "num_exemplars": len(train_ids),
            "ids": [*train_ids, *val_ids],
            "train_ids": list(train_ids),
            "val_ids": list(val_ids),
        },
    )
    write_json(capture / "metadata.json", metadata)


def read_split(capture: Path) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) of dataset.json, checked as the capture loader checks them."""
    from flamenerf.datasets.capture import read_dataset

    if not (capture / "dataset.json").is_file():
        raise StepError(f"{capture / 'dataset.json'}: file not found (run `frames` first)")
    try:
        return read_dataset(capture)
    except (ValueError, FileNotFoundError) as error:
        raise StepError(str(error)) from None


def update_scene(capture: Path, **fields: Any) -> dict[str, Any]:
    """Merges `fields` into scene.json (created if missing) and returns the result.

    A `flame` field is merged key by key into the existing `flame` section.
    """
    path = capture / "scene.json"
    scene = read_json(path) if path.exists() else {}
    if not isinstance(scene, dict):
        raise StepError(f"{path}: expected a JSON object, found {type(scene).__name__}")
    for key, value in fields.items():
        if key == "flame" and isinstance(scene.get("flame"), dict):
            scene["flame"] = {**scene["flame"], **_plain(value)}
        else:
            scene[key] = _plain(value)
    write_json(path, scene)
    return scene


def flame_json(
    shape: np.ndarray | None = None,
    expression: np.ndarray | None = None,
    global_pose: np.ndarray | None = None,
    neck_pose: np.ndarray | None = None,
    jaw_pose: np.ndarray | None = None,
    eye_pose: np.ndarray | None = None,
    translation: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """The flame/ID.json dictionary (axis-angle poses, radians); None fields are left out.

    Raises StepError for non-finite values or wrong lengths (poses 3, eye_pose 6, translation 3).
    """
    sizes = {"global_pose": 3, "neck_pose": 3, "jaw_pose": 3, "eye_pose": 6, "translation": 3}
    values = dict(
        shape=shape,
        expression=expression,
        global_pose=global_pose,
        neck_pose=neck_pose,
        jaw_pose=jaw_pose,
        eye_pose=eye_pose,
        translation=translation,
    )
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        array = np.asarray(value, dtype=np.float64).reshape(-1)
        if key in sizes and array.shape != (sizes[key],):
            raise StepError(f"FLAME field '{key}': expected {sizes[key]} values, got {array.size}")
        if not np.all(np.isfinite(array)):
            raise StepError(f"FLAME field '{key}': non-finite values")
        out[key] = [float(x) for x in array]
    return out


def check_output_inside(capture: Path, path: Path) -> None:
    """Refuses to write `path` unless it lies inside the capture folder."""
    if not Path(path).resolve().is_relative_to(Path(capture).resolve()):
        raise StepError(f"{path}: refusing to write outside the capture folder {capture}")
