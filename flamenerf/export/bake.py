# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Baking the trained canonical field into a vertex-coloured triangle mesh: the stages in order.

The canonical field (`flamenerf.export.field.CanonicalField`: the model's fine field in the
canonical space, the template at rest, one appearance code) becomes one mesh in the model
frame (normalised scene units, `flamenerf.geometry.scene`), in stages, each in its own module:

1. the scene's box (`scene_box.surface_box`: the surfaces the training cameras see, widened),
   found by `flamenerf.export.pipeline` before `bake` runs the other stages;
2. the density on a rectilinear grid over that box (`grids.grid_axes`, `grids.sample_grid`):
   cells of the size given by `resolution` points along the box's longest side, finer ones in
   the slabs through the body's box (`body_resolution`: torso and hair) and finer still
   through the head's (`head_resolution`); sampled in slabs, each written atomically to the
   cache folder so that an interrupted bake resumes;
3. the surface (`carving`): `views` training cameras get a depth map each, where the optical
   depth of the grid less the untrained field's haze (`fog`) reaches -ln(1 - `opacity`); a
   grid point is free space when at least `quorum` views see it in front of their surface,
   and marching cubes runs on how far behind the surface it is (`carving.carved_depth`):
   "transmittance", the default. Points no view sees, and points more than `thickness_m`
   behind every surface that sees them, are left out (no walls at the edge of the cameras'
   frusta, no cone of unseen space behind a head). "density" instead takes the level set
   {sigma = level}. With `room` "backdrop" only the body's box is carved, and the rest of the
   scene becomes one smooth height field seen from the central view (`backdrop`);
4. marching cubes (`meshing.extract_mesh`: in grid-index space, the vertices mapped through
   the axes, exact for a rectilinear grid);
5. connected components with fewer than `min_component_faces` triangles dropped
   (`meshing.drop_small_components`: floaters), and the surface moved out along its normals
   by `grow_m` (`meshing.grow`): where the NeRF's outline is seen, at grazing angles through
   its soft shell, it lies further out than where frontal rays find the surface;
6. vertex colours (`colouring.colour_vertices`): "camera", the colour the canonical field
   renders along the ray from the chosen camera whose surface passes closest to the vertex,
   through the vertex to `colour_behind` cells beyond it, divided by the opacity; or "point",
   the radiance at the vertex;
7. with the backdrop, its mesh (`backdrop.backdrop_mesh`) appended.

Once the mesh is rigged, `flamenerf.export.pipeline` fits its vertex colours to the NeRF's
renders of `refine_frames` training frames (`flamenerf.export.refine`): the `refine_*`
options are that stage's, and the mesh does not depend on them.

