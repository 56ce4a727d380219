# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""FLAME fitting to 2D face landmarks, given the cameras -> flame/, scene.json's flame section.

    python -m flamenerf.capture fit CAPTURE [--landmarks_from detector|PATH]
        [--flame_model P] [--landmark_embedding F] [--steps N] [--num_shape S]
        [--num_expression E] [--smoothness W] [--detector_model TASK] [--quiet]

Needs camera/ID.json for every frame and a FLAME model: --flame_model (recorded in
scene.json) or scene.json's `flame.model`, with its landmark embedding or --landmark_embedding
(the official flame_static_embedding.pkl or metrical-tracker's
mediapipe_landmark_embedding.npz).

1. Landmarks, cached in CAPTURE/landmarks/ID.json (see `flamenerf.capture.landmarks`): the
   MediaPipe detector on every rgb/1x frame not yet cached (so an interrupted run resumes), or
   with --landmarks_from PATH copied from a folder of ID.json files or one JSON file
   {ID: entry}.
2. The fit, in JAX with L-BFGS (optax): one identity (shape) for all frames; per frame the
   expression, jaw pose and head pose (global rotation and translation); the placement of
   FLAME space in the cameras' world (`to_world`: rotation, translation and, when the cameras
   see the head from different places, scale). The energy is a Huber reprojection loss of the
   model's landmarks projected by the capture's cameras (residuals in thousandths of the
   image size), L2 priors on every group and L2 smoothness between consecutive frames (ids in
   sorted order, as `frames` writes them). Frames without a face are held by the smoothness
   and the priors. Rigid parameters are fitted alone for the first quarter of the steps. The
   prior on the per-frame head rotation is strong (the shared placement carries the mean):
   it settles what one view cannot, how far along its axis the face is.
   Start: the head at the triangulated landmark centroid, facing the cameras, sized from the
   landmarks' spread (a single view assumes metric cameras: scale 1).
3. Output: flame/ID.json for every frame, scene.json's flame section (model, to_world,
   num_expression), CAPTURE/fit_report.json with the reprojection error of every frame in
   pixels (1x), and a summary table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from flamenerf import cli_args
from flamenerf.capture import io, landmarks
from flamenerf.capture.io import StepError
from flamenerf.datasets.capture import read_camera
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.io import paths

# Units: parameters of similar size (a few units) keep the problem well conditioned.
TRANSLATION_UNIT = 0.01  # metres of FLAME space per translation parameter (1 cm)
RESIDUAL_UNIT = 1e-3  # reprojection residuals are measured in thousandths of max(width, height)
HUBER_DELTA = 4.0  # residual (in RESIDUAL_UNIT) where the Huber loss turns linear
RIGID_FRACTION = 0.25  # share of the steps fitting only the rigid parameters
CHUNK = 50  # optimisation steps per progress-bar update
MIN_RAY_SPREAD = 1e-3  # mean sin^2 of the rays' angle to their mean needed to triangulate
MAX_SHAPE, MAX_EXPRESSION = 100, 50  # default coefficient counts (at most the model's)
DIGESTS = "images.sha256.json"  # in landmarks/: {id: sha256 of the image detected on}
# The fit's graphs are small and run for well under a second: compile them quickly.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclasses.dataclass(frozen=True)
class Weights:
    """Energy weights (the data term is summed over landmarks, averaged over frames).

    Priors are sums of squares (translation in TRANSLATION_UNIT); per-frame priors and
    smoothness are averaged over frames and consecutive-frame pairs.
    """

    shape: float = 2.0
    expression: float = 1.0
    jaw: float = 20.0
    global_pose: float = 3000.0
    translation: float = 20.0
    smoothness: float = 1.0


# --------------------------------------------------------------------------------------------
# Cameras in JAX.


