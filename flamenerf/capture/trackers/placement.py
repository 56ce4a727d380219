# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Placing the tracked FLAME head in the capture's world: `to_world` and per-frame poses.

The modes (`--placement`; the rules are in the `import-flame` help):
  * the capture has no cameras: the tracker's cameras are written, `to_world` is the tracker's
    own FLAME-to-world map; the same when the capture's cameras equal the tracker's.
  * similarity: Umeyama on the camera centres (tracker world -> capture world).
  * per-frame: each frame's camera-relative head pose is kept in the capture's camera of that
    frame (from the tracker's camera, or from DECA's weak perspective); one scale and a still
    head position are fit by linear least squares.
`place` chooses (auto: similarity when the tracker's camera centres span a plane) and runs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.capture_side import capture_cameras, capture_image_size
from flamenerf.capture.trackers.conventions import OPENGL_TO_OPENCV
from flamenerf.capture.trackers.similarity import Similarity, scaling, umeyama
from flamenerf.capture.trackers.track import Track, TrackerFrame, WeakPerspective
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera

PLACEMENTS = ("auto", "similarity", "per-frame")
DECA_CROP = 224  # DECA's crop size in pixels
DEGENERATE_SPREAD = 1e-3  # camera centres spanning less (relative to distance) are a line/point
SAME_CAMERA_TOLERANCE = 1e-6


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
    so a frame's posed root joint is `root_joints + translation` (`posed_roots`).
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


def posed_roots(roots: np.ndarray, params: Sequence[flame.FlameParams]) -> np.ndarray:
    """(N, 3) root joints after each frame's translation (FLAME space); `roots` (N, 3)."""
    return roots + np.stack([_translation(p) for p in params])


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
            global_pose=Rotation.from_matrix(mean.T @ orientation).as_rotvec(),
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


def place(
    mode: str,
    track: Track,
    frames: Sequence[TrackerFrame],
    params: list[flame.FlameParams],
    roots: np.ndarray,
    capture: Path,
    ids: Sequence[str],
) -> tuple[Similarity, list[flame.FlameParams], dict[str, Camera] | None, np.ndarray]:
    """Places the head of the matched `frames` (capture `ids`) in the capture's world.

    Args:
      mode: one of PLACEMENTS.
      track: the tracker's output (for its flame_scale).
      frames: the tracker frames of `ids`; `params` their FLAME parameters (after --identity
        and the cut to the model), `roots` (N, 3) their unposed root joints.

    Returns:
      (to_world, parameters, cameras to write or None, (N, 3) camera positions in the world).
    """
    base = scaling(track.flame_scale)
    tracked = [f.camera for f in frames]
    has_cameras = all(c is not None for c in tracked)
    existing = capture_cameras(capture, ids)
    if existing is None:
        if not has_cameras:
            raise StepError(
                f"{capture / 'camera'}: no cameras, and the tracker gives none (DECA's weak "
                "perspective is not a pinhole camera): run the cameras step first"
            )
        cameras = {
            i: _fit_to_image(c, capture_image_size(capture, i), f"camera of frame '{i}'")
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
        heads = track.flame_scale * posed_roots(roots, params)
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