Every stage runs in chunks with a progress bar; finished stages are kept in the cache folder
(`bake`'s `cache`). Colours are the field's (sRGB-encoded, as the images it was trained on).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from flamenerf.export import backdrop, carving, colouring, grids, meshing
from flamenerf.export.colouring import COLOURINGS
from flamenerf.export.field import APPEARANCES, CanonicalField
from flamenerf.geometry.camera import Camera

# The version of what the stages compute: part of every cache key (`cache_key`).
BAKE_VERSION = 2
SURFACES = ("transmittance", "density")
ROOMS = ("backdrop", "surface")
EXPRESSIONS = ("mean", "zero")


@dataclasses.dataclass(frozen=True)
class BakeOptions:
    """How the canonical field is baked (module docstring); lengths in model-frame units.

    Attributes:
      resolution: grid points along the longest side of the scene's box.
      body_resolution, head_resolution: grid points along the longest side of the body's and
        the head's box (0: no finer grid there).
      surface: "transmittance" or "density".
      opacity: ("transmittance") the surface is where the cameras' accumulated opacity
        reaches this.
      level: ("density") the density's iso-level (1 / model unit).
      views: training cameras carving the surface and colouring it.
      quorum: ("transmittance") a point is free space when at least this many views see
        it with less than the surface's optical depth in front of it (1: any view; points
        fewer views see are left out); 3 (docs/export.md): one or two views whose rays pass
        through a soft silhouette no longer carve it away.
      fog: density subtracted (floored at 0) before the optical depths are integrated: the
        untrained field's haze, which adds up along long rays; < 0: the median density of the
        grid (most of a scene's box is empty).
      room: "backdrop": only the body's box is carved into a mesh, the rest of the scene is a
        backdrop (`backdrop.backdrop_mesh`): a height field seen from the central view, over
        `backdrop_pixels` along its longer side and `backdrop_widen` times its field of view;
        "surface": the whole box is carved.
      view_pixels: rays along the longer image side of each view's frustum grid.
      view_samples: depths per ray of that grid (evenly spaced in disparity).
      min_component_faces: smaller connected components are dropped (0: keep all).
      colouring: "camera" or "point"; colour_samples: coarse and fine samples per ray each;
        colour_behind: how far beyond a vertex its "camera" ray goes, in the finest cells.
      appearance: "mean" or "frame".
      expression: the conditioning vector the canonical field is baked at: "mean", the
        training frames' mean, where training fed the vector and zero elsewhere, by the
        model's spatial prior (`pipeline.conditioning_region`: "silhouette", every shipped
        config: the body's box; "mesh": within `mesh_radius` of the default frame's mesh;
        "none": everywhere); "zero", zero everywhere (docs/export.md: the demo's vector is
        never near zero in training, and its asset lost 4.5 dB in the face at zero).
      box_margin_m: margin around the scene's box (metres).
      thickness_m: (transmittance) grid points farther than this (metres) behind the surface
        of every view that sees them are left out of marching cubes: what no camera saw is
        not closed up (a head seen from the front stays open at the back, with short
        skirts at its silhouettes, instead of growing a cone of unseen space); 0: no limit.
      grow_m: the carved surface (not the backdrop) is moved out along its normals by this
        (metres; docs/export.md measures it).
      refine_frames: training frames (spread evenly over them) whose NeRF renders the rigged
        asset's vertex colours are fitted to (`flamenerf.export.refine`); 0: no fit.
      refine_pixels: those renders' longer side at most (pixels; smaller images are kept).
      refine_supersample: samples per pixel along each axis of the asset's renders fitted
        (the viewer's and the preview's anti-aliasing).
      refine_weight: how strongly the fitted colours keep to the baked ones, against one
        frame's mean squared error.
    """

    resolution: int = 96
    body_resolution: int = 128
    head_resolution: int = 160
    surface: str = "transmittance"
    opacity: float = 0.3
    level: float = 20.0
    views: int = 24
    quorum: int = 3
    fog: float = -1.0
    room: str = "backdrop"
    backdrop_pixels: int = 128
    backdrop_widen: float = 2.0
    view_pixels: int = 128
    view_samples: int = 384
    min_component_faces: int = 64
    colouring: str = "camera"
    colour_samples: int = 64
    colour_behind: float = 4.0
    appearance: str = "mean"
    expression: str = "mean"
    box_margin_m: float = 0.015
    thickness_m: float = 0.08
    grow_m: float = 0.001
    refine_frames: int = 120
    refine_pixels: int = 128
    refine_supersample: int = 4
    refine_weight: float = 0.003

    def __post_init__(self) -> None:
        for name, allowed in (
            ("surface", SURFACES),
            ("colouring", COLOURINGS),
            ("appearance", APPEARANCES),
            ("expression", EXPRESSIONS),
            ("room", ROOMS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"BakeOptions.{name}: found {getattr(self, name)!r}, expected one of {allowed}"
                )
        counts = {
            "resolution": (self.resolution, 2),
            "views": (self.views, 1),
            "quorum": (self.quorum, 1),
            "view_pixels": (self.view_pixels, 2),
            "view_samples": (self.view_samples, 2),
            "colour_samples": (self.colour_samples, 2),
            "backdrop_pixels": (self.backdrop_pixels, 2),
            "refine_frames": (self.refine_frames, 0),
            "refine_pixels": (self.refine_pixels, 8),
            "refine_supersample": (self.refine_supersample, 1),
        }
        for name, (value, least) in counts.items():
            if value < least:
                raise ValueError(f"BakeOptions.{name}: found {value}, expected >= {least}")
        for name in ("body_resolution", "head_resolution"):
            if getattr(self, name) != 0 and getattr(self, name) < 2:
                raise ValueError(
                    f"BakeOptions.{name}: found {getattr(self, name)}, expected 0 or >= 2"
                )
        if not np.isfinite(self.grow_m):
            raise ValueError(f"BakeOptions.grow_m: found {self.grow_m}, expected a finite number")
        if not self.refine_weight > 0:
            raise ValueError(f"BakeOptions.refine_weight: found {self.refine_weight}, expected > 0")
        if not self.backdrop_widen >= 1:
            raise ValueError(
                f"BakeOptions.backdrop_widen: found {self.backdrop_widen}, expected >= 1"
            )
        if not (0 < self.opacity < 1 and self.level > 0):
            raise ValueError(
                f"BakeOptions: found opacity {self.opacity}, level {self.level}; "
                "expected 0 < opacity < 1 and level > 0"
            )
        for name in (
            ("box_margin_m", "thickness_m", "fog")
            if self.fog >= 0
            else ("box_margin_m", "thickness_m")
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"BakeOptions.{name}: found {getattr(self, name)}, expected >= 0")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def mesh_dict(self) -> dict[str, Any]:
        """The options the baked mesh depends on (not the colour fit's `refine_*`)."""
        return {k: v for k, v in self.as_dict().items() if not k.startswith("refine_")}


@dataclasses.dataclass
class BakedMesh:
    """The baked canonical mesh (model frame).

    Attributes:
      vertices: float64 (V, 3); faces: int64 (F, 3), outward winding; colours: float32
        (V, 3) sRGB-encoded in [0, 1].
      grid_shape: (Gx, Gy, Gz) of the density grid.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray
    grid_shape: tuple[int, int, int]


def cache_key(values: dict[str, Any]) -> str:
    """16 hex digits identifying a stage's inputs (a JSON-able dict) and the code that made
    it (`BAKE_VERSION`: bump it when a stage's output changes for the same inputs, so a
    resumed export never reuses what older code baked)."""
    values = {**values, "bake_version": BAKE_VERSION}
    text = json.dumps(values, sort_keys=True, default=lambda v: np.asarray(v).tolist())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def bake(
    field: CanonicalField,
    box: tuple[np.ndarray, np.ndarray],
    head_box: tuple[np.ndarray, np.ndarray] | None,
    body_box: tuple[np.ndarray, np.ndarray] | None,
    cameras: Sequence[Camera],
    near: float,
    far: float,
    options: BakeOptions,
    cache: Path | None = None,
    key: dict[str, Any] | None = None,
    show_progress: bool = False,
    units_per_metre: float = 1.0,
) -> BakedMesh:
    """Stages 2-7 of the module docstring: the coloured mesh of the canonical field.

    Args:
      field: the canonical field; box: the scene's (lower, upper) (`scene_box.surface_box`).
      head_box, body_box: the head's and the body's (lower, upper) boxes for finer grids
        (None: none).
      cameras: the training cameras (model frame); `options.views` of them are used.
      near, far: their rays' bounds.
      options: the bake's settings.
      cache: a folder for finished stages, reused when present: `grid-KEY/` (the density
        slabs), `surface-KEY/` (the optical-depth slabs) and `mesh-KEY.npz` (the coloured
        mesh), each KEY from `key` (what identifies the field: the experiment, its checkpoint,
        the appearance code) and the inputs of the stage.
      key: JSON-able values identifying the field.
      units_per_metre: model units per metre (for the options given in metres).
    """
    regions = []
    for region, points in (
        (body_box, options.body_resolution),
        (head_box, options.head_resolution),
    ):
        if region is not None and points:
            regions.append((region[0], region[1], points))
    axes = grids.grid_axes(box[0], box[1], options.resolution, regions)
    shape = tuple(len(a) for a in axes)
    chosen = carving.choose_views(cameras, options.views)
    view_cameras = [carving.view_camera(cameras[i], options.view_pixels) for i in chosen]
    grid_key = cache_key({"field": key, "axes": [a.tolist() for a in axes]})
    mesh_key = cache_key(
        {
            "grid": grid_key,
            "options": options.mesh_dict(),
            "views": chosen,
            "near": near,
            "far": far,
            "units": units_per_metre,
        }
    )
    mesh_path = None if cache is None else cache / f"mesh-{mesh_key}.npz"
    if mesh_path is not None and mesh_path.is_file():
        try:
            with np.load(mesh_path) as data:
                return BakedMesh(data["vertices"], data["faces"], data["colours"], shape)
        except (OSError, ValueError, KeyError):
            pass
    grid_cache = None if cache is None else cache / f"grid-{grid_key}"
    grid = grids.sample_grid(field.density, axes, grid_cache, show_progress=show_progress)
    fog = float(np.median(grid)) if options.fog < 0 else options.fog
    clear = np.maximum(grid - fog, 0.0).astype(np.float32)
    level = -np.log1p(-options.opacity)
    views = [
        carving.view_depth(clear, axes, camera, near, far, options.view_samples, level)
        for camera in tqdm(view_cameras, desc="camera views", disable=not show_progress)
    ]
    with_backdrop = options.room == "backdrop" and body_box is not None
    if options.surface == "density":
        values, level, mask = grid, options.level, None
    else:
        surface_key = cache_key(
            {
                "grid": grid_key,
                "views": chosen,
                "quorum": options.quorum,
                "fog": fog,
                "opacity": options.opacity,
                "pixels": options.view_pixels,
                "samples": options.view_samples,
                "near": near,
                "far": far,
            }
        )
        values = grids.sample_grid(
            functools.partial(carving.carved_depth, views, quorum=options.quorum),
            axes,
            None if cache is None else cache / f"surface-{surface_key}",
            desc="carving",
            show_progress=show_progress,
        )
        meshed = values < carving.UNSEEN
        if options.thickness_m > 0:
            meshed &= values < options.thickness_m * units_per_metre
        level, mask = 0.0, meshing.seen_cells(meshed)
    if with_backdrop:
        inside = meshing.seen_cells(grids.box_mask(axes, *body_box))
        mask = inside if mask is None else mask & inside
    del grid
    vertices, faces = meshing.extract_mesh(values, axes, level, mask)
    del values
    vertices, faces = meshing.drop_small_components(vertices, faces, options.min_component_faces)
    cell = min(float(np.diff(a).min()) for a in axes)
    colours = colouring.colour_vertices(
        field,
        vertices,
        views,
        options.colouring,
        options.colour_behind * cell,
        options.colour_samples,
        show_progress,
    )
    if options.grow_m:  # after colouring: the colours are the surface's
        vertices = meshing.grow(vertices, faces, options.grow_m * units_per_metre)
    if with_backdrop:
        room = backdrop.backdrop_mesh(
            field,
            clear,
            axes,
            backdrop.backdrop_camera(
                cameras[chosen[0]], options.backdrop_pixels, options.backdrop_widen
            ),
            near,
            far,
            body_box,
            options.view_samples,
            -np.log1p(-options.opacity),
            options.colour_samples,
            show_progress,
        )
        faces = np.concatenate([faces, room[1] + len(vertices)])
        vertices = np.concatenate([vertices, room[0]])
        colours = np.concatenate([colours, room[2]])
    baked = BakedMesh(vertices, faces, colours, shape)
    if mesh_path is not None:
        _save_npz(mesh_path, vertices=vertices, faces=faces, colours=colours)
    return baked