class CameraArrays(NamedTuple):
    """T cameras (the capture's Nerfies cameras, world frame, 1x) as stacked float32 arrays.

    Attributes:
      rotation: (T, 3, 3) world-to-camera; position: (T, 3); focal: (T,);
      principal_point: (T, 2); skew: (T,); aspect: (T,) pixel aspect ratio;
      radial: (T, 3) k1, k2, k3; tangential: (T, 2) p1, p2.
    """

    rotation: jax.Array
    position: jax.Array
    focal: jax.Array
    principal_point: jax.Array
    skew: jax.Array
    aspect: jax.Array
    radial: jax.Array
    tangential: jax.Array


def camera_arrays(cameras: Sequence[Camera]) -> CameraArrays:
    """Stacks T cameras into CameraArrays."""

    def stack(field: str) -> jax.Array:
        return jnp.asarray(np.stack([getattr(c, field) for c in cameras]), jnp.float32)

    return CameraArrays(
        rotation=stack("orientation"),
        position=stack("position"),
        focal=stack("focal_length"),
        principal_point=stack("principal_point"),
        skew=stack("skew"),
        aspect=stack("pixel_aspect_ratio"),
        radial=stack("radial_distortion"),
        tangential=stack("tangential_distortion"),
    )


def project(cameras: CameraArrays, points: jax.Array) -> jax.Array:
    """`Camera.project` batched over frames: points (T, L, 3) world -> (T, L, 2) pixels.

    Camera z is clamped at 1e-6 so that points behind a camera stay finite.
    """
    local = jnp.einsum("tab,tlb->tla", cameras.rotation, points - cameras.position[:, None])
    z = jnp.maximum(local[..., 2], 1e-6)
    x, y = local[..., 0] / z, local[..., 1] / z
    k1, k2, k3 = (cameras.radial[:, None, i] for i in range(3))
    p1, p2 = (cameras.tangential[:, None, i] for i in range(2))
    r2 = x * x + y * y
    d = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * d + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * d + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y)
    f = cameras.focal[:, None]
    u = f * xd + cameras.skew[:, None] * yd + cameras.principal_point[:, None, 0]
    v = f * cameras.aspect[:, None] * yd + cameras.principal_point[:, None, 1]
    return jnp.stack([u, v], axis=-1)


# --------------------------------------------------------------------------------------------
# The model restricted to its landmarks.


def landmark_model(model: flame.FlameModel) -> flame.FlameModel:
    """A FlameModel whose `forward(...).landmarks` equal the full model's, at a fraction of
    the cost.

    Its vertices are the K corners of the landmark faces followed by 5 joint proxies whose
    template and blendshapes are the full model's regressed by `J_regressor` (joint
    regression is linear, so the proxies regress the same joints exactly). Its vertices other
    than the landmarks' are meaningless.

    Returns:
      A model with K + 5 vertices and L faces (one per landmark).
    """
    arrays = {k: np.asarray(v) for k, v in dataclasses.asdict(model).items()}
    corners = arrays["faces"][arrays["lmk_faces_idx"]]  # (L, 3)
    used, inverse = np.unique(corners, return_inverse=True)
    j = arrays["j_regressor"]  # (5, V)

    def with_proxies(name: str, proxies: np.ndarray) -> jax.Array:
        return jnp.asarray(np.concatenate([arrays[name][used], proxies]), jnp.float32)

    return flame.FlameModel(
        v_template=with_proxies("v_template", j @ arrays["v_template"]),
        shapedirs=with_proxies("shapedirs", np.einsum("jv,vcs->jcs", j, arrays["shapedirs"])),
        exprdirs=with_proxies("exprdirs", np.einsum("jv,vcs->jcs", j, arrays["exprdirs"])),
        posedirs=with_proxies("posedirs", np.zeros((5, 3, flame.NUM_POSE_FEATURES))),
        j_regressor=jnp.asarray(np.concatenate([np.zeros((5, len(used))), np.eye(5)], axis=1)),
        weights=with_proxies("weights", np.eye(5)),
        faces=jnp.asarray(inverse.reshape(corners.shape), jnp.int32),
        lmk_faces_idx=jnp.arange(corners.shape[0], dtype=jnp.int32),
        lmk_bary_coords=model.lmk_bary_coords,
    )


