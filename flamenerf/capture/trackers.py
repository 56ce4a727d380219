# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""per-frame FLAME parameters from a face tracker (VHAP, metrical-tracker, INSTA, IMavatar, DECA)

    python -m flamenerf.capture import-flame CAPTURE --from TRACKER PATH [options]

Reads a tracker's output files (never its code, never torch) and writes, inside CAPTURE only,
`flame/ID.json` for every frame of dataset.json, scene.json's `flame` section (`model`,
`to_world`, `num_expression`) and, when the capture has no cameras yet, `camera/ID.json` from
the tracker's cameras. The tracker's folder is only read.

TRACKER and PATH:
  vhap      a NeRF export folder (transforms.json: OpenGL camera-to-world `transform_matrix`,
            `fl_x fl_y cx cy w h` with cy measured from the bottom, as VHAP's OpenGL
            intrinsics are, per-frame `flame_param_path` npz, or `exp_path` text for a
            mesh-mode export), or a `tracked_flame_params*.npz` file or its folder (the highest
            epoch is taken). A monocular npz (with `focal_length`) carries VHAP's fixed camera
            at (0, 0, 1); a calibrated one has no cameras (use the export).
  metrical  a metrical-tracker output folder (its `checkpoint/*.frame`, or the folder of the
            .frame files). Each is a torch.save zip read with a restricted unpickler that
            allows numpy arrays only. 6-D rotations (PyTorch3D convention) for jaw and eyes;
            the head is at the origin and the camera block `opencv` {R, t, K} moves.
  insta     an INSTA folder or its transforms.json (`transform_matrix` = inverse of the OpenCV
            world-to-camera, `exp_path` text files). INSTA keeps expression only: shape, jaw
            and eye poses are missing (pass --identity for the shape, or import the
            metrical-tracker checkpoints INSTA was made from).
  imavatar  IMavatar / PointAvatar `flame_params.json` (or its folder). Intrinsics are
            normalised by the image size, read from the capture's rgb/1x images; FLAME is
            scaled by 4 in that world, so `to_world.scale` carries the 4.
  deca      a folder with one entry per frame: `NAME.npz` with keys shape, exp, pose, cam,
            tform, or `NAME/` with shape.npy, exp.npy, pose.npy, cam.npy, tform.npy (EMOCA's
            save_codes layout plus cam and tform). `cam` = weak perspective [s, tx, ty] on the
            224x224 crop, `tform` = DECA's 3x3 crop similarity (image pixels -> crop pixels, as
            its TestData returns). The capture must already have cameras (COLMAP). Shape is
            averaged over the frames.

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
import dataclasses
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from flamenerf.capture import io
from flamenerf.capture.io import StepError
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.io import safe_pickle

TRACKERS = ("vhap", "metrical", "insta", "imavatar", "deca")
PLACEMENTS = ("auto", "similarity", "per-frame")
IMAVATAR_SCALE = 4.0  # IMavatar's FLAME vertices are 4x FLAME's
DECA_CROP = 224  # DECA's crop size in pixels
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # negates the camera y and z axes
HEAD_UNITS_PER_METRE = 3.5  # default scene.json scale per FLAME metre (as the demo capture)
HEAD_RADIUS_M = 0.15  # default near plane keeps this much in front of the head's centre
BACKGROUND_M = 2.0  # default far plane reaches this far behind the farthest camera's head
DEGENERATE_SPREAD = 1e-3  # camera centres spanning less (relative to distance) are a line/point
SAME_CAMERA_TOLERANCE = 1e-6
MAX_PICKLE_BYTES = 1 << 28  # 256 MiB: a frame is a few kilobytes


# --------------------------------------------------------------------------------------------
# What a tracker gives.


@dataclasses.dataclass(frozen=True)
class WeakPerspective:
    """DECA's camera of one frame.

    Attributes:
      cam: (3,) [s, tx, ty]: crop xy = s * (X_xy + t) in [-1, 1], y up.
      tform: (3, 3) similarity from image pixels to 224x224 crop pixels.
    """

    cam: np.ndarray
    tform: np.ndarray


@dataclasses.dataclass(frozen=True)
class TrackerFrame:
    """One tracked frame.

    Attributes:
      names: names the frame may be matched by (file stem, timestep id).
      params: FLAME parameters as float64 numpy arrays (None = missing), in the tracker's world.
      camera: the tracker's camera (OpenCV axes, tracker world), or None.
      weak_perspective: DECA's camera, or None.
    """

    names: tuple[str, ...]
    params: flame.FlameParams
    camera: Camera | None = None
    weak_perspective: WeakPerspective | None = None


@dataclasses.dataclass(frozen=True)
class Track:
    """A tracker's output.

    Attributes:
      frames: the tracked frames.
      flame_scale: tracker world units per FLAME unit (4 for IMavatar, else 1).
      notes: what the tracker lacks or what was left out, printed by the importer.
    """

    frames: list[TrackerFrame]
    flame_scale: float = 1.0
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Similarity:
    """X -> scale * rotation @ X + translation (scale > 0, rotation in SO(3))."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points -> (..., 3) mapped points."""
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation

    def after(self, first: Similarity) -> Similarity:
        """The composition self(first(X))."""
        return Similarity(
            self.scale * first.scale,
            self.rotation @ first.rotation,
            self.apply(first.translation),
        )

    def to_dict(self) -> dict[str, Any]:
        """scene.json's `flame.to_world` object."""
        return {
            "scale": float(self.scale),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }


def scaling(scale: float) -> Similarity:
    """The similarity X -> scale * X."""
    return Similarity(float(scale), np.eye(3), np.zeros(3))


