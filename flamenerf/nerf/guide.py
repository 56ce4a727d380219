# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME-guided deformation prior (beyond FLAME-in-NeRF; the idea of RigNeRF).

Every sample point of frame f is mapped to the canonical space: the same identity with zero
expression, a closed jaw and (with `undo_rigid`) the head at rest. An unseen expression then
becomes a new deformation of known texture instead of an unseen input vector. The map has no
parameters and no gradient, and is built in two parts so that it does not fold space (a fold
shows canonical content several times: ghost shells around a turned head, ghost lips in an
open mouth):

1. The rigid part undoes the head's motion: FLAME's global pose composed with the neck pose,
   about their joints, plus the translation (the identity without `undo_rigid`). Let c be
   the head's centre at rest and rho the radius of the ball about c that holds every head
   vertex; the frame's head transform T (rest -> posed, rotation R) moves c to c' = T(c), so
   delta = c - c'. With w(r) = 1 - smoothstep((r - rho) / L), 1 in the ball and 0 beyond the
   fade length L, the ball is first carried back along delta in K explicit Euler steps

       x <- x + w(|x - c' - (k / K) delta|) delta / K,     k = 0 .. K - 1,

   then turned back about c by w(|x - c|) times the rotation of R^-1 (a twirl):

       x <- c + Rot(w(|x - c|) log R^-1) (x - c).

   In the ball this is exactly T^-1; at L or more from every ball of the sweep it is exactly
   the identity, so the torso and the room stay put. The twirl maps every sphere about c onto
   itself (Jacobian determinant 1, for any angle); an Euler step has determinant
   1 + w' r.delta / K >= m = 1 - 1.5 |delta| / (K L) (smoothstep's slope is at most 1.5 / L),
   so the rigid part's determinant is at least m^K, and it is one-to-one whenever
   |delta| < K L / 1.5: 16 cm at K = 4 and L = 6 cm, while a 20 degree turn about a pivot
   12 cm below the head centre plus a 2 cm shift moves the centre by at most 6.2 cm (m = 0.61,
   determinant >= 0.14; `rigid_margin` reports the bound per frame).

2. The residual field explains the rest (expression, jaw, neck bending). In the head's rest
   frame (after part 1) the posed vertices Q_k still differ from the neutral N_k by
   D_k = N_k - Q_k. A point z moves by a blend of its M nearest vertices' faded displacements

       r(z) = sum_i a_i D_i exp(-(d_i / s_i)^2) / sum_i a_i,   s_i = max(sigma, 1.2 |D_i|),

   with inverse-distance weights a_i = 1 / d_i^2 - 1 / d_{M+1}^2, which reach zero as a
   vertex leaves the M nearest: r is continuous (the nearest vertex's displacement alone tears
   space at the Voronoi borders between vertices that move differently) and exact at the
   vertices. One vertex's faded displacement folds where |D_k| > 1.17 s_k (the determinant is
   1 - (2 / s^2) exp(-(d / s)^2) D.(z - Q_k), at least 1 - sqrt(2 / e) |D| / s); s_k keeps
   below that. Between vertices an open mouth still forces folds: the air between the lips
   has to shrink to almost nothing, and a blend overshoots there. They are removed on the grid
   (`unfold`): where a cell's Jacobian determinant is below 0.1, its corners' residual is
   replaced by the mean of their six neighbours, until none is.

For speed the residual and the distance to the (rest-frame) mesh are sampled once per frame on
a G^3 grid over the rest-frame box of the vertices that move (each widened by 2.5 s_k; the
box stays tight on the face when the head turns), built with a KD-tree
(`scipy.spatial.cKDTree`) and read back trilinearly inside the train step; outside the box the
residual is zero and the distance "far". The rigid part is evaluated exactly. `folded_fraction`
measures the result: the share of points near the posed mesh where the Jacobian determinant of
the whole map (rigid part, then the stored residual) is <= 0.