def rest_landmarks(model: flame.FlameModel) -> np.ndarray:
    """(L, 3) the model's landmarks at zero parameters (on the template mesh), float64."""
    corners = np.asarray(model.v_template, np.float64)[np.asarray(model.faces)]
    corners = corners[np.asarray(model.lmk_faces_idx)]  # (L, 3, 3)
    return np.einsum("lkc,lk->lc", corners, np.asarray(model.lmk_bary_coords, np.float64))


# --------------------------------------------------------------------------------------------
# Initial placement.


@dataclasses.dataclass(frozen=True)
class Placement:
    """FLAME space -> world: X_world = scale * rotation @ X + translation.

    Attributes:
      scale: world units per metre; rotation: (3, 3); translation: (3,);
      fit_scale: whether the views constrain the scale (else it stays fixed).
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    fit_scale: bool


def initial_placement(
    cameras: Sequence[Camera], observed: np.ndarray, valid: np.ndarray, rest: np.ndarray
) -> Placement:
    """A start for the fit from the landmarks' centroid and spread in each view.

    Args:
      cameras: T cameras.
      observed: (T, L, 2) landmark pixels (ignored where not `valid`).
      valid: (T,) bool, frames with landmarks (at least one).
      rest: (L, 3) the model's landmarks at zero parameters.

    The head centre is the point nearest to the rays through the per-frame landmark
    centroids when they cross at an angle; the scale makes the model's landmark spread (in
    its face plane) match the observed spread at that depth. Otherwise (one view, or views
    from one place) the scale is 1 and the depth follows from the spread. The face looks at
    the mean camera centre, upright in the mean camera up direction.
    """
    frames = np.flatnonzero(valid)
    cams = [cameras[i] for i in frames]
    pixels = observed[frames]
    centroid_px = pixels.mean(axis=1)  # (N, 2)
    spread_px = np.sqrt(np.mean(np.sum((pixels - centroid_px[:, None]) ** 2, axis=-1), axis=1))
    rest_centre = rest.mean(axis=0)
    spread_model = math.sqrt(np.mean(np.sum((rest - rest_centre)[:, :2] ** 2, axis=-1)))
    origins = np.stack([c.position for c in cams])
    directions = np.stack([c.pixels_to_rays(p)[1] for c, p in zip(cams, centroid_px, strict=True)])
    projectors = np.eye(3) - directions[:, :, None] * directions[:, None, :]  # (N, 3, 3)
    a = projectors.sum(axis=0)
    focal = np.array([c.focal_length for c in cams])
    if len(cams) >= 2 and np.linalg.eigvalsh(a)[0] / len(cams) > MIN_RAY_SPREAD:
        centre = np.linalg.solve(a, np.einsum("nab,nb->a", projectors, origins))
        depth = np.array([c.depth(centre) for c in cams])
        scale = float(np.median(spread_px * depth / focal)) / spread_model
        fit_scale = True
    else:
        depth = focal * spread_model / spread_px
        along = depth / np.einsum("na,na->n", directions, np.stack([c.optical_axis for c in cams]))
        centre = np.mean(origins + along[:, None] * directions, axis=0)
        scale, fit_scale = 1.0, False
    forward = origins.mean(axis=0) - centre
    forward /= np.linalg.norm(forward)
    up = -np.mean(np.stack([c.orientation[1] for c in cams]), axis=0)
    up -= np.dot(up, forward) * forward
    up /= np.linalg.norm(up)
    rotation = np.column_stack([np.cross(up, forward), up, forward])
    translation = centre - scale * rotation @ rest_centre
    return Placement(scale, rotation, translation, fit_scale)


# --------------------------------------------------------------------------------------------
# The energy.


class FitData(NamedTuple):
    """What the fit sees (T frames, L landmarks).

    Attributes:
      cameras: CameraArrays of the T frames.
      observed: (T, L, 2) landmark pixels (zeros where invalid).
      valid: (T,) 1.0 for frames with landmarks, else 0.0.
      unit: (T,) pixels per residual unit (RESIDUAL_UNIT * max(width, height)).
      rotation: (3, 3), translation: (3,), scale: () the initial placement.
      fit_scale: () 1.0 when the scale is fitted, else 0.0.
    """

    cameras: CameraArrays
    observed: jax.Array
    valid: jax.Array
    unit: jax.Array
    rotation: jax.Array
    translation: jax.Array
    scale: jax.Array
    fit_scale: jax.Array


def initial_params(num_frames: int, num_shape: int, num_expression: int) -> dict[str, jax.Array]:
    """Zero parameters: `log_scale` (), `rotation` (3,) axis-angle and `translation` (3,)
    corrections of the placement; `shape` (S,); per frame `expression` (T, E), `jaw_pose`,
    `global_pose`, `translation_t` (T, 3) (translation in TRANSLATION_UNIT)."""
    zeros3 = jnp.zeros((num_frames, 3))
    return {
        "log_scale": jnp.zeros(()),
        "rotation": jnp.zeros(3),
        "translation": jnp.zeros(3),
        "shape": jnp.zeros(num_shape),
        "expression": jnp.zeros((num_frames, num_expression)),
        "jaw_pose": zeros3,
        "global_pose": zeros3,
        "translation_t": zeros3,
    }


# Per-frame parameters and the name of their weight in Weights.
PER_FRAME = {
    "expression": "expression",
    "jaw_pose": "jaw",
    "global_pose": "global_pose",
    "translation_t": "translation",
}
RIGID = ("log_scale", "rotation", "translation", "global_pose", "translation_t")


def placement(params: dict[str, jax.Array], data: FitData) -> tuple[jax.Array, ...]:
    """(scale (), rotation (3, 3), translation (3,)) of FLAME space in world."""
    scale = data.scale * jnp.exp(params["log_scale"] * data.fit_scale)
    rotation = data.rotation @ flame.rodrigues(params["rotation"])
    translation = data.translation + data.scale * TRANSLATION_UNIT * params["translation"]
    return scale, rotation, translation


def flame_params(params: dict[str, jax.Array]) -> flame.FlameParams:
    """The per-frame FlameParams (batch T) of the fit's parameters."""
    return flame.FlameParams(
        shape=params["shape"],
        expression=params["expression"],
        global_pose=params["global_pose"],
        jaw_pose=params["jaw_pose"],
        translation=TRANSLATION_UNIT * params["translation_t"],
    )


