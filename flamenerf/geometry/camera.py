# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The Nerfies camera model (NumPy, host side), read from and written to `camera/ID.json`.

Axes follow OpenCV: camera x points right, y down, z forward. A world point X has camera
coordinates `R (X - position)`, where `R = orientation` is the world-to-camera rotation whose
rows are the camera axes expressed in world coordinates.

Pixel convention: image coordinates are continuous; pixel index (i, j) (column i, row j)
covers the square [i, i + 1) x [j, j + 1), so its centre is at (i + 0.5, j + 0.5) and integer
coordinates are pixel corners. `project` returns and `pixels_to_rays` takes such continuous
coordinates; `get_pixel_centers` gives the centres. With this convention downscaling by s (an
s x s box average) maps coordinates exactly by 1/s, which is what `Camera.scale` does.

Projection of a camera-space point (x, y, z), with k = radial, p = tangential distortion:
    xn, yn = x / z, y / z;   r2 = xn^2 + yn^2;   d = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    xd = xn d + 2 p1 xn yn + p2 (r2 + 2 xn^2)
    yd = yn d + 2 p2 xn yn + p1 (r2 + 2 yn^2)
    u = f xd + skew yd + cx;   v = f pixel_aspect_ratio yd + cy
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from flamenerf.io import strict_json

UNDISTORT_ITERATIONS = 10  # Newton steps used by `pixels_to_rays` to invert the distortion

# Expected shape and a human description of every JSON field, in the spec's order.
_SCHEMA: dict[str, tuple[tuple[int, ...], str]] = {
    "orientation": ((3, 3), "a 3x3 list of finite numbers"),
    "position": ((3,), "a list of 3 finite numbers"),
    "focal_length": ((), "a finite number"),
    "principal_point": ((2,), "a list of 2 finite numbers"),
    "skew": ((), "a finite number"),
    "pixel_aspect_ratio": ((), "a finite number"),
    "radial_distortion": ((3,), "a list of 3 finite numbers [k1, k2, k3]"),
    "tangential_distortion": ((2,), "a list of 2 finite numbers [p1, p2]"),
    "image_size": ((2,), "a list of 2 positive integers [width, height]"),
}
# Fields that may be missing from a JSON camera, and their values then.
_DEFAULTS: dict[str, Any] = {
    "skew": 0.0,
    "pixel_aspect_ratio": 1.0,
    "radial_distortion": [0.0, 0.0, 0.0],
    "tangential_distortion": [0.0, 0.0],
}


def _short(value: Any, limit: int = 80) -> str:
    """A value as messages show it; JSON's null, bools and strings are named as such."""
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return f"{str(bool(value)).lower()} (a bool)"
    if isinstance(value, str):
        return f"the string {text}"
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _has_shape(value: Any, shape: tuple[int, ...]) -> bool:
    """True when `value` is nested lists/tuples of numbers with exactly this shape."""
    if not shape:
        return _is_number(value)
    if not isinstance(value, list | tuple) or len(value) != shape[0]:
        return False
    return all(_has_shape(item, shape[1:]) for item in value)


def _parse_field(raw: Mapping[str, Any], field: str, source: str) -> Any:
    """Reads one JSON field: float, float array of the schema's shape, or (int, int) size."""
    shape, expected = _SCHEMA[field]
    if field not in raw:
        if field not in _DEFAULTS:
            raise ValueError(f"{source}: field '{field}': found no such field, expected {expected}")
        value = _DEFAULTS[field]
    else:
        value = raw[field]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not _has_shape(value, shape):
        raise ValueError(f"{source}: field '{field}': found {_short(value)}, expected {expected}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        array = np.full(shape, np.inf)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{source}: field '{field}': found {_short(value)}, expected {expected}")
    if field == "image_size":
        if not all(float(v).is_integer() and v > 0 for v in value):
            raise ValueError(
                f"{source}: field '{field}': found {_short(value)}, expected {expected}"
            )
        return int(value[0]), int(value[1])
    return float(array) if shape == () else array


def _check_values(
    orientation: np.ndarray,
    focal_length: float,
    pixel_aspect_ratio: float,
    image_size: tuple[int, int],
    source: str,
) -> None:
    """Checks what the shapes cannot: a rotation, positive focal, aspect and image size."""
    strict_json.check_rotation(orientation, f"{source}: field 'orientation'")
    if not focal_length > 0:
        raise ValueError(
            f"{source}: field 'focal_length': found {focal_length!r}, expected a number > 0"
        )
    if not pixel_aspect_ratio > 0:
        raise ValueError(
            f"{source}: field 'pixel_aspect_ratio': found {pixel_aspect_ratio!r}, "
            "expected a number > 0"
        )
    if len(image_size) != 2 or not all(type(v) is int and v > 0 for v in image_size):
        raise ValueError(
            f"{source}: field 'image_size': found {image_size!r}, "
            "expected 2 positive integers (width, height)"
        )