Building is host work, frame by frame, and may be limited to the frames a run reads (the box
and the rigid part always come from every frame, so a frame's grid does not depend on which
others are built). About two thirds of a frame's time are the KD-tree queries, which already
run on every core (`workers=-1`); the rest is numpy on whole grids (the blend, `unfold`),
single-threaded but free of the GIL. Frames are therefore built in a pool of threads, one frame
per core at a time (`map_frames`), which keeps the cores busy between queries too; each frame's
computation is unchanged, so the grids are bit-identical to a serial build.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from tqdm.auto import tqdm

from flamenerf.geometry import flame
from flamenerf.geometry.subject import Subject

Array = jax.Array
FAR = 1e4  # distance stored outside the mesh's neighbourhood (normalised units)
RIGID_STEPS = 4  # K, Euler steps that carry the head's ball back along delta
FADE_RATIO = 1.2  # a vertex's fade length is at least this times its displacement
NEIGHBOURS = 8  # M, vertices blended by the residual field
BOX_MARGIN = 2.5  # fade lengths around each moving vertex kept in the grid's box
MIN_DETERMINANT = 0.1  # `unfold` smooths cells whose Jacobian determinant is below this


def map_frames(
    fn: Callable[[int], None], frames: Sequence[int], desc: str = "", show_progress: bool = False
) -> None:
    """Runs `fn(f)` for every frame index in `frames` on a pool of one thread per core.

    `fn` must write its result itself (to its own slice of an array). A progress bar over the
    finished frames with `show_progress`; the first error is raised once all have stopped.
    """
    frames = list(frames)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(cores or 1, len(frames)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(fn, f) for f in frames]
        done = concurrent.futures.as_completed(futures)
        for future in tqdm(done, total=len(futures), desc=desc, disable=not show_progress):
            future.result()


@flax.struct.dataclass
class GuideGrids:
    """Per-frame rigid head motion, and residual and distance fields on one shared box.

    Attributes:
      values: float16 (F, G, G, G, 4): residual displacement (3) and distance to the mesh (1)
        at rest-frame points, normalised units; axes ordered x, y, z.
      lower: (3,) corner of the box (normalised rest frame).
      upper: (3,) opposite corner.
      rigid: float32 (F, 3, 4): [A | b], the head's posed -> rest transform x -> A x + b in
        the normalised frame (the identity without `undo_rigid`); None: no rigid part.
      rotation: float32 (F, 3): the axis-angle vector of A (None when `rigid` is).
      centre: float32 (F, 3): the head ball's centre c' in the posed frame (None when `rigid` is).
      radius: float32 (F,): the head ball's radius rho (None when `rigid` is).
      fade: float32 (): the fade length L of the rigid part (None when `rigid` is).
    """

    values: Array
    lower: Array
    upper: Array
    rigid: Array | None = None
    rotation: Array | None = None
    centre: Array | None = None
    radius: Array | None = None
    fade: Array | None = None


@dataclasses.dataclass(frozen=True)
class GuideSettings:
    """How the grids are built (host side), in normalised scene units."""

    sigma: float  # smallest fade length of the residual (a vertex's is >= FADE_RATIO |D_k|)
    resolution: int  # G, grid points per side
    move_threshold: float  # vertices moving less than this do not widen the box
    undo_rigid: bool  # neutral = head at rest (zero global/neck pose and translation)
    rigid_fade: float = 1.0  # L, distance beyond the head's ball over which the rigid part fades


