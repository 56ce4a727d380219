# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Trackers' rotation and camera conventions, converted to flamenerf's (OpenCV camera axes).

flamenerf's `Camera` maps world points into camera axes x right, y down, z forward (OpenCV);
trackers write OpenGL camera-to-world matrices (VHAP), OpenCV ones (INSTA), OpenCV
world-to-camera blocks {R, t, K} (metrical-tracker, IMavatar after a flip) and 6-D rotations
(PyTorch3D's convention, metrical-tracker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.parsing import checked_camera
from flamenerf.geometry.camera import Camera

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # negates the camera y and z axes


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


def rotation_6d_to_axis_angle(d6: np.ndarray, source: Path | str, field: str) -> np.ndarray:
    """(k * 6,) 6-D rotations -> (k * 3,) axis-angle vectors; degenerate 6-D vectors refused."""
    pairs = d6.reshape(-1, 2, 3)
    a1, a2 = pairs[:, 0], pairs[:, 1]
    if np.any(np.linalg.norm(a1, axis=-1) < 1e-9) or np.any(
        np.linalg.norm(np.cross(a1, a2), axis=-1) < 1e-9
    ):
        raise StepError(f"{source}: field '{field}': a 6-D rotation with parallel or zero vectors")
    return Rotation.from_matrix(rotation_6d_to_matrix(d6.reshape(-1, 6))).as_rotvec().reshape(-1)


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
    return checked_camera(
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
    return checked_camera(
        source,
        orientation=rotation,
        position=-rotation.T @ translation,
        focal_length=k[0, 0],
        pixel_aspect_ratio=k[1, 1] / k[0, 0] if k[0, 0] else 0.0,
        skew=k[0, 1],
        principal_point=k[:2, 2],
        image_size=image_size,
    )
