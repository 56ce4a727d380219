# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME rig of the baked mesh: against a direct per-point loop of the formulas, and
against FLAME itself: the neutral FLAME vertices put through the rig land on the posed FLAME
vertices (up to what a skin and morph targets cannot express: pose correctives, the joints'
shift with the expression, FLAME's root weights)."""

from pathlib import Path

import numpy as np
import pytest
from capture_util import tiny_flame_arrays
from export_util import rotation_x, rotation_y
from scipy.spatial.transform import Rotation

from flamenerf.export import rig
from flamenerf.geometry import flame
from flamenerf.geometry.scene import Scene, ToWorld
from flamenerf.geometry.subject import Subject
from flamenerf.nerf import guide


def scene(num_expression):
    """A scene whose FLAME frame is turned, shifted and scaled into the world."""
    return Scene(
        center=np.array([0.01, -0.02, 0.03]),
        scale=3.5,
        near=0.5,
        far=5.0,
        flame_model=Path("unused.npz"),
        to_world=ToWorld(
            scale=1.2,
            rotation=Rotation.from_rotvec([0.1, 0.3, -0.05]).as_matrix(),
            translation=np.array([0.02, 0.1, -0.3]),
        ),
        num_expression=num_expression,
        bbox=None,
    )


@pytest.fixture(scope="module")
def tiny_subject(tmp_path_factory):
    path = tmp_path_factory.mktemp("flame") / "tiny.npz"
    np.savez(path, **tiny_flame_arrays(num_shape=2, num_expression=4))
    return Subject(flame.load_model(path), scene(4))


def turned(yaw, pitch):
    return Rotation.from_matrix(rotation_y(yaw) @ rotation_x(pitch)).as_rotvec()


def brute_blend(point, vertices, values, sigma, m):
    distance = np.linalg.norm(vertices - point, axis=1)
    order = np.argsort(distance)
    if distance[order[0]] >= rig.CUTOFF * sigma:
        return np.zeros(values.shape[1])
    m = min(m, len(vertices) - 1)
    total, weight_sum = np.zeros(values.shape[1]), 0.0
    last = 1.0 / max(distance[order[m]], 1e-12) ** 2
    for i in order[:m]:
        d = distance[i]
        a = 1.0 / max(d, 1e-12) ** 2 - last
        fade = np.exp(-((d / sigma) ** 2)) if d < rig.CUTOFF * sigma else 0.0
        total += a * fade * values[i]
        weight_sum += a
    return total / weight_sum


def test_blend_matches_a_loop():
    rng = np.random.default_rng(0)
    vertices = rng.uniform(-1, 1, (40, 3))
    values = rng.normal(size=(40, 4))
    points = np.concatenate([rng.uniform(-1.2, 1.2, (200, 3)), vertices[:5]])
    got = rig.blend(points, vertices, values, sigma=0.3, neighbours=6)
    want = np.array([brute_blend(p, vertices, values, 0.3, 6) for p in points])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[-5:], values[:5], rtol=1e-9)  # exact at the vertices
    far = rig.blend(np.array([[10.0, 0, 0]]), vertices, values, sigma=0.3)
    assert np.all(far == 0)


def test_rig_points_matches_a_loop(tiny_subject):
    params = flame.FlameParams(shape=[0.3, -0.2])
    rest = rig.flame_rest(tiny_subject, params, 4)
    sigma, fade = 0.15, 0.2
    rng = np.random.default_rng(1)
    points = np.concatenate([rest.vertices, rng.uniform(-1.2, 1.2, (150, 3))])
    got = rig.rig_points(points, rest, sigma, fade)
    centre, radius = rest.ball()
    for p, point in enumerate(points):
        t = np.clip((np.linalg.norm(point - centre) - radius) / fade, 0, 1)
        ball = 1 - t * t * (3 - 2 * t)
        values = np.concatenate(
            [rest.jaw_weights[:, None], rest.expression.transpose(0, 2, 1).reshape(6, -1)], 1
        )
        blended = brute_blend(point, rest.vertices, values, sigma, guide.NEIGHBOURS)
        assert got.ball[p] == pytest.approx(ball, abs=1e-12)
        assert got.jaw[p] == pytest.approx(ball * min(max(blended[0], 0), 1), abs=1e-12)
        np.testing.assert_allclose(got.morphs[:, p], blended[1:].reshape(4, 3), atol=1e-12)
    weights = got.skin_weights
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.all(weights >= -1e-12)


