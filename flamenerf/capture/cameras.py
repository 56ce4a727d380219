# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Cameras by structure from motion on rgb/1x (pycolmap), or from an existing COLMAP model.

    python -m flamenerf.capture cameras CAPTURE [--colmap_model DIR]
        [--camera_model SIMPLE_RADIAL] [--matcher sequential|exhaustive]

Structure from motion (without --colmap_model): SIFT features of rgb/1x/ID.png for the ids of
dataset.json, one camera shared by all frames (the single phone) of --camera_model, sequential
(each frame with its neighbours in time; the default) or exhaustive matching, incremental
mapping; the model registering the most frames is used. Work files live in CAPTURE/colmap/:
database.db, sparse/N/ (COLMAP binary models) and run.json (the options, the chosen model and a
digest of every image). A rerun with the same options and images reuses that model, so it gives
the same result; anything else starts structure from motion again from scratch.

The default camera model, SIMPLE_RADIAL (f, cx, cy, k), is COLMAP's: one focal length, since a
phone's pixels are square, and one distortion term, the most stable to estimate from a short
arc of views (with RADIAL's k1, k2 an occasional run ends with wild distortion). RADIAL or
OPENCV suit lenses with stronger distortion.

Import (--colmap_model DIR): a COLMAP model in text (cameras.txt, images.txt, points3D.txt) or
binary (.bin) form. Its images are matched to frame ids by file name without extension
("rgb/1x/000012.png" and "000012.jpg" are frame "000012"); each must have the size of
rgb/1x/ID.png. Images of other names are ignored.

Conversion to camera/ID.json: COLMAP's cam_from_world (R, t) maps world to camera like the
spec, so orientation = R and position = -R^T t. COLMAP, like the spec, puts the centre of pixel
(u, v) at (u + 0.5, v + 0.5), so the principal point is copied as is. focal_length = fx and
pixel_aspect_ratio = fy / fx (1 for the models with a single f: SIMPLE_PINHOLE, SIMPLE_RADIAL,
RADIAL), which keeps PINHOLE and OPENCV exact. Distortion uses the spec's (OpenCV's)
formula: SIMPLE_RADIAL k, RADIAL k1 k2, OPENCV k1 k2 p1 p2, FULL_OPENCV k1 k2 p1 p2 k3 (import
only; its rational terms k4..k6 must be zero). Other COLMAP camera models are refused.

scene.json (merged, the `flame` section untouched): from the model's 3D points as in Nerfies'
capture notebook. Points outside the central 95% on any axis are outliers; `center` is the
middle of the box of the other points and `scale` = 2 / the box's diagonal, so the box fits in
the unit sphere. `near` / `far` are the 0.1% / 99.9% depth percentiles of the inlier points in
each camera's view, the smallest near times 0.8 and the largest far times 1.2, in normalised
units.

