# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Reads and validates a capture folder (`docs/capture-format.md`).

`load_capture(path, scale)` checks the whole capture before anything trains: JSON files,
ids across lists, cameras, FLAME parameters, image and mask sizes and bit depths. Every
problem found is collected and reported together in a `CaptureError`, one line per problem,
each naming the file and the field. Images are read lazily (`Capture.image(id)`); cameras,
FLAME vertices and conditioning vectors are small and kept in memory, in the normalised
scene frame `(X - center) * scale` shared by cameras and meshes.

A capture is never modified: nothing is written inside it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from PIL import Image

from flamenerf import flame, rasterize
from flamenerf.camera import Camera

IMAGE_SCALES = (1, 2, 4, 8)
MASK_THRESHOLD = 127  # mask pixels > this value are inside the FLAME silhouette


class CaptureError(ValueError):
    """A capture that breaks the format; `problems` holds one line per problem."""

    def __init__(self, root: Path, problems: list[str]):
        self.root = root
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


class _Problems:
    """Collects problems; `check` runs a reader and records its ValueError instead."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def check(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except (ValueError, FileNotFoundError) as error:
            self.add(str(error))
            return None


@dataclasses.dataclass(frozen=True)
class ToWorld:
    """FLAME space -> capture world: X_world = scale * rotation @ X_flame + translation."""

    scale: float
    rotation: np.ndarray  # (3, 3) rotation matrix
    translation: np.ndarray  # (3,)


@dataclasses.dataclass(frozen=True)
class Scene:
    """scene.json: normalisation, ray bounds and the FLAME model's placement."""

    center: np.ndarray  # (3,) world point mapped to the origin
    scale: float  # world -> normalised scale factor
    near: float  # ray start, normalised units
    far: float  # ray end, normalised units
    flame_model: Path  # resolved FLAME model file
    to_world: ToWorld  # FLAME space -> world
    num_expression: int  # expression coefficients carried by flame/*.json
    bbox: np.ndarray | None  # (2, 3) optional normalised box holding the head

    def normalize(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> normalised scene frame."""
        return (points - self.center) * self.scale

    def flame_to_scene(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) FLAME-space points -> normalised scene frame."""
        t = self.to_world
        return self.normalize(t.scale * points @ t.rotation.T + t.translation)


@dataclasses.dataclass(frozen=True)
class FrameInfo:
    """metadata.json entry of one frame."""

    warp_id: int  # index of the frame's warp code
    appearance_id: int  # index of the frame's appearance code
    camera_id: int  # physical camera (0 for a single phone)


# ------------------------------------------------------------------------------------------
# JSON helpers.


def read_json(path: Path) -> Any:
    """Parses a JSON file; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _number(value: Any, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, found {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}: expected a number > 0, found {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected an integer >= 0, found {value!r}")
    return value


def _vector(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected numbers of shape {shape}, found {value!r}") from None
    if array.shape != shape:
        raise ValueError(f"{where}: expected shape {shape}, found {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: expected finite numbers, found {value!r}")
    return array


def _field(raw: Mapping[str, Any], key: str, source: Path) -> Any:
    if key not in raw:
        raise ValueError(f"{source}: missing field '{key}'")
    return raw[key]


# ------------------------------------------------------------------------------------------
# The parts of a capture.


def read_dataset(root: Path) -> tuple[list[str], list[str]]:
    """dataset.json -> (train_ids, val_ids), checking count, num_exemplars and ids."""
    path = root / "dataset.json"
    raw = read_json(path)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a JSON object")
    lists = {}
    for key in ("ids", "train_ids", "val_ids"):
        value = _field(raw, key, path)
        if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
            raise ValueError(f"{path}: field '{key}' must be a list of non-empty strings")
        if any("/" in i for i in value):
            raise ValueError(f"{path}: field '{key}' has an id containing '/'")
        if len(set(value)) != len(value):
            raise ValueError(f"{path}: field '{key}' has duplicate ids")
        lists[key] = value
    train, val = lists["train_ids"], lists["val_ids"]
    if not train:
        raise ValueError(f"{path}: field 'train_ids' is empty")
    if set(train) & set(val):
        raise ValueError(
            f"{path}: ids in both 'train_ids' and 'val_ids': {sorted(set(train) & set(val))[:5]}"
        )
    if set(lists["ids"]) != set(train) | set(val):
        raise ValueError(f"{path}: field 'ids' must be train_ids + val_ids")
    count = _integer(_field(raw, "count", path), f"{path}: field 'count'")
    if count != len(lists["ids"]):
        raise ValueError(f"{path}: field 'count' is {count}; len(ids) is {len(lists['ids'])}")
    exemplars = _integer(_field(raw, "num_exemplars", path), f"{path}: field 'num_exemplars'")
    if exemplars != len(train):
        raise ValueError(
            f"{path}: field 'num_exemplars' is {exemplars}; len(train_ids) is {len(train)}"
        )
    return train, val


def read_metadata(root: Path, train: list[str], val: list[str]) -> dict[str, FrameInfo]:
    """metadata.json -> {id: FrameInfo}, checking the code indices."""
    path = root / "metadata.json"
    raw = read_json(path)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a JSON object")
    infos = {}
    for frame_id in train + val:
        entry = raw.get(frame_id)
        if not isinstance(entry, Mapping):
            raise ValueError(f"{path}: no entry (object) for id '{frame_id}'")
        values = [
            _integer(_field(entry, key, path), f"{path}: '{frame_id}'.{key}")
            for key in ("warp_id", "appearance_id", "camera_id")
        ]
        infos[frame_id] = FrameInfo(*values)
    n = len(train)
    for key in ("warp_id", "appearance_id"):
        codes = [getattr(infos[i], key) for i in train]
        if sorted(codes) != sorted(set(codes)) or max(codes) >= n:
            raise ValueError(
                f"{path}: training frames' '{key}' must be distinct values in 0..{n - 1}"
            )
        for i in val:
            if getattr(infos[i], key) >= n:
                raise ValueError(
                    f"{path}: '{i}'.{key} = {getattr(infos[i], key)} names no training code "
                    f"(0..{n - 1})"
                )
    return infos


def read_scene(root: Path, flame_model: str | Path | None = None) -> Scene:
    """scene.json -> Scene; `flame_model` overrides the file's `flame.model`."""
    path = root / "scene.json"
    raw = read_json(path)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a JSON object")
    center = _vector(_field(raw, "center", path), (3,), f"{path}: field 'center'")
    scale = _number(_field(raw, "scale", path), f"{path}: field 'scale'", positive=True)
    near = _number(_field(raw, "near", path), f"{path}: field 'near'")
    far = _number(_field(raw, "far", path), f"{path}: field 'far'")
    if not 0 <= near < far:
        raise ValueError(f"{path}: fields 'near' and 'far' must satisfy 0 <= near < far")
    flame_raw = _field(raw, "flame", path)
    if not isinstance(flame_raw, Mapping):
        raise ValueError(f"{path}: field 'flame' must be an object")
    if flame_model is None:
        model = _field(flame_raw, "model", path)
        if not isinstance(model, str) or not model:
            raise ValueError(f"{path}: field 'flame.model' must be a file name")
        flame_model = model if Path(model).is_absolute() else root / model
    flame_model = Path(flame_model)
    if not flame_model.is_file():
        raise FileNotFoundError(
            f"{path}: field 'flame.model' names {flame_model}, which does not exist "
            "(pass --flame_model PATH for a FLAME file kept elsewhere)"
        )
    to_world = _field(flame_raw, "to_world", path)
    if not isinstance(to_world, Mapping):
        raise ValueError(f"{path}: field 'flame.to_world' must be an object")
    where = f"{path}: field 'flame.to_world"
    rotation = _vector(_field(to_world, "rotation", path), (3, 3), where + ".rotation'")
    if np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-4 or np.linalg.det(rotation) < 0:
        raise ValueError(f"{where}.rotation' must be a rotation matrix")
    placement = ToWorld(
        scale=_number(_field(to_world, "scale", path), where + ".scale'", positive=True),
        rotation=rotation,
        translation=_vector(_field(to_world, "translation", path), (3,), where + ".translation'"),
    )
    num_expression = _field(flame_raw, "num_expression", path)
    num_expression = _integer(num_expression, f"{path}: field 'flame.num_expression'")
    bbox = None
    if raw.get("bbox") is not None:
        bbox = _vector(raw["bbox"], (2, 3), f"{path}: field 'bbox'")
        if np.any(bbox[0] >= bbox[1]):
            raise ValueError(f"{path}: field 'bbox' must be [[min xyz], [max xyz]]")
    return Scene(center, scale, near, far, flame_model, placement, num_expression, bbox)


def read_camera(path: Path) -> Camera:
    """camera/ID.json -> Camera (in the capture's world frame, at 1x)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return Camera.from_json(path)


def image_path(root: Path, folder: str, scale: int, frame_id: str) -> Path:
    return root / folder / f"{scale}x" / f"{frame_id}.png"


def _check_image_header(path: Path, size: tuple[int, int], kind: str) -> None:
    """Checks mode (8-bit RGB/RGBA, or 8-bit gray for masks) and size from the header."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {kind} not found")
    try:
        with Image.open(path) as image:
            mode, found = image.mode, image.size
    except OSError as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None
    allowed = ("RGB", "RGBA") if kind == "image" else ("L", "LA", "RGB", "RGBA")
    if mode not in allowed:
        raise ValueError(
            f"{path}: {kind} has mode '{mode}'; expected 8-bit {' or '.join(allowed)} "
            "(16-bit and palette images are refused)"
        )
    if found != size:
        raise ValueError(f"{path}: {kind} is {found[0]}x{found[1]}; expected {size[0]}x{size[1]}")


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """8-bit image -> uint8 (H, W, C); box-downsampled to `size` (width, height) if given."""
    with Image.open(path) as image:
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.BOX)
        return np.asarray(image)