def world_landmarks(
    model: flame.FlameModel, params: dict[str, jax.Array], data: FitData
) -> jax.Array:
    """(T, L, 3) model landmarks in world."""
    points = flame.forward(model, flame_params(params)).landmarks
    scale, rotation, translation = placement(params, data)
    return scale * points @ rotation.T + translation


def residual_pixels(
    model: flame.FlameModel, params: dict[str, jax.Array], data: FitData
) -> jax.Array:
    """(T, L) distance in pixels between projected model landmarks and observations."""
    pixels = project(data.cameras, world_landmarks(model, params, data))
    return jnp.linalg.norm(pixels - data.observed, axis=-1)


def energy(
    params: dict[str, jax.Array], model: flame.FlameModel, data: FitData, weights: Weights
) -> jax.Array:
    """The fit's energy (scalar): Huber reprojection, L2 priors, L2 temporal smoothness."""
    pixels = project(data.cameras, world_landmarks(model, params, data))
    residual = (pixels - data.observed) / data.unit[:, None, None]
    huber = optax.losses.huber_loss(residual, delta=HUBER_DELTA).sum(axis=(1, 2))
    data_term = jnp.sum(data.valid * huber) / jnp.maximum(jnp.sum(data.valid), 1.0)
    mean_sq = lambda x: jnp.mean(jnp.sum(x * x, axis=-1))
    prior = weights.shape * jnp.sum(params["shape"] ** 2)
    smooth = 0.0
    for key, weight_name in PER_FRAME.items():
        weight = getattr(weights, weight_name)
        prior += weight * mean_sq(params[key])
        if params[key].shape[0] > 1:
            smooth += weights.smoothness * weight * mean_sq(jnp.diff(params[key], axis=0))
    return data_term + prior + smooth


