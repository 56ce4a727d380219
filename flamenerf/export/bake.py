# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Baking the trained canonical field into a vertex-coloured triangle mesh.

The canonical field is the model's fine field in the canonical space: the template at rest,
with no learned per-frame warp and no FLAME guide (the guide maps posed points INTO this
space; the rig, `flamenerf.export.rig`, maps it back out). It sees a neutral conditioning
vector (zero expression and jaw, when the configuration conditions on one) and one appearance
code: the mean of the training frames' codes ("mean", the default) or the default frame's
("frame"). `CanonicalField` evaluates it.

The bake (`bake`):
1. the scene's box (`surface_box`): the box of the surfaces the training cameras see in the
   canonical field (where a ray's accumulated opacity passes 1/2, over a subsample of the
   training cameras' pixels; between per-axis percentiles, `quantile`), widened by a margin:
   head, hair, torso and room;
2. the density on a rectilinear grid over that box (`grid_axes`): cells of the size given by
   `resolution` points along the box's longest side, finer ones in the slabs through the
   body's box (`body_resolution` points along its longest side: torso and hair) and finer
   still through the head's (`head_resolution`); sampled in slabs, each written atomically to
   the cache folder so that an interrupted bake resumes (`sample_grid`);
3. the surface. A trained field is often soft: its opacity builds up over a shell up to
   centimetres thick, at densities that differ between the face (tens per unit) and a far
   wall (about one), so no single density level finds both. The default surface is therefore
   where the field becomes opaque as the training cameras see it ("transmittance"): `views`
   training cameras spread over their positions and directions (`choose_views`) each get a
   depth map (`view_depth`: along each ray of `view_pixels` pixels, where the optical depth of
   the density grid, less the untrained field's haze (`fog`), reaches -ln(1 - `opacity`)); a
   grid point is free space when it lies in front of the surface of at least `quorum` views
   (`free_depth`), and marching cubes runs on how far behind the surface the quorum-th
   view sees it: space carving by the depth at which the NeRF's own renders become opaque.
   Points no view sees, and points more than `thickness_m` behind every surface that sees
   them, are left out of marching cubes (no walls at the edge of the cameras' frusta, no cone
   of unseen space behind a head). "density" instead takes the level set {sigma = level}.
   With `room` "backdrop" only the body's box is carved, and the rest of the scene becomes
   one smooth height field
   seen from the central view (`backdrop_mesh`): a room behind a NeRF's haze has no sharper
   geometry to trust, and its carved surface would be spikes along the rays;
4. marching cubes (`extract_mesh`: scikit-image in grid-index space, the vertices mapped
   through the axes, exact for a rectilinear grid);
5. connected components with fewer than `min_component_faces` triangles dropped
   (`drop_small_components`: floaters);
6. vertex colours (`colour_vertices`): "camera": the colour the canonical field renders along
   the ray from the chosen camera whose surface passes closest to the vertex, through the
   vertex to `colour_behind` cells beyond it (coarse then fine samples, divided by the
   opacity): the NeRF's pixel colour there; "point": the radiance at the vertex, seen from
   that camera.

Every step runs in chunks with a progress bar. Everything is in the model frame (normalised
scene units, `flamenerf.geometry.scene`); colours are the field's (sRGB-encoded, as the
images it was trained on).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from flamenerf.geometry.camera import Camera
from flamenerf.nerf import volume

APPEARANCES = ("mean", "frame")
SURFACES = ("transmittance", "density")
COLOURINGS = ("camera", "point")
ROOMS = ("backdrop", "surface")
POINT_CHUNK = 1 << 16  # field evaluations per jitted call
LOOKUP_CHUNK = 1 << 20  # grid points per jitted optical-depth lookup
UNSEEN = 1e4  # how far behind its surface a point no view sees counts
SEE_THROUGH = 1e4  # a view's depth where its ray never becomes opaque enough
DISCONTINUITY = 0.1  # a depth map's jump, relative to the nearer depth, read without blending
BACKDROP_SMOOTHING = 0.05  # the backdrop's disparity blur, a share of its longer image side


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
        it with less than the surface's optical depth in front of it (1: any view).
      fog: density subtracted (floored at 0) before the optical depths are integrated: the
        untrained field's haze, which adds up along long rays; < 0: the median density of the
        grid (most of a scene's box is empty).
      room: "backdrop": only the body's box is carved into a mesh, the rest of the scene is a
        backdrop (`backdrop_mesh`): a height field seen from the central view, over
        `backdrop_pixels` along its longer side and `backdrop_widen` times its field of view;
        "surface": the whole box is carved.
      view_pixels: rays along the longer image side of each view's frustum grid.
      view_samples: depths per ray of that grid (evenly spaced in disparity).
      min_component_faces: smaller connected components are dropped (0: keep all).
      colouring: "camera" or "point"; colour_samples: coarse and fine samples per ray each;
        colour_behind: how far beyond a vertex its "camera" ray goes, in the finest cells.
      appearance: "mean" or "frame".
      box_margin_m: margin around the scene's box (metres).
      thickness_m: (transmittance) grid points farther than this (metres) behind the surface
        of every view that sees them are left out of marching cubes: what no camera saw is
        not closed up (a head seen from the front stays open at the back, with short
        skirts at its silhouettes, instead of growing a cone of unseen space); 0: no limit.
    """

    resolution: int = 96
    body_resolution: int = 128
    head_resolution: int = 160
    surface: str = "transmittance"
    opacity: float = 0.3
    level: float = 20.0
    views: int = 24
    quorum: int = 1
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
    box_margin_m: float = 0.015
    thickness_m: float = 0.08

    def __post_init__(self) -> None:
        for name, allowed in (
            ("surface", SURFACES),
            ("colouring", COLOURINGS),
            ("appearance", APPEARANCES),
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
        }
        for name, (value, least) in counts.items():
            if value < least:
                raise ValueError(f"BakeOptions.{name}: found {value}, expected >= {least}")
        for name in ("body_resolution", "head_resolution"):
            if getattr(self, name) != 0 and getattr(self, name) < 2:
                raise ValueError(
                    f"BakeOptions.{name}: found {getattr(self, name)}, expected 0 or >= 2"
                )
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


# --------------------------------------------------------------------------------------------
# The canonical field.


class CanonicalField:
    """The model's fine field in the canonical space, with one appearance code.

    Args:
      model: the `FlameNerf` module; params: its parameters.
      appearance: "mean" (the mean of every training frame's code) or "frame".
      frame: the appearance-code index used with "frame".
      chunk: points per jitted evaluation.
    """

    def __init__(
        self,
        model: Any,
        params: Any,
        appearance: str = "mean",
        frame: int = 0,
        chunk: int = POINT_CHUNK,
    ):
        if appearance not in APPEARANCES:
            raise ValueError(f"appearance: found {appearance!r}, expected one of {APPEARANCES}")
        self.params, self.chunk = params, chunk
        dim = model.model.appearance_dim
        mode = model.model.appearance_mode
        code = np.zeros((0,), np.float32)
        if dim > 0:
            table = np.asarray(params["appearance_codes"]["embed"]["embedding"], np.float32)
            code = table.mean(axis=0) if appearance == "mean" else table[frame]
        self.code = jnp.asarray(code)
        self.condition = jnp.zeros((model.condition_dim,), jnp.float32)
        conditioned = model.expression.where != "none"
        projected = model.expression.projection_dim > 0

        def field(module, points, viewdirs, codes, cond):
            if cond is not None and projected:
                cond = module.projection(cond)
            rgb, sigma = module.fields["fine"](
                points, viewdirs, codes if mode == "field" else None, cond
            )
            if codes is not None and mode == "color":
                gain_bias = module.color_transform(codes)[:, None, :]
                rgb = rgb * (1.0 + gain_bias[..., :3]) + gain_bias[..., 3:]
            return rgb, sigma

        def evaluate(params, points, viewdirs, code, condition):
            # points (N, S, 3), viewdirs (N, 3) -> rgb (N, S, 3) colour-corrected, sigma (N, S)
            n = points.shape[0]
            codes = jnp.broadcast_to(code, (n,) + code.shape) if dim > 0 else None
            cond = jnp.broadcast_to(condition, (n,) + condition.shape) if conditioned else None
            return model.apply({"params": params}, points, viewdirs, codes, cond, method=field)

        def render(
            params, origins, directions, near, far, code, condition, lower, upper, coarse, fine
        ):
            key = jax.random.PRNGKey(0)

            def shade(points):
                rgb, sigma = evaluate(params, points, directions, code, condition)
                excluded = jnp.all((points >= lower) & (points <= upper), axis=-1)
                return rgb, jnp.where(excluded, 0.0, sigma)

            z, points = volume.sample_along_rays(
                key, origins, directions, coarse, near, far, False, spacing="disparity"
            )
            rgb, sigma = shade(points)
            weights = volume.volumetric_rendering(rgb, sigma, z, directions)["weights"]
            z, points = volume.resample_along_rays(
                key, origins, directions, z, weights, fine, False, True
            )
            rgb, sigma = shade(points)
            out = volume.volumetric_rendering(rgb, sigma, z, directions)
            return out["rgb"], out["acc"]

        self._evaluate = jax.jit(evaluate)
        self._render = jax.jit(render, static_argnums=(9, 10))

        def composite(params, points, viewdirs, z_vals, code, condition):
            rgb, sigma = evaluate(params, points, viewdirs, code, condition)
            out = volume.volumetric_rendering(rgb, sigma, z_vals, viewdirs, last_delta=0.0)
            return out["weights"]

        self._composite = jax.jit(composite)

    def _parts(self, n: int, per_item: int, desc: str | None, show: bool) -> list[slice]:
        step = max(1, self.chunk // per_item)
        starts = tqdm(range(0, n, step), desc=desc, disable=not show or desc is None, leave=False)
        return [slice(s, min(s + step, n)) for s in starts]

    def evaluate(
        self, points: np.ndarray, viewdirs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Colour and density at points.

        Args:
          points: (N, 3); viewdirs: (N, 3) unit view directions (default +z).

        Returns:
          rgb (N, 3) (the field's colour, appearance applied) and sigma (N,), float32.
        """
        points = np.asarray(points, np.float32).reshape(-1, 3)
        if viewdirs is None:
            viewdirs = np.broadcast_to(np.float32([0, 0, 1]), points.shape)
        viewdirs = np.asarray(viewdirs, np.float32).reshape(-1, 3)
        rgb, sigma = [np.zeros((0, 3), np.float32)], [np.zeros((0,), np.float32)]
        for part in self._parts(len(points), 1, None, False):
            c, s = self._evaluate(
                self.params, points[part, None], viewdirs[part], self.code, self.condition
            )
            rgb.append(np.asarray(c)[:, 0])
            sigma.append(np.asarray(s)[:, 0])
        return np.concatenate(rgb), np.concatenate(sigma)

    def density(self, points: np.ndarray) -> np.ndarray:
        """(N,) float32 density at points (N, 3) (the view direction does not matter)."""
        return self.evaluate(points)[1]

    def weights(
        self,
        origins: np.ndarray,
        directions: np.ndarray,
        z_vals: np.ndarray,
        desc: str | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """(N, S) float32 volume-rendering weights of ray samples (the last one's interval is
        empty). origins, directions: (N, 3), directions unit; z_vals: (N, S) sorted."""
        origins = np.asarray(origins, np.float32)
        directions = np.asarray(directions, np.float32)
        z_vals = np.asarray(z_vals, np.float32)
        out = [np.zeros((0, z_vals.shape[1]), np.float32)]
        for part in self._parts(len(origins), z_vals.shape[1], desc, show_progress):
            points = origins[part, None] + z_vals[part, :, None] * directions[part, None]
            out.append(
                np.asarray(
                    self._composite(
                        self.params,
                        points,
                        directions[part],
                        z_vals[part],
                        self.code,
                        self.condition,
                    )
                )
            )
        return np.concatenate(out)

    def render(
        self,
        origins: np.ndarray,
        directions: np.ndarray,
        near: float,
        far: float | np.ndarray,
        samples: int = 64,
        desc: str | None = None,
        show_progress: bool = False,
        exclude: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The canonical field rendered along rays as the model renders: `samples` samples
        evenly in disparity from near to far, then `samples` more where those put their
        weight (both used).

        Args:
          origins, directions: (N, 3), directions unit.
          near: the rays' start; far: their end, one for all or (N,).
          exclude: a box (lower (3,), upper (3,)) whose density counts as zero.

        Returns:
          rgb (N, 3) (not divided by the opacity) and acc (N,), float32.
        """
        origins = np.asarray(origins, np.float32)
        directions = np.asarray(directions, np.float32)
        far = np.broadcast_to(np.asarray(far, np.float32), (len(origins),))
        if exclude is None:
            lower, upper = np.full(3, np.inf, np.float32), np.full(3, -np.inf, np.float32)
        else:
            lower, upper = (np.asarray(b, np.float32) for b in exclude)
        rgb, acc = [np.zeros((0, 3), np.float32)], [np.zeros((0,), np.float32)]
        for part in self._parts(len(origins), 2 * samples, desc, show_progress):
            c, a = self._render(
                self.params,
                origins[part],
                directions[part],
                np.float32(near),
                far[part],
                self.code,
                self.condition,
                lower,
                upper,
                samples,
                samples,
            )
            rgb.append(np.asarray(c))
            acc.append(np.asarray(a))
        return np.concatenate(rgb), np.concatenate(acc)


# --------------------------------------------------------------------------------------------
# The scene's box.


def camera_ray_subset(
    cameras: Sequence[Camera], rays_per_camera: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rays through an even subsample of each camera's pixel centres.

    Returns:
      origins (N, 3), unit directions (N, 3), N <= about len(cameras) * rays_per_camera.
    """
    origins, directions = [np.zeros((0, 3))], [np.zeros((0, 3))]
    for camera in cameras:
        height, width = camera.image_shape
        stride = max(1, int(np.ceil(np.sqrt(height * width / rays_per_camera))))
        pixels = camera.get_pixel_centers()[stride // 2 :: stride, stride // 2 :: stride]
        o, d = camera.pixels_to_rays(pixels.reshape(-1, 2))
        origins.append(o)
        directions.append(d)
    return np.concatenate(origins), np.concatenate(directions)


def first_surface(
    weights: np.ndarray, z_vals: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Depth where each ray's accumulated opacity first reaches `threshold`.

    Args:
      weights: (N, S) volume-rendering weights; z_vals: (N, S) their depths.

    Returns:
      hit: bool (N,) (the opacity reaches it); depth: (N,) (z of that sample, nan where not).
    """
    cumulative = np.cumsum(weights, axis=1)
    hit = cumulative[:, -1] >= threshold
    index = np.argmax(cumulative >= threshold, axis=1)
    depth = np.where(hit, np.take_along_axis(z_vals, index[:, None], axis=1)[:, 0], np.nan)
    return hit, depth


def surface_box(
    field: CanonicalField,
    cameras: Sequence[Camera],
    near: float,
    far: float,
    samples: int = 256,
    rays_per_camera: int = 1024,
    margin: float = 0.05,
    quantile: float = 0.0,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The box of the surfaces the cameras see (module docstring, step 1).

    Args:
      field: the canonical field; cameras: the training cameras (model frame).
      near, far: the rays' bounds; samples: evenly spaced samples per ray.
      rays_per_camera: pixels per camera (an even subsample).
      margin: added on every side.
      quantile: per axis, the box spans the surface points' quantiles `quantile` and
        1 - `quantile` (0: all of them; a little more drops stray floaters far out).

    Returns:
      lower (3,), upper (3,); the cameras' box when no ray reaches opacity 1/2.
    """
    origins, directions = camera_ray_subset(cameras, rays_per_camera)
    z = np.broadcast_to(np.linspace(near, far, samples, dtype=np.float32), (len(origins), samples))
    weights = field.weights(origins, directions, z, "scene box", show_progress)
    hit, depth = first_surface(weights, z)
    if not hit.any():
        points = np.array([c.position for c in cameras])
    else:
        points = origins[hit] + depth[hit, None] * directions[hit]
    lower, upper = np.quantile(points, [quantile, 1.0 - quantile], axis=0)
    return lower - margin, upper + margin


# --------------------------------------------------------------------------------------------
# The grid.


def _axis(
    lower: float, upper: float, step: float, intervals: Sequence[tuple[float, float, float]]
) -> np.ndarray:
    """Coordinates from lower to upper: between consecutive interval ends, evenly spaced at
    most the smallest step of the intervals (lo, hi, step) covering that stretch (`step`
    where none does)."""
    ends = {lower, upper} | {e for lo, hi, _ in intervals for e in (lo, hi) if lower < e < upper}
    cuts = sorted(ends)
    coords = [np.array([lower])]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        middle = 0.5 * (a + b)
        local = min([s for lo, hi, s in intervals if lo <= middle <= hi] + [step])
        count = max(1, int(np.ceil((b - a) / local - 1e-9)))
        coords.append(a + (b - a) * np.arange(1, count + 1) / count)
    return np.concatenate(coords)


def grid_axes(
    lower: np.ndarray,
    upper: np.ndarray,
    resolution: int,
    regions: Sequence[tuple[np.ndarray, np.ndarray, int]] = (),
) -> list[np.ndarray]:
    """The rectilinear grid's coordinates along x, y and z.

    Args:
      lower, upper: (3,) the scene's box; resolution: points along its longest side (cells
        at most that long elsewhere).
      regions: finer boxes (lower (3,), upper (3,), points along their longest side): on each
        axis, the stretch through a box uses its step (the finest where boxes overlap).

    Returns:
      Three increasing float64 arrays from `lower` to `upper` (each >= 2 points).
    """
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    step = float((upper - lower).max()) / (resolution - 1)
    intervals: list[list[tuple[float, float, float]]] = [[], [], []]
    for low, high, points in regions:
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if points < 2:
            continue
        fine = float((high - low).max()) / (points - 1)
        for a in range(3):
            intervals[a].append((low[a], high[a], fine))
    return [_axis(lower[a], upper[a], step, intervals[a]) for a in range(3)]


def grid_points(axes: Sequence[np.ndarray], start: int, stop: int) -> np.ndarray:
    """(n, 3) the grid points of x-slices [start, stop), in [x, y, z] index order."""
    yz = np.stack(np.meshgrid(axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 2)
    xs = np.repeat(axes[0][start:stop], len(yz))
    return np.concatenate([xs[:, None], np.tile(yz, (stop - start, 1))], axis=1)


def sample_grid(
    function: Callable[[np.ndarray], np.ndarray],
    axes: Sequence[np.ndarray],
    cache: Path | None = None,
    slab_points: int = 1 << 21,
    desc: str = "density grid",
    show_progress: bool = False,
) -> np.ndarray:
    """A function sampled at every grid point, slab by slab along x, resumable.

    Args:
      function: (N, 3) points -> (N,) values.
      axes: the grid's x, y and z coordinates.
      cache: a folder for the slabs (`slab_XXXX.npy`, each written atomically and reused
        when present with the right shape); None: nothing kept.
      slab_points: about this many points per slab.

    Returns:
      float32 (Gx, Gy, Gz) values indexed [x, y, z].
    """
    gx, gy, gz = (len(a) for a in axes)
    per_slab = max(1, slab_points // (gy * gz))
    out = np.empty((gx, gy, gz), np.float32)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    starts = range(0, gx, per_slab)
    bar = tqdm(starts, desc=desc, disable=not show_progress, unit="slab")
    for index, start in enumerate(bar):
        stop = min(start + per_slab, gx)
        path = None if cache is None else cache / f"slab_{index:04d}.npy"
        if path is not None and path.is_file():
            try:
                values = np.load(path)
            except (OSError, ValueError):
                values = None
            if values is not None and values.shape == (stop - start, gy, gz):
                out[start:stop] = values
                continue
        points = grid_points(axes, start, stop)
        values = np.asarray(function(points), np.float32).reshape(stop - start, gy, gz)
        out[start:stop] = values
        if path is not None:
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, values)
            tmp.replace(path)
    return out


# --------------------------------------------------------------------------------------------
# Trilinear reads (JAX).


def trilinear(volume_: jax.Array, index: jax.Array) -> jax.Array:
    """Trilinear interpolation of a (A, B, C) array at fractional indices (N, 3), clamped to
    the array (each side >= 2): (N,)."""
    shape = jnp.array(volume_.shape)
    index = jnp.clip(index, 0.0, (shape - 1).astype(index.dtype))
    base = jnp.minimum(jnp.floor(index).astype(jnp.int32), shape - 2)
    frac = index - base
    out = jnp.zeros(index.shape[:-1], volume_.dtype)
    for corner in range(8):
        offset = jnp.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        at = base + offset
        weight = jnp.prod(jnp.where(offset == 1, frac, 1.0 - frac), axis=-1)
        out = out + weight * volume_[at[..., 0], at[..., 1], at[..., 2]]
    return out


def grid_index(axes: Sequence[jax.Array], points: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Fractional grid indices (N, 3) of points (N, 3) on a rectilinear grid, and whether each
    point is inside the grid's box (N,)."""
    index = jnp.stack(
        [
            jnp.interp(points[:, a], axes[a], jnp.arange(len(axes[a]), dtype=points.dtype))
            for a in range(3)
        ],
        axis=-1,
    )
    inside = jnp.all(
        (points >= jnp.stack([a[0] for a in axes])) & (points <= jnp.stack([a[-1] for a in axes])),
        axis=-1,
    )
    return index, inside


# --------------------------------------------------------------------------------------------
# The cameras' views: optical depth from each chosen camera.


def choose_views(cameras: Sequence[Camera], count: int) -> np.ndarray:
    """Indices of `count` cameras spread over their positions and viewing directions:
    farthest-point sampling (in the distance |dp| + s |da|, s the cameras' spread in position
    over their spread in direction) from the camera nearest to their mean."""
    positions = np.array([c.position for c in cameras], np.float64).reshape(-1, 3)
    axes = np.array([c.optical_axis for c in cameras], np.float64).reshape(-1, 3)
    spread = lambda a: float(np.linalg.norm(a - a.mean(axis=0), axis=1).mean())
    weight = spread(positions) / max(spread(axes), 1e-9)
    features = np.concatenate([positions, weight * axes], axis=1)
    count = min(count, len(features))
    chosen = [int(np.argmin(np.linalg.norm(features - features.mean(axis=0), axis=1)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    while len(chosen) < count:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(features - features[chosen[-1]], axis=1))
    return np.array(chosen)


@dataclasses.dataclass(frozen=True)
class View:
    """Where one camera sees the surface: a depth map.

    Attributes:
      camera: the (pinhole, distortion-free) camera whose pixel centres the rays go through.
      near, far: the rays' bounds (distance along the unit ray).
      depth: float32 (H, W) distance along each pixel's ray where its optical depth from
        `near` first reaches the surface's level; SEE_THROUGH where it never does.
    """

    camera: Camera
    near: float
    far: float
    depth: np.ndarray


def view_camera(camera: Camera, pixels: int) -> Camera:
    """The camera without distortion, rescaled to `pixels` along its longer image side."""
    pinhole = dataclasses.replace(
        camera, radial_distortion=np.zeros(3), tangential_distortion=np.zeros(2)
    )
    return pinhole.scale(max(camera.image_size) / pixels)


def _disparity_depths(near: float, far: float, samples: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)
    return 1.0 / ((1.0 - t) / near + t / far)


def _grid_density(grid, axes, points):
    index, inside = grid_index(axes, points.reshape(-1, 3))
    return jnp.where(inside, trilinear(grid, index), 0.0).reshape(points.shape[:-1])


@functools.partial(jax.jit, static_argnums=(6,))
def _ray_depth(grid, axes, origins, directions, depths, level, refine):
    """(N,) distance where each ray's optical depth through a rectilinear density grid first
    reaches `level` (SEE_THROUGH where it does not): trapezoids over `depths`, then `refine`
    trapezoids inside the interval where it crosses, linear within the last one."""
    points = origins[:, None] + depths[None, :, None] * directions[:, None]
    sigma = _grid_density(grid, axes, points)
    delta = jnp.diff(depths)
    steps = 0.5 * (sigma[:, :-1] + sigma[:, 1:]) * delta
    tau = jnp.concatenate([jnp.zeros_like(steps[:, :1]), jnp.cumsum(steps, axis=1)], axis=1)
    crossed = tau[:, -1] >= level
    i = jnp.clip(jnp.argmax(tau >= level, axis=1) - 1, 0, depths.shape[0] - 2)  # tau_i < level
    z0, z1 = depths[i], depths[i + 1]
    t = jnp.linspace(0.0, 1.0, refine + 1)
    z = z0[:, None] + t[None] * (z1 - z0)[:, None]  # (N, refine + 1)
    fine = _grid_density(grid, axes, origins[:, None] + z[..., None] * directions[:, None])
    fine_steps = 0.5 * (fine[:, :-1] + fine[:, 1:]) * (z1 - z0)[:, None] / refine
    start = jnp.take_along_axis(tau, i[:, None], axis=1)
    fine_tau = start + jnp.concatenate(
        [jnp.zeros_like(start), jnp.cumsum(fine_steps, axis=1)], axis=1
    )
    j = jnp.clip(jnp.argmax(fine_tau >= level, axis=1) - 1, 0, refine - 1)
    a = jnp.take_along_axis(fine_tau, j[:, None], axis=1)[:, 0]
    b = jnp.take_along_axis(fine_tau, j[:, None] + 1, axis=1)[:, 0]
    za = jnp.take_along_axis(z, j[:, None], axis=1)[:, 0]
    zb = jnp.take_along_axis(z, j[:, None] + 1, axis=1)[:, 0]
    fraction = jnp.clip((level - a) / jnp.maximum(b - a, 1e-12), 0.0, 1.0)
    depth = za + fraction * (zb - za)
    return jnp.where(crossed, jnp.where(tau[:, 0] >= level, depths[0], depth), SEE_THROUGH)


def view_depth(
    grid: np.ndarray,
    axes: Sequence[np.ndarray],
    camera: Camera,
    near: float,
    far: float,
    samples: int,
    level: float,
    refine: int = 16,
    rays_per_step: int = 2048,
) -> View:
    """A camera's `View` of a density grid (the density is 0 outside the grid's box).

    Args:
      grid: (Gx, Gy, Gz) density on the rectilinear grid `axes`.
      camera: a distortion-free camera (`view_camera`); near, far: ray bounds (> 0).
      samples: depths per ray, evenly spaced in disparity; refine: trapezoids within the
        interval where the optical depth crosses `level`.
    """
    height, width = camera.image_shape
    origins, directions = camera.pixels_to_rays(camera.get_pixel_centers().reshape(-1, 2))
    depths = jnp.asarray(_disparity_depths(near, far, samples), jnp.float32)
    grid_j = jnp.asarray(grid, jnp.float32)
    axes_j = [jnp.asarray(a, jnp.float32) for a in axes]
    parts = []
    for start in range(0, len(origins), rays_per_step):
        part = slice(start, start + rays_per_step)
        depth = _ray_depth(
            grid_j,
            axes_j,
            jnp.asarray(origins[part], jnp.float32),
            jnp.asarray(directions[part], jnp.float32),
            depths,
            jnp.float32(level),
            refine,
        )
        parts.append(np.asarray(depth))
    return View(camera, float(near), float(far), np.concatenate(parts).reshape(height, width))


def _view_arrays(view: View) -> tuple[jax.Array, ...]:
    c = view.camera
    return (
        jnp.asarray(view.depth, jnp.float32),
        jnp.asarray(c.orientation, jnp.float32),
        jnp.asarray(c.position, jnp.float32),
        jnp.asarray(
            [c.focal_length, c.focal_length * c.pixel_aspect_ratio, c.skew, *c.principal_point],
            jnp.float32,
        ),
        jnp.asarray([view.near, view.far], jnp.float32),
    )


@jax.jit
def _lookup(depth, orientation, position, intrinsics, bounds, points):
    """How far in front of one view's surface points (N, 3) are, and whether it sees them.

    The depth map is read bilinearly, except across a discontinuity (its four pixels spread
    over more than DISCONTINUITY of their nearest depth), where the nearest pixel is used:
    a silhouette stays within half a pixel instead of being eroded by a blend of the
    foreground's depth with the background's.
    """
    height, width = depth.shape
    local = (points - position) @ orientation.T
    z = local[:, 2]
    safe_z = jnp.where(z > 1e-6, z, 1.0)
    xn, yn = local[:, 0] / safe_z, local[:, 1] / safe_z
    fx, fy, skew, cx, cy = (intrinsics[k] for k in range(5))
    u = fx * xn + skew * yn + cx
    v = fy * yn + cy
    r = jnp.linalg.norm(points - position, axis=-1)
    seen = (z > 1e-6) & (u >= 0) & (u <= width) & (v >= 0) & (v <= height) & (r <= bounds[1])
    fu = jnp.clip(u - 0.5, 0.0, width - 1.0)
    fv = jnp.clip(v - 0.5, 0.0, height - 1.0)
    u0 = jnp.minimum(jnp.floor(fu).astype(jnp.int32), max(width - 2, 0))
    v0 = jnp.minimum(jnp.floor(fv).astype(jnp.int32), max(height - 2, 0))
    u1, v1 = jnp.minimum(u0 + 1, width - 1), jnp.minimum(v0 + 1, height - 1)
    a, b = fu - u0, fv - v0
    d00, d01, d10, d11 = depth[v0, u0], depth[v0, u1], depth[v1, u0], depth[v1, u1]
    bilinear = (1 - b) * ((1 - a) * d00 + a * d01) + b * ((1 - a) * d10 + a * d11)
    corners = jnp.stack([d00, d01, d10, d11], axis=-1)
    nearest = jnp.where(b < 0.5, jnp.where(a < 0.5, d00, d01), jnp.where(a < 0.5, d10, d11))
    spread = corners.max(axis=-1) - corners.min(axis=-1)
    jump = spread > DISCONTINUITY * corners.min(axis=-1)
    surface = jnp.where(jump, nearest, bilinear)
    return jnp.where(seen, surface - r, -UNSEEN), seen


def free_depth(views: Sequence[View], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far in front of every view's surface points are.

    Args:
      views: K views; points: (N, 3).

    Returns:
      free float32 (K, N): the view's surface depth at the point's pixel minus the point's
      distance (> 0: the view sees through the point; -UNSEEN where the view does not see it:
      behind the camera, outside its image or beyond `far`), seen bool (K, N).
    """
    points = np.asarray(points, np.float32).reshape(-1, 3)
    frees, seens = [], []
    for view in (_view_arrays(v) for v in views):
        free, seen = [np.zeros(0, np.float32)], [np.zeros(0, bool)]
        for start in range(0, len(points), LOOKUP_CHUNK):
            f, s = _lookup(*view, jnp.asarray(points[start : start + LOOKUP_CHUNK]))
            free.append(np.asarray(f))
            seen.append(np.asarray(s))
        frees.append(np.concatenate(free))
        seens.append(np.concatenate(seen))
    return np.stack(frees), np.stack(seens)


# --------------------------------------------------------------------------------------------
# The mesh.


def extract_mesh(
    grid: np.ndarray, axes: Sequence[np.ndarray], level: float, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The level set {value = level} of a rectilinear grid by marching cubes; inside is where
    the values are higher.

    scikit-image's marching cubes runs in index space (unit cells); a vertex at fractional
    index t on an axis maps to the linear interpolation of that axis' coordinates, which is
    exactly where marching cubes on the real cells puts it (the interpolation along an edge is
    the same fraction). Faces wind so that their right-hand normal points outwards (towards
    lower values).

    Args:
      grid: (Gx, Gy, Gz) values; axes: the coordinates along x, y, z; level: the iso-value.
      mask: bool (Gx, Gy, Gz): cells are meshed only where it is True (None: everywhere),
        scikit-image's convention (`seen_cells`).

    Returns:
      vertices float64 (V, 3), faces int64 (F, 3); empty arrays when the level is not crossed.
    """
    from skimage.measure import marching_cubes

    grid = np.asarray(grid, np.float32)
    empty = np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    if grid.size == 0 or not (grid.min() < level < grid.max()):
        return empty
    try:
        verts, faces, _, _ = marching_cubes(grid, level, mask=mask, allow_degenerate=False)
    except (ValueError, RuntimeError):  # no crossing inside the mask
        return empty
    coords = np.stack(
        [np.interp(verts[:, a], np.arange(len(axes[a])), axes[a]) for a in range(3)], axis=-1
    )
    # scikit-image winds faces with their right-hand normal towards higher values (inwards,
    # for an object of higher values): flipped. The index -> coordinate map keeps orientations.
    return coords, faces[:, ::-1].astype(np.int64)


def seen_cells(seen: np.ndarray) -> np.ndarray:
    """bool (Gx, Gy, Gz): marching cubes' mask of the cells whose eight corners are all seen
    (scikit-image reads a cell's flag at its far corner: mask[i, j, k] for the cell from
    (i - 1, j - 1, k - 1) to (i, j, k)); no surface is made at the edge of what is seen."""
    seen = np.asarray(seen, bool)
    out = np.zeros_like(seen)
    cells = seen[:-1, :-1, :-1].copy()
    for corner in range(1, 8):
        dx, dy, dz = (corner >> 2) & 1, (corner >> 1) & 1, corner & 1
        cells &= seen[dx : dx + cells.shape[0], dy : dy + cells.shape[1], dz : dz + cells.shape[2]]
    out[1:, 1:, 1:] = cells
    return out


def drop_small_components(
    vertices: np.ndarray, faces: np.ndarray, min_faces: int
) -> tuple[np.ndarray, np.ndarray]:
    """The mesh without connected components (sharing vertices) of fewer than `min_faces` faces.

    Args:
      vertices: (V, 3); faces: (F, 3).

    Returns:
      vertices (V', 3) (only those still used) and faces (F', 3) re-indexed.
    """
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if min_faces > 0 and len(faces):
        n = len(vertices)
        rows = np.concatenate([faces[:, 0], faces[:, 1]])
        cols = np.concatenate([faces[:, 1], faces[:, 2]])
        graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        per_face = labels[faces[:, 0]]
        sizes = np.bincount(per_face, minlength=labels.max() + 1)
        faces = faces[sizes[per_face] >= min_faces]
    used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
    return np.asarray(vertices)[used], inverse.reshape(-1, 3).astype(np.int64)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (right-hand rule of the faces' winding);
    zeros for vertices in no (non-degenerate) face."""
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)  # length = twice the area
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(length > 0, normals / np.where(length > 0, length, 1.0), 0.0)


def best_views(views: Sequence[View], points: np.ndarray) -> np.ndarray:
    """int (N,) for each point the view whose surface passes closest to it (among the views
    that see it; the first view when none does)."""
    free, seen = free_depth(views, points)
    return np.argmin(np.where(seen, np.abs(free), np.inf), axis=0)


def colour_vertices(
    field: CanonicalField,
    vertices: np.ndarray,
    views: Sequence[View],
    colouring: str,
    behind: float,
    samples: int = 64,
    show_progress: bool = False,
) -> np.ndarray:
    """(V, 3) float32 vertex colours in [0, 1] (the field's, sRGB-encoded).

    Args:
      field: the canonical field; vertices: (V, 3); views: the chosen cameras' views.
      colouring: "camera": the colour rendered along the ray from the vertex's best view
        (`best_views`) through it, from that view's near to `behind` beyond the vertex
        (`CanonicalField.render`, `samples` coarse and fine samples), divided by its opacity
        (the radiance at the vertex where the ray stays transparent): the NeRF's pixel colour
        without what lies farther behind (a wall seen past the edge of a head); "point": the
        radiance at the vertex seen from there.
      behind: that distance (model units).
    """
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    best = best_views(views, vertices)
    eyes = np.array([v.camera.position for v in views]).reshape(-1, 3)[best]
    offset = vertices - eyes
    distance = np.linalg.norm(offset, axis=-1)
    directions = offset / np.maximum(distance, 1e-9)[:, None]
    point_rgb, _ = field.evaluate(vertices, directions)
    if colouring == "point":
        return np.clip(point_rgb, 0.0, 1.0)
    near = np.array([v.near for v in views])[best]
    colours = np.array(point_rgb)
    # One render per distinct near: every view of a capture shares it.
    for start in np.unique(near):
        rows = np.flatnonzero(near == start)
        far = np.maximum(distance[rows] + behind, start * 1.001)
        rgb, acc = field.render(
            eyes[rows], directions[rows], start, far, samples, "vertex colours", show_progress
        )
        opaque = acc > 1e-3
        colours[rows] = np.where(
            opaque[:, None], rgb / np.maximum(acc, 1e-3)[:, None], point_rgb[rows]
        )
    return np.clip(colours, 0.0, 1.0).astype(np.float32)


def box_mask(axes: Sequence[np.ndarray], lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """bool (Gx, Gy, Gz): the grid points inside a box."""
    inside = [(a >= lower[k]) & (a <= upper[k]) for k, a in enumerate(axes)]
    return inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]


def backdrop_camera(camera: Camera, pixels: int, widen: float) -> Camera:
    """A distortion-free camera at `camera`'s pose: `pixels` along the longer side of its
    image, widened `widen` times about the principal point (same focal length)."""
    base = view_camera(camera, pixels)
    width, height = base.image_size
    wide = (int(np.ceil(width * widen)), int(np.ceil(height * widen)))
    shift = np.array([(wide[0] - width) / 2, (wide[1] - height) / 2])
    return dataclasses.replace(base, image_size=wide, principal_point=base.principal_point + shift)


def backdrop_mesh(
    field: CanonicalField,
    density: np.ndarray,
    axes: Sequence[np.ndarray],
    camera: Camera,
    near: float,
    far: float,
    exclude: tuple[np.ndarray, np.ndarray] | None,
    samples: int,
    level: float,
    colour_samples: int,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The room as a height field seen from one camera (module docstring, `room`).

    One vertex per pixel centre of `camera`, on its ray where the optical depth of `density`
    (the grid, fog already removed; zero inside `exclude`, the body's box) reaches `level`
    (`view_depth`); rays where it never does take their nearest neighbour's depth; the
    disparities are then
    smoothed (a median filter over 5 pixels, then a Gaussian of BACKDROP_SMOOTHING times the
    image's longer side: a room seen through a NeRF's haze has no sharper depth to trust). Each
    vertex is coloured by
    the field rendered along its ray (`CanonicalField.render` without the excluded box),
    divided by its opacity. Two triangles per pixel square.

    Returns:
      vertices (H W, 3), faces (2 (H - 1) (W - 1), 3), colours float32 (H W, 3).
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter, median_filter

    height, width = camera.image_shape
    density = np.asarray(density, np.float32)
    if exclude is not None:
        density = np.where(box_mask(axes, *exclude), 0.0, density).astype(np.float32)
    depth = view_depth(density, axes, camera, near, far, samples, level).depth
    valid = depth < SEE_THROUGH
    if not valid.any():
        depth = np.full((height, width), far)
    elif not valid.all():
        nearest = distance_transform_edt(~valid, return_distances=False, return_indices=True)
        depth = depth[nearest[0], nearest[1]]
    disparity = median_filter(1.0 / depth, size=5, mode="nearest")
    disparity = gaussian_filter(disparity, BACKDROP_SMOOTHING * max(height, width), mode="nearest")
    depth = 1.0 / disparity
    origins, directions = camera.pixels_to_rays(camera.get_pixel_centers().reshape(-1, 2))
    vertices = origins + depth.reshape(-1, 1) * directions
    rgb, acc = field.render(
        origins, directions, near, far, colour_samples, "backdrop colours", show_progress, exclude
    )
    colours = np.clip(rgb / np.maximum(acc, 1e-3)[:, None], 0.0, 1.0).astype(np.float32)
    grid = np.arange(height * width).reshape(height, width)
    a, b = grid[:-1, :-1].reshape(-1), grid[:-1, 1:].reshape(-1)
    c, d = grid[1:, :-1].reshape(-1), grid[1:, 1:].reshape(-1)
    # Wound so that the right-hand normal faces the camera (pixel rows go down the image).
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return vertices, faces.astype(np.int64), colours


# --------------------------------------------------------------------------------------------
# The whole bake.


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
    """16 hex digits identifying a stage's inputs (a JSON-able dict)."""
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
    """Steps 2-6 of the module docstring.

    Args:
      field: the canonical field; box: the scene's (lower, upper) (`surface_box`).
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
    axes = grid_axes(box[0], box[1], options.resolution, regions)
    shape = tuple(len(a) for a in axes)
    chosen = choose_views(cameras, options.views)
    view_cameras = [view_camera(cameras[i], options.view_pixels) for i in chosen]
    grid_key = cache_key({"field": key, "axes": [a.tolist() for a in axes]})
    mesh_key = cache_key(
        {
            "grid": grid_key,
            "options": options.as_dict(),
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
    grid = sample_grid(field.density, axes, grid_cache, show_progress=show_progress)
    fog = float(np.median(grid)) if options.fog < 0 else options.fog
    clear = np.maximum(grid - fog, 0.0).astype(np.float32)
    level = -np.log1p(-options.opacity)
    views = [
        view_depth(clear, axes, camera, near, far, options.view_samples, level)
        for camera in tqdm(view_cameras, desc="camera views", disable=not show_progress)
    ]
    backdrop = options.room == "backdrop" and body_box is not None
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
        quorum = min(options.quorum, len(views))

        def carved(points: np.ndarray) -> np.ndarray:
            # Minus how far in front of the quorum-th farthest-seeing view's surface.
            free = free_depth(views, points)[0]
            return -np.partition(free, len(views) - quorum, axis=0)[len(views) - quorum]

        values = sample_grid(
            carved,
            axes,
            None if cache is None else cache / f"surface-{surface_key}",
            desc="carving",
            show_progress=show_progress,
        )
        meshed = values < UNSEEN
        if options.thickness_m > 0:
            meshed &= values < options.thickness_m * units_per_metre
        level, mask = 0.0, seen_cells(meshed)
    if backdrop:
        inside = seen_cells(box_mask(axes, *body_box))
        mask = inside if mask is None else mask & inside
    del grid
    vertices, faces = extract_mesh(values, axes, level, mask)
    del values
    vertices, faces = drop_small_components(vertices, faces, options.min_component_faces)
    cell = min(float(np.diff(a).min()) for a in axes)
    colours = colour_vertices(
        field,
        vertices,
        views,
        options.colouring,
        options.colour_behind * cell,
        options.colour_samples,
        show_progress,
    )
    if backdrop:
        room = backdrop_mesh(
            field,
            clear,
            axes,
            backdrop_camera(cameras[chosen[0]], options.backdrop_pixels, options.backdrop_widen),
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