# ------------------------------------------------------------------------------------------
# The capture.


@dataclasses.dataclass
class Capture:
    """A validated capture at one image scale.

    Cameras, FLAME vertices and landmarks are in the normalised scene frame.
    """

    root: Path  # the capture folder
    scale: int  # image scale (1, 2, 4 or 8)
    scene: Scene  # scene.json
    train_ids: list[str]  # training frames, in dataset.json order
    val_ids: list[str]  # validation frames
    frames: dict[str, FrameInfo]  # metadata.json
    cameras: dict[str, Camera]  # per frame, scaled and normalised
    flame_params: dict[str, flame.FlameParams]  # per frame, as in flame/ID.json
    flame_model: flame.FlameModel  # the capture's FLAME model
    _vertices: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def ids(self) -> list[str]:
        return self.train_ids + self.val_ids

    @property
    def num_train(self) -> int:
        return len(self.train_ids)

    def image_size(self, frame_id: str) -> tuple[int, int]:
        """(width, height) of the frame at this capture's scale."""
        return self.cameras[frame_id].image_size

    def image(self, frame_id: str) -> np.ndarray:
        """uint8 (H, W, 3) image at this scale (box-averaged from 1x when not on disk)."""
        path = image_path(self.root, "rgb", self.scale, frame_id)
        if not path.is_file():
            path = image_path(self.root, "rgb", 1, frame_id)
        return read_image(path, self.image_size(frame_id))[..., :3]

    def has_masks(self) -> bool:
        return (self.root / "mask" / "1x").is_dir()

    def mask(self, frame_id: str) -> np.ndarray:
        """bool (H, W) FLAME silhouette: from mask/ when present, else rasterised."""
        if self.has_masks():
            path = image_path(self.root, "mask", self.scale, frame_id)
            if not path.is_file():
                path = image_path(self.root, "mask", 1, frame_id)
            mask = read_image(path, self.image_size(frame_id))
            mask = mask[..., 0] if mask.ndim == 3 else mask
            return mask > MASK_THRESHOLD
        return rasterize.silhouette(
            self.vertices(frame_id), np.asarray(self.flame_model.faces), self.cameras[frame_id]
        )

    def vertices(self, frame_id: str) -> np.ndarray:
        """float32 (V, 3) posed FLAME vertices of the frame in the normalised frame."""
        if frame_id not in self._vertices:
            self._pose_all()
        return self._vertices[frame_id]

    def _pose_all(self) -> None:
        ids = self.ids
        batched = flame.stack_params([self.flame_params[i] for i in ids], self.flame_model)
        vertices = np.asarray(jax.jit(flame.forward)(self.flame_model, batched).vertices)
        scene_vertices = self.scene.flame_to_scene(vertices.astype(np.float64))
        self._vertices.update(zip(ids, scene_vertices.astype(np.float32), strict=True))

    def condition(self, frame_id: str, jaw: bool = True) -> np.ndarray:
        """float32 (num_expression [+ 3],) conditioning vector: expression, then jaw pose."""
        return condition_vector(self.flame_params[frame_id], self.scene.num_expression, jaw)

    def camera_path(self, name: str) -> list[Camera]:
        """Cameras of `camera-paths/NAME/*.json` (sorted by file name), scaled and normalised."""
        folder = self.root / "camera-paths" / name
        files = sorted(folder.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"{folder}: no camera path of that name (no *.json)")
        return [self._prepare_camera(read_camera(f)) for f in files]

    def camera_path_names(self) -> list[str]:
        folder = self.root / "camera-paths"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def _prepare_camera(self, camera: Camera) -> Camera:
        camera = camera.scale(self.scale) if self.scale != 1 else camera
        position = self.scene.normalize(camera.position)
        return dataclasses.replace(camera, position=position)


