# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME rig of the baked canonical mesh: the FLAME guide's relation, run backwards.

The FLAME guide (`flamenerf.nerf.guide`) maps a posed point into the canonical space (the
neutral face at rest) in two parts: the rigid part undoes the head's motion inside a ball about
the head's centre c (radius rho, fading to nothing over the length L), and the residual field
moves a point by a blend of its M nearest FLAME vertices' displacements, each faded with the
distance. The baked mesh lives in the canonical space; its rig runs that relation the other
way (canonical -> posed), with what a glTF skin and morph targets can express. For a baked
point p (canonical, the model frame):

  * the ball weight b(p) = 1 - smoothstep((|p - c| - rho) / L), with c and rho computed from
    the neutral head vertices at rest exactly as `guide.head_ball` does; with the guide's
    "neck" rigid weight (`GuideConfig.rigid_weight`), b(p) times the neck weight at rest
    (`guide.rest_weight`: 0 below the neck's fade, so the torso stays on the root);
  * the blend over the M nearest NEUTRAL FLAME vertices N_i (distances d_1 <= ... <= d_M, and
    d_{M+1} the next one's):

        B[X](p) = sum_i a_i f_i X_i / sum_i a_i,   a_i = 1 / d_i^2 - 1 / d_{M+1}^2,
        f_i = exp(-(d_i / sigma)^2)  (0 beyond CUTOFF sigma),

    the guide's blend (the same weights a_i; exact at the vertices) with every fade length at
    sigma: the guide's s_i = max(sigma, 1.2 |D_i|) depends on the displacement D_i, and morph
    targets must be linear in the coefficients;
  * expression morph target e: B[E_e](p), E_e = FLAME's expression basis of component e (the
    displacement of every vertex per unit coefficient, in the model frame);
  * skin weights over the joints (root, neck, jaw): jaw = b B[W_jaw], neck = b - jaw,
    root = 1 - b, with W_jaw FLAME's linear-blend-skinning weight of the jaw joint.

`split` puts the vertices that neither move (b = 0) nor morph into the static "room" mesh, the
others into the "head" mesh. The approximations against the guide, and against FLAME at its
own vertices, are in docs/export.md: the twirl and sweep of the guide's rigid part become a
linear blend of the neck's rigid motion with the identity; pose correctives (FLAME's
`posedirs`) and the expression's shift of the joints are not represented; FLAME vertices that
FLAME skins partly to the root joint follow the neck fully inside the ball.