Frames that do not register are listed, their camera/ID.json (from an earlier run) deleted, and
they are removed from dataset.json and metadata.json. Fewer than half of the frames registered
is an error.
"""

from __future__ import annotations

import argparse
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from flamenerf.capture import io
from flamenerf.capture.io import StepError
from flamenerf.geometry.camera import Camera
from flamenerf.io.paths import local_path_argument

# COLMAP camera models the spec can hold: parameter names in COLMAP's order.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k1"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
}
SFM_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
MATCHERS = ("sequential", "exhaustive")
MIN_REGISTERED_FRACTION = 0.5  # fewer registered frames than this fraction is an error
MIN_REGISTERED = 2
MIN_POINTS = 10  # 3D points needed to choose the scene bounds
INLIER_FRACTION = 0.95  # central fraction of the points kept on each axis
DEPTH_QUANTILES = (0.001, 0.999)  # per-camera near / far depth percentiles
NEAR_MARGIN, FAR_MARGIN = 0.8, 1.2
SEED = 0
# COLMAP's default (16 degrees) asks more of the first two frames than a face capture's arc
# (+-20 degrees of yaw) gives: the mapper then relaxes it and may start from a poor pair.
INIT_MIN_TRI_ANGLE = 8.0
MODEL_FILES = ("cameras", "images", "points3D")


# --------------------------------------------------------------------------------------------
# COLMAP cameras -> spec cameras.


def camera_from_colmap(
    model: str,
    params: np.ndarray,
    image_size: tuple[int, int],
    rotation: np.ndarray,
    translation: np.ndarray,
    source: str = "COLMAP model",
) -> Camera:
    """A spec camera from a COLMAP camera and an image's cam_from_world pose.

    Args:
      model: the COLMAP camera model name (a key of PARAMETERS).
      params: (P,) the COLMAP parameters, in the order of PARAMETERS[model].
      image_size: (width, height) in pixels.
      rotation: (3, 3) world-to-camera rotation of cam_from_world.
      translation: (3,) translation of cam_from_world (X_cam = R X_world + t).
      source: names the model in errors.

    Raises StepError for another camera model, a wrong parameter count, or FULL_OPENCV with
    nonzero rational terms (k4, k5, k6).
    """
    if model not in PARAMETERS:
        raise StepError(
            f"{source}: camera model {model}: expected one of {', '.join(PARAMETERS)} "
            "(the spec's distortion is OpenCV's k1, k2, k3, p1, p2)"
        )
    names = PARAMETERS[model]
    params = np.asarray(params, dtype=np.float64)
    if params.shape != (len(names),):
        raise StepError(
            f"{source}: camera model {model}: found {params.size} parameters, expected "
            f"{len(names)} ({' '.join(names)})"
        )
    value = dict(zip(names, params.tolist(), strict=True))
    if any(value.get(k, 0.0) != 0.0 for k in ("k4", "k5", "k6")):
        raise StepError(
            f"{source}: camera model FULL_OPENCV: found rational terms k4 k5 k6 = "
            f"{value['k4']} {value['k5']} {value['k6']}, expected 0 (the spec has none)"
        )
    fx = value.get("fx", value.get("f"))
    fy = value.get("fy", fx)
    rotation = np.asarray(rotation, dtype=np.float64)
    return Camera(
        orientation=rotation,
        position=-rotation.T @ np.asarray(translation, dtype=np.float64),
        focal_length=fx,
        principal_point=np.array([value["cx"], value["cy"]]),
        pixel_aspect_ratio=fy / fx,
        radial_distortion=np.array([value.get(k, 0.0) for k in ("k1", "k2", "k3")]),
        tangential_distortion=np.array([value.get(k, 0.0) for k in ("p1", "p2")]),
        image_size=image_size,
    )


def frame_id_of(image_name: str) -> str:
    """A COLMAP image name -> frame id: the file name without folders and extension."""
    return PurePosixPath(image_name.replace("\\", "/")).stem


def registered_cameras(reconstruction: Any, ids: Sequence[str], source: str) -> dict[str, Camera]:
    """Spec cameras of the registered images of a pycolmap Reconstruction whose ids are in `ids`.

    Raises StepError when two registered images map to the same frame id.
    """
    wanted = set(ids)
    cameras: dict[str, Camera] = {}
    for image in reconstruction.images.values():
        frame_id = frame_id_of(image.name)
        if frame_id not in wanted or not image.has_pose:
            continue
        if frame_id in cameras:
            raise StepError(f"{source}: two images are named like frame {frame_id}")
        colmap_camera = reconstruction.cameras[image.camera_id]
        pose = image.cam_from_world()
        cameras[frame_id] = camera_from_colmap(
            colmap_camera.model_name,
            colmap_camera.params,
            (int(colmap_camera.width), int(colmap_camera.height)),
            pose.rotation.matrix(),
            pose.translation,
            f"{source}: image {image.name}",
        )
    return cameras


def model_points(reconstruction: Any) -> np.ndarray:
    """(N, 3) world positions of a pycolmap Reconstruction's 3D points."""
    xyz = [point.xyz for point in reconstruction.points3D.values()]
    return np.array(xyz, dtype=np.float64).reshape(-1, 3)


# --------------------------------------------------------------------------------------------
# Scene bounds.