def optimise(
    model: flame.FlameModel,
    data: FitData,
    params: dict[str, jax.Array],
    weights: Weights,
    steps: int,
    progress: bool,
) -> dict[str, jax.Array]:
    """L-BFGS (optax, backtracking line search): the rigid parameters alone for the first
    RIGID_FRACTION of the steps, then all of them."""
    from tqdm.auto import tqdm

    linesearch = optax.scale_by_backtracking_linesearch(max_backtracking_steps=20, store_grad=True)
    optimizer = optax.lbfgs(linesearch=linesearch)

    @functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
    def run(params, state, data, count, free):
        """`count` steps; `free` (0 or 1) scales the non-rigid parameters' gradients."""
        fn = lambda p: energy(p, model, data, weights)
        value_and_grad = optax.value_and_grad_from_state(fn)

        def body(_, carry):
            params, state = carry
            value, grads = value_and_grad(params, state=state)
            grads = {k: g if k in RIGID else free * g for k, g in grads.items()}
            updates, state = optimizer.update(
                grads, state, params, value=value, grad=grads, value_fn=fn
            )
            return optax.apply_updates(params, updates), state

        return jax.lax.fori_loop(0, count, body, (params, state))

    rigid_steps = int(RIGID_FRACTION * steps)
    stages = [(rigid_steps, 0.0), (steps - rigid_steps, 1.0)]
    with tqdm(total=steps, desc="fit", unit="step", disable=not progress) as bar:
        for count, free in stages:
            # A new curvature memory for each stage; strongly typed, as `run` returns it.
            state = jax.tree.map(lambda x: jnp.asarray(x, x.dtype), optimizer.init(params))
            for start in range(0, count, CHUNK):
                chunk = min(CHUNK, count - start)
                params, state = run(params, state, data, chunk, free)
                bar.update(chunk)
    return params


@functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
def evaluate(
    params: dict[str, jax.Array], model: flame.FlameModel, data: FitData
) -> dict[str, Any]:
    """The fit's result: `errors` (T, L) reprojection error in pixels,
    `placement` (scale, rotation, translation) and the per-frame `flame` FlameParams."""
    return {
        "errors": residual_pixels(model, params, data),
        "placement": placement(params, data),
        "flame": flame_params(params),
    }


# --------------------------------------------------------------------------------------------
# Capture input.


def frame_ids(capture: Path) -> list[str]:
    """Every frame id of dataset.json in time (sorted) order."""
    train, val = io.read_split(capture)
    return sorted([*train, *val])


def model_entry(capture: Path, override: Path | None) -> tuple[str, Path]:
    """(scene.json's `flame.model` entry, the model file): `override` when given (recorded
    relative to the capture when inside it), else scene.json's entry."""
    if override is not None:
        path = Path(override).resolve()
        inside = path.is_relative_to(capture.resolve())
        return str(path.relative_to(capture.resolve()) if inside else path), path
    scene_path = capture / "scene.json"
    scene = io.read_json(scene_path) if scene_path.is_file() else {}
    section = scene.get("flame") if isinstance(scene, dict) else None
    model = section.get("model") if isinstance(section, dict) else None
    if not isinstance(model, str) or not model:
        raise StepError(f"{scene_path}: no field 'flame.model'; pass --flame_model PATH")
    return model, Path(model) if Path(model).is_absolute() else capture / model


def read_cameras(capture: Path, ids: Sequence[str]) -> list[Camera]:
    """camera/ID.json of every frame (world, 1x)."""
    cameras = []
    for frame_id in ids:
        try:
            cameras.append(read_camera(capture / "camera" / f"{frame_id}.json"))
        except (FileNotFoundError, ValueError) as error:
            raise StepError(str(error)) from None
    return cameras