# --------------------------------------------------------------------------------------------
# Reading values with errors that name the file and the field.


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_text(shape: Sequence[int | None]) -> str:
    names = ["N" if n is None else str(n) for n in shape]
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def _values(raw: Any, source: Path | str, field: str, shape: Sequence[int | None]) -> np.ndarray:
    """`raw` as a finite float64 array of `shape` (None: any length).

    Raises:
      StepError: naming `source` and `field`, for non-numbers, another shape or NaN/inf.
    """
    expected = _shape_text(shape)
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise StepError(
            f"{source}: field '{field}': expected numbers of shape {expected}, found {_short(raw)}"
        ) from None
    if array.ndim != len(shape) or any(
        n is not None and n != found for n, found in zip(shape, array.shape, strict=True)
    ):
        raise StepError(
            f"{source}: field '{field}': expected shape {expected}, found {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise StepError(f"{source}: field '{field}': expected finite numbers, found NaN or inf")
    return array


def _vector(raw: Any, source: Path | str, field: str, size: int | None = None) -> np.ndarray:
    """A flat vector of `size` (None: any) numbers; a leading batch axis of 1 is dropped."""
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return _values(raw, source, field, (size,))  # reports the value
    return _values(
        array[0] if array.ndim == 2 and len(array) == 1 else array, source, field, (size,)
    )


def _field(raw: Any, key: str, source: Path | str) -> Any:
    if not isinstance(raw, Mapping):
        raise StepError(f"{source}: expected an object with field '{key}', found {_short(raw)}")
    if key not in raw:
        raise StepError(f"{source}: missing field '{key}'")
    return raw[key]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles)."""
    if not path.is_file():
        raise StepError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise StepError(f"{path}: not a readable .npz file without pickles ({error})") from None


def _read_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise StepError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise StepError(f"{path}: not a readable .npy file without pickles ({error})") from None


def _read_text_vector(path: Path, field: str) -> np.ndarray:
    """Whitespace-separated numbers of a text file (INSTA's and VHAP's `exp_path`)."""
    if not path.is_file():
        raise StepError(f"{path}: file not found (named by '{field}')")
    try:
        values = [float(token) for token in path.read_text(encoding="utf-8").split()]
    except (ValueError, UnicodeDecodeError):
        raise StepError(f"{path}: expected whitespace-separated numbers (from '{field}')") from None
    if not values:
        raise StepError(f"{path}: empty; expected the expression coefficients ('{field}')")
    return _values(values, path, field, (None,))


def _camera(source: Path | str, **fields: Any) -> Camera:
    """A Camera, with its ValueError turned into a StepError naming `source`."""
    try:
        return Camera(**fields)
    except ValueError as error:
        raise StepError(f"{source}: {error}") from None


# --------------------------------------------------------------------------------------------
# Rotations and cameras.


def rotation_6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """PyTorch3D's `rotation_6d_to_matrix`: (..., 6) -> (..., 3, 3).

    Gram-Schmidt on a1 = d6[:3], a2 = d6[3:]: b1 = a1 / |a1|, b2 = unit(a2 - (b1.a2) b1),
    b3 = b1 x b2, stacked as the ROWS of the matrix (PyTorch3D stacks along dim -2). The
    trackers use the result like smplx's axis-angle rotations (x' = R x).
    """
    d6 = np.asarray(d6, dtype=np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def _rotation_6d_to_axis_angle(d6: np.ndarray, source: Path | str, field: str) -> np.ndarray:
    """(k * 6,) 6-D rotations -> (k * 3,) axis-angle vectors; degenerate 6-D vectors refused."""
    pairs = d6.reshape(-1, 2, 3)
    a1, a2 = pairs[:, 0], pairs[:, 1]
    if np.any(np.linalg.norm(a1, axis=-1) < 1e-9) or np.any(
        np.linalg.norm(np.cross(a1, a2), axis=-1) < 1e-9
    ):
        raise StepError(f"{source}: field '{field}': a 6-D rotation with parallel or zero vectors")
    return Rotation.from_matrix(rotation_6d_to_matrix(d6.reshape(-1, 6))).as_rotvec().reshape(-1)


def _axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle vector."""
    return Rotation.from_matrix(matrix).as_rotvec()


def camera_from_c2w(
    c2w: np.ndarray,
    intrinsics: tuple[float, float, float, float],
    image_size: tuple[int, int],
    source: Path | str,
    opengl: bool,
) -> Camera:
    """A camera from a (3|4, 4) camera-to-world matrix and (fx, fy, cx, cy) in pixels.

    `opengl`: the matrix's camera axes are OpenGL's (x right, y up, z backward); the y and z
    axes are negated to get OpenCV's. Otherwise they are OpenCV's already. cy is measured
    from the top of the image.
    """
    rotation = c2w[:3, :3] @ OPENGL_TO_OPENCV if opengl else c2w[:3, :3]
    fx, fy, cx, cy = intrinsics
    return _camera(
        source,
        orientation=rotation.T,
        position=c2w[:3, 3],
        focal_length=fx,
        pixel_aspect_ratio=fy / fx if fx else 0.0,
        principal_point=np.array([cx, cy]),
        image_size=image_size,
    )


def camera_from_opencv_w2c(
    rotation: np.ndarray,
    translation: np.ndarray,
    k: np.ndarray,
    image_size: tuple[int, int],
    source: Path | str,
) -> Camera:
    """A camera from OpenCV's x_cam = R X + t (R (3, 3), t (3,)) and K (3, 3) in pixels."""
    return _camera(
        source,
        orientation=rotation,
        position=-rotation.T @ translation,
        focal_length=k[0, 0],
        pixel_aspect_ratio=k[1, 1] / k[0, 0] if k[0, 0] else 0.0,
        skew=k[0, 1],
        principal_point=k[:2, 2],
        image_size=image_size,
    )