@dataclasses.dataclass(frozen=True)
class GuideStats:
    """How well the guide map avoids folding (see `folded_fraction`)."""

    # (F,) share of near-surface grid points where the map folds, per frame (NaN: a frame
    # whose grid was not built)
    folded: np.ndarray
    rigid_margin: float  # min over frames of `rigid_margin`: > 0 = rigid part one-to-one

    def summary(self) -> str:
        """One line for the log (over the frames measured)."""
        measured = np.flatnonzero(~np.isnan(self.folded))
        values = self.folded[measured]
        worst = int(measured[np.argmax(values)]) if len(values) else 0
        mean = 100 * float(np.mean(values)) if len(values) else 0.0
        return (
            f"FLAME guide: {mean:.3f}% of the points near the "
            f"mesh fold (worst: frame {worst}, {100 * float(np.max(values, initial=0)):.3f}%);"
            f" rigid part {'one-to-one' if self.rigid_margin > 0 else 'MAY FOLD'} "
            f"(Jacobian determinant >= {self.rigid_margin:.2f})"
        )


# --------------------------------------------------------------------------------------------
# FLAME side (FLAME units). The frames' posed and neutral meshes (neutral: zero expression and
# jaw, the head at rest with `undo_rigid`) are `Subject.posed_and_neutral`
# (flamenerf.geometry.subject).


def head_transforms(subject: Subject, params: Sequence[flame.FlameParams]) -> np.ndarray:
    """The head's rigid rest -> posed transform of each frame, FLAME units: float64 (F, 4, 4).

    The neck joint's skinning transform with the joints of the frame's identity at rest
    (`Subject.rest_joints`): x -> R0 R1 (x - J1) + J0 + R0 (J1 - J0) + t, with R0, R1 the
    global and neck rotations and J0, J1 the root and neck joints (it moves every vertex
    driven by the neck alone).
    """
    joints = subject.rest_joints(params)
    full = flame.stack_params(list(params), subject.model)
    r0 = np.asarray(flame.rodrigues(full.global_pose), np.float64)
    r1 = np.asarray(flame.rodrigues(full.neck_pose), np.float64)
    j0, j1 = joints[:, 0], joints[:, 1]
    rotation = r0 @ r1
    translation = (
        j0
        + np.einsum("fab,fb->fa", r0, j1 - j0)
        - np.einsum("fab,fb->fa", rotation, j1)
        + np.asarray(full.translation, np.float64)
    )
    out = np.tile(np.eye(4), (len(params), 1, 1))
    out[:, :3, :3], out[:, :3, 3] = rotation, translation
    return out


def head_vertices(model: flame.FlameModel) -> np.ndarray:
    """bool (V,): the head's vertices, driven mostly by the neck, jaw and eye joints."""
    return np.asarray(model.weights)[:, 1:].sum(axis=1) >= 0.5


