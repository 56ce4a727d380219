# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME-guided deformation prior (beyond FLAME-in-NeRF; the idea of RigNeRF).

Every sample point x of frame f is moved by the displacement that takes the nearest vertex of
the frame's posed FLAME mesh back to the same identity with zero expression, a closed jaw
and (optionally) the head's rigid motion undone, faded with the distance d to that vertex:

    x' = x + (N_f[k] - P_f[k]) * exp(-(d / sigma)^2),   k = argmin_k |x - P_f[k]|

so the canonical space is the neutral face (at rest), and an unseen expression becomes a
new deformation of known texture instead of an unseen input vector. It has no parameters
and no gradient through the nearest-vertex choice.

For speed the field of each frame is sampled once on a G^3 grid over the box where
vertices move (plus 3 sigma), built with a KD-tree (`scipy.spatial.cKDTree`), and read back
trilinearly inside the train step. The grid also stores the distance to the mesh, which the
3-D variant of the spatial prior uses. Outside the box the displacement is zero and the
distance is "far".
"""

from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from flamenerf import flame

Array = jax.Array
FAR = 1e4  # distance stored outside the mesh's neighbourhood (normalised units)


@flax.struct.dataclass
class GuideGrids:
    """Per-frame displacement and distance fields on one shared box.

    Attributes:
      values: float16 (F, G, G, G, 4): displacement (3) and distance to the mesh (1),
        normalised units; axes ordered x, y, z.
      lower: (3,) corner of the box (normalised frame).
      upper: (3,) opposite corner.
    """

    values: Array
    lower: Array
    upper: Array


@dataclasses.dataclass(frozen=True)
class GuideSettings:
    """How the grids are built (host side), in normalised scene units."""

    sigma: float  # fade length of the displacement
    resolution: int  # G, grid points per side
    move_threshold: float  # vertices moving less than this do not widen the box
    undo_rigid: bool  # neutral = head at rest (zero global/neck pose and translation)


def neutral_params(params: flame.FlameParams, undo_rigid: bool) -> flame.FlameParams:
    """Same identity (and eyes), zero expression and jaw; rigid motion undone if asked."""
    keep = params._replace(expression=None, jaw_pose=None)
    if undo_rigid:
        keep = keep._replace(global_pose=None, neck_pose=None, translation=None)
    return keep


def posed_and_neutral(
    model: flame.FlameModel, params: list[flame.FlameParams], undo_rigid: bool
) -> tuple[np.ndarray, np.ndarray]:
    """FLAME vertices of each frame and of its neutral: two float64 (F, V, 3) arrays."""
    forward = jax.jit(flame.forward)
    posed = forward(model, flame.stack_params(params, model)).vertices
    neutral_list = [neutral_params(p, undo_rigid) for p in params]
    neutral = forward(model, flame.stack_params(neutral_list, model)).vertices
    return np.asarray(posed, np.float64), np.asarray(neutral, np.float64)


def grid_box(
    posed: np.ndarray, displacement: np.ndarray, settings: GuideSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The box around every vertex that moves more than the threshold, plus 3 sigma.

    Args:
      posed, displacement: (F, V, 3) normalised units.
    """
    moving = np.linalg.norm(displacement, axis=-1) > settings.move_threshold
    points = posed[moving] if moving.any() else posed.reshape(-1, 3)
    margin = 3.0 * settings.sigma
    return points.min(axis=0) - margin, points.max(axis=0) + margin


def grid_points(lower: np.ndarray, upper: np.ndarray, resolution: int) -> np.ndarray:
    """(G, G, G, 3) grid point positions, corners included, indexed [x, y, z]."""
    axes = [np.linspace(lower[i], upper[i], resolution) for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def frame_field(
    posed: np.ndarray, displacement: np.ndarray, points: np.ndarray, sigma: float
) -> np.ndarray:
    """The faded nearest-vertex displacement and the distance at points.

    Args:
      posed: (V, 3) posed vertices; displacement: (V, 3) their displacement to the neutral.
      points: (..., 3) query points; sigma: fade length.

    Returns:
      (..., 4): displacement * exp(-(d / sigma)^2) and d.
    """
    distance, index = cKDTree(posed).query(points.reshape(-1, 3))
    fade = np.exp(-((distance / sigma) ** 2))[:, None]
    field = np.concatenate([displacement[index] * fade, distance[:, None]], axis=-1)
    return field.reshape(points.shape[:-1] + (4,))


def build_grids(
    posed: np.ndarray, neutral: np.ndarray, settings: GuideSettings, show_progress: bool = False
) -> GuideGrids:
    """Samples every frame's field on one shared G^3 grid.

    Args:
      posed, neutral: (F, V, 3) normalised vertices of each frame and of its neutral.
      settings: fade, resolution, threshold.
    """
    displacement = neutral - posed
    lower, upper = grid_box(posed, displacement, settings)
    points = grid_points(lower, upper, settings.resolution)
    values = np.stack(
        [
            frame_field(p, d, points, settings.sigma).astype(np.float16)
            for p, d in tqdm(
                zip(posed, displacement, strict=True),
                total=len(posed),
                desc="FLAME guide grids",
                disable=not show_progress,
            )
        ]
    )
    return GuideGrids(values=values, lower=lower.astype(np.float32), upper=upper.astype(np.float32))


def lookup(grids: GuideGrids, frame: Array, points: Array) -> tuple[Array, Array]:
    """Trilinear read of the fields of given frames.

    Args:
      grids: the grids (F frames).
      frame: int (N,) frame index of each ray.
      points: (N, S, 3) normalised points.

    Returns:
      displacement (N, S, 3) (zero outside the box) and distance (N, S) (FAR outside).
    """
    values = grids.values
    size = values.shape[1]
    t = (points - grids.lower) / (grids.upper - grids.lower) * (size - 1)
    inside = jnp.all((t >= 0) & (t <= size - 1), axis=-1)
    t = jnp.clip(t, 0.0, size - 1 - 1e-4)
    base = jnp.floor(t).astype(jnp.int32)
    frac = t - base
    frames = jnp.broadcast_to(frame[:, None], points.shape[:-1])
    out = jnp.zeros(points.shape[:-1] + (4,), jnp.float32)
    for corner in range(8):
        offset = jnp.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        idx = base + offset
        weight = jnp.prod(jnp.where(offset == 1, frac, 1.0 - frac), axis=-1)
        corner_values = values[frames, idx[..., 0], idx[..., 1], idx[..., 2]]
        out = out + weight[..., None] * corner_values.astype(jnp.float32)
    out = jax.lax.stop_gradient(out)
    displacement = jnp.where(inside[..., None], out[..., :3], 0.0)
    distance = jnp.where(inside, out[..., 3], FAR)
    return displacement, distance