def inlier_points(points: np.ndarray, fraction: float = INLIER_FRACTION) -> np.ndarray:
    """points (N, 3) -> (M, 3): those inside the central `fraction` quantiles on every axis."""
    lower = np.quantile(points, (1.0 - fraction) / 2.0, axis=0)
    upper = np.quantile(points, 1.0 - (1.0 - fraction) / 2.0, axis=0)
    return points[np.all((points >= lower) & (points <= upper), axis=1)]


def depth_range(camera: Camera, points: np.ndarray) -> tuple[float, float] | None:
    """(near, far) depth quantiles of points (N, 3) in front of `camera` and inside its image.

    None when the camera sees none of the points.
    """
    depth = camera.depth(points)
    front = points[depth > 0]
    pixels = camera.project(front)
    inside = np.all((pixels >= 0) & (pixels <= np.array(camera.image_size)), axis=1)
    seen = depth[depth > 0][inside]
    if seen.size == 0:
        return None
    near, far = np.quantile(seen, DEPTH_QUANTILES)
    return float(near), float(far)


def scene_bounds(points: np.ndarray, cameras: Sequence[Camera]) -> dict[str, Any]:
    """scene.json's center (3,), scale, near and far (normalised) from points (N, 3) in world.

    See the module docstring for the recipe. Raises StepError when no camera sees an inlier.
    """
    inliers = inlier_points(points)
    lo, hi = inliers.min(axis=0), inliers.max(axis=0)
    center = (lo + hi) / 2.0
    scale = 2.0 / max(float(np.linalg.norm(hi - lo)), 1e-12)
    ranges = [r for r in (depth_range(c, inliers) for c in cameras) if r is not None]
    if not ranges:
        raise StepError("scene bounds: no camera sees any of the model's 3D points")
    near = min(r[0] for r in ranges) * NEAR_MARGIN
    far = max(r[1] for r in ranges) * FAR_MARGIN
    return {"center": center, "scale": scale, "near": near * scale, "far": far * scale}


# --------------------------------------------------------------------------------------------
# Reading a model and running structure from motion.


def import_pycolmap() -> Any:
    """The pycolmap module; StepError saying how to install it when it is missing."""
    try:
        import pycolmap
    except ImportError:
        raise StepError(
            "the cameras step needs pycolmap: pip install pycolmap==4.2.1 (the tested version)"
        ) from None
    return pycolmap


def read_model(folder: Path) -> Any:
    """A pycolmap Reconstruction read from a text or binary COLMAP model folder.

    Raises StepError naming the folder when it is missing, lacks the model files, or they
    cannot be parsed.
    """
    pycolmap = import_pycolmap()
    if not folder.is_dir():
        raise StepError(f"{folder}: COLMAP model folder not found")
    missing = [
        name
        for name in MODEL_FILES
        if not (folder / f"{name}.bin").is_file() and not (folder / f"{name}.txt").is_file()
    ]
    if missing:
        raise StepError(
            f"{folder}: not a COLMAP model: found no "
            + ", ".join(f"{name}.txt/.bin" for name in missing)
            + " (expected cameras, images and points3D as .txt or .bin)"
        )
    try:
        return pycolmap.Reconstruction(folder)
    except (ValueError, RuntimeError) as error:
        message = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise StepError(f"{folder}: cannot read the COLMAP model ({message})") from None


def image_digests(capture: Path, ids: Sequence[str]) -> dict[str, str]:
    """{id: sha256 of rgb/1x/ID.png} (what run.json records to recognise a rerun)."""
    return {i: io.file_sha256(capture / "rgb" / "1x" / f"{i}.png") for i in ids}


def reusable_model(work: Path, run: Mapping[str, Any]) -> Path | None:
    """The model folder of an earlier complete run with these options and images, or None.

    `run` is the new run.json; the earlier run may have had more images (frames it failed to
    register are dropped from dataset.json, so a rerun asks for a subset).
    """
    path = work / "run.json"
    if not path.is_file():
        return None
    try:
        old = io.read_json(path)
        same = all(old[k] == run[k] for k in ("camera_model", "matcher")) and all(
            old["images"].get(i) == digest for i, digest in run["images"].items()
        )
        model = work / old["model"]
    except (StepError, KeyError, TypeError, AttributeError):
        return None
    return model if same and model.is_dir() else None


