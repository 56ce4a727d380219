# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The capture's side of `import-flame`: what it reads from the capture and fits to it.

Coefficients beyond the capture's FLAME model (shape) or beyond its expression count are
dropped (reported): the loader refuses longer vectors. When scene.json lacks center/scale/
near/far they are set from the cameras and the head (1 FLAME metre = 3.5 normalised units, as
in the demo capture).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.similarity import Similarity
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera

HEAD_UNITS_PER_METRE = 3.5  # default scene.json scale per FLAME metre (as the demo capture)
HEAD_RADIUS_M = 0.15  # default near plane keeps this much in front of the head's centre
BACKGROUND_M = 2.0  # default far plane reaches this far behind the farthest camera's head


def capture_image_size(capture: Path, frame_id: str) -> tuple[int, int] | None:
    """(width, height) of rgb/1x/ID.png from its header, or None when there is no image."""
    path = capture / "rgb" / "1x" / f"{frame_id}.png"
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise StepError(f"{path}: not a readable image ({error})") from None


def capture_cameras(capture: Path, ids: Sequence[str]) -> dict[str, Camera] | None:
    """The capture's cameras of `ids`, or None when it has none of them."""
    paths = {i: capture / "camera" / f"{i}.json" for i in ids}
    present = [i for i, p in paths.items() if p.is_file()]
    if not present:
        return None
    if len(present) != len(ids):
        missing = [i for i in ids if i not in present]
        raise StepError(
            f"{capture / 'camera'}: cameras of {len(missing)} frames are missing (e.g. "
            f"{missing[:3]}); either all frames have a camera or none"
        )
    cameras = {}
    for frame_id, path in paths.items():
        try:
            cameras[frame_id] = Camera.from_json(path)
        except ValueError as error:
            raise StepError(str(error)) from None
    return cameras


def flame_model(
    capture: Path, scene: Mapping[str, Any], override: str | None
) -> tuple[str | None, flame.FlameModel]:
    """(scene.json's new `flame.model` entry or None to keep it, the loaded model)."""
    entry = None
    if override is not None:
        path = Path(override).resolve()
        inside = path.is_relative_to(capture.resolve())
        entry = str(path.relative_to(capture.resolve())) if inside else str(path)
    else:
        section = scene.get("flame")
        model = section.get("model") if isinstance(section, dict) else None
        if not isinstance(model, str) or not model:
            raise StepError(
                f"{capture / 'scene.json'}: no field 'flame.model'; pass --flame_model PATH"
            )
        path = Path(model) if Path(model).is_absolute() else capture / model
    try:
        return entry, flame.load_model(path)
    except (OSError, ValueError) as error:
        raise StepError(str(error)) from None


def fit_to_model(
    params: Sequence[flame.FlameParams], num_shape: int, num_expression: int
) -> tuple[list[flame.FlameParams], int]:
    """Drops shape and expression coefficients beyond the model (reported).

    Returns:
      (parameters, expression count = min(longest tracked expression, model's)).
    """
    tracked = max((len(p.expression) for p in params if p.expression is not None), default=0)
    count = min(tracked, num_expression)
    out = []
    dropped = {"shape": 0.0, "expression": 0.0}
    for p in params:
        fields = {}
        for name, limit in (("shape", num_shape), ("expression", count)):
            value = getattr(p, name)
            if value is not None and len(value) > limit:
                dropped[name] = max(dropped[name], float(np.abs(value[limit:]).max()))
                value = value[:limit]
            fields[name] = value
        out.append(p._replace(**fields))
    for name, limit in (("shape", num_shape), ("expression", count)):
        longest = max(
            (len(getattr(p, name)) for p in params if getattr(p, name) is not None), default=0
        )
        if longest > limit:
            print(
                f"note: {name} has {longest} coefficients, the capture keeps {limit} "
                f"(largest dropped |value| {dropped[name]:.3g})"
            )
    return out, count


def scene_defaults(
    scene: Mapping[str, Any], to_world: Similarity, world_roots: np.ndarray, positions: np.ndarray
) -> dict[str, Any]:
    """center, scale, near and far for the ones scene.json lacks (see the module docstring)."""
    missing = [key for key in ("center", "scale", "near", "far") if key not in scene]
    if not missing:
        return {}
    center = world_roots.mean(axis=0)
    scale = HEAD_UNITS_PER_METRE / to_world.scale
    distances = np.linalg.norm(positions - center, axis=-1)
    near = max(0.01, 0.8 * (distances.min() - HEAD_RADIUS_M * to_world.scale) * scale)
    far = (distances.max() + BACKGROUND_M * to_world.scale) * scale
    values = {"center": center, "scale": scale, "near": near, "far": far}
    print(f"scene.json: set {missing} (defaults from the cameras and the head)")
    return {key: values[key] for key in missing}