The pose maths of the asset (`Pose`, `neck_rotation`, `jaw_rotation`, `joint_matrices`) is the
avatar contract's (docs/export.md), shared by the viewer, the preview
(`flamenerf.export.preview`) and the animations (`flamenerf.export.animation`). The sliders'
`Pose` turns the neck by a yaw and a pitch about FLAME's neck joint; an animation's key frame
carries FLAME's whole head motion (`Placement.neck_motion`): the guide's head transform
(`guide.head_transforms`: the global rotation about the root joint, the neck rotation with its
roll about the neck joint, the translation) as the neck joint's translation and rotation, the
root (the torso and everything outside the head's ball) staying put as the guide keeps it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from flamenerf.geometry import flame
from flamenerf.geometry.scene import ToWorld
from flamenerf.geometry.subject import Subject
from flamenerf.nerf import guide

CUTOFF = 3.0  # a vertex's fade is zero beyond CUTOFF sigma (exp(-9) = 1.2e-4 there)
CHUNK = 32768  # points blended per step (bounds the (P, M, C) temporaries)
JOINT_NAMES = ("root", "neck", "jaw")  # the skin's joints, in this order
ROOT, NECK, JAW = range(3)


# --------------------------------------------------------------------------------------------
# FLAME at rest.


@dataclasses.dataclass(frozen=True)
class FlameRest:
    """The subject's FLAME mesh at rest (neutral face, head at rest), in one frame.

    Attributes:
      vertices: (V, 3) neutral vertices.
      expression: (V, 3, E) displacement of each vertex per unit expression coefficient.
      jaw_weights: (V,) FLAME's skinning weight of the jaw joint.
      head: bool (V,) the head's vertices (`guide.head_vertices`).
      joints: (5, 3) the joints at rest (root, neck, jaw, left eye, right eye).
      up: (3,) FLAME's unit up axis (`guide.neck_frame`).
    """

    vertices: np.ndarray
    expression: np.ndarray
    jaw_weights: np.ndarray
    head: np.ndarray
    joints: np.ndarray
    up: np.ndarray

    def ball(self) -> tuple[np.ndarray, float]:
        """The head's ball: centre (3,) and radius, as `guide.head_ball` computes them at rest."""
        _, _, centre, radius = guide.head_ball(np.eye(4)[None], self.vertices[None], self.head)
        return centre[0], float(radius[0])


def flame_rest(
    subject: Subject, params: flame.FlameParams, num_expression: int, undo_rigid: bool = True
) -> FlameRest:
    """The rest mesh of `params`' identity in the subject's normalised (model) frame.

    The neutral is `Subject.neutral(params, undo_rigid)`, the guide's canonical face (the same
    identity and eyes, zero expression and jaw, the head at rest with `undo_rigid`).

    Args:
      subject: the FLAME model in its scene; params: the frame whose identity is baked.
      num_expression: E, the expression components used (scene.json's `flame.num_expression`).
      undo_rigid: `GuideConfig.undo_rigid`.
    """
    model = subject.model
    neutral = Subject.neutral(params, undo_rigid)
    vertices = subject.pose([neutral])[0]
    to_scene = subject.scene.flame_to_scene
    # The map FLAME -> scene is a similarity: displacements scale and turn with it.
    linear = to_scene(np.eye(3)) - to_scene(np.zeros(3))  # rows: images of the FLAME axes
    basis = np.asarray(model.exprdirs, np.float64)[:, :, :num_expression]
    expression = np.einsum("vce,cd->vde", basis, linear)
    joints = np.asarray(subject.rest_joints([params])[0], np.float64)
    return FlameRest(
        vertices=np.asarray(vertices, np.float64),
        expression=expression,
        jaw_weights=np.asarray(model.weights, np.float64)[:, 2],
        head=guide.head_vertices(model),
        joints=to_scene(joints),
        up=guide.neck_frame(subject, [params], to_scene)[0, 1],
    )


# --------------------------------------------------------------------------------------------
# The rig of points.


def ball_weight(points: np.ndarray, centre: np.ndarray, radius: float, fade: float) -> np.ndarray:
    """(P,) 1 within `radius` of `centre`, smoothstep down to 0 at radius + fade (the guide's
    `_ball_weight` of the distance); points: (P, 3)."""
    distance = np.linalg.norm(np.asarray(points, np.float64) - centre, axis=-1)
    t = np.clip((distance - radius) / fade, 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def blend(
    points: np.ndarray,
    vertices: np.ndarray,
    values: np.ndarray,
    sigma: float,
    neighbours: int = guide.NEIGHBOURS,
) -> np.ndarray:
    """The faded blend B[X] of the module docstring.

    Args:
      points: (P, 3) query points; vertices: (V, 3) the neutral FLAME vertices.
      values: (V, C) the per-vertex values X blended.
      sigma: the fade length; neighbours: M.

    Returns:
      (P, C) sum_i a_i f_i X_i / sum_i a_i over each point's M nearest vertices (with M >= V,
      every vertex but the farthest); exactly f X at a vertex; 0 beyond CUTOFF sigma from
      every vertex.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    values = np.asarray(values, np.float64)
    out = np.zeros((len(points), values.shape[1]))
    m = min(neighbours, len(vertices) - 1)
    tree = cKDTree(vertices)
    for start in range(0, len(points), CHUNK):
        chunk = points[start : start + CHUNK]
        nearest, _ = tree.query(chunk, workers=-1)
        close = np.flatnonzero(nearest < CUTOFF * sigma)
        if close.size == 0:
            continue
        d, index = tree.query(chunk[close], k=m + 1, workers=-1)
        inverse = 1.0 / np.maximum(d, 1e-12) ** 2
        weights = inverse[:, :m] - inverse[:, m:]  # a_i: zero as a vertex leaves the M nearest
        fades = np.where(d[:, :m] < CUTOFF * sigma, np.exp(-((d[:, :m] / sigma) ** 2)), 0.0)
        total = weights.sum(axis=1)
        ok = total > 0
        blended = np.einsum("pk,pkc->pc", weights * fades, values[index[:, :m]])
        blended /= np.where(ok, total, 1.0)[:, None]
        # Equidistant M-th and (M+1)-th vertices leave no weight: the nearest vertex alone.
        nearest_only = fades[:, 0, None] * values[index[:, 0]]
        out[start + close] = np.where(ok[:, None], blended, nearest_only)
    return out


@dataclasses.dataclass(frozen=True)
class PointRig:
    """The rig of P canonical points (module docstring).

    Attributes:
      ball: (P,) ball weight b.
      jaw: (P,) jaw skin weight b B[W_jaw] (<= ball).
      morphs: (E, P, 3) displacement per unit expression coefficient B[E_e].
    """

    ball: np.ndarray
    jaw: np.ndarray
    morphs: np.ndarray

    @property
    def skin_weights(self) -> np.ndarray:
        """(P, 3) weights of the joints root, neck, jaw: 1 - b, b - jaw, jaw."""
        return np.stack([1.0 - self.ball, self.ball - self.jaw, self.jaw], axis=-1)

    @property
    def moving(self) -> np.ndarray:
        """bool (P,): the points the rig moves (a skin weight off the root, or a morph)."""
        return (self.ball > 0) | np.any(self.morphs != 0, axis=(0, 2))


def rig_points(
    points: np.ndarray,
    rest: FlameRest,
    sigma: float,
    fade: float,
    neighbours: int = guide.NEIGHBOURS,
    floor: float = 0.0,
    neck: tuple[float, float] | None = None,
) -> PointRig:
    """The rig of canonical points (module docstring).

    Args:
      points: (P, 3) canonical points in `rest`'s frame.
      rest: the FLAME mesh at rest (`flame_rest`).
      sigma: the residual's fade length (`GuideSettings.sigma`); fade: the rigid part's L
        (`GuideSettings.rigid_fade`), both in that frame's units.
      neighbours: M.
      floor: a point's morph displacements are set to zero when none is longer than this
        (per unit coefficient), so that sparse morph targets stay small.
      neck: with the guide's "neck" rigid weight, its level and fade length
        (`GuideSettings.neck_level`, `neck_fade`, that frame's units): b is the guide's weight
        at rest, the ball's times the neck's (`guide.rest_weight`); None: the ball's.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    centre, radius = rest.ball()
    if neck is None:
        ball = ball_weight(points, centre, radius, fade)
    else:
        level, length = neck
        origin = rest.joints[0] + (level - length) * rest.up
        ball = guide.rest_weight(points, centre, radius, fade, (origin, rest.up, length))
    num_expression = rest.expression.shape[2]
    values = np.concatenate(
        [
            rest.jaw_weights[:, None],
            rest.expression.transpose(0, 2, 1).reshape(len(rest.vertices), 3 * num_expression),
        ],
        axis=1,
    )
    blended = blend(points, rest.vertices, values, sigma, neighbours)
    jaw = ball * np.clip(blended[:, 0], 0.0, 1.0)
    morphs = blended[:, 1:].reshape(len(points), num_expression, 3).transpose(1, 0, 2)
    if floor > 0:
        small = np.linalg.norm(morphs, axis=-1).max(axis=0, initial=0.0) < floor
        morphs[:, small] = 0.0
    return PointRig(ball=ball, jaw=jaw, morphs=morphs)


class Split(NamedTuple):
    """The baked mesh cut into the rigged "head" and the static "room".

    Attributes:
      head_vertices: int (Vh,) indices into the baked vertices; head_faces: (Fh, 3) into those.
      room_vertices: int (Vr,); room_faces: (Fr, 3) into those.
    """

    head_vertices: np.ndarray
    head_faces: np.ndarray
    room_vertices: np.ndarray
    room_faces: np.ndarray


def _compact(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
    return used, inverse.reshape(faces.shape).astype(np.int64)


def split(moving: np.ndarray, faces: np.ndarray) -> Split:
    """Faces with a moving vertex go to the head (straddling ones too), the others to the room.

    Args:
      moving: bool (V,) the vertices the rig moves (`PointRig.moving`).
      faces: (F, 3) the baked mesh's triangles.

    Returns:
      Each part's vertices (indices into the baked mesh, sorted) and faces re-indexed into them;
      a vertex on the border is in both (in the head with skin weight 1 on the root and no
      morph, so both copies stay together).
    """
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    head = np.any(np.asarray(moving, bool)[faces], axis=1)
    head_vertices, head_faces = _compact(faces[head])
    room_vertices, room_faces = _compact(faces[~head])
    return Split(head_vertices, head_faces, room_vertices, room_faces)


# --------------------------------------------------------------------------------------------
# The skeleton and the pose maths of the contract.


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """The skin "flame": joints root (identity), neck (child of root), jaw (child of neck).

    Attributes:
      neck_translation: (3,) FLAME's neck joint at rest (world).
      neck_rotation: (4,) quaternion (x, y, z, w) of the FLAME frame into the world.
      jaw_translation: (3,) FLAME's jaw joint relative to the neck, in the neck's frame.
    """

    neck_translation: np.ndarray
    neck_rotation: np.ndarray
    jaw_translation: np.ndarray

    def rest_world(self) -> np.ndarray:
        """(3, 4, 4) each joint's world matrix at rest (root, neck, jaw)."""
        return world_matrices(self, Pose.neutral(0))

    def inverse_bind(self) -> np.ndarray:
        """(3, 4, 4) the inverse bind matrices: the inverse of each rest world matrix."""
        return np.linalg.inv(self.rest_world())


def skeleton(subject: Subject, rest_joints_flame: np.ndarray) -> Skeleton:
    """The skeleton of a subject in the capture's world frame.

    Args:
      subject: its scene's `to_world` places FLAME in the world.
      rest_joints_flame: (5, 3) the joints at rest in FLAME space (`Subject.rest_joints`).
    """
    to_world = subject.scene.to_world
    joints = subject.scene.flame_to_world(np.asarray(rest_joints_flame, np.float64))
    rotation = np.asarray(to_world.rotation, np.float64)
    return Skeleton(
        neck_translation=joints[1],
        neck_rotation=Rotation.from_matrix(rotation).as_quat(),
        # In the neck's frame (rotated by `rotation`, unscaled): scale (J2 - J1) in FLAME axes.
        jaw_translation=to_world.scale * (np.asarray(rest_joints_flame[2] - rest_joints_flame[1])),
    )


@dataclasses.dataclass(frozen=True)
class Placement:
    """The rigged FLAME identity in the world: what turns FLAME's head pose into the neck's.

    Attributes:
      to_world: FLAME space -> world (X_world = scale * rotation @ X_flame + translation;
        scene.json's `to_world`).
      joints: (5, 3) the identity's joints at rest in FLAME space (`Subject.rest_joints`:
        root, neck, jaw, left eye, right eye), the skeleton's (`skeleton`).
    """

    to_world: ToWorld
    joints: np.ndarray

    def neck_motion(self, params: flame.FlameParams) -> tuple[np.ndarray, np.ndarray]:
        """The neck joint's local translation (3,) and rotation (4,) (x, y, z, w) at a head pose.

        FLAME moves every vertex it skins to the neck alone by the head transform
        T(x) = R0 R1 (x - J1) + J0 + R0 (J1 - J0) + t (R0, R1 the global and neck rotations, J0,
        J1 the root and neck joints at rest, t the translation; `guide.head_transforms`, the
        motion the guide's rigid part undoes). In the world, the neck joint's posed matrix is
        T_world @ rest, so its translation is T's image of the neck joint, J0 + R0 (J1 - J0) + t
        in the world, and its rotation the rest rotation (FLAME's axes) times R0 R1. At zero
        pose and translation both are the skeleton's rest values (`skeleton`).
        """
        rotvec = lambda v: np.zeros(3) if v is None else np.asarray(v, np.float64).reshape(3)
        r0 = Rotation.from_rotvec(rotvec(params.global_pose))
        r1 = Rotation.from_rotvec(rotvec(params.neck_pose))
        shift = np.zeros(3) if params.translation is None else params.translation
        j0, j1 = np.asarray(self.joints[0], np.float64), np.asarray(self.joints[1], np.float64)
        posed_neck = j0 + r0.apply(j1 - j0) + np.asarray(shift, np.float64).reshape(3)
        t = self.to_world
        translation = t.scale * np.asarray(t.rotation, np.float64) @ posed_neck + t.translation
        rest = Rotation.from_matrix(np.asarray(t.rotation, np.float64))
        return np.asarray(translation, np.float64), (rest * r0 * r1).as_quat()


class Pose(NamedTuple):
    """The asset's parameters: expression (E,) (= morph weights), jaw opening, head yaw and
    pitch (radians, FLAME's axes: yaw about y, pitch about x; jaw about x, >= 0 opens)."""

    expression: np.ndarray
    jaw: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0

    @classmethod
    def neutral(cls, num_expression: int) -> Pose:
        return cls(np.zeros(num_expression))


def pose_from_flame(params: flame.FlameParams, num_expression: int) -> Pose:
    """The asset's pose closest to FLAME parameters.

    Expression zero-padded or truncated to `num_expression`; jaw = jaw_pose[0] (the opening
    axis); yaw and pitch: the head rotation R_global R_neck written as R_y(yaw) R_x(pitch)
    R_z(roll) (intrinsic Y, X, Z), the roll dropped. Translation is not represented.
    """
    expression = np.zeros(num_expression)
    if params.expression is not None:
        values = np.asarray(params.expression, np.float64).reshape(-1)[:num_expression]
        expression[: len(values)] = values
    jaw = 0.0 if params.jaw_pose is None else float(np.asarray(params.jaw_pose).reshape(3)[0])
    rotvec = lambda v: np.zeros(3) if v is None else np.asarray(v, np.float64).reshape(3)
    head = Rotation.from_rotvec(rotvec(params.global_pose)) * Rotation.from_rotvec(
        rotvec(params.neck_pose)
    )
    yaw, pitch, _ = head.as_euler("YXZ")
    return Pose(expression, jaw, float(yaw), float(pitch))


def neck_rotation(rest: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """(4,) the neck's local rotation rest * R_y(yaw) * R_x(pitch) (quaternions x, y, z, w)."""
    turn = Rotation.from_euler("YX", [yaw, pitch])
    return (Rotation.from_quat(rest) * turn).as_quat()


def jaw_rotation(jaw: float) -> np.ndarray:
    """(4,) the jaw's local rotation R_x(jaw) (quaternion x, y, z, w)."""
    return Rotation.from_euler("x", jaw).as_quat()


def _matrix(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(quaternion).as_matrix()
    out[:3, 3] = translation
    return out


def local_world_matrices(
    skel: Skeleton, neck_translation: np.ndarray, neck: np.ndarray, jaw: np.ndarray
) -> np.ndarray:
    """(3, 4, 4) the joints' world matrices (root, neck, jaw) from the neck's and the jaw's
    local transforms: root = identity; neck = T(neck_translation) R(neck); jaw = neck
    T(jaw_translation) R(jaw).

    Args:
      skel: the skeleton (the jaw's translation); neck_translation: (3,) the neck's local
        translation; neck, jaw: (4,) their local rotations (x, y, z, w).
    """
    neck_world = _matrix(np.asarray(neck_translation, np.float64), neck)
    return np.stack([np.eye(4), neck_world, neck_world @ _matrix(skel.jaw_translation, jaw)])


def world_matrices(skel: Skeleton, pose: Pose) -> np.ndarray:
    """(3, 4, 4) the joints' world matrices (root, neck, jaw) at a pose.

    root = identity; neck = T(neck_translation) R(neck_rotation(rest, yaw, pitch));
    jaw = neck T(jaw_translation) R(R_x(jaw)). Translations stay at rest.
    """
    return local_world_matrices(
        skel,
        skel.neck_translation,
        neck_rotation(skel.neck_rotation, pose.yaw, pose.pitch),
        jaw_rotation(pose.jaw),
    )


def joint_matrices(inverse_bind: np.ndarray, skel: Skeleton, pose: Pose) -> np.ndarray:
    """(3, 4, 4) the skinning matrices world_j @ inverse_bind_j (glTF's joint matrices)."""
    return world_matrices(skel, pose) @ np.asarray(inverse_bind, np.float64)


def motion_matrices(
    placement: Placement,
    skel: Skeleton,
    inverse_bind: np.ndarray,
    params: flame.FlameParams,
    num_expression: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The skinning matrices (3, 4, 4) and morph weights (E,) of FLAME parameters with FLAME's
    whole head motion, as an animation's key frame carries it: the neck moved and turned by
    `Placement.neck_motion`, the jaw by R_x(jaw_pose[0]), the expression as morph weights."""
    pose = pose_from_flame(params, num_expression)
    translation, neck = placement.neck_motion(params)
    worlds = local_world_matrices(skel, translation, neck, jaw_rotation(pose.jaw))
    return worlds @ np.asarray(inverse_bind, np.float64), np.asarray(pose.expression)


def skin(
    positions: np.ndarray,
    targets: np.ndarray,
    joints: np.ndarray,
    weights: np.ndarray,
    matrices: np.ndarray,
    expression: np.ndarray,
) -> np.ndarray:
    """glTF's vertex pipeline: morph targets, then linear blend skinning.

    Args:
      positions: (V, 3) rest positions; targets: (E, V, 3) morph displacements.
      joints: int (V, 4) joint indices; weights: (V, 4) their weights (rows sum to 1).
      matrices: (J, 4, 4) joint matrices (`joint_matrices`); expression: (E,) morph weights.

    Returns:
      (V, 3) p' = sum_k weights_k (M_{joints_k} [p + sum_e expression_e targets_e; 1]).
    """
    morphed = np.asarray(positions, np.float64) + np.einsum(
        "e,evc->vc", np.asarray(expression, np.float64), np.asarray(targets, np.float64)
    )
    blended = np.einsum("vk,vkab->vab", np.asarray(weights, np.float64), matrices[joints])
    return np.einsum("vab,vb->va", blended[:, :3, :3], morphed) + blended[:, :3, 3]
