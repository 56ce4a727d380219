# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Driving sequences as glTF animations: key frame k is file k's pose (expression, jaw opening,
and FLAME's whole head motion as the neck's translation and rotation), written and read back
through the glb, and posed (against the FLAME head transform written out by hand)."""

import json

import numpy as np
import pytest
from export_util import quaternion_matrix, rotation_x, rotation_y, tiny_asset
from scipy.spatial.transform import Rotation

from flamenerf.errors import UserError
from flamenerf.export import animation, gltf, preview, rig
from flamenerf.geometry.scene import ToWorld

FRAMES = {  # written out of name order
    "b.json": {
        "expression": [-1.0, 0.5],
        "jaw_pose": [0.2, 0.0, 0.0],
        "global_pose": [0.05, 0.1, 0.2],  # with roll
        "neck_pose": Rotation.from_matrix(rotation_y(0.15) @ rotation_x(-0.2)).as_rotvec().tolist(),
    },
    "a.json": {
        "expression": [0.5],
        "neck_pose": Rotation.from_matrix(rotation_x(0.3)).as_rotvec().tolist(),
    },
    "c.json": {"jaw_pose": [0.05, 0.0, 0.0], "translation": [0.1, 0.0, -0.02]},
}
NAMES = ["a.json", "b.json", "c.json"]
# (expression zero-padded to 2, jaw) of a, b, c in name order.
EXPECTED = [([0.5, 0.0], 0.0), ([-1.0, 0.5], 0.2), ([0.0, 0.0], 0.05)]
# FLAME's frame in the world: turned 0.3 rad about y, scaled, shifted; its joints at rest.
PLACEMENT = rig.Placement(
    ToWorld(scale=1.5, rotation=rotation_y(0.3), translation=np.array([0.1, -0.2, 0.3])),
    np.array(
        [
            [0.0, 0.0, 0.0],
            [0.0, 0.05, -0.01],
            [0.0, 0.08, 0.02],
            [0.03, 0.1, 0.05],
            [-0.03, 0.1, 0.05],
        ]
    ),
)


def rodrigues(rotvec):
    """Textbook axis-angle -> matrix."""
    rotvec = np.zeros(3) if rotvec is None else np.asarray(rotvec, np.float64)
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rotvec / angle
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def head_motion(values):
    """The neck's world translation and rotation matrix for a FLAME file's head pose: FLAME's
    neck joint moved by the global rotation about the root joint and the translation, in the
    world; the rest rotation times the global and neck rotations."""
    r0, r1 = rodrigues(values.get("global_pose")), rodrigues(values.get("neck_pose"))
    j0, j1 = PLACEMENT.joints[0], PLACEMENT.joints[1]
    posed = j0 + r0 @ (j1 - j0) + np.asarray(values.get("translation", np.zeros(3)))
    t = PLACEMENT.to_world
    return t.scale * t.rotation @ posed + t.translation, rotation_y(0.3) @ r0 @ r1


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("drive") / "smile"
    root.mkdir()
    for name, values in FRAMES.items():
        (root / name).write_text(json.dumps(values))
    return root


def same_rotation(q, matrix):
    np.testing.assert_allclose(quaternion_matrix(q), matrix, atol=1e-6)


def check(sampled, k):
    want_expression, want_jaw = EXPECTED[k]
    translation, rotation = head_motion(FRAMES[NAMES[k]])
    np.testing.assert_allclose(sampled.expression, want_expression, atol=1e-6)
    same_rotation(sampled.neck, rotation)
    np.testing.assert_allclose(sampled.neck_translation, translation, atol=1e-6)
    same_rotation(sampled.jaw, rotation_x(want_jaw))


def test_frame_k_is_file_k(folder):
    anim = animation.read_animation(folder, PLACEMENT, num_expression=2, fps=10.0)
    assert anim.name == "smile"
    np.testing.assert_allclose(anim.times, [0.0, 0.1, 0.2], atol=1e-7)
    for k in range(3):
        check(animation.sample(anim, k / 10.0), k)
    # Between key frames: the weights and the translation interpolate linearly.
    halfway = animation.sample(anim, 0.15)
    np.testing.assert_allclose(halfway.expression, [-0.5, 0.25], atol=1e-6)
    between = 0.5 * (head_motion(FRAMES["b.json"])[0] + head_motion(FRAMES["c.json"])[0])
    np.testing.assert_allclose(halfway.neck_translation, between, atol=1e-6)


def test_through_the_glb_and_posed(folder):
    asset = tiny_asset(animations=False)
    asset.animations = [animation.read_animation(folder, PLACEMENT, 2, 30.0)]
    back = gltf.read_glb(gltf.write_glb(asset))
    assert [a.name for a in back.animations] == ["smile"]
    for k in range(3):
        check(animation.sample(back.animations[0], k / 30.0), k)
    # Posed at key frame 1: the head's vertices morphed, then skinned by the neck's and the
    # jaw's world matrices written out by hand (the root stays).
    _, head = preview.pose_animation(back, "smile", 1 / 30.0)
    translation, rotation = head_motion(FRAMES["b.json"])
    skel = back.skeleton
    neck = np.eye(4)
    neck[:3, :3], neck[:3, 3] = rotation, translation
    jaw = np.eye(4)
    jaw[:3, :3], jaw[:3, 3] = rotation_x(0.2), skel.jaw_translation
    worlds = [np.eye(4), neck, neck @ jaw]
    h = back.head
    want = np.zeros((len(h.positions), 3))
    for v in range(len(h.positions)):
        p = h.positions[v] - 1.0 * h.targets[0, v] + 0.5 * h.targets[1, v]
        for j, w in zip(h.joints[v], h.weights[v], strict=True):
            m = worlds[j] @ back.inverse_bind[j].astype(np.float64)
            want[v] += w * (m @ np.append(p, 1.0))[:3]
    np.testing.assert_allclose(head, want, atol=1e-5)


def test_an_animation_without_translation_keeps_the_rest():
    asset = tiny_asset()  # its animation has no neck translation channel
    assert asset.animations[0].neck_translation is None
    back = gltf.read_glb(gltf.write_glb(asset))
    assert back.animations[0].neck_translation is None
    _, head = preview.pose_animation(back, "drive", 0.5)
    pose = rig.Pose(np.array([0.5, -1.0]), 0.1, 0.2, 0.0)  # the key frame at 0.5 s
    _, want = preview.pose(back, pose)
    np.testing.assert_allclose(head, want, atol=1e-5)


def test_quaternions_stay_in_one_hemisphere():
    params = [
        animation.flame.FlameParams(neck_pose=[0.0, angle, 0.0]) for angle in np.linspace(0, 6, 13)
    ]
    anim = animation.sequence_animation("turn", params, PLACEMENT, 0, 5.0)
    assert np.all(np.sum(anim.neck[1:] * anim.neck[:-1], axis=1) >= 0)
    assert anim.expression.shape == (13, 0) and anim.neck_translation.shape == (13, 3)


def test_bad_folders_name_what_is_wrong(tmp_path):
    with pytest.raises(UserError, match="not found"):
        animation.read_animation(tmp_path / "nope", PLACEMENT, 2, 30.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no \\*.json"):
        animation.read_animation(tmp_path / "empty", PLACEMENT, 2, 30.0)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "000.json").write_text(json.dumps({"expression": [1, 2, 3]}))
    with pytest.raises(UserError, match="000.json.*expression"):
        animation.read_animation(bad, PLACEMENT, 2, 30.0)
    (bad / "000.json").write_text(json.dumps({"jaw_pose": "open"}))
    with pytest.raises(UserError, match="000.json.*jaw_pose"):
        animation.read_animation(bad, PLACEMENT, 2, 30.0)
    with pytest.raises(ValueError, match="fps"):
        animation.sequence_animation("x", [], PLACEMENT, 2, 0.0)
