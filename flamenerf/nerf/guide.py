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

   The ball holds every head vertex, so it reaches below the neck: the top of the torso
   (on the procedural head, 7% of the generator's torso vertices in the ball and 20% within
   its fade) is carried along with the head, and blurs across the frames of a turning head.
   `GuideConfig.rigid_weight = "neck"` (`follow_neck`) cuts the weight at the neck instead,
   inside the same ball so that the room stays exactly put:

       w_k(x) = b(|x - c_k|) n(x),   n(x) = smoothstep(((x - J0).u - l + N) / N),

   b the ball weight above, c_k the ball's centre at step k; u FLAME's up axis (FLAME models
   are upright, y up, in their own space), J0 the root joint at rest (the neck's base and the
   pivot of FLAME's global pose), l the level from which up the head moves exactly
   (`neck_level_m`, 0: the root joint's height) and N the fade length below it (`neck_fade_m`,
   2 cm). Both come from FLAME alone (a real capture has no torso mesh). n is fixed in the
   rest frame, which is the torso's: the torso does not move, so a point under the fade stays
   put whatever the head does; the ball moves with the head. (Reading n in the head's frame
   instead keeps the chin above the fade in every pose but lifts the top of the torso into it
   whenever the head nods or drops: on the turning capture 2% of the torso's vertex-frames
   moved by more than 1 mm against none.) A weight whose gradient is not radial cannot drive
   the twirl (turning a sphere about c by an angle that changes along the neck tears it), so
   the motion is applied as a flow along its screw: T^-1 = exp(xi), xi the twist with
   velocity field xi(x) = phi x (x - c') + v (phi = log A, the rotation vector of T^-1; v =
   xi(c'), the velocity at the posed ball centre, `twist_velocity`), and each of K = 16 steps
   moves a point by its weight's share of the twist:

       x <- exp((w_k(x) / K) xi) x,   c_k = exp((k / K) xi) c',   k = 0 .. K - 1.

   Exactness. A point with w_k = 1 at every step is moved by exp(xi / K) K times: exactly
   T^-1. That holds for the points of the posed ball (|x - c'| <= rho: c_k moves with them)
   whose shares of the way back exp((k / K) xi) x, k < K, all lie at or above the level; on
   the head's motion of a vertex v, x = T(v), those are T^(1 - k/K)(v). At rest every head
   vertex above the level has weight 1; on the procedural head 0.55% of them lie below it, all
   on the lowest ring of the neck (FLAME skins them partly to the root joint: the neck bends
   there, which the fade stands for). A chin that the jaw or a nod takes below the level is
   moved only partly (of the head's vertices under pure rigid motions, 99.4% are exact for a
   17 degree neck turn with a 2 cm shift, 96% for an 18 degree turn and nod with a 2 cm shift,
   84.5% for a 36 degree motion nodding down with a 2 cm drop); the residual takes it the rest
   of the way (below). A point with n(x) = 0 (the
   torso under the fade) or beyond the ball's fade from every c_k (the room) has w_k = 0 at
   every step: exactly the identity, for any motion.

   One-to-one. exp(s xi) is a rigid motion A_s, and d/ds exp(s xi) x = xi(exp(s xi) x) =
   A_s xi(x) (a flow commutes with its field). A step y = exp(s(x) xi) x with s = w_k / K
   therefore has the Jacobian A_s (I + xi(x) grad(s)^T), of determinant 1 + grad(w_k).xi(x) /
   K. The ball's part of the gradient is radial about c_k, where xi(x).(x - c_k) = xi(c_k).(x
   - c_k) and |xi(c_k)| = |v| (the speed along a flow's orbit is constant); the neck's part is
   along u, where |xi(x).u| <= |xi(o).u| + |u x phi| d(x), d(x) the distance from x to the
   neck's axis through o (a point of it). With smoothstep's slope at most 1.5 per length,

       det >= m_k = 1 - (1.5 |v| / L + 1.5 S_k / N) / K,   S_k = max |xi(x).u| over the fade
       slab within the ball's support about c_k,

   and a step with m_k > 0 everywhere is one-to-one (a C^1 map equal to the identity outside a
   bounded set, with a positive determinant, is a bijection); so is their composition
   (`neck_margin` reports prod m_k, positive for every motion up to 20 degrees of yaw, pitch
   and roll together, a 36 degree rotation, with a 2 cm shift). The bound is loose (S_k
   takes the ball's widest section through the slab, the shoulders); the determinant
   measured by automatic differentiation on a grid over head, neck and shoulders (15 mm, and
   4 mm around the neck and the top of the torso) under those motions, about the root joint
   (global pose) or the neck joint (neck pose), is at least 0.04 (0.03 with K = 8;
   tests/nerf/test_guide_neck.py). Pivoting helps: FLAME's global pose turns about J0, so near
   the neck's base xi is little more than the translation. The small determinant is the neck
   squeezed, not folded: the flow's own determinant is the exponential of the integral of
   grad(w).xi, never 0, and a 2 cm drop of the head over a 2 cm fade squeezes it.

   The residual (part 2) uses the rigid part's weight too: it takes a vertex to its target
   w N_k + (1 - w) Q_k (`vertex_targets`; w the weight of its neutral at rest, Q_k where the
   rigid part leaves it), the neutral for the head and its own place for FLAME's neck stub
   below the fade (FLAME's global pose turns the stub with the head while the torso around it
   stays): a displacement there would drag the torso after it. The FLAME-vertex warp penalty
   uses the same targets.

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
(`scipy.spatial.cKDTree`) and read back trilinearly inside the train step; outside the box, and
beyond 3 of the largest fade lengths from every vertex (where each faded displacement is
below e^-9 |D_k|), the residual is zero and the distance "far" (FAR; `GuideSettings.reach`
keeps it exact farther out for the "mesh" prior). The rigid part is evaluated exactly.
`folded_fraction` measures the result: the share of points near the mesh where the Jacobian
determinant of the whole map (rigid part, then the stored residual) is <= 0. The rigid part's
determinant is positive wherever its bound is (`rigid_margin`, `neck_margin`), so the
residual's grid alone decides, near the rest-frame mesh; a frame without that bound is
measured on the whole map at posed points.

Building is host work, frame by frame, and may be limited to the frames a run reads (the box
and the rigid part always come from every frame, so a frame's grid does not depend on which
others are built). One KD-tree query per grid point, bounded at that reach so that the far
points cost little (2.2x faster than an exact nearest-vertex query followed by the blend's,
measured on the demo capture), runs on every core (`workers=-1`); the rest is numpy on whole
grids (the blend, `unfold`), single-threaded but free of the GIL. Frames are therefore built
in a pool of threads, one frame per core at a time (`flamenerf.threads.map_threads`), which
keeps the cores busy between queries too; each frame's computation is unchanged, so the grids
are bit-identical to a serial build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from flamenerf import threads
from flamenerf.geometry import flame
from flamenerf.geometry.subject import Subject

Array = jax.Array
FAR = 1e4  # distance stored outside the mesh's neighbourhood (normalised units)
RIGID_STEPS = 4  # K, Euler steps that carry the head's ball back along delta
NECK_STEPS = 16  # K of the "neck" weight: steps of the flow along the head's twist
RIGID_WEIGHTS = ("ball", "neck")  # GuideConfig.rigid_weight
FADE_RATIO = 1.2  # a vertex's fade length is at least this times its displacement
NEIGHBOURS = 8  # M, vertices blended by the residual field
BOX_MARGIN = 2.5  # fade lengths around each moving vertex kept in the grid's box
MIN_DETERMINANT = 0.1  # `unfold` smooths cells whose Jacobian determinant is below this
KD_LEAF_SIZE = 32  # points per leaf of the vertices' KD-tree (measured faster than 16 and 64)


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
      twist: float32 (F, 3): with the "neck" weight, v = xi(c'), the velocity at the posed
        ball centre of the twist xi = log T^-1 (its rotation vector is `rotation`); None with
        the "ball" weight (the rigid part is `undo_head_motion`, else `follow_neck`).
      neck_origin: float32 (F, 3): ("neck") where the neck weight is 0 on the neck's axis:
        the root joint at rest moved along the up axis by the level minus the fade.
      neck_axis: float32 (F, 3): ("neck") FLAME's unit up axis at rest.
      neck_fade: float32 (): ("neck") the neck weight's fade length N.
    """

    values: Array
    lower: Array
    upper: Array
    rigid: Array | None = None
    rotation: Array | None = None
    centre: Array | None = None
    radius: Array | None = None
    fade: Array | None = None
    twist: Array | None = None
    neck_origin: Array | None = None
    neck_axis: Array | None = None
    neck_fade: Array | None = None


@dataclasses.dataclass(frozen=True, repr=False)
class GuideSettings:
    """How the grids are built (host side), in normalised scene units."""

    sigma: float  # smallest fade length of the residual (a vertex's is >= FADE_RATIO |D_k|)
    resolution: int  # G, grid points per side
    move_threshold: float  # vertices moving less than this do not widen the box
    undo_rigid: bool  # neutral = head at rest (zero global/neck pose and translation)
    rigid_fade: float = 1.0  # L, distance beyond the head's ball over which the rigid part fades
    rigid_weight: str = "ball"  # RIGID_WEIGHTS: the ball alone, or cut at the neck
    neck_level: float = 0.0  # ("neck") l, height above the root joint from which w = 1
    neck_fade: float = 1.0  # ("neck") N, the neck weight's fade length below the level
    reach: float = 0.0  # distances to the mesh up to at least this are exact (`residual_field`)

    def __post_init__(self) -> None:
        if not self.reach >= 0:
            raise ValueError(f"GuideSettings.reach: expected >= 0, got {self.reach!r}")
        if self.rigid_weight not in RIGID_WEIGHTS:
            raise ValueError(
                f"GuideSettings.rigid_weight: expected one of {RIGID_WEIGHTS}, "
                f"got {self.rigid_weight!r}"
            )

    def __repr__(self) -> str:
        """The fields (the repr keys the grid cache, `experiment.guide_cache_path`); the neck's
        only with the "neck" weight, `reach` only when set."""
        names = [f.name for f in dataclasses.fields(self)]
        if self.rigid_weight == "ball":
            names = [n for n in names if n not in ("rigid_weight", "neck_level", "neck_fade")]
        if not self.reach:
            names.remove("reach")
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


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


def neck_frame(
    subject: Subject,
    params: Sequence[flame.FlameParams],
    to_frame: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Each frame's root joint at rest and FLAME's up axis, in another frame: float64 (F, 2, 3).

    The "neck" rigid weight's frame (module docstring): row 0 the root joint of the frame's
    identity at rest (`Subject.rest_joints`), row 1 the unit image of FLAME's y axis (FLAME
    models are upright in their own space). `to_frame`: a similarity FLAME -> frame
    (`Scene.flame_to_scene`).
    """
    root = subject.rest_joints(params)[:, 0]
    base = np.asarray(to_frame(root), np.float64)
    up = np.asarray(to_frame(root + np.array([0.0, 1.0, 0.0])), np.float64) - base
    return np.stack([base, up / np.linalg.norm(up, axis=-1, keepdims=True)], axis=1)


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
#
# Vectors are carried as their three components, each an array of the points' batch shape
# (`_components`), so that every step of the flows below is elementwise: XLA fuses it into a
# few loops, where (..., 3) arrays cost a reduction or a concatenation per dot or cross
# product (on the CPU the rigid part of 4,096 x 32 points: about 60 -> 24 ms; the arithmetic
# is the same). The steps run in a `fori_loop`: unrolled, XLA's CPU compiler fused across
# them and took minutes on a forward-mode Jacobian of the map (the loop: 1.7 s).

Vec = tuple[Array, Array, Array]


def _components(v: Array) -> Vec:
    """(..., 3) -> three (...,) arrays."""
    return v[..., 0], v[..., 1], v[..., 2]


def _stacked(v: Vec) -> Array:
    """Three (...,) arrays -> (..., 3)."""
    return jnp.stack(jnp.broadcast_arrays(*v), axis=-1)


def _add(a: Vec, b: Vec) -> Vec:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _sub(a: Vec, b: Vec) -> Vec:
    return a[0] - b[0], a[1] - b[1], a[2] - b[2]


def _scale(s: Array, v: Vec) -> Vec:
    return s * v[0], s * v[1], s * v[2]


def _dot(a: Vec, b: Vec) -> Array:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec, b: Vec) -> Vec:
    return a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]


def _norm(v: Vec) -> Array:
    """|v|, with a zero (not NaN) gradient at v = 0."""
    squared = _dot(v, v)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _ball_weight(distance: Array, radius: Array, fade: Array) -> Array:
    """1 for distance <= radius, smoothly (smoothstep) 0 at radius + fade and beyond: (...,)."""
    t = jnp.clip((distance - radius) / fade, 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def _rotation_offset(rotvec: Vec, p: Vec) -> Vec:
    """Rot(rotvec) p - p for axis-angle vectors; exactly zero for no rotation."""
    theta2 = _dot(rotvec, rotvec)
    small = theta2 < 1e-8
    safe2 = jnp.where(small, 1.0, theta2)
    safe = jnp.sqrt(safe2)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(safe) / safe)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(safe)) / safe2)
    cross = _cross(rotvec, p)
    return _add(_scale(a, cross), _scale(b, _cross(rotvec, cross)))


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
    delta = _components(rest_centre - centre)
    c, rest_c, rotvec = _components(centre), _components(rest_centre), _components(rotation)
    x = _components(points)

    def carry(k: Array, x: Vec) -> Vec:
        w = _ball_weight(_norm(_sub(_sub(x, c), _scale(k / RIGID_STEPS, delta))), radius, fade)
        return _add(x, _scale(w / RIGID_STEPS, delta))

    x = tuple(jnp.broadcast_arrays(*x, c[0], delta[0])[:3])  # the loop carries the points' shape
    x = jax.lax.fori_loop(0, RIGID_STEPS, carry, x)
    w = _ball_weight(_norm(_sub(x, rest_c)), radius, fade)
    return _stacked(_add(x, _rotation_offset(_scale(w, rotvec), _sub(x, rest_c))))


def _neck_weight(points: Vec, origin: Vec, axis: Vec, fade: Array) -> Array:
    """0 at or below `origin` along `axis`, smoothly (smoothstep) 1 at `fade` above it: (...,)."""
    t = jnp.clip(_dot(_sub(points, origin), axis) / fade, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _twist_offset(rotvec: Vec, velocity: Vec, p: Vec) -> Vec:
    """exp(xi) p - p for the twist xi(x) = rotvec x x + velocity (p relative to the point
    where the velocity is taken): Rot(r) p - p + V(r) v with V = I + b [r]x + c [r]x^2,
    b = (1 - cos t) / t^2, c = (t - sin t) / t^3 (t = |r|), both free of float32's
    cancellation at small angles (b = sinc(t / 2)^2 / 2, c by its series below 0.1 rad);
    exactly zero for a zero twist."""
    theta2 = _dot(rotvec, rotvec)
    small = theta2 < 1e-8
    safe2 = jnp.where(small, 1.0, theta2)
    safe = jnp.sqrt(safe2)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(safe) / safe)
    half = jnp.sin(0.5 * safe) / (0.5 * safe)
    b = jnp.where(small, 0.5 - theta2 / 24.0, 0.5 * half * half)
    series = 1.0 / 6.0 - theta2 / 120.0 + theta2 * theta2 / 5040.0 - theta2**3 / 362880.0
    c = jnp.where(theta2 < 1e-2, series, (safe - jnp.sin(safe)) / (safe2 * safe))
    turn, shift = _cross(rotvec, p), _cross(rotvec, velocity)
    rotated = _add(_scale(a, turn), _scale(b, _cross(rotvec, turn)))
    return _add(_add(rotated, velocity), _add(_scale(b, shift), _scale(c, _cross(rotvec, shift))))


def follow_neck(
    points: Array,
    rotation: Array,
    twist: Array,
    centre: Array,
    radius: Array,
    fade: Array,
    neck_origin: Array,
    neck_axis: Array,
    neck_fade: Array,
) -> Array:
    """The rigid part with the "neck" weight: the head's motion undone above the neck.

    Args:
      points: (..., 3) posed-frame points.
      rotation: (..., 3) phi, the rotation vector of T^-1; twist: (..., 3) v = xi(c'), the
        velocity of the twist xi = log T^-1 at the posed ball centre c'.
      centre: (..., 3) c'; radius: (...,) rho; fade: scalar L > 0.
      neck_origin, neck_axis: (..., 3) where the neck weight is 0, and the unit up axis;
        neck_fade: scalar N > 0.

    Returns:
      (..., 3) rest-frame points (module docstring): T^-1 x where every step's weight is 1,
      exactly x where the neck weight is 0 or beyond L from the ball of every step.
    """
    x, c = _components(points), _components(centre)
    rotvec, velocity = _components(rotation), _components(twist)
    origin, axis = _components(neck_origin), _components(neck_axis)
    zero = (jnp.zeros_like(c[0]),) * 3

    def flow(k: Array, x: Vec) -> Vec:
        step = k / NECK_STEPS  # the ball has come this far along the flow; the neck stays
        moved = _twist_offset(_scale(step, rotvec), _scale(step, velocity), zero)
        weight = _ball_weight(_norm(_sub(x, _add(c, moved))), radius, fade)
        weight = weight * _neck_weight(x, origin, axis, neck_fade)
        share = weight / NECK_STEPS
        return _add(x, _twist_offset(_scale(share, rotvec), _scale(share, velocity), _sub(x, c)))

    x = tuple(jnp.broadcast_arrays(*x, c[0])[:3])  # the loop carries the points' shape
    return _stacked(jax.lax.fori_loop(0, NECK_STEPS, flow, x))


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


def _v_times(rotvec: np.ndarray, q: np.ndarray) -> np.ndarray:
    """V(rotvec) q (`_twist_offset`), float64, rotvec and q: (..., 3)."""
    theta = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    c = np.where(small, 1.0 / 6.0 - theta**2 / 120.0, (safe - np.sin(safe)) / safe**3)
    cross = np.cross(rotvec, q)
    return q + b * cross + c * np.cross(rotvec, cross)


def twist_velocity(rigid: np.ndarray, rotation: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(F, 3) v = xi(c'), the velocity at the posed ball centre of the twist xi = log T^-1.

    Args:
      rigid: (F, 3, 4) posed -> rest [A | b]; rotation: (F, 3) phi, A's rotation vector;
        centre: (F, 3) c'.

    Returns:
      The v with exp(xi) c' = c' + V(phi) v = A c' + b: v = V(phi)^-1 (A c' + b - c'), solved
      exactly (float64).
    """
    moved = np.einsum("fab,fb->fa", rigid[:, :, :3], centre) + rigid[:, :, 3] - centre
    columns = np.stack([_v_times(rotation, np.broadcast_to(e, moved.shape)) for e in np.eye(3)], -1)
    return np.linalg.solve(columns, moved[..., None])[..., 0]


def rest_weight(
    points: np.ndarray,
    centre: np.ndarray,
    radius: float,
    fade: float,
    neck: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> np.ndarray:
    """The rigid part's weight with the head at rest, float64 (P,).

    The share of the head's motion a point at rest follows: the ball weight b(|x - c|)
    (`head_ball`'s centre and radius at rest, fade L), times, with `neck` = (origin, unit up
    axis, fade N) (the grids' `neck_origin`, `neck_axis` and `neck_fade`), the neck weight
    (module docstring). For diagnostics and the export's rig (`flamenerf.export.rig`).
    """
    points = np.asarray(points, np.float64)
    t = np.clip((np.linalg.norm(points - centre, axis=-1) - radius) / fade, 0.0, 1.0)
    weight = 1.0 - t * t * (3.0 - 2.0 * t)
    if neck is not None:
        origin, axis, length = neck
        t = np.clip((points - origin) @ np.asarray(axis, np.float64) / length, 0.0, 1.0)
        weight = weight * t * t * (3.0 - 2.0 * t)
    return weight


def neck_margin(
    rotation: np.ndarray,
    twist: np.ndarray,
    centre: np.ndarray,
    radius: np.ndarray,
    fade: float,
    neck_origin: np.ndarray,
    neck_axis: np.ndarray,
    neck_fade: float,
) -> np.ndarray:
    """(F,) lower bound of `follow_neck`'s Jacobian determinant, positive = one-to-one.

    The product over the K steps of m_k = 1 - (1.5 |v| / L + 1.5 S_k / N) / K (module
    docstring), with S_k = |xi(o).u| + |u x phi| (d(c_k) + r_k): d(c_k) the distance from the
    step's ball centre to the neck's axis, r_k the radius of the section of the ball's support
    (radius rho + L) by the fade slab; when some m_k <= 0, the smallest m_k (no bound).

    Args: the grids' fields of F frames (`GuideGrids`), float64.
    """
    u = neck_axis
    reach = radius + fade
    xi_origin = twist + np.cross(rotation, neck_origin - centre)
    across = np.linalg.norm(np.cross(u, rotation), axis=-1)
    steps = []
    for k in range(NECK_STEPS):
        s = k / NECK_STEPS
        ball = centre + _v_times(s * rotation, s * twist)
        height = np.einsum("fa,fa->f", ball - neck_origin, u)
        gap = np.maximum(np.maximum(height - neck_fade, -height), 0.0)
        section = np.sqrt(np.maximum(reach**2 - gap**2, 0.0))
        off_axis = ball - neck_origin - height[:, None] * u
        slab = np.abs(np.einsum("fa,fa->f", xi_origin, u))
        slab = slab + across * (np.linalg.norm(off_axis, axis=-1) + section)
        slab = np.where(gap < reach, slab, 0.0)
        speed = np.linalg.norm(twist, axis=-1)
        steps.append(1.0 - (1.5 * speed / fade + 1.5 * slab / neck_fade) / NECK_STEPS)
    steps = np.stack(steps)
    return np.where(steps.min(axis=0) > 0, np.prod(np.maximum(steps, 0.0), axis=0), steps.min(0))


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
    reach: float = 0.0,
) -> np.ndarray:
    """The blended, faded vertex displacement and the distance to the nearest vertex.

    Beyond R = max(`reach`, 3 of the largest fades) from every vertex, where each faded
    displacement is below e^-9 |D_k|, the residual is 0 and the distance FAR; within R both are
    exact. The far points cost a bounded query (`distance_upper_bound`), the main saving.

    Args:
      vertices: (V, 3) rest-frame posed vertices; displacement: (V, 3) theirs to the neutral.
      points: (..., 3) query points; sigma: smallest fade length.
      neighbours: M, vertices blended (1: the nearest vertex's alone, a Voronoi field).
      reach: distances up to at least this are exact (the "mesh" prior's radius).

    Returns:
      (..., 4): the residual displacement (3) and the distance (1).
    """
    flat = points.reshape(-1, 3)
    fades = vertex_fades(displacement, sigma)
    cut = 3.0 * fades.max()  # the blend's reach
    m = min(neighbours, len(vertices) - 1)
    k = m + 1 if m > 1 else 1  # the M nearest and the next one, whose weight cuts theirs
    tree = cKDTree(vertices, leafsize=KD_LEAF_SIZE)
    d, index = tree.query(
        flat, k=list(range(1, k + 1)), distance_upper_bound=max(reach, cut), workers=-1
    )
    distance = d[:, 0]
    close = distance < cut
    # A close point whose M + 1 nearest are not all within the bound: queried without it.
    short = np.flatnonzero(close & ~np.isfinite(d[:, -1]))
    if len(short):
        d[short], index[short] = tree.query(flat[short], k=list(range(1, k + 1)), workers=-1)
    d, index = d[close], index[close]
    nearest = index[:, 0]
    field = np.zeros_like(flat)
    if m <= 1:
        field[close] = displacement[nearest] * np.exp(-((d[:, 0] / fades[nearest]) ** 2))[:, None]
    else:
        blend = index[:, :m]
        faded = displacement[blend] * np.exp(-((d[:, :m] / fades[blend]) ** 2))[..., None]
        inverse = 1.0 / np.maximum(d, 1e-12) ** 2
        weights = inverse[:, :m] - inverse[:, m:]
        total = weights.sum(axis=1)
        ok = total > 0
        blended = np.einsum("nk,nkc->nc", weights, faded) / np.where(ok, total, 1.0)[:, None]
        field[close] = np.where(ok[:, None], blended, faded[:, 0])
    distance = np.where(np.isfinite(distance), distance, FAR)
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
    neck: np.ndarray | None = None,
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
      neck: (F, 2, 3) each frame's root joint at rest and FLAME's unit up axis in the
        normalised frame (`neck_frame`); needed by the "neck" rigid weight, unused otherwise.
        With it the residual takes a vertex only as far as the rigid part's weight of its
        neutral (`vertex_targets`).
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
    rigid_part = GuideGrids(
        values=None,
        lower=None,
        upper=None,
        rigid=f32(rigid),
        rotation=f32(rotation),
        centre=f32(centre),
        radius=f32(radius),
        fade=fade,
    )
    if settings.rigid_weight == "neck":
        if neck is None or np.shape(neck) != (frames, 2, 3):
            raise ValueError(
                "build_grids: the 'neck' rigid weight needs `neck`, the (F, 2, 3) root joints "
                f"and up axes (`neck_frame`) of the {frames} frames; got shape {np.shape(neck)}"
            )
        neck = np.asarray(neck, np.float64)
        level = settings.neck_level - settings.neck_fade
        rigid_part = rigid_part.replace(
            twist=f32(twist_velocity(rigid, rotation, centre)),
            neck_origin=f32(neck[:, 0] + level * neck[:, 1]),
            neck_axis=f32(neck[:, 1]),
            neck_fade=f32(settings.neck_fade),
        )
        rest_posed = np.asarray(
            _to_rest_jit(rigid_part, jnp.arange(frames), f32(posed)), np.float64
        )
        displacement = vertex_targets(rigid_part, posed, neutral, rest_posed) - rest_posed
    else:
        undo = jax.jit(undo_head_motion)
        rest_posed = np.stack(
            [
                undo(
                    f32(posed[f]), f32(rigid[f]), f32(rotation[f]), f32(centre[f]), radius[f], fade
                )
                for f in range(frames)
            ]
        ).astype(np.float64)
        displacement = neutral - rest_posed
    lower, upper = grid_box(rest_posed, displacement, settings)
    points = grid_points(lower, upper, settings.resolution)
    spacing = (upper - lower) / (settings.resolution - 1)
    # Uninitialised: every chosen frame is written whole by `build`, the others are NaN (the
    # demo's 285 MB filled with NaN, then written: 0.7-1.9 s in a fresh process; 0.05 s so).
    values = np.empty((frames,) + points.shape[:3] + (4,), np.float16)
    values[sorted(set(range(frames)) - set(chosen))] = np.nan

    def build(f: int) -> None:
        field = residual_field(
            rest_posed[f], displacement[f], points, settings.sigma, reach=settings.reach
        )
        field[..., :3] = unfold(field[..., :3], spacing)
        values[f] = field

    threads.map_threads(build, chosen, "FLAME guide grids", show_progress)
    return rigid_part.replace(values=values, lower=f32(lower), upper=f32(upper))


def vertex_weights(grids: GuideGrids, neutral: np.ndarray) -> np.ndarray:
    """float64 (F, V): the rigid part's weight of each frame's neutral vertices at rest.

    `rest_weight` with the frame's ball (its centre at rest c = A c' + b) and, with the
    "neck" weight, the neck's fade; ones without a rigid part.
    """
    if grids.rigid is None:
        return np.ones(np.shape(neutral)[:2])
    as64 = lambda a: np.asarray(a, np.float64)
    rigid, centre, radius = as64(grids.rigid), as64(grids.centre), as64(grids.radius)
    rest_centre = np.einsum("fab,fb->fa", rigid[:, :, :3], centre) + rigid[:, :, 3]
    out = np.empty(np.shape(neutral)[:2])
    for f in range(len(out)):
        neck = None
        if grids.neck_axis is not None:
            neck = (as64(grids.neck_origin[f]), as64(grids.neck_axis[f]), float(grids.neck_fade))
        out[f] = rest_weight(neutral[f], rest_centre[f], radius[f], float(grids.fade), neck)
    return out


def vertex_targets(
    grids: GuideGrids,
    posed: np.ndarray,
    neutral: np.ndarray,
    rest_posed: np.ndarray | None = None,
) -> np.ndarray:
    """float64 (F, V, 3): where the guide map takes each frame's posed FLAME vertices.

    With the "ball" weight, their neutral N. With the "neck" weight, w N + (1 - w) Q: Q the
    rigid part's image of the posed vertex, w its neutral's weight (`vertex_weights`). A
    vertex of the head (w = 1) goes to its neutral; one below the neck's fade (w = 0: FLAME's
    neck stub, which FLAME's global pose turns with the head while the torso around it stays)
    stays where the rigid part leaves it, so that neither the residual nor the FLAME-vertex
    warp penalty drags the torso after it.

    Args:
      grids: the frames' rigid part (`build_grids`); posed, neutral: (F, V, 3) normalised.
      rest_posed: Q if already computed (`to_rest` of every frame's posed vertices).
    """
    if grids.neck_axis is None:
        return np.asarray(neutral, np.float64)
    if rest_posed is None:
        points = jnp.asarray(posed, jnp.float32)
        # The rigid part alone, as `build_grids` passes it: the same compiled program.
        rigid = grids.replace(values=None, lower=None, upper=None)
        rest_posed = _to_rest_jit(rigid, jnp.arange(len(posed)), points)
    weight = vertex_weights(grids, neutral)[..., None]
    return weight * neutral + (1.0 - weight) * np.asarray(rest_posed, np.float64)


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
    frames, size = values.shape[0], values.shape[1]
    # Each corner is one gather by a flat int32 index into the (F G^3, 4) rows: on the CPU
    # 3.4x faster than indexing (frame, i, j, k) (a 4,096 x 32 point read: 26 -> 7.6 ms).
    if frames * size**3 > np.iinfo(np.int32).max:
        raise ValueError(
            f"guide grids: {frames} frames of {size}^3 points exceed the int32 index of one "
            "gather (2^31 - 1 points); read fewer frames at once or lower GuideConfig.resolution"
        )
    t = (points - grids.lower) / (grids.upper - grids.lower) * (size - 1)
    inside = jnp.all((t >= 0) & (t <= size - 1), axis=-1)
    t = jnp.clip(t, 0.0, size - 1 - 1e-4)
    base = jnp.floor(t).astype(jnp.int32)
    frac = t - base
    fx, fy, fz = frac[..., 0], frac[..., 1], frac[..., 2]
    stride = jnp.array([size * size, size, 1], jnp.int32)
    origin = frame[:, None] * size**3 + jnp.sum(base * stride, axis=-1)
    rows = values.reshape(-1, values.shape[-1])
    out = jnp.zeros(points.shape[:-1] + (4,), jnp.float32)
    for corner in range(8):
        i, j, k = (corner >> 2) & 1, (corner >> 1) & 1, corner & 1
        weight = (fx if i else 1.0 - fx) * (fy if j else 1.0 - fy) * (fz if k else 1.0 - fz)
        corner_values = rows[origin + ((i * size + j) * size + k)]
        out = out + weight[..., None] * corner_values.astype(jnp.float32)
    out = jax.lax.stop_gradient(out)
    displacement = jnp.where(inside[..., None], out[..., :3], 0.0)
    distance = jnp.where(inside, out[..., 3], FAR)
    return displacement, distance


def to_rest(grids: GuideGrids, frame: Array, points: Array) -> Array:
    """The rigid part for each ray's frame: (N, S, 3) posed -> (N, S, 3) rest-frame points
    (`undo_head_motion`, or `follow_neck` for grids of the "neck" weight)."""
    if grids.rigid is None:
        return points
    per_ray = lambda a: a[frame][:, None]
    if grids.neck_axis is not None:
        return follow_neck(
            points,
            per_ray(grids.rotation),
            per_ray(grids.twist),
            per_ray(grids.centre),
            per_ray(grids.radius),
            grids.fade,
            per_ray(grids.neck_origin),
            per_ray(grids.neck_axis),
            grids.neck_fade,
        )
    return undo_head_motion(
        points,
        per_ray(grids.rigid),
        per_ray(grids.rotation),
        per_ray(grids.centre),
        per_ray(grids.radius),
        grids.fade,
    )


_to_rest_jit = jax.jit(to_rest)  # shared by `build_grids` and `vertex_targets`


def head_rotation_feature(grids: GuideGrids, frame: Array, points: Array) -> Array:
    """The head's rotation where the rigid part moves points: (N, S, 3).

    The axis-angle vector of each ray's frame's head rotation (rest -> posed, so a head turned
    left gives the same sign whatever the camera), times the rigid part's ball weight at the
    posed points (1 in the head's ball, 0 at the fade length L beyond it), and with the "neck"
    weight times the neck weight there (0 below the neck's fade); zero everywhere for a head
    at rest.

    Args:
      grids: the grids (F frames), with their rigid part.
      frame: int (N,) frame index of each ray; points: (N, S, 3) normalised posed points.
    """
    if grids.rigid is None:
        raise ValueError("head_rotation_feature: the guide grids have no rigid part")
    centre, x = _components(grids.centre[frame][:, None]), _components(points)
    weight = _ball_weight(_norm(_sub(x, centre)), grids.radius[frame][:, None], grids.fade)
    if grids.neck_axis is not None:
        origin = _components(grids.neck_origin[frame][:, None])
        axis = _components(grids.neck_axis[frame][:, None])
        weight = weight * _neck_weight(x, origin, axis, grids.neck_fade)
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


def jacobian_determinants(
    values: np.ndarray, spacing: np.ndarray, where: np.ndarray | None = None
) -> np.ndarray:
    """Finite-difference Jacobian determinants of a map sampled on a grid.

    Args:
      values: (Gx, Gy, Gz, 3) the map at grid points indexed [x, y, z]; only the points of
        `where` and their six neighbours are read when it is given.
      spacing: (3,) grid steps along x, y, z.
      where: bool (Gx, Gy, Gz), the points whose determinant is wanted (default: all).

    Returns:
      det(d map / dx): central differences inside, one-sided at the faces; (Gx, Gy, Gz), or
      (N,) at the N points of `where` (in C order).
    """
    columns = [np.gradient(values, spacing[i], axis=i) for i in range(3)]
    if where is not None:
        columns = [c[where] for c in columns]
    return np.linalg.det(np.stack(columns, axis=-1))


def with_neighbours(mask: np.ndarray) -> np.ndarray:
    """bool (Gx, Gy, Gz): `mask` grown by one grid step along each axis (6-connected)."""
    grown = mask.copy()
    for axis in range(3):
        lead = [slice(None)] * 3
        trail = [slice(None)] * 3
        lead[axis], trail[axis] = slice(1, None), slice(None, -1)
        grown[tuple(lead)] |= mask[tuple(trail)]
        grown[tuple(trail)] |= mask[tuple(lead)]
    return grown


def fold_fraction(
    mapping: Callable[[np.ndarray], np.ndarray],
    vertices: np.ndarray,
    near: float,
    resolution: int,
) -> float:
    """Share of grid points within `near` of a mesh's vertices where `mapping` folds.

    Args:
      mapping: (P, 3) -> (P, 3), posed-frame points to canonical points; called once, on the
        near points and their neighbours only (what their finite differences read).
      vertices: (V, 3) the posed mesh; the grid spans their box plus `near`.
      near: distance to the nearest vertex that counts as near the surface.
      resolution: grid points per side.

    Returns:
      The share of those points where the Jacobian determinant is <= 0.
    """
    lower, upper = vertices.min(axis=0) - near, vertices.max(axis=0) + near
    points = grid_points(lower, upper, resolution)
    distance, _ = cKDTree(vertices, leafsize=KD_LEAF_SIZE).query(
        points.reshape(-1, 3), distance_upper_bound=near, workers=-1
    )
    close = (distance <= near).reshape(points.shape[:3])
    if not close.any():
        return 0.0
    read = with_neighbours(close)
    mapped = np.zeros(points.shape)
    mapped[read] = np.asarray(mapping(points[read]), np.float64)
    det = jacobian_determinants(mapped, (upper - lower) / (resolution - 1), where=close)
    return float(np.mean(det <= 0))


def grid_fold_fraction(values: np.ndarray, spacing: np.ndarray, near: float) -> float:
    """Share of a residual grid's points near the mesh where z -> z + r(z) folds.

    Args:
      values: (Gx, Gy, Gz, 4) one frame's grid (`GuideGrids.values`): the residual r (3) and
        the distance to the rest-frame mesh (1) at the grid points.
      spacing: (3,) grid steps; near: the distance to the mesh that counts as near.

    Returns:
      The share of the grid points within `near` of the mesh where the finite-difference
      Jacobian determinant (`jacobian_determinants`) is <= 0; 0 when none is near.
    """
    close = np.asarray(values[..., 3], np.float32) <= near
    if not close.any():
        return 0.0
    where = np.argwhere(close)  # only the near points' box (and one point around) is read
    lo = np.maximum(where.min(axis=0) - 1, 0)
    hi = np.minimum(where.max(axis=0) + 2, close.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    axes = [np.arange(b - a) * spacing[i] for i, (a, b) in enumerate(zip(lo, hi, strict=True))]
    mapped = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    mapped += np.asarray(values[box][..., :3], np.float64)
    det = jacobian_determinants(mapped, spacing, where=close[box])
    return float(np.mean(det <= 0))


def folded_fraction(
    grids: GuideGrids,
    posed: np.ndarray,
    sigma: float,
    resolution: int | None = None,
    frames: Sequence[int] | None = None,
) -> GuideStats:
    """Folding of the whole guide map (`apply`) on each frame, near the mesh.

    The map is the rigid part R, then the residual: x -> z + r(z) at z = R(x), whose Jacobian
    determinant is det(I + dr/dz) times R's. Where R's lower bound (`rigid_margin`,
    `neck_margin`) is positive, R is one-to-one with a positive determinant everywhere, so
    the map folds exactly where the residual's does: measured on the frame's own grid, the
    share of grid points within 2 sigma of the rest-frame mesh where it folds
    (`grid_fold_fraction`, on the float16 values the train step reads). A frame whose
    bound is not positive is measured on the whole map instead: the share of the points of a
    `resolution`^3 grid over the posed mesh, within 2 sigma of it, where the map's
    finite-difference determinant is <= 0 (`fold_fraction`).

    Args:
      grids: the frames' grids; posed: (F, V, 3) their posed vertices (normalised).
      sigma: the residual's fade length.
      resolution: points per side of the whole map's grid (default G).
      frames: the frames to measure (default: all; the others' `folded` is NaN), in a pool
        of threads (`flamenerf.threads.map_threads`).
    """
    resolution = resolution or grids.values.shape[1]
    as64 = lambda a: np.asarray(a, np.float64)
    margins = np.ones(len(posed))
    if grids.neck_axis is not None:
        margins = neck_margin(
            as64(grids.rotation),
            as64(grids.twist),
            as64(grids.centre),
            as64(grids.radius),
            float(grids.fade),
            as64(grids.neck_origin),
            as64(grids.neck_axis),
            float(grids.neck_fade),
        )
    elif grids.rigid is not None:
        margins = rigid_margin(as64(grids.rigid), as64(grids.centre), float(grids.fade))
    spacing = (as64(grids.upper) - as64(grids.lower)) / (grids.values.shape[1] - 1)
    mapped = jax.jit(lambda g, f, p: apply(g, f, p)[0])
    device = None

    # The near points' count varies by frame: padded to a multiple of an eighth of the grid,
    # so that at most eight shapes are compiled.
    bucket = max(1, resolution**3 // 8)

    def whole_map(f: int) -> Callable[[np.ndarray], np.ndarray]:
        def mapping(p: np.ndarray) -> np.ndarray:
            padded = np.zeros((-(-len(p) // bucket) * bucket, 3), np.float32)
            padded[: len(p)] = p
            return np.asarray(
                mapped(device, jnp.array([f]), jnp.asarray(padded[None]))[0][: len(p)]
            )

        return mapping

    chosen = range(len(posed)) if frames is None else frames
    if any(margins[f] <= 0 for f in chosen):
        device = jax.tree.map(jnp.asarray, grids)
    folded = np.full(len(posed), np.nan)

    def measure(f: int) -> None:
        if margins[f] > 0:
            folded[f] = grid_fold_fraction(grids.values[f], spacing, 2.0 * sigma)
        else:
            folded[f] = fold_fraction(whole_map(f), posed[f], 2.0 * sigma, resolution)

    threads.map_threads(measure, chosen)
    return GuideStats(folded=folded, rigid_margin=float(margins.min(initial=1.0)))
