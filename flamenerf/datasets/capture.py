# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Reads and validates a capture folder (`docs/capture-format.md`).

`load_capture(path, scale)` checks the whole capture before anything trains: JSON files
(strictly typed: a string or a bool is not a number, a key may not repeat), ids across lists,
cameras, FLAME parameters and model, and every image and mask training reads (8-bit PNG,
size, decoded in full). Every problem found is collected and reported together in a
`CaptureError`, one line per problem, each naming the file, the field (or frame id), what was
found and what was expected. Capture files must lie inside the capture folder: a symlink
resolving outside it is refused (the FLAME model file excepted, which may live anywhere).

Images are read lazily (`Capture.image(id)`); cameras, FLAME vertices and conditioning
vectors are small and kept in memory, in the normalised scene frame `(X - center) * scale`
shared by cameras and meshes (the scene types and the model frame are
`flamenerf.geometry.scene`; posing, conditioning vectors and camera normalisation are the
capture's `subject`, `flamenerf.geometry.subject`).

A capture is never modified: nothing is written inside it. The capture folder may be a URL
(`gs://`, `s3://`, `az://`; `flamenerf.io.paths.as_path`), read through `etils.epath`; object
stores have no symlinks, so the inside-the-folder check applies to local captures.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from flamenerf.errors import UserError
from flamenerf.geometry import flame, rasterize
from flamenerf.geometry.camera import Camera
from flamenerf.geometry.scene import Scene, ToWorld, model_frame
from flamenerf.geometry.subject import Subject, pose_flame
from flamenerf.io import paths, strict_json

IMAGE_SCALES = (1, 2, 4, 8)
MASK_THRESHOLD = 127  # mask pixels > this value are inside the FLAME silhouette
FLOAT32_MAX = float(np.finfo(np.float32).max)  # every JSON number must fit (training is float32)
MAX_ID_BYTES = 200  # frame ids name files: ID.json must fit a 255-byte file name
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types (IHDR), the ones allowed for images and masks, and their 8-bit PIL modes.
_PNG_COLOUR_TYPES = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
_PNG_ALLOWED = {"image": (2, 6), "mask": (0, 4, 2, 6)}
_PIL_MODES = {"image": ("RGB", "RGBA"), "mask": ("L", "LA", "RGB", "RGBA")}


class CaptureError(UserError):
    """A capture that breaks the format; `problems` holds one line per problem."""

    def __init__(self, root: Path, problems: list[str]):
        self.root = root
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


def _named(message: str, source: Path | None) -> str:
    """One line, starting with the file unless the message names it (or a command-line flag)."""
    message = " ".join(message.split("\n"))
    if source is not None and str(source) not in message and not message.startswith("--"):
        message = f"{source}: {message}"
    return message


class _Problems:
    """Collects problems; `check` runs a reader and records its error instead of raising."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def check(self, read: Callable[[], Any], source: Path | None = None) -> Any:
        """read() or None; an error becomes one line naming `source` (the file read)."""
        try:
            return read()
        except (ValueError, FileNotFoundError) as error:
            self.add(_named(str(error), source))
        except Exception as error:  # a reader bug; still reported as one line, not a traceback
            self.add(_named(f"unexpected {type(error).__name__} while reading: {error}", source))
        return None


@dataclasses.dataclass(frozen=True)
class FrameInfo:
    """metadata.json entry of one frame."""

    warp_id: int  # index of the frame's warp code
    appearance_id: int  # index of the frame's appearance code
    camera_id: int  # physical camera (0 for a single phone)


# ------------------------------------------------------------------------------------------
# Messages and JSON helpers.


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _found(value: Any) -> str:
    """A JSON value as messages show it: its JSON text, with its type when that is the point."""
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{text} (a bool)"
    if isinstance(value, str):
        return f"the string {_clip(text)}"
    if isinstance(value, Mapping):
        return f"an object {_clip(text)}"
    return _clip(text)


def _check_file(path: Path, what: str, root: Path | None) -> None:
    """Checks that `path` is a regular file and, given `root`, that it resolves inside `root`.

    Raises FileNotFoundError or ValueError naming `path` and `what` was expected there.
    A URL is not checked here (no symlinks, no special files; one request less per file):
    `_read_bytes` reports it missing.
    """
    if paths.is_remote(path):
        return
    try:
        if root is not None:
            inside, resolved = Path(root).resolve(), path.resolve()
            if not resolved.is_relative_to(inside):
                raise ValueError(
                    f"{path}: resolves to {resolved}, outside the capture folder {inside}; "
                    f"expected {what} inside the capture (copy the file in, do not link to it)"
                )
        if not path.exists():
            if path.is_symlink():
                raise FileNotFoundError(
                    f"{path}: file not found (a symlink to {os.readlink(path)}, which does not "
                    f"exist); expected {what}"
                )
            raise FileNotFoundError(f"{path}: file not found; expected {what}")
        if not path.is_file():
            found = "a folder" if path.is_dir() else "a special file (not a regular file)"
            raise ValueError(f"{path}: found {found}; expected {what}")
    except FileNotFoundError:
        raise
    except RuntimeError:  # pathlib's symlink loop
        raise ValueError(f"{path}: found a symlink loop; expected {what}") from None
    except OSError as error:
        raise ValueError(
            f"{path}: cannot access the file ({error.strerror or error}); expected {what}"
        ) from None


def _read_bytes(path: Path, what: str, root: Path | None) -> bytes:
    _check_file(path, what, root)
    try:
        return path.read_bytes()
    except FileNotFoundError:  # a URL (a local file was checked above)
        raise FileNotFoundError(f"{path}: file not found; expected {what}") from None
    except OSError as error:
        raise ValueError(
            f"{path}: cannot read the file ({error.strerror or error}); expected {what}"
        ) from None


def read_json(path: Path, root: Path | None = None, what: str = "a JSON file") -> Any:
    """Parses a JSON file; errors name the file.

    Args:
      path: the file.
      root: the capture folder; when given, a file resolving outside it is refused.
      what: what the file should hold, for messages.

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a regular file, outside `root`, not UTF-8, not JSON, or a key given
        twice in one object.
    """
    path = paths.as_path(path)
    return strict_json.parse(_read_bytes(path, what, root), path, what)


def _object(raw: Any, path: Path, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: found {_found(raw)}, expected a JSON object ({what})")
    return raw


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_float32_range(value: int | float) -> bool:
    return abs(value) <= FLOAT32_MAX  # False for NaN and infinities; exact for big integers


def _number(value: Any, where: str, positive: bool = False) -> float:
    if not _is_real(value):
        raise ValueError(f"{where}: found {_found(value)}, expected a number")
    if not _in_float32_range(value):
        raise ValueError(
            f"{where}: found {_found(value)}, expected a finite number (|x| <= 3.4e38, float32)"
        )
    if positive and not value > 0:
        raise ValueError(f"{where}: found {_found(value)}, expected a number > 0")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: found {_found(value)}, expected an integer >= 0")
    return value


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"a list of {shape[0]} finite numbers"
    return f"a {'x'.join(map(str, shape))} list of lists of finite numbers"


def _shape_problem(value: Any, shape: tuple[int, ...], index: str = "") -> str | None:
    """None when `value` is nested lists of finite float32 numbers of `shape`, else why not."""
    item = f"item {index} is " if index else "found "
    if not shape:
        if not _is_real(value):
            return f"{item}{_found(value)}"
        if not _in_float32_range(value):
            return f"{item}{_found(value)}, not a finite float32 number"
        return None
    if not isinstance(value, list):
        return f"{item}{_found(value)}" if index else ""
    if len(value) != shape[0]:
        return f"{'item ' + index + ' has' if index else 'found'} {len(value)} items"
    for i, entry in enumerate(value):
        problem = _shape_problem(entry, shape[1:], f"{index}[{i}]")
        if problem is not None:
            return problem
    return None


def _numbers(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Nested JSON lists of numbers of exactly `shape` -> float64 array (strings refused)."""
    problem = _shape_problem(value, shape)
    if problem is not None:
        why = f" ({problem})" if problem and not problem.startswith("found ") else ""
        raise ValueError(f"{where}: found {_found(value)}{why}, expected {_shape_text(shape)}")
    return np.array(value, dtype=np.float64)


def _field(raw: Mapping[str, Any], key: str, path: Path, expected: str, name: str = "") -> Any:
    if key not in raw:
        raise ValueError(f"{path}: field '{name or key}' is missing; expected {expected}")
    return raw[key]


def _refuse_unknown(raw: Mapping[str, Any], known: tuple[str, ...], path: Path, name: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise ValueError(
            f"{path}: field '{name}' has unknown key(s) {unknown}; expected only {list(known)}"
        )


# ------------------------------------------------------------------------------------------
# Frame ids.

# A frame id names files (camera/ID.json, rgb/1x/ID.png, ...): it must be a plain file name.
_ID_RULE = (
    "a frame id: a non-empty file name without '/', '\\', NUL or control characters, "
    f"not '.' or '..', at most {MAX_ID_BYTES} bytes"
)


def _id_problem(frame_id: Any) -> str | None:
    """None for a usable frame id, else what is wrong with it."""
    if not isinstance(frame_id, str):
        return _found(frame_id)
    if not frame_id:
        return "an empty id"
    for char, name in (("/", "'/'"), ("\\", "'\\'")):
        if char in frame_id:
            return f"an id containing {name}: {frame_id!r}"
    if any(ord(c) < 32 or ord(c) == 127 for c in frame_id):
        return f"an id containing NUL or a control character: {frame_id!r}"
    if frame_id in (".", ".."):
        return f"the id {frame_id!r}"
    if len(frame_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        size = len(frame_id.encode("utf-8", "surrogatepass"))
        return f"an id of {size} bytes: {_clip(repr(frame_id), 40)}"
    return None


def _id_list(value: Any, path: Path, key: str) -> list[str]:
    where = f"{path}: field '{key}'"
    if not isinstance(value, list):
        raise ValueError(f"{where}: found {_found(value)}, expected a list of frame ids")
    for index, frame_id in enumerate(value):
        problem = _id_problem(frame_id)
        if problem is not None:
            raise ValueError(f"{where} item {index}: found {problem}; expected {_ID_RULE}")
    counts = collections.Counter(value)
    duplicates = [f"{i!r} ({n} times)" for i, n in counts.items() if n > 1]
    if duplicates:
        raise ValueError(
            f"{where} has duplicate ids: {', '.join(duplicates[:5])}; expected each id once"
        )
    return value


# ------------------------------------------------------------------------------------------
# The parts of a capture.

_DATASET = "the split {count, num_exemplars, ids, train_ids, val_ids}"


def read_dataset(root: Path) -> tuple[list[str], list[str]]:
    """dataset.json -> (train_ids, val_ids), checking count, num_exemplars and ids.

    Keys beyond the spec's are ignored (as Nerfies does).
    """
    root = paths.as_path(root)
    path = root / "dataset.json"
    raw = _object(read_json(path, root, _DATASET), path, _DATASET)
    lists = {
        key: _id_list(_field(raw, key, path, "a list of frame ids"), path, key)
        for key in ("ids", "train_ids", "val_ids")
    }
    train, val = lists["train_ids"], lists["val_ids"]
    if not train:
        raise ValueError(f"{path}: field 'train_ids': found [], expected at least one frame id")
    both = [i for i in train if i in set(val)]
    if both:
        raise ValueError(
            f"{path}: fields 'train_ids' and 'val_ids' both hold {both[:5]}; expected each "
            "frame in one of them"
        )
    ids, split = set(lists["ids"]), set(train) | set(val)
    lacking = [i for i in train + val if i not in ids]
    if lacking:
        raise ValueError(
            f"{path}: field 'ids' lacks {lacking[:5]} of train_ids + val_ids; expected "
            "ids = train_ids + val_ids (in any order)"
        )
    extra = [i for i in lists["ids"] if i not in split]
    if extra:
        raise ValueError(
            f"{path}: field 'ids' has {extra[:5]}, in neither train_ids nor val_ids; expected "
            "ids = train_ids + val_ids (in any order)"
        )
    expected_count = "len(ids), an integer"
    count = _integer(_field(raw, "count", path, expected_count), f"{path}: field 'count'")
    if count != len(ids):
        raise ValueError(f"{path}: field 'count': found {count}, expected {len(ids)} (len(ids))")
    exemplars = _integer(
        _field(raw, "num_exemplars", path, "len(train_ids), an integer"),
        f"{path}: field 'num_exemplars'",
    )
    if exemplars != len(train):
        raise ValueError(
            f"{path}: field 'num_exemplars': found {exemplars}, expected {len(train)} "
            "(len(train_ids))"
        )
    return train, val


_METADATA_KEYS = ("warp_id", "appearance_id", "camera_id")


def read_metadata(root: Path, train: list[str], val: list[str]) -> dict[str, FrameInfo]:
    """metadata.json -> {id: FrameInfo}, checking the code indices.

    Entries of ids not in the split, and keys beyond the three of the spec, are ignored.
    """
    root = paths.as_path(root)
    path = root / "metadata.json"
    what = "an object {id: {warp_id, appearance_id, camera_id}}"
    raw = _object(read_json(path, root, what), path, what)
    infos = {}
    for frame_id in train + val:
        if frame_id not in raw:
            raise ValueError(
                f"{path}: frame '{frame_id}' has no entry; expected an entry "
                "{warp_id, appearance_id, camera_id} for every id of dataset.json"
            )
        entry = raw[frame_id]
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"{path}: frame '{frame_id}': found {_found(entry)}, expected an object "
                "{warp_id, appearance_id, camera_id}"
            )
        values = []
        for key in _METADATA_KEYS:
            where = f"{path}: frame '{frame_id}' field '{key}'"
            if key not in entry:
                raise ValueError(f"{where} is missing; expected an integer >= 0")
            values.append(_integer(entry[key], where))
        infos[frame_id] = FrameInfo(*values)
    n = len(train)
    for key in ("warp_id", "appearance_id"):
        owner: dict[int, str] = {}
        for frame_id in train:
            code = getattr(infos[frame_id], key)
            where = f"{path}: frame '{frame_id}' field '{key}'"
            if code >= n:
                raise ValueError(
                    f"{where}: found {code}, expected a code in 0..{n - 1} (training frames "
                    "use 0..num_exemplars-1, each once)"
                )
            if code in owner:
                raise ValueError(
                    f"{where}: found {code}, also the code of training frame '{owner[code]}'; "
                    f"expected distinct codes for training frames (0..{n - 1}, each once)"
                )
            owner[code] = frame_id
        for frame_id in val:
            code = getattr(infos[frame_id], key)
            if code >= n:
                raise ValueError(
                    f"{path}: frame '{frame_id}' field '{key}': found {code}, which names no "
                    f"training code; expected the code of a training frame (0..{n - 1})"
                )
    return infos


_FLAME_SECTION = ("model", "to_world", "num_expression")
_TO_WORLD = ("scale", "rotation", "translation")


def read_scene(root: Path, flame_model: str | Path | None = None) -> Scene:
    """scene.json -> Scene; `flame_model` overrides the file's `flame.model`.

    Top-level keys beyond the spec's are ignored (Nerfies writes `scene_to_metric`); the
    `flame` section and its `to_world` must hold the spec's keys only.
    """
    root = paths.as_path(root)
    path = root / "scene.json"
    what = "the scene {center, scale, near, far, flame, [bbox]}"
    raw = _object(read_json(path, root, what), path, what)
    three = "a list of 3 finite numbers"
    center = _numbers(_field(raw, "center", path, three), (3,), f"{path}: field 'center'")
    scale = _number(
        _field(raw, "scale", path, "a number > 0"), f"{path}: field 'scale'", positive=True
    )
    near = _number(_field(raw, "near", path, "a number >= 0"), f"{path}: field 'near'")
    far = _number(_field(raw, "far", path, "a number > near"), f"{path}: field 'far'")
    if near < 0:
        raise ValueError(f"{path}: field 'near': found {near!r}, expected a number >= 0")
    if not near < far:
        raise ValueError(
            f"{path}: fields 'near' and 'far': found near {near!r} >= far {far!r}, "
            "expected 0 <= near < far"
        )
    flame_raw = _field(raw, "flame", path, "an object {model, to_world, num_expression}")
    if not isinstance(flame_raw, Mapping):
        raise ValueError(
            f"{path}: field 'flame': found {_found(flame_raw)}, expected an object "
            "{model, to_world, num_expression}"
        )
    _refuse_unknown(flame_raw, _FLAME_SECTION, path, "flame")
    model_path = _flame_model_path(root, path, flame_raw, flame_model)
    to_world = _field(
        flame_raw, "to_world", path, "an object {scale, rotation, translation}", "flame.to_world"
    )
    if not isinstance(to_world, Mapping):
        raise ValueError(
            f"{path}: field 'flame.to_world': found {_found(to_world)}, expected an object "
            "{scale, rotation, translation}"
        )
    _refuse_unknown(to_world, _TO_WORLD, path, "flame.to_world")
    where = f"{path}: field 'flame.to_world"
    rotation = _numbers(
        _field(to_world, "rotation", path, "a 3x3 rotation matrix", "flame.to_world.rotation"),
        (3, 3),
        where + ".rotation'",
    )
    strict_json.check_rotation(rotation, where + ".rotation'")
    placement = ToWorld(
        scale=_number(
            _field(to_world, "scale", path, "a number > 0", "flame.to_world.scale"),
            where + ".scale'",
            positive=True,
        ),
        rotation=rotation,
        translation=_numbers(
            _field(to_world, "translation", path, three, "flame.to_world.translation"),
            (3,),
            where + ".translation'",
        ),
    )
    num_expression = _integer(
        _field(flame_raw, "num_expression", path, "an integer >= 0", "flame.num_expression"),
        f"{path}: field 'flame.num_expression'",
    )
    bbox = None
    if "bbox" in raw:
        bbox = _numbers(raw["bbox"], (2, 3), f"{path}: field 'bbox'")
        if np.any(bbox[0] >= bbox[1]):
            raise ValueError(
                f"{path}: field 'bbox': found {bbox.tolist()}, expected [[min x, y, z], "
                "[max x, y, z]] with min < max"
            )
    with np.errstate(all="ignore"):
        origin = ((placement.translation - center) * scale).astype(np.float32)
        units = np.float32(scale * placement.scale)
    if not (np.all(np.isfinite(origin)) and np.isfinite(units)):
        raise ValueError(
            f"{path}: fields 'center', 'scale' and 'flame.to_world': found a placement whose "
            "normalised FLAME origin or scale overflows float32; expected a head near the "
            "scene's centre"
        )
    return Scene(center, scale, near, far, model_path, placement, num_expression, bbox)


def _flame_model_path(
    root: paths.AnyPath, path: Path, flame_raw: Mapping[str, Any], override: str | Path | None
) -> paths.AnyPath:
    """The FLAME model file: `override`, else scene.json's flame.model (may lie anywhere,
    a URL too)."""
    if override is None:
        model = _field(flame_raw, "model", path, "a FLAME model file name", "flame.model")
        if not isinstance(model, str) or not model or "\0" in model:
            raise ValueError(
                f"{path}: field 'flame.model': found {_found(model)}, expected a file name "
                "(relative to the capture, or absolute)"
            )
        absolute = paths.is_remote(model) or Path(model).is_absolute()
        model_path = paths.as_path(model) if absolute else root / model
        where = f"{path}: field 'flame.model' names {model_path}"
    else:
        model_path = paths.as_path(override)
        where = f"--flame_model {model_path}"
    try:
        exists, is_file = model_path.exists(), model_path.is_file()
    except OSError as error:
        raise ValueError(f"{where}, which cannot be accessed ({error.strerror or error})") from None
    if not exists:
        hint = (
            " (pass --flame_model PATH for a FLAME file kept elsewhere)" if override is None else ""
        )
        raise FileNotFoundError(f"{where}, which does not exist; expected a FLAME model file{hint}")
    if not is_file:
        raise ValueError(f"{where}, which is not a file; expected a FLAME model file")
    if model_path.suffix not in (".npz", ".pkl"):
        raise ValueError(f"{where}; expected a FLAME model file ending in .npz or .pkl")
    return model_path


def read_camera(path: Path, root: Path | None = None, what: str = "a camera") -> Camera:
    """camera/ID.json -> Camera (in the capture's world frame, at 1x).

    With `root`, a file resolving outside that folder is refused. Unknown keys are ignored.
    Every number must be a finite float32 (training runs in float32).
    """
    path = paths.as_path(path)
    camera = Camera.from_dict(read_json(path, root, what), source=str(path))
    for name in _CAMERA_FLOATS:
        value = np.asarray(getattr(camera, name))
        if not np.all(np.abs(value) <= FLOAT32_MAX):
            raise ValueError(
                f"{path}: field '{name}': found {_clip(repr(value.tolist()))}, expected finite "
                "float32 numbers (|x| <= 3.4e38)"
            )
    return camera


_CAMERA_FLOATS = (
    "orientation",
    "position",
    "focal_length",
    "principal_point",
    "skew",
    "pixel_aspect_ratio",
    "radial_distortion",
    "tangential_distortion",
)


def _scaled_camera(camera: Camera, scale: int, path: Path) -> Camera:
    """The camera of rgb/{scale}x; ValueError naming `path` when the image would vanish."""
    if scale == 1:
        return camera
    width, height = round(camera.width / scale), round(camera.height / scale)
    if width < 1 or height < 1:
        raise ValueError(
            f"{path}: field 'image_size': found {list(camera.image_size)}, which is "
            f"{width}x{height} pixels at scale {scale}; expected an image of at least "
            f"{scale}x{scale} pixels for --scale {scale}"
        )
    return camera.scale(scale)


def _normalised_position(camera: Camera, scene: Scene, path: Path) -> None:
    with np.errstate(all="ignore"):
        position = scene.normalize(camera.position).astype(np.float32)
    if not np.all(np.isfinite(position)):
        raise ValueError(
            f"{path}: field 'position': found {camera.position.tolist()}, which scene.json's "
            "center and scale map outside float32 range; expected a camera near the scene"
        )


def image_path(root: Path, folder: str, scale: int, frame_id: str) -> Path:
    return root / folder / f"{scale}x" / f"{frame_id}.png"


def _png_kind(data: bytes) -> str:
    """What a file that is not a PNG looks like, for messages."""
    if not data:
        return "an empty file"
    if PNG_SIGNATURE.startswith(data):
        return f"a PNG truncated to {len(data)} bytes"
    for magic, name in (
        (b"\xff\xd8\xff", "a JPEG file"),
        (b"GIF8", "a GIF file"),
        (b"BM", "a BMP file"),
        (b"II*\x00", "a TIFF file"),
        (b"MM\x00*", "a TIFF file"),
        (b"RIFF", "a RIFF (WebP?) file"),
    ):
        if data.startswith(magic):
            return name
    return f"a file starting with {data[:8]!r} (not a PNG)"


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR; None if not a PNG header."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 29:
        return None
    length, chunk = struct.unpack(">I4s", data[8:16])
    if length != 13 or chunk != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def png_damage(data: bytes) -> str | None:
    """None when a PNG's chunks are complete with valid CRCs up to IEND, else what is wrong."""
    view, pos = memoryview(data), len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            return f"truncated: it ends at byte {len(data)} before the IEND chunk"
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        name = kind.decode("latin-1")
        end = pos + 12 + length
        if end > len(data):
            return (
                f"truncated: chunk {name!r} at byte {pos} declares {length} bytes, "
                f"{max(len(data) - pos - 12, 0)} are there"
            )
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(view[pos + 4 : end - 4]) & 0xFFFFFFFF != crc:
            return f"chunk {name!r} at byte {pos} fails its CRC check"
        if kind == b"IEND":
            return None
        pos = end


def _check_image(
    path: Path,
    size: tuple[int, int],
    kind: str,
    frame_id: str,
    size_source: str,
    root: Path | None = None,
) -> None:
    """Checks one image (kind "image") or mask: an 8-bit PNG of `size` that decodes fully.

    Args:
      path: the PNG file.
      size: (width, height) expected.
      kind: "image" (8-bit RGB or RGBA) or "mask" (8-bit gray, gray+alpha, RGB or RGBA).
      frame_id: the frame, for messages.
      size_source: where `size` comes from, for messages.
      root: the capture folder (a file resolving outside it is refused).
    """
    allowed = _PNG_ALLOWED[kind]
    kinds = " or ".join(_PNG_COLOUR_TYPES[c] for c in allowed)
    what = f"the {kind} of frame '{frame_id}', an 8-bit {kinds} PNG"
    data = _read_bytes(path, what, root)
    header = png_header(data)
    if header is None:
        found = _png_kind(data) if not data.startswith(PNG_SIGNATURE) else "a PNG without IHDR"
        raise ValueError(f"{path}: found {found}; expected {what}")
    width, height, depth, colour = header
    if colour not in allowed or depth != 8:
        found = _PNG_COLOUR_TYPES.get(colour, f"unknown ({colour})")
        raise ValueError(
            f"{path}: {kind} has bit depth {depth} and colour type {found}; expected {what} "
            f"(16-bit, palette and {'1/2/4-bit' if kind == 'mask' else 'gray'} PNGs are refused)"
        )
    if (width, height) != tuple(size):
        raise ValueError(
            f"{path}: {kind} is {width}x{height} pixels; expected {size[0]}x{size[1]} "
            f"({size_source})"
        )
    damage = png_damage(data)
    if damage is not None:
        raise ValueError(f"{path}: {kind} is a damaged PNG ({damage}); expected {what}, complete")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            mode = image.mode
    except Exception as error:  # PIL raises OSError, SyntaxError, zlib and struct errors...
        reason = f"{type(error).__name__}: {error}"
        if isinstance(error, UnidentifiedImageError):
            reason = "PIL cannot identify it"
        raise ValueError(
            f"{path}: {kind} cannot be decoded ({reason}); expected {what}, complete"
        ) from None
    if mode not in _PIL_MODES[kind]:
        raise ValueError(f"{path}: {kind} decodes to PIL mode '{mode}'; expected {what}")


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """8-bit image -> uint8 (H, W, C); box-downsampled to `size` (width, height) if given."""
    with paths.as_path(path).open("rb") as file, Image.open(file) as image:
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.BOX)
        return np.asarray(image)


# ------------------------------------------------------------------------------------------
# The capture.


@dataclasses.dataclass
class Capture:
    """A validated capture at one image scale.

    Cameras, FLAME vertices and landmarks are in the model frame (`model_frame`): scene.json's
    placement and bounds re-expressed around the FLAME head, in MODEL_UNITS_PER_METRE units per
    metre, so nothing downstream depends on how the capturing tool normalised the scene.
    """

    root: paths.AnyPath  # the capture folder (a local Path, or a URL's epath.Path)
    scale: int  # image scale (1, 2, 4 or 8)
    scene: Scene  # scene.json in the model frame (`file_scene` is scene.json as written)
    train_ids: list[str]  # training frames, in dataset.json order
    val_ids: list[str]  # validation frames
    frames: dict[str, FrameInfo]  # metadata.json
    cameras: dict[str, Camera]  # per frame, scaled and normalised
    flame_params: dict[str, flame.FlameParams]  # per frame, as in flame/ID.json
    flame_model: flame.FlameModel  # the capture's FLAME model
    file_scene: Scene  # scene.json as written (the capturing tool's normalisation)
    _vertices: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    # `posed_and_neutral`'s results by `undo_rigid` (not copied by `dataclasses.replace`)
    _posed_and_neutral: dict[bool, tuple[np.ndarray, np.ndarray]] = dataclasses.field(
        default_factory=dict, repr=False, init=False, compare=False
    )

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

    @property
    def subject(self) -> Subject:
        """The capture's FLAME model in its scene (model frame): posing, neutrals,
        conditioning vectors and camera normalisation (`flamenerf.geometry.subject`)."""
        return Subject(self.flame_model, self.scene)

    def vertices(self, frame_id: str) -> np.ndarray:
        """float32 (V, 3) posed FLAME vertices of the frame in the model frame."""
        return self._vertices[frame_id]

    def posed_and_neutral(self, undo_rigid: bool) -> tuple[np.ndarray, np.ndarray]:
        """float64 (F, V, 3) posed and neutral FLAME vertices of every frame of `ids`, in the
        model frame (`Subject.posed_and_neutral`); computed once per `undo_rigid` (read-only)."""
        if undo_rigid not in self._posed_and_neutral:
            params = [self.flame_params[i] for i in self.ids]
            arrays = self.subject.posed_and_neutral(params, undo_rigid)
            for array in arrays:
                array.flags.writeable = False
            self._posed_and_neutral[undo_rigid] = arrays
        return self._posed_and_neutral[undo_rigid]

    def condition(self, frame_id: str, jaw: bool = True) -> np.ndarray:
        """float32 (num_expression [+ 3],) conditioning vector: expression, then jaw pose."""
        return self.subject.condition(self.flame_params[frame_id], jaw)

    def camera_path(self, name: str) -> list[Camera]:
        """Cameras of `camera-paths/NAME/*.json` (sorted by file name), scaled and normalised."""
        folder = self.root / "camera-paths" / name
        files = sorted(folder.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"{folder}: no camera path of that name (no *.json)")
        subject = self.subject
        return [subject.camera(read_camera(f, self.root), self.scale) for f in files]

    def camera_path_names(self) -> list[str]:
        folder = self.root / "camera-paths"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _read_flame(
    path: Path,
    model: flame.FlameModel | None,
    num_expression: int | None,
    frame_id: str,
    root: Path | None = None,
) -> flame.FlameParams:
    """flame/ID.json, checked against the model's and scene.json's sizes when known."""
    what = f"the FLAME parameters of frame '{frame_id}'"
    params = flame.FlameParams.from_dict(read_json(path, root, what), source=str(path))
    limits = {}
    if model is not None:
        limits["shape"] = (model.num_shape, "the FLAME model's")
    if num_expression is not None:
        limits["expression"] = (num_expression, "scene.json's flame.num_expression")
    for name, (limit, what_limit) in limits.items():
        value = getattr(params, name)
        if value is not None and len(value) > limit:
            raise ValueError(
                f"{path}: field '{name}' has {len(value)} coefficients; expected at most "
                f"{limit} ({what_limit} limit)"
            )
    return params


def _load_model(path: Path) -> flame.FlameModel:
    """flame.load_model, with every failure a ValueError (or FileNotFoundError) naming `path`."""
    try:
        return flame.load_model(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(_named(str(error), path)) from None
    except ValueError as error:
        raise ValueError(_named(str(error), path)) from None
    except Exception as error:  # numpy/zip errors of a malformed file
        raise ValueError(
            f"{path}: found an unreadable FLAME model ({type(error).__name__}: {error}); "
            "expected the keys and shapes of docs/capture-format.md"
        ) from None


def load_capture(
    root: str | Path, scale: int = 1, flame_model: str | Path | None = None
) -> Capture:
    """Reads and validates a capture, at image scale `scale`.

    Every image and mask training reads (1x, and `scale` when on disk) is decoded in full.

    Args:
      root: the capture folder: a local path or a URL (`flamenerf.io.paths.as_path`).
      scale: 1, 2, 4 or 8 (rgb/{scale}x, or the 1x images box-averaged).
      flame_model: a FLAME model file overriding scene.json's `flame.model`.

    Raises:
      CaptureError: every problem found, one line each, naming the file and the field.
    """
    try:
        root = paths.as_path(root)
    except UserError as error:
        raise CaptureError(root, [str(error)]) from None
    if scale not in IMAGE_SCALES:
        raise CaptureError(root, [f"--scale {scale}: expected one of {IMAGE_SCALES}"])
    try:
        is_dir, exists = root.is_dir(), root.exists()
    except OSError as error:
        raise CaptureError(root, [f"{root}: cannot access ({error.strerror or error})"]) from None
    except Exception as error:  # a URL's file system: credentials, a missing plug-in
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise CaptureError(root, [f"{root}: cannot access ({reason})"]) from None
    if not is_dir:
        found = "found a file, expected a capture folder" if exists else "capture folder not found"
        raise CaptureError(root, [f"{root}: {found}"])
    problems = _Problems()
    split = problems.check(lambda: read_dataset(root), root / "dataset.json")
    scene = problems.check(lambda: read_scene(root, flame_model), root / "scene.json")
    model = None
    if scene is not None:
        model = problems.check(lambda: _load_model(scene.flame_model), scene.flame_model)
        if model is not None and scene.num_expression > model.num_expression:
            problems.add(
                f"{root / 'scene.json'}: field 'flame.num_expression': found "
                f"{scene.num_expression}, expected at most {model.num_expression} (the "
                f"expression coefficients of the FLAME model {scene.flame_model})"
            )
    if split is None:
        raise CaptureError(root, problems.lines)
    train, val = split
    frames = problems.check(lambda: read_metadata(root, train, val), root / "metadata.json")
    cameras, params = {}, {}
    has_masks = (root / "mask" / "1x").is_dir()
    num_expression = scene.num_expression if scene is not None else None
    for frame_id in train + val:
        path = root / "camera" / f"{frame_id}.json"
        what = f"the camera of frame '{frame_id}'"
        camera = problems.check(lambda p=path, w=what: read_camera(p, root, w), path)
        if camera is not None:
            if scene is not None:
                problems.check(lambda c=camera, p=path: _normalised_position(c, scene, p), path)
            for folder in ("rgb", "mask") if has_masks else ("rgb",):
                _check_images(root, folder, frame_id, camera, path, scale, problems)
            cameras[frame_id] = camera
        path = root / "flame" / f"{frame_id}.json"
        value = problems.check(
            lambda p=path, i=frame_id: _read_flame(p, model, num_expression, i, root), path
        )
        if value is not None:
            params[frame_id] = value
    _check_camera_paths(root, scale, scene, problems)
    if problems.lines:
        raise CaptureError(root, problems.lines)
    ids = train + val
    world = scene.flame_to_world(pose_flame(model, [params[i] for i in ids]))
    frame = model_frame(scene, world)
    vertices = dict(zip(ids, frame.normalize(world).astype(np.float32), strict=True))
    capture = Capture(root, scale, frame, train, val, frames, {}, params, model, scene, vertices)
    subject = capture.subject
    capture.cameras.update({i: subject.camera(c, scale) for i, c in cameras.items()})
    return capture


def _check_images(
    root: Path,
    folder: str,
    frame_id: str,
    camera: Camera,
    camera_path: Path,
    scale: int,
    problems: _Problems,
) -> None:
    """Checks the frame's 1x file of `folder` (rgb or mask) and its `scale` file if on disk."""
    kind = "image" if folder == "rgb" else "mask"
    size_source = f"{camera_path}'s field 'image_size'"
    path = image_path(root, folder, 1, frame_id)
    problems.check(
        lambda: _check_image(path, camera.image_size, kind, frame_id, size_source, root), path
    )
    if scale == 1:
        return
    scaled = problems.check(lambda: _scaled_camera(camera, scale, camera_path), camera_path)
    scaled_path = image_path(root, folder, scale, frame_id)
    is_link = isinstance(scaled_path, Path) and scaled_path.is_symlink()  # URLs have no links
    if scaled is not None and (scaled_path.exists() or is_link):
        size_source = (
            f"{camera_path}'s field 'image_size' {list(camera.image_size)} divided by {scale} "
            "and rounded"
        )
        problems.check(
            lambda: _check_image(scaled_path, scaled.image_size, kind, frame_id, size_source, root),
            scaled_path,
        )


def _check_camera_paths(root: Path, scale: int, scene: Scene | None, problems: _Problems) -> None:
    """camera-paths/NAME/*.json: every camera readable, inside the capture, usable at `scale`."""
    folder = root / "camera-paths"
    if not folder.is_dir():
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.json"))
        if not files:
            problems.add(f"{sub}: found a camera path without cameras; expected *.json cameras")
        for path in files:
            what = f"a camera of the camera path '{sub.name}'"
            camera = problems.check(lambda p=path, w=what: read_camera(p, root, w), path)
            if camera is not None:
                problems.check(lambda c=camera, p=path: _scaled_camera(c, scale, p), path)
                if scene is not None:
                    problems.check(lambda c=camera, p=path: _normalised_position(c, scene, p), path)