def run_sfm(capture: Path, ids: Sequence[str], camera_model: str, matcher: str) -> Any:
    """Structure from motion on rgb/1x/ID.png (ids in time order) -> a pycolmap Reconstruction.

    Work files in CAPTURE/colmap (see the module docstring). Raises StepError when no model
    comes out.
    """
    pycolmap = import_pycolmap()
    work = capture / "colmap"
    io.check_output_inside(capture, work)
    run = {"camera_model": camera_model, "matcher": matcher, "images": image_digests(capture, ids)}
    model = reusable_model(work, run)
    if model is not None:
        print(f"{work}: reusing {model} (same options and images; delete {work} to redo SfM)")
        return read_model(model)
    (work / "run.json").unlink(missing_ok=True)  # an interrupted run is never reused
    shutil.rmtree(work / "sparse", ignore_errors=True)
    for name in ("database.db", "database.db-wal", "database.db-shm"):
        (work / name).unlink(missing_ok=True)
    (work / "sparse").mkdir(parents=True)
    database, images = work / "database.db", capture / "rgb" / "1x"

    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2  # errors only: COLMAP's INFO log is very long
    try:
        pycolmap.set_random_seed(SEED)
        print(f"{work}: extracting SIFT features of {len(ids)} frames")
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = camera_model
        names = [f"{i}.png" for i in ids]
        # Importing first numbers the images in time order (the threaded extraction alone
        # numbers them in whatever order its threads finish, and the mapper depends on it).
        pycolmap.Database.open(database).close()
        mode = pycolmap.CameraMode.SINGLE
        pycolmap.import_images(database, images, mode, names, reader)
        pycolmap.extract_features(
            database, images, image_names=names, camera_mode=mode, reader_options=reader
        )
        print(f"{work}: {matcher} matching")
        if matcher == "sequential":
            pycolmap.match_sequential(database)
        else:
            pycolmap.match_exhaustive(database)
        options = pycolmap.IncrementalPipelineOptions()
        options.random_seed = SEED
        options.mapper.init_min_tri_angle = INIT_MIN_TRI_ANGLE
        options.min_model_size = min(options.min_model_size, len(ids))
        # The callback runs once per frame the mapper tries next (more than once for some).
        with tqdm(desc="mapping: frames tried", unit="frame") as bar:
            models = pycolmap.incremental_mapping(
                database,
                images,
                work / "sparse",
                options=options,
                next_image_callback=lambda: bar.update(1),
            )
    finally:
        pycolmap.logging.minloglevel = level
    if not models:
        raise StepError(
            f"{images}: structure from motion registered no frames (too little texture or "
            "overlap between frames?)"
        )
    index, reconstruction = max(models.items(), key=lambda item: item[1].num_reg_images())
    io.write_json(work / "run.json", {**run, "model": f"sparse/{index}"})
    return reconstruction


# --------------------------------------------------------------------------------------------
# The step.


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file (header only); StepError naming a missing file."""
    if not path.is_file():
        raise StepError(f"{path}: frame image not found")
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise StepError(f"{path}: cannot read the image ({error})") from None


def read_frames(capture: Path) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) of a capture whose frames all have rgb/1x/ID.png; else StepError."""
    if not capture.is_dir():
        raise StepError(f"{capture}: capture folder not found")
    if not (capture / "rgb" / "1x").is_dir():
        raise StepError(f"{capture / 'rgb' / '1x'}: folder not found (run the `frames` step)")
    train, val = io.read_split(capture)
    for frame_id in [*train, *val]:
        image_size(capture / "rgb" / "1x" / f"{frame_id}.png")
    return train, val


def check_image_sizes(capture: Path, cameras: Mapping[str, Camera], source: str) -> None:
    """Raises StepError when rgb/1x/ID.png does not have its camera's image_size."""
    for frame_id, camera in cameras.items():
        path = capture / "rgb" / "1x" / f"{frame_id}.png"
        size = image_size(path)
        if size != camera.image_size:
            raise StepError(
                f"{path}: found {size[0]}x{size[1]} pixels, but {source} has a camera of "
                f"{camera.width}x{camera.height} for it (expected the model of these images)"
            )


