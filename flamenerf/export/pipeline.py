# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""From a trained experiment to the avatar asset: bake, rig, assemble, write.

`build_asset(restored, options)` bakes the canonical field (`bake`), rigs the mesh with FLAME
(`rig`), moves everything from the model frame into the capture's world frame (scene.json's
normalisation undone: `x / scale + center`), assembles the `gltf.Asset` with its extras
(slider ranges from the training frames, the default camera, near and far) and the
animations of the driving folders, and fits its vertex colours to the NeRF's renders of
training frames (`refine`; `fit_targets` renders them: each frame's camera without
distortion, at most `refine_pixels` along its longer side, its own codes, guide and FLAME
parameters; the asset posed with the frame's whole head motion, `rig.motion_matrices`).
`export(restored, out, options)` writes `DIR/avatar.glb`, `DIR/index.html` (the viewer page,
`flamenerf.export.page.write_page`) and `DIR/export.json` (what was baked), keeping finished
stages in `DIR/.export/` for a resumed or repeated run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from flamenerf.errors import UserError
from flamenerf.export import animation as animation_lib
from flamenerf.export import bake, field, gltf, preview, refine, rig, scene_box
from flamenerf.geometry.camera import Camera
from flamenerf.nerf import guide

CACHE_FOLDER = ".export"
MAX_BOX_CAMERAS = 32  # training cameras whose rays find the scene's box
BOX_RAYS = 512  # rays per camera for the box
BOX_QUANTILE = 0.001  # the box holds the surface points between these quantiles
HEAD_MARGIN_M = 0.04  # the finest grid's box: the FLAME head's box plus this, metres
BODY_DOWN_M = 0.35  # the body's box (a finer grid: neck, shoulders, hair) reaches this far
BODY_MARGIN_M = 0.2  # below the head's box (FLAME's down, in the world), plus this all round
MORPH_FLOOR_M = 1e-5  # morph displacements below this (metres per unit coefficient) are zero
RANGE_PADDING = 0.25  # slider ranges: the training frames' range widened by this share
DEFAULT_TURN = np.deg2rad(30.0)  # yaw and pitch sliders reach at least +-30 degrees
NEAR_RATIO = 0.1  # extras.near = this times scene.json's near (world units)
FAR_RATIO = 2.0  # extras.far = this times scene.json's far


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What `export` makes.

    Attributes:
      bake: the bake's settings.
      default_frame: the frame whose camera starts the viewer and whose identity (and, with
        appearance "frame", appearance code) is baked; None: the first training frame.
      animations: folders of FLAME parameter files, one animation each.
      fps: key frames per second of the animations.
    """

    bake: bake.BakeOptions = bake.BakeOptions()
    default_frame: str | None = None
    animations: tuple[str, ...] = ()
    fps: float = animation_lib.DEFAULT_FPS


def default_frame(capture: Any, frame_id: str | None) -> str:
    """The default frame: `frame_id` (checked) or the first training frame."""
    if frame_id is None:
        return capture.train_ids[0]
    if frame_id not in capture.ids:
        shown = ", ".join(capture.ids[:5]) + (", ..." if len(capture.ids) > 5 else "")
        raise UserError(
            f"--default_frame {frame_id}: found no such frame in {capture.root / 'dataset.json'}, "
            f"expected one of {shown}"
        )
    return frame_id


def slider_range(values: np.ndarray, minimum: float = 0.1) -> list[float]:
    """[lo, hi]: the range of `values` and 0, widened by RANGE_PADDING of its length (at least
    `minimum`) on each side."""
    lo = min(float(np.min(values)), 0.0)
    hi = max(float(np.max(values)), 0.0)
    pad = max(RANGE_PADDING * (hi - lo), minimum)
    return [lo - pad, hi + pad]


def world_camera(camera: Camera, scene: Any) -> Camera:
    """A model-frame camera moved back into the capture's world (`x / scale + center`)."""
    return dataclasses.replace(camera, position=camera.position / scene.scale + scene.center)


def conditioning_region(
    exp: Any, body_box: tuple[np.ndarray, np.ndarray], frame_id: str
) -> Callable[[Any], Any] | None:
    """Where the canonical field sees the bake's conditioning vector: where training fed it.

    By the model's spatial prior (`ExpressionConfig.spatial_prior`): "silhouette" (rays
    inside the FLAME silhouette) -> the body's box (`field.box_region`); "mesh" (within
    `mesh_radius` of the frame's FLAME mesh) -> within it of `frame_id`'s mesh by its guide
    grid's distance field, read at the canonical points (the model reads it at the rest-frame
    points, before the guide's residual: they differ by that residual, millimetres); "none" ->
    None (everywhere).
    """
    prior = exp.model.expression.spatial_prior
    if prior == "none":
        return None
    if prior == "silhouette":
        return field.box_region(*body_box)
    grids = exp.guide_grids(show_progress=False, frames=[frame_id])
    index, radius = exp.capture.ids.index(frame_id), float(exp.model.mesh_radius)

    def near_mesh(points):  # (N, S, 3) -> (N, S)
        frames = jnp.full(points.shape[:1], index, jnp.int32)
        return guide.lookup(grids, frames, points)[1] < radius

    return near_mesh


def camera_extras(camera: Camera, near: float, far: float, frame_id: str) -> dict[str, Any]:
    """asset.extras.flamenerf.default_camera: OpenGL matrices, column-major."""
    return {
        "world_from_camera": preview.gl_from_camera(camera).T.reshape(-1).tolist(),
        "projection": preview.projection_matrix(camera, near, far).T.reshape(-1).tolist(),
        "width": int(camera.width),
        "height": int(camera.height),
        "frame_id": frame_id,
    }


def body_region(
    head_box: tuple[np.ndarray, np.ndarray], subject: Any, units: float
) -> tuple[np.ndarray, np.ndarray]:
    """The body's box (model frame): the head's box and its copy moved BODY_DOWN_M along
    FLAME's down axis (-y, turned into the world by scene.json's `to_world`), widened by
    BODY_MARGIN_M."""
    rotation = np.asarray(subject.scene.to_world.rotation, np.float64)
    down = rotation @ np.array([0.0, -1.0, 0.0])
    corners = np.array(
        [[head_box[k >> 2 & 1][0], head_box[k >> 1 & 1][1], head_box[k & 1][2]] for k in range(8)]
    )
    points = np.concatenate([corners, corners + BODY_DOWN_M * units * down])
    margin = BODY_MARGIN_M * units
    return points.min(axis=0) - margin, points.max(axis=0) + margin


@dataclasses.dataclass
class Built:
    """An asset and what went into it (export.json's content)."""

    asset: gltf.Asset
    report: dict[str, Any]


def build_asset(
    restored: Any,
    options: ExportOptions,
    cache: Path | None = None,
    show_progress: bool = False,
) -> Built:
    """Bakes, rigs and assembles the avatar of a restored experiment (module docstring).

    Args:
      restored: `Experiment.restore`'s result (experiment, state, checkpoint).
      options: what to make.
      cache: where finished stages are kept (None: nowhere).

    Raises:
      UserError: an unknown default frame, a bad animation folder.
    """
    exp, state = restored.exp, restored.state
    capture = exp.capture
    scene = capture.scene
    frame = default_frame(capture, options.default_frame)
    num_expression = scene.num_expression
    skeleton_params = capture.flame_params[frame]
    settings = exp.guide_settings()
    rest = rig.flame_rest(capture.subject, skeleton_params, num_expression, settings.undo_rigid)
    rest_joints = capture.subject.rest_joints([skeleton_params])[0]
    skel = rig.skeleton(capture.subject, rest_joints)
    placement = rig.Placement(scene.to_world, rest_joints)
    animations = [
        animation_lib.read_animation(folder, placement, num_expression, options.fps)
        for folder in options.animations
    ]  # read first: a bad folder fails before the bake

    appearance_frame = capture.frames[frame].appearance_id
    units = scene.units_per_metre
    head_points = rest.vertices[rest.head]
    head_box = (
        head_points.min(axis=0) - HEAD_MARGIN_M * units,
        head_points.max(axis=0) + HEAD_MARGIN_M * units,
    )
    body_box = body_region(head_box, capture.subject, units)
    condition = None
    if options.bake.expression == "mean":
        use_jaw = exp.expression_config.use_jaw
        condition = np.mean([capture.condition(i, use_jaw) for i in capture.train_ids], axis=0)
    canonical = field.CanonicalField(
        exp.model,
        state.params,
        options.bake.appearance,
        frame=appearance_frame,
        condition=condition,
        condition_region=conditioning_region(exp, body_box, frame)
        if condition is not None
        else None,
    )
    key = {
        "experiment": str(Path(exp.base_folder).resolve()),
        "checkpoint": int(restored.checkpoint),
        "appearance": options.bake.appearance,
        "appearance_frame": int(appearance_frame),
        "expression": options.bake.expression,
    }
    train_cameras = [capture.cameras[i] for i in capture.train_ids]
    chosen = np.linspace(0, len(train_cameras) - 1, min(MAX_BOX_CAMERAS, len(train_cameras)))
    box_cameras = [train_cameras[int(i)] for i in np.round(chosen)]
    box = _box(
        canonical,
        box_cameras,
        scene,
        options.bake.box_margin_m * scene.units_per_metre,
        cache,
        key,
        show_progress,
    )
    baked = bake.bake(
        canonical,
        box,
        head_box,
        body_box,
        train_cameras,
        scene.near,
        scene.far,
        options.bake,
        cache,
        key,
        show_progress=show_progress,
        units_per_metre=units,
    )
    rigged = rig.rig_points(
        baked.vertices,
        rest,
        settings.sigma,
        settings.rigid_fade,
        floor=MORPH_FLOOR_M * units,
        neck=(settings.neck_level, settings.neck_fade) if settings.rigid_weight == "neck" else None,
    )
    parts = rig.split(rigged.moving, baked.faces)

    to_world = lambda x: np.asarray(x, np.float64) / scene.scale + scene.center
    linear = preview.srgb_to_linear(baked.colours).astype(np.float32)
    room = gltf.Mesh(
        positions=to_world(baked.vertices[parts.room_vertices]).astype(np.float32),
        colours=linear[parts.room_vertices],
        faces=parts.room_faces.astype(np.uint32),
    )
    h = parts.head_vertices
    weights = np.zeros((len(h), 4))
    weights[:, :3] = rigged.skin_weights[h]
    weights = gltf.normalised_weights(weights)
    # Joint indices with zero weight are 0, as the glTF spec asks.
    joints = np.where(weights > 0, np.array([rig.ROOT, rig.NECK, rig.JAW, 0]), 0).astype(np.uint8)
    head = gltf.SkinnedMesh(
        positions=to_world(baked.vertices[h]).astype(np.float32),
        colours=linear[h],
        faces=parts.head_faces.astype(np.uint32),
        joints=joints,
        weights=weights,
        targets=(rigged.morphs[:, h] / scene.scale).astype(np.float32),
    )
    train_params = [capture.flame_params[i] for i in capture.train_ids]
    poses = [rig.pose_from_flame(p, num_expression) for p in train_params]
    expressions = np.array([p.expression for p in poses]).reshape(-1, num_expression)
    near = NEAR_RATIO * scene.near / scene.scale
    far = FAR_RATIO * scene.far / scene.scale
    info = {
        "expression_ranges": [slider_range(expressions[:, e]) for e in range(num_expression)],
        "jaw_range": slider_range([p.jaw for p in poses]),
        "yaw_range": slider_range([p.yaw for p in poses], DEFAULT_TURN),
        "pitch_range": slider_range([p.pitch for p in poses], DEFAULT_TURN),
        "default_camera": camera_extras(
            world_camera(capture.cameras[frame], scene), near, far, frame
        ),
        "near": near,
        "far": far,
    }
    asset = gltf.Asset(
        room=room,
        head=head,
        skeleton=skel,
        inverse_bind=skel.inverse_bind().astype(np.float32),
        info=info,
        animations=animations,
    )
    fit = {"frames": 0}
    if options.bake.refine_frames > 0:
        targets = fit_targets(restored, asset, placement, options.bake, cache, key, show_progress)
        asset, fit = refine.fit_colours(
            asset,
            targets,
            options.bake.refine_supersample,
            options.bake.refine_weight,
            show_progress=show_progress,
        )
    report = {
        "base_folder": str(exp.base_folder),
        "checkpoint": int(restored.checkpoint),
        "default_frame": frame,
        "options": dataclasses.asdict(options),
        "box_model_frame": [box[0].tolist(), box[1].tolist()],
        "grid_shape": list(baked.grid_shape),
        "guide": {"sigma": settings.sigma, "rigid_fade": settings.rigid_fade}
        | (
            {"neck_level": settings.neck_level, "neck_fade": settings.neck_fade}
            if settings.rigid_weight == "neck"
            else {}
        ),
        "vertices": {"room": len(room.positions), "head": len(head.positions)},
        "triangles": {"room": len(room.faces), "head": len(head.faces)},
        "expression_targets": num_expression,
        "animations": [a.name for a in animations],
        "colour_fit": fit,
    }
    return Built(asset, report)


def fit_camera(camera: Camera, pixels: int) -> Camera:
    """A camera for the colour fit: without distortion (the asset's renderers are pinholes),
    scaled down to at most `pixels` along its longer side."""
    pinhole = dataclasses.replace(
        camera, radial_distortion=np.zeros(3), tangential_distortion=np.zeros(2)
    )
    factor = max(camera.image_size) / pixels
    return pinhole.scale(factor) if factor > 1 else pinhole


def fit_frames(capture: Any, count: int) -> list[str]:
    """`count` training frames spread evenly over them (all when there are fewer)."""
    ids = list(capture.train_ids)
    chosen = np.round(np.linspace(0, len(ids) - 1, min(count, len(ids)))).astype(int)
    return [ids[i] for i in np.unique(chosen)]


def fit_targets(
    restored: Any,
    asset: gltf.Asset,
    placement: rig.Placement,
    options: bake.BakeOptions,
    cache: Path | None,
    key: dict[str, Any],
    show_progress: bool = False,
) -> list[refine.Target]:
    """The colour fit's targets: the NeRF's renders of `options.refine_frames` training frames
    (`nerf_renders`) and the asset's camera and pose for each (module docstring)."""
    capture = restored.exp.capture
    scene = capture.scene
    ids = fit_frames(capture, options.refine_frames)
    cameras = {i: fit_camera(capture.cameras[i], options.refine_pixels) for i in ids}
    images = nerf_renders(restored, cameras, cache, key, show_progress)
    near, far = asset.info["near"], asset.info["far"]
    targets = []
    for i in ids:
        world = world_camera(cameras[i], scene)
        matrices, expression = rig.motion_matrices(
            placement,
            asset.skeleton,
            asset.inverse_bind,
            capture.flame_params[i],
            scene.num_expression,
        )
        targets.append(
            refine.Target(
                world_from_camera=preview.gl_from_camera(world),
                projection=preview.projection_matrix(world, near, far),
                matrices=matrices,
                expression=expression,
                image=images[i],
            )
        )
    return targets


def nerf_renders(
    restored: Any,
    cameras: dict[str, Camera],
    cache: Path | None = None,
    key: dict[str, Any] | None = None,
    show_progress: bool = False,
) -> dict[str, np.ndarray]:
    """{frame id: float32 (H, W, 3)} the NeRF's renders (sRGB-encoded, clipped to [0, 1]) of
    capture frames with other cameras (model frame): each frame's own codes, guide grid,
    FLAME parameters and silhouette (`views.view`), at the restored checkpoint. Kept in the
    cache as targets-KEY.npz."""
    from flamenerf.views import view as view_lib

    exp, state = restored.exp, restored.state
    capture = exp.capture
    ids = list(cameras)
    inputs = {
        "field": key,
        "frames": ids,
        "cameras": {
            i: [c.image_size, c.focal_length, c.principal_point] for i, c in cameras.items()
        },
    }
    path = None if cache is None else cache / f"targets-{bake.cache_key(inputs)}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path) as data:
                return {i: data[i] for i in ids}
        except (OSError, ValueError, KeyError):
            pass
    from tqdm.auto import tqdm

    grids = exp.frame_grids(ids, show_progress)
    alpha = exp.warp_alpha(restored.checkpoint)
    images = {}
    for frame_id in tqdm(ids, desc="NeRF renders", disable=not show_progress, leave=False):
        camera = cameras[frame_id]
        views = view_lib.camera_views(exp, camera, [capture.flame_params[frame_id]], [{}])
        batch = view_lib.view_rays(exp, views[0], frame_id)
        out = exp.renderer.render_image(state.params, batch, alpha, camera.image_shape, grids)
        images[frame_id] = np.clip(out["rgb"], 0.0, 1.0).astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **images)
        tmp.replace(path)
    return images