def _frozen_array(value: Any, shape: tuple[int, ...], field: str) -> np.ndarray:
    array = np.array(value, dtype=np.float64)  # a copy, so callers cannot mutate it
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(
            f"Camera: field '{field}': found {_short(value)}, expected finite numbers of "
            f"shape {shape}"
        )
    array.setflags(write=False)
    return array


def _distort(
    x: np.ndarray, y: np.ndarray, radial: np.ndarray, tangential: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV radial + tangential distortion of normalised coordinates (any equal shapes)."""
    k1, k2, k3 = radial
    p1, p2 = tangential
    r2 = x * x + y * y
    d = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * d + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * d + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y)
    return xd, yd


def _undistort(
    xd: np.ndarray, yd: np.ndarray, radial: np.ndarray, tangential: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inverts `_distort` by `UNDISTORT_ITERATIONS` Newton steps started at (xd, yd).

    Converges (quadratically) wherever the distortion is invertible, i.e. inside the image
    of any sensibly calibrated camera. Steps with a near-singular Jacobian are skipped.
    """
    k1, k2, k3 = radial
    p1, p2 = tangential
    x, y = xd.copy(), yd.copy()
    for _ in range(UNDISTORT_ITERATIONS):
        r2 = x * x + y * y
        d = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        d_r2 = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)  # d(d)/d(r2)
        fx = x * d + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
        fy = y * d + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y) - yd
        # Jacobian of (fx, fy) with respect to (x, y).
        j_xx = d + 2.0 * x * x * d_r2 + 2.0 * p1 * y + 6.0 * p2 * x
        j_xy = 2.0 * x * y * d_r2 + 2.0 * p1 * x + 2.0 * p2 * y
        j_yx = 2.0 * x * y * d_r2 + 2.0 * p2 * y + 2.0 * p1 * x
        j_yy = d + 2.0 * y * y * d_r2 + 2.0 * p2 * x + 6.0 * p1 * y
        det = j_xx * j_yy - j_xy * j_yx
        ok = np.abs(det) > 1e-12
        safe_det = np.where(ok, det, 1.0)
        x = x - np.where(ok, (j_yy * fx - j_xy * fy) / safe_det, 0.0)
        y = y - np.where(ok, (j_xx * fy - j_yx * fx) / safe_det, 0.0)
    return x, y


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Camera:
    """A Nerfies camera. Arrays are float64 and read-only; construct with keywords.

    Attributes:
      orientation: (3, 3) world-to-camera rotation; rows are the camera x, y, z axes in world.
      position: (3,) camera centre in world.
      focal_length: pixels (x direction).
      principal_point: (2,) pixels (continuous coordinates, see the module docstring).
      skew: pixels per unit normalised y added to u.
      pixel_aspect_ratio: fy / fx.
      radial_distortion: (3,) k1, k2, k3.
      tangential_distortion: (2,) p1, p2.
      image_size: (width, height) in pixels.
    """

    orientation: np.ndarray
    position: np.ndarray
    focal_length: float
    principal_point: np.ndarray
    skew: float = 0.0
    pixel_aspect_ratio: float = 1.0
    radial_distortion: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    tangential_distortion: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)
        put("orientation", _frozen_array(self.orientation, (3, 3), "orientation"))
        put("position", _frozen_array(self.position, (3,), "position"))
        put("principal_point", _frozen_array(self.principal_point, (2,), "principal_point"))
        put("radial_distortion", _frozen_array(self.radial_distortion, (3,), "radial_distortion"))
        put(
            "tangential_distortion",
            _frozen_array(self.tangential_distortion, (2,), "tangential_distortion"),
        )
        for name in ("focal_length", "skew", "pixel_aspect_ratio"):
            put(name, float(_frozen_array(getattr(self, name), (), name)))
        size = tuple(np.atleast_1d(np.asarray(self.image_size, dtype=object)).tolist())
        if len(size) == 2 and all(_is_number(v) and float(v).is_integer() for v in size):
            size = (int(size[0]), int(size[1]))
        put("image_size", size)
        _check_values(self.orientation, self.focal_length, self.pixel_aspect_ratio, size, "Camera")

    # ---------------------------------------------------------------- JSON
    @classmethod
    def from_dict(cls, raw: Any, source: str = "camera") -> Camera:
        """Parses and validates a dict in the capture-format schema.

        `skew`, `pixel_aspect_ratio` and the distortions may be missing (0, 1, zeros); unknown
        keys are ignored. Raises ValueError naming `source`, the field, what was found and
        what was expected.
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"{source}: found {_short(raw)}, expected a JSON object (a camera)")
        values = {field: _parse_field(raw, field, source) for field in _SCHEMA}
        _check_values(
            values["orientation"],
            values["focal_length"],
            values["pixel_aspect_ratio"],
            values["image_size"],
            source,
        )
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Camera:
        """Reads `camera/ID.json`. Raises FileNotFoundError, or ValueError naming the file.

        The file must be UTF-8 JSON without a key repeated in one object.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: file not found, expected a camera") from None
        except OSError as e:
            raise ValueError(
                f"{path}: cannot read the file ({e.strerror or e}), expected a camera"
            ) from None
        return cls.from_dict(strict_json.parse(data, path, "a camera"), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The capture-format schema: plain floats and lists, image_size as ints."""
        return {
            "orientation": self.orientation.tolist(),
            "position": self.position.tolist(),
            "focal_length": self.focal_length,
            "principal_point": self.principal_point.tolist(),
            "skew": self.skew,
            "pixel_aspect_ratio": self.pixel_aspect_ratio,
            "radial_distortion": self.radial_distortion.tolist(),
            "tangential_distortion": self.tangential_distortion.tolist(),
            "image_size": list(self.image_size),
        }

    def to_json(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    # ---------------------------------------------------------------- properties
    @property
    def width(self) -> int:
        return self.image_size[0]

    @property
    def height(self) -> int:
        return self.image_size[1]

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width), the shape of an image array."""
        return self.image_size[1], self.image_size[0]

    @property
    def optical_axis(self) -> np.ndarray:
        """(3,) the camera z axis in world."""
        return self.orientation[2]

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.radial_distortion) or np.any(self.tangential_distortion))

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsics [[f, skew, cx], [0, f * pixel_aspect_ratio, cy], [0, 0, 1]].

        Maps distorted normalised coordinates (xd, yd, 1) to continuous pixel coordinates.
        """
        cx, cy = self.principal_point
        f = self.focal_length
        return np.array([[f, self.skew, cx], [0.0, f * self.pixel_aspect_ratio, cy], [0, 0, 1]])

    # ---------------------------------------------------------------- geometry
    def scale(self, s: float) -> Camera:
        """The camera of `rgb/{s}x`: focal length, principal point and skew divided by `s`.

        Skew is in pixels like the focal length, so it scales too (Nerfies leaves it, which
        only matters for skew != 0).

        The image size becomes `(round(width / s), round(height / s))` with Python's `round`
        (halves go to the even integer, as in Nerfies: 101 / 2 -> 50, 75 / 2 -> 38).
        Distortion acts on normalised coordinates and is unchanged.
        """
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"Camera.scale: found s = {s!r}, expected a finite number > 0")
        return dataclasses.replace(
            self,
            focal_length=self.focal_length / s,
            skew=self.skew / s,
            principal_point=self.principal_point / s,
            image_size=(round(self.width / s), round(self.height / s)),
        )

    def points_to_local(self, points: np.ndarray) -> np.ndarray:
        """points: (..., 3) world -> (..., 3) camera coordinates R (X - position)."""
        points = np.asarray(points, dtype=np.float64)
        return (points - self.position) @ self.orientation.T

    def depth(self, points: np.ndarray) -> np.ndarray:
        """points: (..., 3) world -> (...,) camera z (distance along the optical axis)."""
        points = np.asarray(points, dtype=np.float64)
        return (points - self.position) @ self.optical_axis

    def project(self, points: np.ndarray) -> np.ndarray:
        """points: (..., 3) world -> (..., 2) continuous pixel coordinates (u, v).

        The centre of pixel index (i, j) is (i + 0.5, j + 0.5). Distortion is applied.
        Points with camera z <= 0 give meaningless (or non-finite) results: check `depth`.
        """
        local = self.points_to_local(points)
        x, y = local[..., 0] / local[..., 2], local[..., 1] / local[..., 2]
        if self.has_distortion:
            x, y = _distort(x, y, self.radial_distortion, self.tangential_distortion)
        u = self.focal_length * x + self.skew * y + self.principal_point[0]
        v = self.focal_length * self.pixel_aspect_ratio * y + self.principal_point[1]
        return np.stack([u, v], axis=-1)

    def pixels_to_local_directions(self, pixels: np.ndarray) -> np.ndarray:
        """pixels: (..., 2) continuous coordinates -> (..., 3) camera-space (x, y, 1) rays.

        Undoes K and the distortion (Newton); the result has z = 1, it is not normalised.
        """
        pixels = np.asarray(pixels, dtype=np.float64)
        if pixels.shape[-1:] != (2,):
            raise ValueError(f"pixels: found shape {pixels.shape}, expected (..., 2)")
        y = (pixels[..., 1] - self.principal_point[1]) / (
            self.focal_length * self.pixel_aspect_ratio
        )
        x = (pixels[..., 0] - self.principal_point[0] - self.skew * y) / self.focal_length
        if self.has_distortion:
            x, y = _undistort(x, y, self.radial_distortion, self.tangential_distortion)
        return np.stack([x, y, np.ones_like(x)], axis=-1)

    def pixels_to_rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pixels: (..., 2) continuous coordinates -> origins (..., 3), unit directions (..., 3).

        Pass `get_pixel_centers()` (or index + 0.5) for rays through pixel centres.
        Results are float64 whatever the input dtype.
        """
        local = self.pixels_to_local_directions(pixels)
        directions = local @ self.orientation  # R^T applied to each row vector
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        origins = np.broadcast_to(self.position, directions.shape).copy()
        return origins, directions

    def get_pixel_centers(self) -> np.ndarray:
        """(height, width, 2) array whose [j, i] entry is (i + 0.5, j + 0.5)."""
        u = np.arange(self.width, dtype=np.float64) + 0.5
        v = np.arange(self.height, dtype=np.float64) + 0.5
        uu, vv = np.meshgrid(u, v)
        return np.stack([uu, vv], axis=-1)