def test_rig_points_with_the_neck_weight(tiny_subject):
    # The guide's "neck" rigid weight (GuideConfig.rigid_weight): the ball's weight times
    # smoothstep of the height above the root joint along FLAME's up axis, which the scene
    # turns and scales; 0 at `length` below `level`.
    params = flame.FlameParams(shape=[0.3, -0.2])
    rest = rig.flame_rest(tiny_subject, params, 4)
    sigma, fade, level, length = 0.15, 0.2, 0.05, 0.1
    points = np.random.default_rng(2).uniform(-1.2, 1.2, (300, 3))
    got = rig.rig_points(points, rest, sigma, fade, neck=(level, length))
    ball = rig.rig_points(points, rest, sigma, fade).ball
    to_scene = tiny_subject.scene.flame_to_scene
    root = tiny_subject.rest_joints([params])[0, 0]
    up = to_scene(root + [0.0, 1.0, 0.0]) - to_scene(root)
    height = (points - to_scene(root)) @ (up / np.linalg.norm(up))
    t = np.clip((height - level + length) / length, 0, 1)
    np.testing.assert_allclose(got.ball, ball * t * t * (3 - 2 * t), atol=1e-12)
    assert np.any((got.ball == 0) & (ball > 0)) and np.any(got.ball == ball)  # cut, not all
    np.testing.assert_allclose(got.skin_weights[:, 0], 1 - got.ball)  # the torso on the root


def test_flame_rest_is_the_guides_canonical_face(tiny_subject):
    params = flame.FlameParams(shape=[0.3], expression=[1, 2], jaw_pose=[0.1, 0, 0])
    rest = rig.flame_rest(tiny_subject, params, 4)
    _, neutral = tiny_subject.posed_and_neutral([params], undo_rigid=True)
    np.testing.assert_allclose(rest.vertices, neutral[0])
    # The basis in the scene: FLAME's displacement per unit coefficient, scaled and turned.
    one = flame.FlameParams(shape=[0.3], expression=[0, 0, 1])
    moved = tiny_subject.pose([one])[0] - tiny_subject.pose([flame.FlameParams(shape=[0.3])])[0]
    np.testing.assert_allclose(rest.expression[:, :, 2], moved, atol=1e-6)
    centre, radius = rest.ball()
    transforms = np.eye(4)[None]
    _, _, want_centre, want_radius = guide.head_ball(transforms, neutral, rest.head)
    np.testing.assert_allclose(centre, want_centre[0])
    assert radius == pytest.approx(want_radius[0])