def in_frame(transforms: np.ndarray, to_frame: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Rigid transforms of FLAME space expressed in another frame.

    Args:
      transforms: (F, 4, 4) rigid transforms of FLAME space.
      to_frame: a similarity FLAME -> frame on (..., 3) arrays (`Scene.flame_to_scene`).

    Returns:
      float64 (F, 4, 4): to_frame o T o to_frame^-1, fitted exactly on four points.
    """
    basis = np.array([[0, 0, 0, 1], [1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]], np.float64)
    source = np.asarray(to_frame(basis[:, :3]), np.float64)  # (4, 3)
    moved = np.asarray(to_frame(np.einsum("fab,pb->fpa", transforms, basis)[..., :3]))
    homogeneous = np.concatenate([source, np.ones((4, 1))], axis=1)  # (4, 4)
    solved = np.linalg.solve(homogeneous[None], moved)  # (F, 4, 3) = [A | b]^T
    out = np.tile(np.eye(4), (len(transforms), 1, 1))
    out[:, :3, :] = np.swapaxes(solved, 1, 2)
    return out


# --------------------------------------------------------------------------------------------
# The rigid part (JAX; shared by the model and the grid builder).


def _ball_weight(distance: Array, radius: Array, fade: Array) -> Array:
    """1 for distance <= radius, smoothly (smoothstep) 0 at radius + fade and beyond: (...,)."""
    t = jnp.clip((distance - radius) / fade, 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def _norm(v: Array) -> Array:
    squared = jnp.sum(v * v, axis=-1)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _rotation_offset(rotvec: Array, p: Array) -> Array:
    """Rot(rotvec) p - p for axis-angle vectors (..., 3); exactly zero for no rotation."""
    theta2 = jnp.sum(rotvec * rotvec, axis=-1, keepdims=True)
    small = theta2 < 1e-8
    safe2 = jnp.where(small, 1.0, theta2)
    safe = jnp.sqrt(safe2)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(safe) / safe)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(safe)) / safe2)
    cross = jnp.cross(rotvec, p)
    return a * cross + b * jnp.cross(rotvec, cross)


def undo_head_motion(
    points: Array, rigid: Array, rotation: Array, centre: Array, radius: Array, fade: Array
) -> Array:
    """The rigid part: the head's motion undone in its ball, faded to the identity outside.

    Args:
      points: (..., 3) posed-frame points.
      rigid: (..., 3, 4) posed -> rest transforms [A | b]; rotation: (..., 3) A's axis-angle.
      centre: (..., 3) the ball's posed centre c'; radius: (...,) its radius rho.
      fade: scalar fade length L > 0.

    Returns:
      (..., 3) rest-frame points: A x + b within rho of c', exactly x at L or more from the
      balls of radius rho about the segment from c' to c = A c' + b.
    """
    rest_centre = jnp.einsum("...ab,...b->...a", rigid[..., :3], centre) + rigid[..., 3]
    delta = rest_centre - centre
    x = points
    for k in range(RIGID_STEPS):
        w = _ball_weight(_norm(x - centre - (k / RIGID_STEPS) * delta), radius, fade)
        x = x + (w / RIGID_STEPS)[..., None] * delta
    w = _ball_weight(_norm(x - rest_centre), radius, fade)
    return x + _rotation_offset(w[..., None] * rotation, x - rest_centre)


def rigid_margin(rigid: np.ndarray, centre: np.ndarray, fade: float) -> np.ndarray:
    """(F,) lower bound of the rigid part's Jacobian determinant, positive = one-to-one.

    Args:
      rigid: (F, 3, 4) posed -> rest transforms; centre: (F, 3) posed ball centres; fade: L.

    Returns:
      m^K with m = 1 - 1.5 |delta| / (K L) the bound of one Euler step when m > 0, else m.
    """
    rest_centre = np.einsum("fab,fb->fa", rigid[:, :, :3], centre) + rigid[:, :, 3]
    step = 1.0 - 1.5 * np.linalg.norm(rest_centre - centre, axis=-1) / (RIGID_STEPS * fade)
    return np.where(step > 0, np.maximum(step, 0.0) ** RIGID_STEPS, step)


def head_ball(
    transforms: np.ndarray, neutral: np.ndarray, head: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rigid part's per-frame parameters (all in one frame).

    Args:
      transforms: (F, 4, 4) the head's rest -> posed transforms.
      neutral: (F, V, 3) neutral vertices at rest; head: bool (V,) the head's vertices.

    Returns:
      rigid (F, 3, 4) posed -> rest [A | b]; rotation (F, 3) A's axis-angle; centre (F, 3)
      the ball's posed centre (the middle of the head's box at rest, moved); radius (F,) the
      largest distance from it to a head vertex at rest.
    """
    inverse = np.linalg.inv(transforms)[:, :3, :]
    points = neutral[:, head]
    rest_centre = 0.5 * (points.min(axis=1) + points.max(axis=1))
    radius = np.linalg.norm(points - rest_centre[:, None], axis=-1).max(axis=1)
    centre = np.einsum("fab,fb->fa", transforms[:, :3, :3], rest_centre) + transforms[:, :3, 3]
    rotation = Rotation.from_matrix(inverse[:, :, :3]).as_rotvec()
    return inverse, rotation, centre, radius


# --------------------------------------------------------------------------------------------
# The residual field (host side).


def vertex_fades(displacement: np.ndarray, sigma: float) -> np.ndarray:
    """(..., V) per-vertex fade lengths s_k = max(sigma, FADE_RATIO |D_k|)."""
    return np.maximum(sigma, FADE_RATIO * np.linalg.norm(displacement, axis=-1))


def residual_field(
    vertices: np.ndarray,
    displacement: np.ndarray,
    points: np.ndarray,
    sigma: float,
    neighbours: int = NEIGHBOURS,
) -> np.ndarray:
    """The blended, faded vertex displacement and the distance to the nearest vertex.

    Args:
      vertices: (V, 3) rest-frame posed vertices; displacement: (V, 3) theirs to the neutral.
      points: (..., 3) query points; sigma: smallest fade length.
      neighbours: M, vertices blended (1: the nearest vertex's alone, a Voronoi field).

    Returns:
      (..., 4): the residual displacement (3) and the distance (1).
    """
    flat = points.reshape(-1, 3)
    fades = vertex_fades(displacement, sigma)
    tree = cKDTree(vertices)
    distance, nearest = tree.query(flat, workers=-1)  # every core
    field = displacement[nearest] * np.exp(-((distance / fades[nearest]) ** 2))[:, None]
    m = min(neighbours, len(vertices) - 1)
    if m > 1:
        # Beyond 3 of the largest fades from every vertex the field is below e^-9 |D|.
        close = distance < 3.0 * fades.max()
        d, index = tree.query(flat[close], k=m + 1, workers=-1)
        blend = index[:, :m]
        faded = displacement[blend] * np.exp(-((d[:, :m] / fades[blend]) ** 2))[..., None]
        inverse = 1.0 / np.maximum(d, 1e-12) ** 2
        weights = inverse[:, :m] - inverse[:, m:]
        total = weights.sum(axis=1)
        ok = total > 0
        blended = np.einsum("nk,nkc->nc", weights, faded) / np.where(ok, total, 1.0)[:, None]
        field[close] = np.where(ok[:, None], blended, faded[:, 0])
    out = np.concatenate([field, distance[:, None]], axis=-1)
    return out.reshape(points.shape[:-1] + (4,))


def cell_determinants(residual: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Smallest Jacobian determinant of x -> x + r(x) over each cell's eight corners.

    Args:
      residual: (Gx, Gy, Gz, 3) r at grid points indexed [x, y, z] (trilinear in between).
      spacing: (3,) grid steps.

    Returns:
      (Gx - 1, Gy - 1, Gz - 1): min over corners of det(I + dr/dx), each corner using the
      cell's three edges from it.
    """
    edges = [np.diff(residual, axis=a) / spacing[a] for a in range(3)]
    n = [s - 1 for s in residual.shape[:3]]
    smallest = None
    for corner in range(8):
        cx, cy, cz = (corner >> 2) & 1, (corner >> 1) & 1, corner & 1
        a = edges[0][:, cy : cy + n[1], cz : cz + n[2]]  # d r / dx: columns of the Jacobian
        b = edges[1][cx : cx + n[0], :, cz : cz + n[2]]
        c = edges[2][cx : cx + n[0], cy : cy + n[1], :]
        a0, a1, a2 = a[..., 0] + 1.0, a[..., 1], a[..., 2]
        b0, b1, b2 = b[..., 0], b[..., 1] + 1.0, b[..., 2]
        c0, c1, c2 = c[..., 0], c[..., 1], c[..., 2] + 1.0
        det = a0 * (b1 * c2 - c1 * b2) - b0 * (a1 * c2 - c1 * a2) + c0 * (a1 * b2 - b1 * a2)
        smallest = det if smallest is None else np.minimum(smallest, det)
    return smallest


def unfold(
    residual: np.ndarray,
    spacing: np.ndarray,
    min_determinant: float = MIN_DETERMINANT,
    max_rounds: int = 100,
) -> np.ndarray:
    """The grid residual with its folds smoothed away.

    Where a cell's Jacobian determinant (`cell_determinants`) is below `min_determinant`, the
    residual at its corners becomes the mean of their six neighbours; repeated (on the box
    around the bad cells) until no cell is below, or `max_rounds` rounds of 10 passes.

    Args:
      residual: (Gx, Gy, Gz, 3) float64; spacing: (3,) grid steps.

    Returns:
      (Gx, Gy, Gz, 3) a smoothed copy (equal wherever no fold was near).
    """
    residual = residual.copy()
    shape = np.array(residual.shape[:3])
    for _ in range(max_rounds):
        bad = cell_determinants(residual, spacing) < min_determinant
        if not bad.any():
            break
        where = np.argwhere(bad)
        lo = np.maximum(where.min(axis=0) - 2, 0)
        hi = np.minimum(where.max(axis=0) + 3, shape - 1)
        block = residual[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]  # a view
        for _ in range(10):
            bad_cells = cell_determinants(block, spacing) < min_determinant
            if not bad_cells.any():
                break
            corners = np.zeros(block.shape[:3], bool)
            for corner in range(8):
                cx, cy, cz = (corner >> 2) & 1, (corner >> 1) & 1, corner & 1
                gx, gy, gz = bad_cells.shape
                corners[cx : cx + gx, cy : cy + gy, cz : cz + gz] |= bad_cells
            p = np.pad(block, ((1, 1), (1, 1), (1, 1), (0, 0)), mode="edge")
            mean = (
                p[2:, 1:-1, 1:-1]
                + p[:-2, 1:-1, 1:-1]
                + p[1:-1, 2:, 1:-1]
                + p[1:-1, :-2, 1:-1]
                + p[1:-1, 1:-1, 2:]
                + p[1:-1, 1:-1, :-2]
            ) / 6.0
            block[corners] = mean[corners]
    return residual


def grid_box(
    rest_posed: np.ndarray, displacement: np.ndarray, settings: GuideSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The rest-frame box around every vertex that moves more than the threshold.

    Each moving vertex widens it by BOX_MARGIN of its fade lengths.

    Args:
      rest_posed, displacement: (F, V, 3) normalised units (rest frame).
    """
    size = np.linalg.norm(displacement, axis=-1)
    moving = size > settings.move_threshold
    if not moving.any():
        moving = np.ones_like(moving)
    points = rest_posed[moving]
    margin = BOX_MARGIN * np.maximum(settings.sigma, FADE_RATIO * size[moving])[:, None]
    return (points - margin).min(axis=0), (points + margin).max(axis=0)


def grid_points(lower: np.ndarray, upper: np.ndarray, resolution: int) -> np.ndarray:
    """(G, G, G, 3) grid point positions, corners included, indexed [x, y, z]."""
    axes = [np.linspace(lower[i], upper[i], resolution) for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def build_grids(
    posed: np.ndarray,
    neutral: np.ndarray,
    settings: GuideSettings,
    show_progress: bool = False,
    transforms: np.ndarray | None = None,
    head: np.ndarray | None = None,
    frames: Sequence[int] | None = None,
) -> GuideGrids:
    """The rigid part's parameters and every frame's residual on one shared G^3 grid.

    Args:
      posed, neutral: (F, V, 3) normalised vertices of each frame and of its neutral.
      settings: fade lengths, resolution, threshold.
      show_progress: a progress bar over the frames built.
      transforms: (F, 4, 4) the head's rest -> posed transforms in the normalised frame
        (`in_frame(head_transforms(...), to_scene)`); None, or `undo_rigid` off: identity.
      head: bool (V,) the head's vertices (`head_vertices`); None: every vertex.
      frames: indices of the frames whose residual grids to build (default: all); the
        others' `values` are NaN (a render reading them is NaN, never silently wrong). The
        box and the rigid part always cover every frame: a built frame's grid is the same
        whichever others are built.
    """
    chosen = range(len(posed)) if frames is None else sorted({int(f) for f in frames})
    if any(not 0 <= f < len(posed) for f in chosen):
        raise ValueError(f"build_grids: frames {list(chosen)} outside [0, {len(posed)})")
    frames = len(posed)
    if transforms is None or not settings.undo_rigid:
        transforms = np.tile(np.eye(4), (frames, 1, 1))
    head = np.ones(posed.shape[1], bool) if head is None else np.asarray(head, bool)
    rigid, rotation, centre, radius = head_ball(transforms, neutral, head)
    f32 = lambda a: np.asarray(a, np.float32)
    fade = f32(settings.rigid_fade)
    undo = jax.jit(undo_head_motion)
    rest_posed = np.stack(
        [
            undo(f32(posed[f]), f32(rigid[f]), f32(rotation[f]), f32(centre[f]), radius[f], fade)
            for f in range(frames)
        ]
    ).astype(np.float64)
    displacement = neutral - rest_posed
    lower, upper = grid_box(rest_posed, displacement, settings)
    points = grid_points(lower, upper, settings.resolution)
    spacing = (upper - lower) / (settings.resolution - 1)
    values = np.full((frames,) + points.shape[:3] + (4,), np.nan, np.float16)

    def build(f: int) -> None:
        field = residual_field(rest_posed[f], displacement[f], points, settings.sigma)
        field[..., :3] = unfold(field[..., :3], spacing)
        values[f] = field

    map_frames(build, chosen, "FLAME guide grids", show_progress)
    return GuideGrids(
        values=values,
        lower=f32(lower),
        upper=f32(upper),
        rigid=f32(rigid),
        rotation=f32(rotation),
        centre=f32(centre),
        radius=f32(radius),
        fade=fade,
    )


# --------------------------------------------------------------------------------------------
# Reading (inside the train step).


def lookup(grids: GuideGrids, frame: Array, points: Array) -> tuple[Array, Array]:
    """Trilinear read of the residual and distance fields of given frames.

    Args:
      grids: the grids (F frames).
      frame: int (N,) frame index of each ray.
      points: (N, S, 3) normalised rest-frame points.

    Returns:
      residual (N, S, 3) (zero outside the box) and distance (N, S) (FAR outside).
    """
    values = jnp.asarray(grids.values)
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


def to_rest(grids: GuideGrids, frame: Array, points: Array) -> Array:
    """The rigid part for each ray's frame: (N, S, 3) posed -> (N, S, 3) rest-frame points."""
    if grids.rigid is None:
        return points
    per_ray = lambda a: a[frame][:, None]
    return undo_head_motion(
        points,
        per_ray(grids.rigid),
        per_ray(grids.rotation),
        per_ray(grids.centre),
        per_ray(grids.radius),
        grids.fade,
    )


def head_rotation_feature(grids: GuideGrids, frame: Array, points: Array) -> Array:
    """The head's rotation where the rigid part moves points: (N, S, 3).

    The axis-angle vector of each ray's frame's head rotation (rest -> posed, so a head turned
    left gives the same sign whatever the camera), times the rigid part's ball weight at the
    posed points (1 in the head's ball, 0 at the fade length L beyond it); zero everywhere for
    a head at rest.

    Args:
      grids: the grids (F frames), with their rigid part.
      frame: int (N,) frame index of each ray; points: (N, S, 3) normalised posed points.
    """
    if grids.rigid is None:
        raise ValueError("head_rotation_feature: the guide grids have no rigid part")
    centre = grids.centre[frame][:, None]
    weight = _ball_weight(_norm(points - centre), grids.radius[frame][:, None], grids.fade)
    return weight[..., None] * (-grids.rotation[frame])[:, None]


def apply(grids: GuideGrids, frame: Array, points: Array) -> tuple[Array, Array]:
    """The whole guide map: canonical points and the distance to the frame's mesh.

    Args:
      grids: the grids (F frames).
      frame: int (N,) frame index of each ray.
      points: (N, S, 3) normalised posed-frame points.

    Returns:
      canonical (N, S, 3): the rigid part, then the residual, as points plus a displacement
      that carries no gradient (far from the head: the points themselves, exactly);
      distance (N, S) to the mesh (FAR outside the residual's box).
    """
    rest = to_rest(grids, frame, points)
    residual, distance = lookup(grids, frame, rest)
    return points + jax.lax.stop_gradient(rest + residual - points), distance


# --------------------------------------------------------------------------------------------
# Folding.


def jacobian_determinants(values: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Finite-difference Jacobian determinants of a map sampled on a grid.

    Args:
      values: (Gx, Gy, Gz, 3) the map at grid points indexed [x, y, z].
      spacing: (3,) grid steps along x, y, z.

    Returns:
      (Gx, Gy, Gz) det(d map / dx): central differences inside, one-sided at the faces.
    """
    columns = [np.gradient(values, spacing[i], axis=i) for i in range(3)]
    return np.linalg.det(np.stack(columns, axis=-1))


def fold_fraction(
    mapping: Callable[[np.ndarray], np.ndarray],
    vertices: np.ndarray,
    near: float,
    resolution: int,
) -> float:
    """Share of grid points within `near` of a mesh's vertices where `mapping` folds.

    Args:
      mapping: (P, 3) -> (P, 3), posed-frame points to canonical points.
      vertices: (V, 3) the posed mesh; the grid spans their box plus `near`.
      near: distance to the nearest vertex that counts as near the surface.
      resolution: grid points per side.

    Returns:
      The share of those points where the Jacobian determinant is <= 0.
    """
    lower, upper = vertices.min(axis=0) - near, vertices.max(axis=0) + near
    points = grid_points(lower, upper, resolution)
    mapped = np.asarray(mapping(points.reshape(-1, 3)), np.float64).reshape(points.shape)
    det = jacobian_determinants(mapped, (upper - lower) / (resolution - 1))
    distance, _ = cKDTree(vertices).query(
        points.reshape(-1, 3), distance_upper_bound=near, workers=-1
    )
    close = (distance <= near).reshape(det.shape)
    return float(np.mean(det[close] <= 0)) if close.any() else 0.0


def folded_fraction(
    grids: GuideGrids,
    posed: np.ndarray,
    sigma: float,
    resolution: int | None = None,
    frames: Sequence[int] | None = None,
) -> GuideStats:
    """Folding of the whole guide map (`apply`) on each frame, near the posed mesh.

    Args:
      grids: the frames' grids; posed: (F, V, 3) their posed vertices (normalised).
      sigma: the residual's fade length: points within 2 sigma of a vertex count.
      resolution: points per side of each frame's finite-difference grid (default G).
      frames: the frames to measure (default: all; the others' `folded` is NaN), in a pool
        of threads (`map_frames`).
    """
    resolution = resolution or grids.values.shape[1]
    device = jax.tree.map(jnp.asarray, grids)
    mapped = jax.jit(lambda g, f, p: apply(g, f, p)[0])

    def one_frame(f: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: mapped(device, jnp.array([f]), jnp.asarray(p[None], jnp.float32))[0]

    folded = np.full(len(posed), np.nan)

    def measure(f: int) -> None:
        folded[f] = fold_fraction(one_frame(f), posed[f], 2.0 * sigma, resolution)

    map_frames(measure, range(len(posed)) if frames is None else frames)
    margin = 1.0
    if grids.rigid is not None:
        margin = rigid_margin(
            np.asarray(grids.rigid, np.float64),
            np.asarray(grids.centre, np.float64),
            float(grids.fade),
        ).min(initial=1.0)
    return GuideStats(folded=folded, rigid_margin=float(margin))