# -------------------------------------------------------------------- rendering paths
def look_at_rotation(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3, 3) orientation of a camera at `position` looking at `target`.

    The optical axis (z) points at the target and `up` appears upright: its projection onto
    the image plane points along -y (up in the image). Raises ValueError when the target is
    at the position or `up` is parallel to the viewing direction.
    """
    position, target, up = (np.asarray(a, dtype=np.float64) for a in (position, target, up))
    z = target - position
    if np.linalg.norm(z) < 1e-9:
        raise ValueError(f"look_at: found target == position ({position}), expected distinct")
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)  # camera right: z x up, since y = -up and x = y x z
    if not np.linalg.norm(x) > 1e-9 * np.linalg.norm(up):
        raise ValueError(f"look_at: found up {up} parallel to the view direction {z}")
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def look_at(
    position: np.ndarray,
    target: np.ndarray,
    up: np.ndarray,
    *,
    focal_length: float,
    image_size: tuple[int, int],
    principal_point: np.ndarray | None = None,
    **intrinsics: Any,
) -> Camera:
    """A camera at `position` looking at `target` with `up` upright (see `look_at_rotation`).

    The principal point defaults to the image centre (width / 2, height / 2), so the target
    projects there. `intrinsics` are the other Camera fields (skew, distortions, ...).
    """
    if principal_point is None:
        principal_point = np.array([image_size[0] / 2.0, image_size[1] / 2.0])
    return Camera(
        orientation=look_at_rotation(position, target, up),
        position=np.asarray(position, dtype=np.float64),
        focal_length=focal_length,
        principal_point=principal_point,
        image_size=image_size,
        **intrinsics,
    )


def orbit_path(
    camera: Camera, target: np.ndarray, up: np.ndarray, num_frames: int, angle: float = 2 * np.pi
) -> list[Camera]:
    """`num_frames` cameras turning `camera.position` about the axis `up` through `target`.

    Frame n is at angle `angle * n / num_frames` (the end point is excluded, so a full circle
    loops) and looks at `target` with `up` upright; intrinsics are `camera`'s.
    """
    target = np.asarray(target, dtype=np.float64)
    axis = np.asarray(up, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    offset = camera.position - target
    cameras = []
    for n in range(num_frames):
        theta = angle * n / num_frames
        # Rodrigues' rotation of `offset` about `axis` by theta.
        rotated = (
            offset * np.cos(theta)
            + np.cross(axis, offset) * np.sin(theta)
            + axis * (axis @ offset) * (1.0 - np.cos(theta))
        )
        position = target + rotated
        cameras.append(
            dataclasses.replace(
                camera, position=position, orientation=look_at_rotation(position, target, up)
            )
        )
    return cameras