def test_split_sends_straddling_faces_to_the_head():
    moving = np.array([True, False, False, False, True, False])
    faces = np.array([[1, 2, 3], [0, 1, 2], [3, 5, 2], [4, 5, 3]])
    parts = rig.split(moving, faces)
    np.testing.assert_array_equal(parts.head_vertices, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(parts.head_vertices[parts.head_faces], faces[[1, 3]])
    np.testing.assert_array_equal(parts.room_vertices, [1, 2, 3, 5])
    np.testing.assert_array_equal(parts.room_vertices[parts.room_faces], faces[[0, 2]])


def test_pose_from_flame_yaw_and_pitch():
    pose = rig.pose_from_flame(
        flame.FlameParams(
            expression=[1.0, 2.0, 3.0], neck_pose=turned(0.3, -0.2), jaw_pose=[0.25, 0.01, 0]
        ),
        num_expression=2,
    )
    np.testing.assert_allclose(pose.expression, [1, 2])
    assert (pose.jaw, pose.yaw, pose.pitch) == pytest.approx((0.25, 0.3, -0.2))
    both = rig.pose_from_flame(
        flame.FlameParams(global_pose=turned(0.1, 0), neck_pose=turned(0.2, 0.15)), 4
    )
    assert (both.yaw, both.pitch) == pytest.approx((0.3, 0.15))
    np.testing.assert_allclose(both.expression, np.zeros(4))


def test_skeleton_joints_at_flames(tiny_subject):
    params = flame.FlameParams(shape=[0.3, -0.2])
    joints = tiny_subject.rest_joints([params])[0]
    skel = rig.skeleton(tiny_subject, joints)
    world = tiny_subject.scene.flame_to_world(joints)
    rest = skel.rest_world()
    np.testing.assert_allclose(rest[1, :3, 3], world[1], atol=1e-12)
    np.testing.assert_allclose(rest[2, :3, 3], world[2], atol=1e-12)
    np.testing.assert_allclose(rest[1, :3, :3], tiny_subject.scene.to_world.rotation, atol=1e-12)


def rigged_flame(subject, params, sigma, fade, motion=False):
    """The neutral FLAME vertices put through the rig at `params`: (world posed, FLAME's own
    posed world vertices, ball weights). The head pose as the sliders' yaw and pitch, or with
    `motion` as an animation's key frame (`rig.motion_matrices`: FLAME's whole head motion)."""
    num_expression = subject.scene.num_expression
    rest = rig.flame_rest(subject, params, num_expression)
    rigged = rig.rig_points(rest.vertices, rest, sigma, fade)
    scene_ = subject.scene
    positions = rest.vertices / scene_.scale + scene_.center
    targets = rigged.morphs / scene_.scale
    weights = np.concatenate([rigged.skin_weights, np.zeros((len(positions), 1))], 1)
    joints = np.tile([0, 1, 2, 0], (len(positions), 1))
    rest_joints = subject.rest_joints([params])[0]
    skel = rig.skeleton(subject, rest_joints)
    pose = rig.pose_from_flame(params, num_expression)
    if motion:
        placement = rig.Placement(scene_.to_world, rest_joints)
        matrices, weights_e = rig.motion_matrices(
            placement, skel, skel.inverse_bind(), params, num_expression
        )
        np.testing.assert_array_equal(weights_e, pose.expression)
    else:
        matrices = rig.joint_matrices(skel.inverse_bind(), skel, pose)
    posed = rig.skin(positions, targets, joints, weights, matrices, pose.expression)
    want = scene_.flame_to_world(subject.pose_flame([params])[0])
    return posed, want, rigged.ball


def test_rigged_flame_vertices_land_on_flame_tiny(tiny_subject):
    # No pose correctives and no root weights here: only the joints' shift with the
    # expression (FLAME regresses them after the expression) separates the two.
    params = flame.FlameParams(
        shape=[0.3, -0.2],
        expression=[0.8, -1.1, 0.5, 1.4],
        jaw_pose=[0.25, 0, 0],
        neck_pose=turned(0.3, -0.2),
    )
    for exact in (params._replace(expression=None), params._replace(jaw_pose=None, neck_pose=None)):
        posed, want, ball = rigged_flame(tiny_subject, exact, sigma=0.03, fade=0.2)
        assert np.all(ball == 1)
        np.testing.assert_allclose(posed, want, atol=1e-6)
    posed, want, _ = rigged_flame(tiny_subject, params, sigma=0.03, fade=0.2)
    # The joints' shift: this toy basis moves every vertex by about 1 cm per unit, so the
    # joints (their mean) by about 4 mm here; turned by about 0.4 rad, 1.5 mm each, x 1.2.
    error = np.linalg.norm(posed - want, axis=1).max()
    assert error < 6e-3, error


def test_rigged_flame_vertices_land_on_flame_procedural_head(head_model):
    # The procedural head: FLAME's layout with pose correctives and root weights.
    subject = Subject(head_model, scene(10))
    units = subject.scene.units_per_metre
    rng = np.random.default_rng(3)
    params = flame.FlameParams(
        shape=rng.normal(scale=0.5, size=10),
        expression=rng.normal(scale=0.8, size=10),
        jaw_pose=[0.2, 0, 0],
        neck_pose=turned(0.25, 0.15),
    )
    posed, want, ball = rigged_flame(subject, params, sigma=0.008 * units, fade=0.06 * units)
    inside = ball == 1
    assert inside.mean() > 0.9
    error = np.linalg.norm(posed - want, axis=1)
    weights = np.asarray(head_model.weights)
    root, jaw = weights[:, 0] > 0.01, weights[:, 2] > 0.01
    rigid = inside & ~root & ~jaw
    # Measured (docs/export.md), a 20 cm head turned by 17 degrees with the jaw open 0.2 rad:
    # vertices skinned to the neck and eyes only are off by the joints' shift with the
    # expression (0.15 mm, at most 0.3 mm); jaw vertices also by FLAME's pose correctives
    # (mean 0.9 mm, worst 1.6 cm); vertices FLAME skins partly to the root (the neck's base,
    # 2% of them) follow the neck fully in the ball (mean 4 mm, worst 2.1 cm).
    assert error[rigid].max() < 5e-4
    assert error[inside & jaw].mean() < 2e-3 and error[inside & jaw].max() < 2.5e-2
    assert error[inside & root].mean() < 6e-3 and error[inside & root].max() < 3e-2
    neutral_pose = flame.FlameParams(shape=params.shape, expression=params.expression)
    posed, want, ball = rigged_flame(subject, neutral_pose, sigma=0.008 * units, fade=0.06 * units)
    np.testing.assert_allclose(posed, want, atol=1e-5)  # expressions alone: exact


def test_neck_and_jaw_rotations_are_the_contracts():
    rest = Rotation.from_rotvec([0.1, -0.2, 0.05]).as_quat()
    got = Rotation.from_quat(rig.neck_rotation(rest, 0.3, -0.4)).as_matrix()
    want = Rotation.from_quat(rest).as_matrix() @ rotation_y(0.3) @ rotation_x(-0.4)
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(
        Rotation.from_quat(rig.jaw_rotation(0.2)).as_matrix(), rotation_x(0.2), atol=1e-12
    )


def head_motion_params(**others):
    """A head pose with everything the sliders leave out: roll in the global and neck
    rotations, a global rotation about FLAME's root joint, a translation."""
    return flame.FlameParams(
        global_pose=Rotation.from_euler("YXZ", [0.2, -0.1, 0.15]).as_rotvec(),
        neck_pose=Rotation.from_euler("YXZ", [-0.1, 0.2, -0.25]).as_rotvec(),
        translation=[0.02, -0.01, 0.03],
        **others,
    )


def test_neck_motion_is_the_guides_head_transform(tiny_subject):
    """The neck's skinning matrix at an animation key frame is the guide's head transform
    (`guide.head_transforms`, in the world): the rigid motion the guide undoes in its ball."""
    params = head_motion_params(shape=[0.3, -0.2])
    rest_joints = tiny_subject.rest_joints([params])[0]
    skel = rig.skeleton(tiny_subject, rest_joints)
    placement = rig.Placement(tiny_subject.scene.to_world, rest_joints)
    translation, neck = placement.neck_motion(params)
    worlds = rig.local_world_matrices(skel, translation, neck, rig.jaw_rotation(0.0))
    skinning = worlds @ skel.inverse_bind()
    head = guide.in_frame(
        guide.head_transforms(tiny_subject, [params]), tiny_subject.scene.flame_to_world
    )[0]
    np.testing.assert_allclose(skinning[1], head, atol=1e-6)  # the guide: float32 rotations
    np.testing.assert_allclose(skinning[0], np.eye(4), atol=1e-12)  # the root stays
    at_rest = placement.neck_motion(flame.FlameParams(shape=[0.3, -0.2]))
    np.testing.assert_allclose(at_rest[0], skel.neck_translation, atol=1e-12)
    np.testing.assert_allclose(
        Rotation.from_quat(at_rest[1]).as_matrix(),
        Rotation.from_quat(skel.neck_rotation).as_matrix(),
        atol=1e-12,
    )


def test_animated_flame_vertices_land_on_flame_tiny(tiny_subject):
    """Global rotation about the root joint, roll and translation (an animation's key frame):
    exact without the expression (no pose correctives, no root weights in this model)."""
    params = head_motion_params(shape=[0.3, -0.2], jaw_pose=[0.25, 0, 0])
    posed, want, ball = rigged_flame(tiny_subject, params, sigma=0.03, fade=0.2, motion=True)
    assert np.all(ball == 1)
    np.testing.assert_allclose(posed, want, atol=1e-6)
    # The sliders' yaw and pitch about the neck joint alone miss all of it by centimetres.
    sliders, _, _ = rigged_flame(tiny_subject, params, sigma=0.03, fade=0.2)
    assert np.linalg.norm(sliders - want, axis=1).min() > 0.01


def test_animated_flame_vertices_land_on_flame_procedural_head(head_model):
    # As test_rigged_flame_vertices_land_on_flame_procedural_head, the whole head motion.
    subject = Subject(head_model, scene(10))
    units = subject.scene.units_per_metre
    rng = np.random.default_rng(3)
    params = head_motion_params(
        shape=rng.normal(scale=0.5, size=10),
        expression=rng.normal(scale=0.8, size=10),
        jaw_pose=[0.2, 0, 0],
    )
    posed, want, ball = rigged_flame(
        subject, params, sigma=0.008 * units, fade=0.06 * units, motion=True
    )
    inside = ball == 1
    error = np.linalg.norm(posed - want, axis=1)
    weights = np.asarray(head_model.weights)
    root, jaw = weights[:, 0] > 0.01, weights[:, 2] > 0.01
    rigid = inside & ~root & ~jaw
    print(
        f"neck and eyes: mean {error[rigid].mean() * 1e3:.2f} mm, max "
        f"{error[rigid].max() * 1e3:.2f} mm; jaw: mean {error[inside & jaw].mean() * 1e3:.2f}"
        f" mm, max {error[inside & jaw].max() * 1e3:.1f} mm; root: mean "
        f"{error[inside & root].mean() * 1e3:.2f} mm, max {error[inside & root].max() * 1e3:.1f} mm"
    )
    # Measured: neck and eyes 0.13 mm (max 0.27: the joints' shift with the expression); jaw
    # mean 1.0 mm, max 2.5 cm (pose correctives, larger with the larger total rotation);
    # FLAME's root-weighted neck base mean 6.5 mm, max 3.5 cm (they follow the head fully in
    # the ball, as the guide moves them, where FLAME turns them partly with the root alone).
    assert error[rigid].max() < 5e-4
    assert error[inside & jaw].mean() < 2e-3 and error[inside & jaw].max() < 3e-2
    assert error[inside & root].mean() < 1e-2 and error[inside & root].max() < 4e-2