def import_landmarks(capture: Path, ids: Sequence[str], source: Path) -> None:
    """Copies landmarks for every frame from a folder of ID.json or a JSON file {ID: entry}
    into CAPTURE/landmarks/, checking each entry."""
    folder = capture / "landmarks"
    if source.is_dir():
        if source.resolve() == folder.resolve():
            return
        entries = {i: (io.read_json(source / f"{i}.json"), source / f"{i}.json") for i in ids}
    else:
        raw = io.read_json(source)
        if not isinstance(raw, dict):
            raise StepError(f"{source}: expected a JSON object {{frame id: landmarks}}")
        missing = [i for i in ids if i not in raw]
        if missing:
            raise StepError(f"{source}: no landmarks for frame(s) {missing[:5]}")
        entries = {i: (raw[i], f"{source}: '{i}'") for i in ids}
    for frame_id, (raw, where) in entries.items():
        detection = landmarks.detection_from_dict(raw, str(where))
        io.write_json(folder / f"{frame_id}.json", detection.to_dict())


def detect_landmarks(
    capture: Path, ids: Sequence[str], detector_model: Path | None, progress: bool
) -> None:
    """Runs the detector on rgb/1x/ID.png of every frame without CAPTURE/landmarks/ID.json."""
    from tqdm.auto import tqdm

    digests_path = capture / "landmarks" / DIGESTS
    digests = io.read_json(digests_path) if digests_path.is_file() else {}
    todo = []
    for frame_id in ids:
        path = capture / "rgb" / "1x" / f"{frame_id}.png"
        if not path.is_file():
            raise StepError(f"{path}: image not found")
        digest = io.file_sha256(path)
        cached = (capture / "landmarks" / f"{frame_id}.json").is_file()
        # Detected earlier from another image (the frames step was rerun): detect again.
        if not cached or digests.get(frame_id, digest) != digest:
            todo.append((frame_id, path, digest))
    if not todo:
        return
    with landmarks.FaceDetector(detector_model) as detector:
        for frame_id, path, digest in tqdm(
            todo, desc="landmarks", unit="frame", disable=not progress
        ):
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except OSError as error:
                raise StepError(f"{path}: cannot read the image ({error})") from None
            points = detector.detect(pixels)
            size = (pixels.shape[1], pixels.shape[0])
            detection = landmarks.Detection("mediapipe478", size, points, landmarks.DETECTOR_SOURCE)
            io.write_json(capture / "landmarks" / f"{frame_id}.json", detection.to_dict())
            digests[frame_id] = digest
            io.write_json(digests_path, digests)


def read_landmarks(
    capture: Path,
    ids: Sequence[str],
    cameras: Sequence[Camera],
    layout: landmarks.LandmarkLayout,
) -> tuple[np.ndarray, np.ndarray]:
    """CAPTURE/landmarks/ID.json of every frame -> observed (T, L, 2), valid (T,) bool.

    Raises:
      StepError: a missing or malformed file, or an image size that is not the camera's.
    """
    observed = np.zeros((len(ids), layout.num_landmarks, 2))
    valid = np.zeros(len(ids), dtype=bool)
    for t, (frame_id, camera) in enumerate(zip(ids, cameras, strict=True)):
        path = capture / "landmarks" / f"{frame_id}.json"
        detection = landmarks.detection_from_dict(io.read_json(path), str(path))
        if detection.image_size != camera.image_size:
            raise StepError(
                f"{path}: field 'image_size' is {list(detection.image_size)}; camera/"
                f"{frame_id}.json has {list(camera.image_size)}"
            )
        points = landmarks.model_points(detection, layout, str(path))
        if points is not None:
            observed[t], valid[t] = points, True
    return observed, valid


# --------------------------------------------------------------------------------------------
# Output.


def to_world_json(scale: float, rotation: np.ndarray, translation: np.ndarray) -> dict:
    """scene.json's `flame.to_world` (the rotation re-orthonormalised in float64)."""
    u, _, vt = np.linalg.svd(np.asarray(rotation, np.float64))
    return {
        "scale": float(scale),
        "rotation": (u @ vt).tolist(),
        "translation": np.asarray(translation, np.float64).tolist(),
    }