def _box(
    canonical: field.CanonicalField,
    cameras: list[Camera],
    scene: Any,
    margin: float,
    cache: Path | None,
    key: dict[str, Any],
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The scene's box (`scene_box.surface_box`), kept in the cache as box-KEY.json."""
    inputs = {"field": key, "margin": margin, "quantile": BOX_QUANTILE, "rays": BOX_RAYS}
    path = None if cache is None else cache / f"box-{bake.cache_key(inputs)}.json"
    if path is not None and path.is_file():
        try:
            raw = json.loads(path.read_text())
            return np.asarray(raw["lower"], np.float64), np.asarray(raw["upper"], np.float64)
        except (OSError, ValueError, KeyError):
            pass
    box = scene_box.surface_box(
        canonical,
        cameras,
        scene.near,
        scene.far,
        rays_per_camera=BOX_RAYS,
        margin=margin,
        quantile=BOX_QUANTILE,
        show_progress=show_progress,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_text(path, json.dumps({"lower": box[0].tolist(), "upper": box[1].tolist()}))
    return box


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


OUTPUTS = ("avatar.glb", "index.html", "export.json")


def export(
    restored: Any,
    out: str | os.PathLike,
    options: ExportOptions,
    overwrite: bool = False,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Writes DIR/avatar.glb, DIR/index.html and DIR/export.json (module docstring).

    An existing export in `out` is refused unless `overwrite`, or unless it is this
    experiment's own (its export.json names the same base folder): a rerun refreshes it and
    reuses `out/.export/`.

    Returns:
      export.json's content.

    Raises:
      UserError: `out` is a file, or holds another experiment's export without `overwrite`.
    """
    from flamenerf.export import page

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: found a file, expected a folder (or nothing)")
    previous = out / "export.json"
    if previous.is_file() and not overwrite:
        try:
            base = json.loads(previous.read_text()).get("base_folder")
        except (OSError, ValueError, AttributeError):
            base = None
        if base is None or Path(base).resolve() != Path(restored.exp.base_folder).resolve():
            raise UserError(
                f"--out {out}: found the export of another experiment ({base}); "
                "pass --overwrite to replace it"
            )
    if overwrite and (out / CACHE_FOLDER).is_dir():
        shutil.rmtree(out / CACHE_FOLDER)
    cache = out / CACHE_FOLDER
    cache.mkdir(parents=True, exist_ok=True)
    built = build_asset(restored, options, cache, show_progress)
    glb = gltf.write_glb(built.asset)
    _write_bytes(out / "avatar.glb", glb)
    title = f"flamenerf avatar: {Path(restored.exp.base_folder).name} (step {restored.checkpoint})"
    page.write_page(glb, out / "index.html", title=title)
    report = dict(
        built.report,
        bytes={"avatar.glb": len(glb), "index.html": (out / "index.html").stat().st_size},
    )
    _write_text(out / "export.json", json.dumps(report, indent=2) + "\n")
    return report