def transform_camera(camera: Camera, similarity: Similarity) -> Camera:
    """The same camera in the world mapped by `similarity` (intrinsics unchanged)."""
    return dataclasses.replace(
        camera,
        orientation=camera.orientation @ similarity.rotation.T,
        position=similarity.apply(camera.position),
    )


# --------------------------------------------------------------------------------------------
# Readers, one per tracker.


def _stem(path: str) -> str:
    return Path(str(path)).stem


def _image_size(width: Any, height: Any, source: Path | str) -> tuple[int, int]:
    size = _values([width, height], source, "w, h", (2,))
    if not all(float(v).is_integer() and v > 0 for v in size):
        raise StepError(f"{source}: fields 'w', 'h': expected positive integers, found {size}")
    return int(size[0]), int(size[1])


def _nerf_frames(path: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """transforms.json (a file, or the one in a folder) -> (its path, top level, frames)."""
    if path.is_dir():
        path = path / "transforms.json"
    raw = io.read_json(path)
    frames = _field(raw, "frames", path)
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise StepError(f"{path}: field 'frames': expected a non-empty list of objects")
    return path, raw, frames


def _nerf_camera(
    frame: Mapping[str, Any], top: Mapping[str, Any], source: str, opengl: bool, flip_cy: bool
) -> Camera:
    """The camera of one transforms.json frame; intrinsics per frame or at the top level.

    `flip_cy`: cy is measured from the bottom of the image (VHAP's OpenGL intrinsics).
    """

    def get(key: str) -> Any:
        return frame[key] if key in frame else _field(top, key, source)

    size = _image_size(get("w"), get("h"), source)
    fx, fy, cx, cy = (float(_values(get(k), source, k, ())) for k in ("fl_x", "fl_y", "cx", "cy"))
    if flip_cy:
        cy = size[1] - cy
    c2w = _values(_field(frame, "transform_matrix", source), source, "transform_matrix", (4, 4))
    return camera_from_c2w(c2w, (fx, fy, cx, cy), size, source, opengl=opengl)


# VHAP's per-timestep npz keys -> (FlameParams field, vector length; None: any).
VHAP_KEYS = {
    "rotation": ("global_pose", 3),
    "neck_pose": ("neck_pose", 3),
    "jaw_pose": ("jaw_pose", 3),
    "eyes_pose": ("eye_pose", 6),
    "translation": ("translation", 3),
    "expr": ("expression", None),
}


def _vhap_params(raw: Mapping[str, np.ndarray], source: Path) -> list[flame.FlameParams]:
    """The FLAME parameters of every timestep of a VHAP npz ((T, k) arrays, shape shared)."""
    shape = _vector(_field(raw, "shape", source), source, "shape")
    arrays = {
        field: _values(_field(raw, key, source), source, key, (None, size))
        for key, (field, size) in VHAP_KEYS.items()
    }
    lengths = {key: len(arrays[field]) for key, (field, _) in VHAP_KEYS.items()}
    if len(set(lengths.values())) != 1:
        raise StepError(f"{source}: per-timestep fields of different lengths {lengths}")
    count = lengths["rotation"]
    return [
        flame.FlameParams(shape=shape, **{f: a[i] for f, a in arrays.items()}) for i in range(count)
    ]


def _vhap_npz_file(path: Path) -> Path:
    """The npz to read: `path` itself, or the highest-epoch tracked_flame_params*.npz in it."""
    if path.is_file():
        return path
    candidates = sorted(path.glob("tracked_flame_params*.npz"))
    if not candidates:
        raise StepError(f"{path}: found neither transforms.json nor tracked_flame_params*.npz")
    epochs = [re.search(r"_(\d+)$", c.stem) for c in candidates]
    if len(candidates) > 1 and not all(epochs):
        raise StepError(
            f"{path}: several tracked_flame_params*.npz without epoch numbers; pass one file"
        )
    return max(zip(candidates, epochs, strict=True), key=lambda c: int(c[1][1]) if c[1] else 0)[0]


def read_vhap(path: Path) -> Track:
    """VHAP: a NeRF export folder / transforms.json, or tracked_flame_params*.npz."""
    notes = ["VHAP tracks FLAME 2023 (with teeth); parameters are used as they are"]
    if path.name == "transforms.json" or (path.is_dir() and (path / "transforms.json").is_file()):
        json_path, top, raw_frames = _nerf_frames(path)
        frames, cache = [], {}
        for k, raw in enumerate(raw_frames):
            source = f"{json_path}: frames[{k}]"
            camera = _nerf_camera(raw, top, source, opengl=True, flip_cy=True)
            names = [_stem(_field(raw, "file_path", source))]
            if "timestep_id" in raw:
                names.append(str(raw["timestep_id"]))
            if "flame_param_path" in raw:
                npz_path = json_path.parent / str(raw["flame_param_path"])
                if npz_path not in cache:
                    params = _vhap_params(_read_npz(npz_path), npz_path)
                    if len(params) != 1:
                        raise StepError(f"{npz_path}: expected one timestep, found {len(params)}")
                    cache[npz_path] = params[0]
                params = cache[npz_path]
            elif "exp_path" in raw:
                exp = _read_text_vector(json_path.parent / str(raw["exp_path"]), "exp_path")
                params = flame.FlameParams(expression=exp)
            else:
                raise StepError(f"{source}: missing field 'flame_param_path' (or 'exp_path')")
            frames.append(TrackerFrame(tuple(names), params, camera))
        if any(f.params.jaw_pose is None for f in frames):
            notes.append("mesh-mode export: expression only (shape and poses are in the meshes)")
        return Track(frames, notes=tuple(notes))

    npz_path = _vhap_npz_file(path)
    print(f"VHAP: reading {npz_path}")
    raw = _read_npz(npz_path)
    params = _vhap_params(raw, npz_path)
    count = len(params)
    names = (
        np.asarray(raw["timestep_id"]).astype(str).reshape(-1).tolist()
        if "timestep_id" in raw
        else [str(i) for i in range(count)]
    )
    if len(names) != count:
        raise StepError(
            f"{npz_path}: field 'timestep_id': expected {count} ids, found {len(names)}"
        )
    camera = None
    if "focal_length" in raw:
        # VHAP's uncalibrated camera: OpenGL world-to-camera [I | (0, 0, -1)], i.e. at (0, 0, 1)
        # looking down -z, focal focal_length * max(h, w), principal point at the image centre.
        height, width = _values(_field(raw, "image_size", npz_path), npz_path, "image_size", (2,))
        size = _image_size(width, height, npz_path)
        focal = float(_vector(raw["focal_length"], npz_path, "focal_length", 1)[0]) * max(size)
        c2w = np.eye(4)
        c2w[2, 3] = 1.0
        intrinsics = (focal, focal, size[0] / 2, size[1] / 2)
        camera = camera_from_c2w(c2w, intrinsics, size, npz_path, opengl=True)
    else:
        notes.append("calibrated VHAP npz: no cameras (pass the NeRF export folder for them)")
    if "static_offset" in raw:
        notes.append("VHAP's static_offset (per-vertex offsets) cannot be represented; ignored")
    frames = [TrackerFrame((name,), p, camera) for name, p in zip(names, params, strict=True)]
    return Track(frames, notes=tuple(notes))


def read_torch_zip(path: Path) -> Any:
    """The object of a torch.save zip archive (`PREFIX/data.pkl`), read without torch.

    data.pkl is read by `flamenerf.io.safe_pickle` with its metrical-tracker allow-list: numpy
    arrays and scalars of plain dtypes and `_codecs.encode` (how protocol 2 stores bytes);
    every other global, torch's persistent storages and pickle bombs are refused before
    anything runs or is allocated, and the result must be a small tree of dicts, lists,
    arrays, strings and numbers (`safe_pickle.check_tree`).

    Raises:
      StepError: not a zip archive, no single data.pkl, or a pickle naming anything but numpy
        arrays, a pickle bomb or an unreadable pickle (refused before it runs).
    """
    if not path.is_file():
        raise StepError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(names) != 1:
                raise StepError(f"{path}: expected one data.pkl in the torch.save archive")
            if archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
                raise StepError(f"{path}: data.pkl is larger than {MAX_PICKLE_BYTES} bytes")
            data = archive.read(names[0])
    except zipfile.BadZipFile:
        raise StepError(f"{path}: not a torch.save zip archive") from None
    try:
        payload = safe_pickle.loads(data, str(path), safe_pickle.TORCH_FRAME)
        safe_pickle.check_tree(payload, str(path), safe_pickle.TORCH_FRAME)
    except safe_pickle.PickleRefused as error:
        raise StepError(str(error)) from None
    return payload


def read_metrical(path: Path) -> Track:
    """metrical-tracker: checkpoint/*.frame files (torch.save zips of numpy arrays)."""
    folder = path / "checkpoint" if (path / "checkpoint").is_dir() else path
    files = sorted(folder.glob("*.frame"))
    if not files:
        raise StepError(f"{folder}: no *.frame files (metrical-tracker's checkpoint folder)")
    frames, eyelids = [], False
    for file in files:
        payload = read_torch_zip(file)
        flame_raw = _field(payload, "flame", file)
        opencv = _field(payload, "opencv", file)

        in_flame, in_opencv = f"{file}: 'flame'", f"{file}: 'opencv'"
        jaw = _vector(_field(flame_raw, "jaw", in_flame), file, "flame.jaw", 6)
        eyes = _vector(_field(flame_raw, "eyes", in_flame), file, "flame.eyes", 12)
        params = flame.FlameParams(
            shape=_vector(_field(flame_raw, "shape", in_flame), file, "flame.shape"),
            expression=_vector(_field(flame_raw, "exp", in_flame), file, "flame.exp"),
            jaw_pose=_rotation_6d_to_axis_angle(jaw, file, "flame.jaw"),
            eye_pose=_rotation_6d_to_axis_angle(eyes, file, "flame.eyes"),
        )
        if "eyelids" in flame_raw:
            lids = _vector(flame_raw["eyelids"], file, "flame.eyelids")
            eyelids = eyelids or bool(np.any(lids))
        rotation = _values(_field(opencv, "R", in_opencv), file, "opencv.R", (1, 3, 3))[0]
        translation = _values(_field(opencv, "t", in_opencv), file, "opencv.t", (1, 3))[0]
        k = _values(_field(opencv, "K", in_opencv), file, "opencv.K", (1, 3, 3))[0]
        height, width = _values(_field(payload, "img_size", file), file, "img_size", (2,))
        camera = camera_from_opencv_w2c(
            rotation, translation, k, _image_size(width, height, file), file
        )
        names = [file.stem]
        if isinstance(payload.get("frame_id"), str | int):
            names.append(str(payload["frame_id"]))
        frames.append(TrackerFrame(tuple(names), params, camera))
    notes = ["metrical-tracker: head at the origin (global pose and translation zero), no neck"]
    if eyelids:
        notes.append("metrical-tracker's eyelid blendshapes are not FLAME's; dropped")
    return Track(frames, notes=tuple(notes))


def read_insta(path: Path) -> Track:
    """INSTA: transforms.json with OpenCV camera-to-world matrices and exp_path files."""
    json_path, top, raw_frames = _nerf_frames(path)
    frames = []
    for k, raw in enumerate(raw_frames):
        source = f"{json_path}: frames[{k}]"
        camera = _nerf_camera(raw, top, source, opengl=False, flip_cy=False)
        exp_path = json_path.parent / str(_field(raw, "exp_path", source))
        params = flame.FlameParams(expression=_read_text_vector(exp_path, "exp_path"))
        frames.append(TrackerFrame((_stem(_field(raw, "file_path", source)),), params, camera))
    notes = (
        "INSTA keeps expression only: shape (see --identity), jaw, neck and eye poses are "
        "missing (zeros); the head is at the origin",
    )
    return Track(frames, notes=notes)


def read_imavatar(path: Path, image_size: tuple[int, int]) -> Track:
    """IMavatar / PointAvatar flame_params.json; `image_size` (width, height) of the frames."""
    json_path = path / "flame_params.json" if path.is_dir() else path
    raw = io.read_json(json_path)
    shape = _vector(_field(raw, "shape_params", json_path), json_path, "shape_params")
    intrinsics = _vector(_field(raw, "intrinsics", json_path), json_path, "intrinsics", 4)
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
    raw_frames = _field(raw, "frames", json_path)
    if not isinstance(raw_frames, list) or not raw_frames:
        raise StepError(f"{json_path}: field 'frames': expected a non-empty list")
    frames = []
    for n, frame in enumerate(raw_frames):
        source = f"{json_path}: frames[{n}]"
        world_mat = _values(_field(frame, "world_mat", source), source, "world_mat", (None, 4))
        if world_mat.shape[0] not in (3, 4):
            raise StepError(f"{source}: field 'world_mat': expected 3x4, found {world_mat.shape}")
        # An OpenGL-like camera (x right, y up, looking along -z): negate its y and z rows.
        w2c = OPENGL_TO_OPENCV @ world_mat[:3]
        camera = camera_from_opencv_w2c(w2c[:, :3], w2c[:, 3], k, image_size, source)
        pose = _vector(_field(frame, "pose", source), source, "pose", 15)
        params = flame.FlameParams(
            shape=shape,
            expression=_vector(_field(frame, "expression", source), source, "expression"),
            global_pose=pose[0:3],
            neck_pose=pose[3:6],
            jaw_pose=pose[6:9],
            eye_pose=pose[9:15],
        )
        name = _stem(_field(frame, "file_path", source))
        frames.append(TrackerFrame((name,), params, camera))
    return Track(frames, flame_scale=IMAVATAR_SCALE)


def _deca_arrays(entry: Path) -> dict[str, Any]:
    """The codes of one DECA frame: NAME.npz, or NAME/ with one .npy per key."""
    if entry.is_dir():
        return {
            key: _read_npy(entry / f"{key}.npy")
            for key in ("shape", "exp", "pose", "cam", "tform")
            if (entry / f"{key}.npy").is_file()
        }
    return _read_npz(entry)


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
        pose = _vector(_field(raw, "pose", entry), entry, "pose", 6)
        params = flame.FlameParams(
            shape=_vector(_field(raw, "shape", entry), entry, "shape"),
            expression=_vector(_field(raw, "exp", entry), entry, "exp"),
            global_pose=pose[:3],
            jaw_pose=pose[3:],
        )
        if "cam" not in raw or "tform" not in raw:
            raise StepError(
                f"{entry}: missing field 'cam' or 'tform': DECA's weak-perspective camera and "
                "its crop similarity (TestData's 'tform') are needed to place the head"
            )
        cam = _vector(raw["cam"], entry, "cam", 3)
        tform = _values(np.asarray(raw["tform"]).reshape(-1), entry, "tform", (9,)).reshape(3, 3)
        if cam[0] <= 0:
            raise StepError(f"{entry}: field 'cam': expected a scale s > 0, found {cam[0]}")
        frames.append(TrackerFrame((entry.stem,), params, None, WeakPerspective(cam, tform)))
    notes = ("DECA: neck and eye poses are not estimated (zeros)",)
    return Track(frames, notes=notes)


# --------------------------------------------------------------------------------------------
# Frame matching.


def _match_keys(name: str, offset: int) -> set[tuple[str, Any]]:
    """Keys a name matches by: itself (unless an offset applies), its number plus `offset`."""
    keys: set[tuple[str, Any]] = set()
    if name.isascii() and name.isdigit():
        keys.add(("n", int(name) + offset))
        if offset == 0:
            keys.add(("s", name))
    else:
        keys.add(("s", name))
    return keys


def match_frames(
    ids: Sequence[str], frames: Sequence[TrackerFrame], offset: int = 0
) -> tuple[dict[str, TrackerFrame], int]:
    """Tracker frames of the capture's ids (see the module docstring).

    Returns:
      ({capture id: tracker frame} for the ids that match, number of tracker frames unused).

    Raises:
      StepError: a capture id matched by two tracker frames.
    """
    index: dict[tuple[str, Any], list[int]] = {}
    for k, frame in enumerate(frames):
        for key in set().union(*(_match_keys(name, offset) for name in frame.names)):
            index.setdefault(key, []).append(k)
    matched, used = {}, set()
    for frame_id in ids:
        hits = sorted({k for key in _match_keys(frame_id, 0) for k in index.get(key, [])})
        if len(hits) > 1:
            found = [frames[k].names for k in hits[:3]]
            raise StepError(f"capture frame '{frame_id}' matches several tracker frames {found}")
        if hits:
            matched[frame_id] = frames[hits[0]]
            used.add(hits[0])
    return matched, len(frames) - len(used)


# --------------------------------------------------------------------------------------------
# Geometry: Umeyama, root joints, placements.


def umeyama(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The similarity S minimising sum_i |target_i - S(source_i)|^2 (Umeyama 1991).

    With the means mu_s, mu_t, the centred sets X = source - mu_s, Y = target - mu_t, the
    variance var = sum |X_i|^2 / N and the SVD Y^T X / N = U D V^T:
        R = U E V^T with E = diag(1, 1, det(U V^T))   (no reflection)
        s = trace(D E) / var,   t = mu_t - s R mu_s.

    Args:
      source: (N, 3) points, N >= 3, not all on a line.
      target: (N, 3) corresponding points.

    Raises:
      StepError: fewer than 3 points, or points on a line (the rotation is undetermined).
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise StepError(
            f"umeyama: expected two (N, 3) arrays, found {source.shape}, {target.shape}"
        )
    if len(source) < 3:
        raise StepError(f"umeyama: need at least 3 camera centres, found {len(source)}")
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    x, y = source - mu_s, target - mu_t
    variance = np.sum(x * x) / len(x)
    u, d, vt = np.linalg.svd(y.T @ x / len(x))
    if variance == 0 or d[1] <= 1e-12 * d[0]:
        raise StepError("umeyama: the camera centres lie on a line or a point; no unique rotation")
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ e @ vt
    scale = float(np.trace(np.diag(d) @ e) / variance)
    return Similarity(scale, rotation, mu_t - scale * rotation @ mu_s)


def _rms(values: np.ndarray) -> float:
    """RMS length of (N, 3) vectors."""
    return float(np.sqrt(np.mean(np.sum(values**2, axis=-1))))


def _spread_text(residual: float, points: np.ndarray) -> str:
    """'R (P% of the camera spread)', the spread being the RMS distance to the mean."""
    spread = _rms(points - points.mean(axis=0))
    ratio = f"{100 * residual / spread:.3g}% of" if spread > 0 else "no"
    return f"{residual:.6g} capture units ({ratio} the camera spread {spread:.6g})"


def root_joints(model: flame.FlameModel, params: Sequence[flame.FlameParams]) -> np.ndarray:
    """(N, 3) unposed FLAME root joints: regressed after the shape and expression offsets.

    The root joint is the pivot of the global rotation and is moved only by the translation,
    so a frame's posed root joint is `root_joints + translation`.
    """
    regressor = np.asarray(model.j_regressor, np.float64)[0]
    template = regressor @ np.asarray(model.v_template, np.float64)
    shape_dirs = np.einsum("v,vcs->cs", regressor, np.asarray(model.shapedirs, np.float64))
    expr_dirs = np.einsum("v,vce->ce", regressor, np.asarray(model.exprdirs, np.float64))

    def term(dirs: np.ndarray, value: np.ndarray | None) -> np.ndarray:
        return np.zeros(3) if value is None else dirs[:, : len(value)] @ value

    return np.stack(
        [template + term(shape_dirs, p.shape) + term(expr_dirs, p.expression) for p in params]
    )


def _rotation(rotvec: np.ndarray | None) -> np.ndarray:
    return np.eye(3) if rotvec is None else Rotation.from_rotvec(rotvec).as_matrix()


def _translation(params: flame.FlameParams) -> np.ndarray:
    return np.zeros(3) if params.translation is None else params.translation


def head_in_tracker_camera(
    params: flame.FlameParams, root: np.ndarray, camera: Camera, flame_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The head's (orientation (3, 3), root position (3,)) in the tracker camera's frame.

    Lengths are FLAME units: the tracker world is divided by `flame_scale`.
    """
    orientation = camera.orientation @ _rotation(params.global_pose)
    position = camera.orientation @ (root + _translation(params) - camera.position / flame_scale)
    return orientation, position


def _crop_to_image(tform: np.ndarray, source: str) -> tuple[np.ndarray, float, float]:
    """(tform^-1 (3, 3), its scale k, its angle phi) for DECA's image -> crop similarity.

    Raises:
      StepError: `tform` is not a similarity (uniform scale, rotation, translation).
    """
    error = StepError(f"{source}: field 'tform': expected a similarity (image -> crop pixels)")
    if abs(np.linalg.det(tform)) < 1e-12:
        raise error
    inverse = np.linalg.inv(tform)
    a = inverse[:2, :2]
    k = float(np.sqrt(max(np.linalg.det(a), 0.0)))
    phi = float(np.arctan2(a[1, 0], a[0, 0]))
    rotation = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    if not k > 0 or np.abs(a - k * rotation).max() > 1e-6 * k:
        raise error
    if np.abs(inverse[2] - [0.0, 0.0, 1.0]).max() > 1e-9:
        raise error
    return inverse, k, phi


def head_from_weak_perspective(
    params: flame.FlameParams, root: np.ndarray, wp: WeakPerspective, camera: Camera, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """The head's (orientation, root position) in the capture camera's frame, from DECA.

    DECA draws X_xy (FLAME space, y up) at crop pixels 112 * (1 + s (x + tx)), 112 * (1 - s
    (y + ty)), and the image pixel is tform^-1 (crop pixel). In OpenCV camera axes (x, -y,
    -z of DECA's) that is m Rot(phi) X_xy + c with m = 112 s k pixels per FLAME metre, k and
    phi the scale and angle of tform^-1: a pinhole camera sees the same at depth f / m with the
    head turned by phi about the optical axis. The root joint is placed on the ray of its pixel.
    """
    inverse, k, phi = _crop_to_image(wp.tform, source)
    s, tx, ty = wp.cam
    half = DECA_CROP / 2
    crop = np.array([half * (1 + s * (root[0] + tx)), half * (1 - s * (root[1] + ty)), 1.0])
    pixel = (inverse @ crop)[:2]
    depth = camera.focal_length / (half * s * k)
    position = depth * camera.pixels_to_local_directions(pixel)
    spin = Rotation.from_rotvec([0.0, 0.0, phi]).as_matrix()
    orientation = spin @ OPENGL_TO_OPENCV @ _rotation(params.global_pose)
    return orientation, position


def per_frame_placement(
    heads: Sequence[tuple[np.ndarray, np.ndarray]],
    cameras: Sequence[Camera],
    params: Sequence[flame.FlameParams],
    roots: np.ndarray,
) -> tuple[Similarity, list[flame.FlameParams], float]:
    """Keeps each frame's camera-relative head pose in the capture's cameras.

    Fits a (capture units per FLAME unit) and h (the head's root in the world) minimising
    sum_i |C_i + a R_i^T q_i - h|^2 (C_i, R_i the capture camera, q_i the root in it): the
    head is taken to be still. to_world = (a, Q, h - a Q mean(root)) with Q the mean head
    orientation; each frame's global pose and translation are set so that its root lands at
    C_i + a R_i^T q_i with orientation R_i^T O_i.

    Args:
      heads: per frame (orientation O_i (3, 3), root position q_i (3,)) in camera axes.
      cameras: the capture's cameras.
      params: the frames' FLAME parameters (shape and expression are kept).
      roots: (N, 3) unposed root joints of `params`.

    Returns:
      (to_world, new parameters, RMS distance of the roots from h in capture units).
    """
    rows = np.concatenate(
        [
            np.hstack([(c.orientation.T @ q)[:, None], -np.eye(3)])
            for (_, q), c in zip(heads, cameras, strict=True)
        ]
    )
    rhs = -np.concatenate([c.position for c in cameras])
    solution, _, _, singular = np.linalg.lstsq(rows, rhs, rcond=None)
    if singular[-1] <= 1e-9 * singular[0] or solution[0] <= 0:
        raise StepError(
            "per-frame placement: cannot fit the head's scale, the capture's cameras do not "
            "move around the head (or the tracker's head placement contradicts them)"
        )
    scale, head = float(solution[0]), solution[1:]
    world_roots = np.stack(
        [c.position + scale * c.orientation.T @ q for (_, q), c in zip(heads, cameras, strict=True)]
    )
    world_orientations = np.stack(
        [c.orientation.T @ o for (o, _), c in zip(heads, cameras, strict=True)]
    )
    mean = Rotation.from_matrix(world_orientations).mean().as_matrix()
    to_world = Similarity(scale, mean, head - scale * mean @ roots.mean(axis=0))
    placed = [
        p._replace(
            global_pose=_axis_angle(mean.T @ orientation),
            translation=mean.T @ (world_root - to_world.translation) / scale - root,
        )
        for p, orientation, world_root, root in zip(
            params, world_orientations, world_roots, roots, strict=True
        )
    ]
    return to_world, placed, _rms(world_roots - head)


def _spans_plane(centres: np.ndarray, heads: np.ndarray) -> bool:
    """True when (N, 3) camera centres span a plane, relative to their distance to the head."""
    if len(centres) < 3:
        return False
    distance = float(np.mean(np.linalg.norm(centres - heads, axis=-1)))
    spread = np.linalg.svd(centres - centres.mean(axis=0), compute_uv=False) / np.sqrt(len(centres))
    return bool(spread[1] > DEGENERATE_SPREAD * distance)


def _same_cameras(first: Sequence[Camera], second: Sequence[Camera]) -> bool:
    """True when two camera lists have the same positions and orientations."""
    positions = np.stack([c.position for c in first]), np.stack([c.position for c in second])
    size = 1.0 + float(np.abs(positions[1]).max())
    return bool(
        np.abs(positions[0] - positions[1]).max() <= SAME_CAMERA_TOLERANCE * size
        and all(
            np.abs(a.orientation - b.orientation).max() <= SAME_CAMERA_TOLERANCE
            for a, b in zip(first, second, strict=True)
        )
    )


# --------------------------------------------------------------------------------------------
# The capture's side.


def _capture_image_size(capture: Path, frame_id: str) -> tuple[int, int] | None:
    """(width, height) of rgb/1x/ID.png from its header, or None when there is no image."""
    path = capture / "rgb" / "1x" / f"{frame_id}.png"
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise StepError(f"{path}: not a readable image ({error})") from None


def _fit_to_image(camera: Camera, size: tuple[int, int] | None, source: str) -> Camera:
    """The tracker's camera at the capture's image size (None: unknown, kept).

    A tracker run on downscaled (or upscaled) frames has the intrinsics scaled; other sizes
    (crops) are refused.
    """
    if size is None or camera.image_size == tuple(size):
        return camera
    scaled = camera.scale(camera.width / size[0])
    if scaled.image_size != tuple(size):
        raise StepError(
            f"{source}: the tracker's image is {camera.width}x{camera.height}, the capture's "
            f"rgb/1x image {size[0]}x{size[1]}: not a rescaling (did the tracker crop?)"
        )
    return scaled


def _capture_cameras(capture: Path, ids: Sequence[str]) -> dict[str, Camera] | None:
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


def _flame_model(
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


def _fit_to_model(
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


def _scene_defaults(
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


# --------------------------------------------------------------------------------------------
# The step.


def _read_track(tracker: str, path: Path, capture: Path, ids: Sequence[str]) -> Track:
    if tracker == "imavatar":
        size = next((s for s in (_capture_image_size(capture, i) for i in ids) if s), None)
        if size is None:
            raise StepError(
                f"{capture / 'rgb' / '1x'}: no frame images; IMavatar's intrinsics are "
                "fractions of the image size"
            )
        return read_imavatar(path, size)
    readers: dict[str, Callable[[Path], Track]] = {
        "vhap": read_vhap,
        "metrical": read_metrical,
        "insta": read_insta,
        "deca": read_deca,
    }
    return readers[tracker](path)


def _place(
    mode: str,
    track: Track,
    frames: Sequence[TrackerFrame],
    params: list[flame.FlameParams],
    roots: np.ndarray,
    capture: Path,
    ids: Sequence[str],
) -> tuple[Similarity, list[flame.FlameParams], dict[str, Camera] | None, np.ndarray]:
    """(to_world, parameters, cameras to write or None, (N, 3) camera positions in the world)."""
    base = scaling(track.flame_scale)
    tracked = [f.camera for f in frames]
    has_cameras = all(c is not None for c in tracked)
    existing = _capture_cameras(capture, ids)
    if existing is None:
        if not has_cameras:
            raise StepError(
                f"{capture / 'camera'}: no cameras, and the tracker gives none (DECA's weak "
                "perspective is not a pinhole camera): run the cameras step first"
            )
        cameras = {
            i: _fit_to_image(c, _capture_image_size(capture, i), f"camera of frame '{i}'")
            for i, c in zip(ids, tracked, strict=True)
        }
        print("placement: the tracker's cameras are written to camera/; to_world is its own")
        return base, params, cameras, np.stack([c.position for c in cameras.values()])
    cameras = [existing[i] for i in ids]
    positions = np.stack([c.position for c in cameras])
    if mode == "auto":
        if has_cameras and _same_cameras(tracked, cameras):
            print("placement: the capture's cameras are the tracker's; to_world is its own")
            return base, params, None, positions
        heads = track.flame_scale * (roots + np.stack([_translation(p) for p in params]))
        plane = has_cameras and _spans_plane(np.stack([c.position for c in tracked]), heads)
        mode = "similarity" if plane else "per-frame"
    if mode == "similarity":
        if not has_cameras:
            raise StepError("--placement similarity: the tracker gives no cameras")
        source = np.stack([c.position for c in tracked])
        similarity = umeyama(source, positions)
        residual = _rms(similarity.apply(source) - positions)
        angles = [
            Rotation.from_matrix(c.orientation @ similarity.rotation @ t.orientation.T).magnitude()
            for c, t in zip(cameras, tracked, strict=True)
        ]
        print(
            f"placement: similarity (Umeyama on {len(ids)} camera centres), scale "
            f"{similarity.scale:.6g}; residual {_spread_text(residual, positions)}; camera "
            f"axes differ by {np.degrees(np.median(angles)):.3g} deg median, "
            f"{np.degrees(np.max(angles)):.3g} deg max"
        )
        return similarity.after(base), params, None, positions
    heads_in_cameras = []
    for frame_id, frame, p, root, camera in zip(ids, frames, params, roots, cameras, strict=True):
        if frame.weak_perspective is not None:
            source = f"tracker frame {frame.names[0]} (capture frame '{frame_id}')"
            pose = head_from_weak_perspective(p, root, frame.weak_perspective, camera, source)
        elif frame.camera is not None:
            pose = head_in_tracker_camera(p, root, frame.camera, track.flame_scale)
        else:
            raise StepError(f"tracker frame {frame.names[0]}: no camera to place the head with")
        heads_in_cameras.append(pose)
    to_world, placed, residual = per_frame_placement(heads_in_cameras, cameras, params, roots)
    print(
        f"placement: per frame (camera-relative head poses kept), scale {to_world.scale:.6g} "
        f"capture units per FLAME unit; the head's root moves {_spread_text(residual, positions)}"
    )
    return to_world, placed, None, positions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "capture", metavar="CAPTURE", help="the capture folder (dataset.json must exist)"
    )
    parser.add_argument(
        "--from",
        dest="tracker",
        metavar="TRACKER",
        choices=TRACKERS,
        required=True,
        help=f"the tracker: {', '.join(TRACKERS)}",
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
    model_entry, model = _flame_model(capture, scene, args.flame_model)

    track = _read_track(args.tracker, source, capture, train + val)
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
        shape = _vector(_read_npy(identity), identity, "identity")
        params = [p._replace(shape=shape) for p in params]
    elif args.tracker == "deca":
        lengths = {i: len(p.shape) for i, p in zip(ids, params, strict=True)}
        if len(set(lengths.values())) != 1:
            odd = min(lengths, key=lambda i: list(lengths.values()).count(lengths[i]))
            raise StepError(
                f"{args.path}: DECA codes of frame {odd}: 'shape' has {lengths[odd]} values, "
                f"other frames {max(lengths.values(), key=list(lengths.values()).count)}"
            )
        shapes = np.stack([p.shape for p in params])
        print(
            f"DECA: shape averaged over {len(shapes)} frames (std {shapes.std(axis=0).max():.3g})"
        )
        params = [p._replace(shape=shapes.mean(axis=0)) for p in params]
    params, num_expression = _fit_to_model(params, model.num_shape, model.num_expression)
    roots = root_joints(model, params)
    to_world, params, cameras, positions = _place(
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
    world_roots = to_world.apply(roots + np.stack([_translation(p) for p in params]))
    section = {"to_world": to_world.to_dict(), "num_expression": num_expression}
    if model_entry is not None:
        section["model"] = model_entry
    io.update_scene(
        capture, flame=section, **_scene_defaults(scene, to_world, world_roots, positions)
    )
    print(
        f"wrote flame/ for {len(ids)} frames, scene.json flame.to_world (scale "
        f"{to_world.scale:.6g}) and num_expression {num_expression}"
        + (f", camera/ for {len(cameras)} frames" if cameras else "")
    )
    return 0