def frame_report(errors: np.ndarray, valid: bool) -> dict[str, Any]:
    """fit_report.json entry of one frame: errors (L,) pixels."""
    if not valid:
        return {"status": "no face"}
    return {"status": "ok", "mean_px": float(errors.mean()), "max_px": float(errors.max())}


def summary_table(report: dict[str, dict[str, Any]], limit: int = 12) -> str:
    """A text table: the `limit` worst frames (all when few) and the overall figures."""
    fitted = {i: r for i, r in report.items() if r["status"] == "ok"}
    means = np.array([r["mean_px"] for r in fitted.values()])
    worst = sorted(fitted, key=lambda i: -fitted[i]["mean_px"])[:limit]
    lines = [f"{'frame':>12}  {'mean px':>8}  {'max px':>8}"]
    lines += [f"{i:>12}  {fitted[i]['mean_px']:8.2f}  {fitted[i]['max_px']:8.2f}" for i in worst]
    if len(fitted) > limit:
        lines.append(f"{'...':>12}  ({len(fitted) - limit} better frames not shown)")
    lines.append(
        f"reprojection error over {len(fitted)} frames: mean {means.mean():.2f} px, "
        f"median {np.median(means):.2f} px, worst frame {means.max():.2f} px"
    )
    missing = [i for i, r in report.items() if r["status"] != "ok"]
    if missing:
        lines.append(f"{len(missing)} frame(s) without a face (fitted from their neighbours): "
                     f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The step.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", type=paths.local_path_argument, help="the capture folder")
    parser.add_argument(
        "--landmarks_from",
        default="detector",
        metavar="detector|PATH",
        help="'detector' (MediaPipe, default) or a folder of ID.json / a JSON file {ID: entry} "
        "in the landmarks/ID.json format",
    )
    parser.add_argument(
        "--flame_model",
        type=paths.local_path_argument,
        default=None,
        help="FLAME model file (.pkl or .npz) to fit and record in scene.json (default: "
        "scene.json's flame.model)",
    )
    parser.add_argument(
        "--landmark_embedding",
        type=paths.local_path_argument,
        default=None,
        help="landmark embedding overriding the model's: flame_static_embedding.pkl (51 iBUG "
        "points) or mediapipe_landmark_embedding.npz (metrical-tracker)",
    )
    parser.add_argument("--steps", type=int, default=500, help="L-BFGS iterations")
    parser.add_argument(
        "--num_shape",
        type=int,
        default=None,
        help=f"identity coefficients fitted (default: the model's, at most {MAX_SHAPE})",
    )
    parser.add_argument(
        "--num_expression",
        type=int,
        default=None,
        help=f"expression coefficients fitted (default: the model's, at most {MAX_EXPRESSION})",
    )
    parser.add_argument(
        "--smoothness",
        type=float,
        default=Weights.smoothness,
        help="weight of the temporal smoothness between consecutive frames (0: none)",
    )
    parser.add_argument(
        "--detector_model",
        type=paths.local_path_argument,
        default=None,
        help=f"a MediaPipe FaceLandmarker .task bundle, used as is (default: "
        f"${landmarks.MODEL_ENV}, else CACHE/mediapipe/{landmarks.MODEL_NAME} with CACHE = "
        f"${paths.ENV} or {paths.DEFAULT}; either must hold MediaPipe's float16 v1 "
        f"{landmarks.MODEL_NAME}, checked by SHA-256)",
    )
    cli_args.add_quiet(parser)


def _count(requested: int | None, available: int, cap: int, flag: str) -> int:
    if requested is None:
        return min(available, cap)
    if not 0 <= requested <= available:
        raise StepError(f"{flag} {requested}: expected 0..{available} (the model's count)")
    return requested


def check_scene(capture: Path) -> None:
    """Refuses a scene.json without the normalisation that `cameras` writes."""
    path = capture / "scene.json"
    scene = io.read_json(path)
    if not isinstance(scene, dict):
        raise StepError(f"{path}: expected a JSON object")
    missing = [k for k in ("center", "scale", "near", "far") if k not in scene]
    if missing:
        raise StepError(f"{path}: missing field(s) {missing} (run the `cameras` step first)")


def run(args: argparse.Namespace) -> int:
    capture = Path(args.capture)
    if not capture.is_dir():
        raise StepError(f"{capture}: capture folder not found")
    if args.steps < 1:
        raise StepError(f"--steps {args.steps}: expected a positive number of steps")
    ids = frame_ids(capture)
    cameras = read_cameras(capture, ids)
    check_scene(capture)
    entry, path = model_entry(capture, args.flame_model)
    full_model, layout = landmarks.load_model(path, args.landmark_embedding)
    num_shape = _count(args.num_shape, full_model.num_shape, MAX_SHAPE, "--num_shape")
    num_expression = _count(
        args.num_expression, full_model.num_expression, MAX_EXPRESSION, "--num_expression"
    )
    progress = not args.quiet
    if args.landmarks_from == "detector":
        detect_landmarks(capture, ids, args.detector_model, progress)
        source = "detector"
    else:
        import_landmarks(capture, ids, Path(args.landmarks_from))
        source = str(args.landmarks_from)
    observed, valid = read_landmarks(capture, ids, cameras, layout)
    if not valid.any():
        raise StepError(f"{capture / 'landmarks'}: no frame has landmarks (no face found)")

    model = landmark_model(full_model)
    rest = rest_landmarks(model)
    start = initial_placement(cameras, observed, valid, rest)
    data = FitData(
        cameras=camera_arrays(cameras),
        observed=jnp.asarray(observed, jnp.float32),
        valid=jnp.asarray(valid, jnp.float32),
        unit=jnp.asarray([RESIDUAL_UNIT * max(c.image_size) for c in cameras], jnp.float32),
        rotation=jnp.asarray(start.rotation, jnp.float32),
        translation=jnp.asarray(start.translation, jnp.float32),
        scale=jnp.asarray(start.scale, jnp.float32),
        fit_scale=jnp.asarray(float(start.fit_scale), jnp.float32),
    )
    weights = dataclasses.replace(Weights(), smoothness=args.smoothness)
    params = initial_params(len(ids), num_shape, num_expression)
    params = optimise(model, data, params, weights, args.steps, progress)
    result = jax.tree.map(np.asarray, evaluate(params, model, data))
    errors, per_frame = result["errors"], result["flame"]
    report = {i: frame_report(errors[t], bool(valid[t])) for t, i in enumerate(ids)}
    for t, frame_id in enumerate(ids):
        values = io.flame_json(
            shape=per_frame.shape,
            expression=per_frame.expression[t],
            global_pose=per_frame.global_pose[t],
            jaw_pose=per_frame.jaw_pose[t],
            translation=per_frame.translation[t],
        )
        io.write_json(capture / "flame" / f"{frame_id}.json", values)
    to_world = to_world_json(*result["placement"])
    section = {"model": entry, "to_world": to_world, "num_expression": num_expression}
    io.update_scene(capture, flame=section)
    fitted = [r["mean_px"] for r in report.values() if r["status"] == "ok"]
    io.write_json(
        capture / "fit_report.json",
        {
            "landmarks": source,
            "layout": layout.name,
            "steps": args.steps,
            "num_shape": num_shape,
            "num_expression": num_expression,
            "to_world": to_world,
            "scale_fitted": start.fit_scale,
            "mean_px": float(np.mean(fitted)),
            "median_px": float(np.median(fitted)),
            "max_frame_px": float(np.max(fitted)),
            "frames": report,
        },
    )
    print(summary_table(report))
    print(f"{capture}: wrote flame/ for {len(ids)} frames, scene.json's flame section and "
          f"fit_report.json")  # fmt: skip
    return 0