def compute_cameras(
    capture: str | Path,
    colmap_model: str | Path | None = None,
    camera_model: str = "SIMPLE_RADIAL",
    matcher: str = "sequential",
) -> tuple[dict[str, Camera], list[str]]:
    """Runs the step (see the module docstring); returns (cameras by id, unregistered ids)."""
    capture = Path(capture)
    if camera_model not in SFM_MODELS:
        raise StepError(f"--camera_model {camera_model}: expected one of {', '.join(SFM_MODELS)}")
    if matcher not in MATCHERS:
        raise StepError(f"--matcher {matcher}: expected one of {', '.join(MATCHERS)}")
    train, val = read_frames(capture)
    ids = sorted([*train, *val])
    if colmap_model is None:
        reconstruction = run_sfm(capture, ids, camera_model, matcher)
        source = str(capture / "colmap")
    else:
        reconstruction = read_model(Path(colmap_model))
        source = str(colmap_model)
    cameras = registered_cameras(reconstruction, ids, source)
    check_image_sizes(capture, cameras, source)
    unregistered = [i for i in ids if i not in cameras]
    needed = max(MIN_REGISTERED, math.ceil(MIN_REGISTERED_FRACTION * len(ids)))
    kept_train = [i for i in train if i in cameras]
    if len(cameras) < needed or not kept_train:
        raise StepError(
            f"{source}: only {len(cameras)} of {len(ids)} frames registered ({len(kept_train)} "
            f"training), expected at least {needed}; unregistered: {', '.join(unregistered)}"
        )
    points = model_points(reconstruction)
    if len(points) < MIN_POINTS:
        raise StepError(
            f"{source}: points3D: found {len(points)} 3D points, expected at least {MIN_POINTS} "
            "to choose the scene's center, scale, near and far"
        )
    bounds = scene_bounds(points, [cameras[i] for i in ids if i in cameras])

    for frame_id, camera in cameras.items():
        io.write_json(capture / "camera" / f"{frame_id}.json", camera.to_dict())
    for frame_id in unregistered:
        (capture / "camera" / f"{frame_id}.json").unlink(missing_ok=True)
    io.write_split(capture, kept_train, [i for i in val if i in cameras])
    io.update_scene(capture, **bounds)

    first = next(iter(cameras.values()))
    print(
        f"{capture}: {len(cameras)} of {len(ids)} frames registered; focal length "
        f"{first.focal_length:.2f} px (aspect {first.pixel_aspect_ratio:.4f}), principal point "
        f"{first.principal_point.round(2).tolist()}, radial {first.radial_distortion.round(5)}, "
        f"tangential {first.tangential_distortion.round(5)}; {len(points)} points, mean "
        f"reprojection error {reconstruction.compute_mean_reprojection_error():.3f} px"
    )
    print(
        f"scene.json: center {np.round(bounds['center'], 4).tolist()}, scale "
        f"{bounds['scale']:.4f}, near {bounds['near']:.4f}, far {bounds['far']:.4f}"
    )
    if unregistered:
        print(
            f"unregistered frames ({len(unregistered)}), removed from dataset.json: "
            + ", ".join(unregistered)
        )
    return cameras, unregistered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "capture", type=local_path_argument, help="the capture folder (after `frames`)"
    )
    parser.add_argument(
        "--colmap_model",
        type=local_path_argument,
        default=None,
        help="import this COLMAP model (text or binary) instead of running SfM",
    )
    parser.add_argument(
        "--camera_model",
        default="SIMPLE_RADIAL",
        choices=SFM_MODELS,
        help="COLMAP camera model for SfM, shared by all frames (SIMPLE_RADIAL: f, cx, cy, k)",
    )
    parser.add_argument(
        "--matcher",
        default="sequential",
        choices=MATCHERS,
        help="feature matching: neighbouring frames in time, or all pairs (sequential)",
    )


def run(args: argparse.Namespace) -> int:
    compute_cameras(args.capture, args.colmap_model, args.camera_model, args.matcher)
    return 0