def condition_vector(params: flame.FlameParams, num_expression: int, jaw: bool) -> np.ndarray:
    """Expression coefficients zero-padded to `num_expression`, then the jaw pose if `jaw`.

    Returns:
      float32 (num_expression + 3 * jaw,).
    """
    expression = np.zeros(num_expression, np.float32)
    if params.expression is not None:
        values = np.asarray(params.expression, np.float32)[:num_expression]
        expression[: len(values)] = values
    parts = [expression]
    if jaw:
        parts.append(
            np.zeros(3, np.float32) if params.jaw_pose is None else np.asarray(params.jaw_pose)
        )
    return np.concatenate(parts).astype(np.float32)


def _read_flame(path: Path, model: flame.FlameModel, num_expression: int) -> flame.FlameParams:
    params = flame.FlameParams.from_dict(read_json(path), source=str(path))
    limits = {"shape": model.num_shape, "expression": num_expression}
    for name, limit in limits.items():
        value = getattr(params, name)
        if value is not None and len(value) > limit:
            what = "the model's" if name == "shape" else "scene.json's flame.num_expression"
            raise ValueError(
                f"{path}: field '{name}' has {len(value)} coefficients; {what} limit is {limit}"
            )
    return params


def load_capture(
    root: str | Path, scale: int = 1, flame_model: str | Path | None = None
) -> Capture:
    """Reads and validates a capture, at image scale `scale`.

    Args:
      root: the capture folder.
      scale: 1, 2, 4 or 8 (rgb/{scale}x, or the 1x images box-averaged).
      flame_model: a FLAME model file overriding scene.json's `flame.model`.

    Raises:
      CaptureError: every problem found, one line each, naming the file and the field.
    """
    root = Path(root)
    if scale not in IMAGE_SCALES:
        raise CaptureError(root, [f"--scale {scale}: expected one of {IMAGE_SCALES}"])
    if not root.is_dir():
        raise CaptureError(root, [f"{root}: capture folder not found"])
    problems = _Problems()
    split = problems.check(lambda: read_dataset(root))
    scene = problems.check(lambda: read_scene(root, flame_model))
    model = None
    if scene is not None:
        model = problems.check(lambda: flame.load_model(scene.flame_model))
        if model is not None and scene.num_expression > model.num_expression:
            problems.add(
                f"{root / 'scene.json'}: field 'flame.num_expression' is {scene.num_expression}; "
                f"the FLAME model has {model.num_expression} expression coefficients"
            )
    if split is None:
        raise CaptureError(root, problems.lines)
    train, val = split
    frames = problems.check(lambda: read_metadata(root, train, val)) or {}
    cameras, params = {}, {}
    has_masks = (root / "mask" / "1x").is_dir()
    for frame_id in train + val:
        camera = problems.check(lambda i=frame_id: read_camera(root / "camera" / f"{i}.json"))
        if camera is not None:
            cameras[frame_id] = camera
            for folder in ("rgb", "mask") if has_masks else ("rgb",):
                _check_images(root, folder, frame_id, camera, scale, problems)
        if model is not None and scene is not None:
            path = root / "flame" / f"{frame_id}.json"
            value = problems.check(lambda p=path: _read_flame(p, model, scene.num_expression))
            if value is not None:
                params[frame_id] = value
    if problems.lines:
        raise CaptureError(root, problems.lines)
    capture = Capture(root, scale, scene, train, val, frames, {}, params, model)
    capture.cameras.update({i: capture._prepare_camera(c) for i, c in cameras.items()})
    return capture


def _check_images(
    root: Path, folder: str, frame_id: str, camera: Camera, scale: int, problems: _Problems
) -> None:
    kind = "image" if folder == "rgb" else "mask"
    problems.check(
        lambda: _check_image_header(image_path(root, folder, 1, frame_id), camera.image_size, kind)
    )
    scaled = image_path(root, folder, scale, frame_id)
    if scale != 1 and scaled.is_file():
        size = camera.scale(scale).image_size
        problems.check(lambda: _check_image_header(scaled, size, kind))
