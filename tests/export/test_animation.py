# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Driving sequences as glTF animations: key frame k is file k's pose (expression, yaw and
pitch of FLAME's global and neck pose, jaw opening), written and read back through the glb."""

import json

import numpy as np
import pytest
from export_util import quaternion_matrix, rotation_x, rotation_y, tiny_asset
from scipy.spatial.transform import Rotation

from flamenerf.errors import UserError
from flamenerf.export import animation, gltf

REST = np.array([0.0, np.sin(0.15), 0.0, np.cos(0.15)])  # the neck's rest: 0.3 rad about y
FRAMES = {  # written out of name order
    "b.json": {
        "expression": [-1.0, 0.5],
        "jaw_pose": [0.2, 0.0, 0.0],
        "global_pose": Rotation.from_matrix(rotation_y(0.1)).as_rotvec().tolist(),
        "neck_pose": Rotation.from_matrix(rotation_y(0.15) @ rotation_x(-0.2)).as_rotvec().tolist(),
    },
    "a.json": {
        "expression": [0.5],
        "neck_pose": Rotation.from_matrix(rotation_x(0.3)).as_rotvec().tolist(),
    },
    "c.json": {"jaw_pose": [0.05, 0.0, 0.0], "translation": [0.1, 0.0, 0.0]},
}
# (expression zero-padded to 2, jaw, yaw, pitch) of a, b, c in name order.
EXPECTED = [
    ([0.5, 0.0], 0.0, 0.0, 0.3),
    ([-1.0, 0.5], 0.2, 0.25, -0.2),
    ([0.0, 0.0], 0.05, 0.0, 0.0),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("drive") / "smile"
    root.mkdir()
    for name, values in FRAMES.items():
        (root / name).write_text(json.dumps(values))
    return root


def same_rotation(q, matrix):
    np.testing.assert_allclose(quaternion_matrix(q), matrix, atol=1e-6)


def check(sampled, expected, rest=REST):
    expression, neck, jaw = sampled
    want_expression, want_jaw, yaw, pitch = expected
    np.testing.assert_allclose(expression, want_expression, atol=1e-6)
    same_rotation(neck, quaternion_matrix(rest) @ rotation_y(yaw) @ rotation_x(pitch))
    same_rotation(jaw, rotation_x(want_jaw))


def test_frame_k_is_file_k(folder):
    anim = animation.read_animation(folder, REST, num_expression=2, fps=10.0)
    assert anim.name == "smile"
    np.testing.assert_allclose(anim.times, [0.0, 0.1, 0.2], atol=1e-7)
    for k, expected in enumerate(EXPECTED):
        check(animation.sample(anim, k / 10.0), expected)
    # Between key frames: the weights interpolate linearly.
    expression, _, _ = animation.sample(anim, 0.05)
    np.testing.assert_allclose(expression, [-0.25, 0.25], atol=1e-6)


def test_through_the_glb(folder):
    asset = tiny_asset(animations=False)
    asset.animations = [animation.read_animation(folder, asset.skeleton.neck_rotation, 2, 30.0)]
    back = gltf.read_glb(gltf.write_glb(asset)).animations
    assert [a.name for a in back] == ["smile"]
    for k, expected in enumerate(EXPECTED):
        check(animation.sample(back[0], k / 30.0), expected, rest=asset.skeleton.neck_rotation)


def test_quaternions_stay_in_one_hemisphere():
    params = [
        animation.flame.FlameParams(neck_pose=[0.0, angle, 0.0]) for angle in np.linspace(0, 6, 13)
    ]
    anim = animation.sequence_animation("turn", params, np.array([0, 0, 0, 1.0]), 0, 5.0)
    assert np.all(np.sum(anim.neck[1:] * anim.neck[:-1], axis=1) >= 0)
    assert anim.expression.shape == (13, 0)


def test_bad_folders_name_what_is_wrong(tmp_path):
    with pytest.raises(UserError, match="not found"):
        animation.read_animation(tmp_path / "nope", REST, 2, 30.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no \\*.json"):
        animation.read_animation(tmp_path / "empty", REST, 2, 30.0)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "000.json").write_text(json.dumps({"expression": [1, 2, 3]}))
    with pytest.raises(UserError, match="000.json.*expression"):
        animation.read_animation(bad, REST, 2, 30.0)
    (bad / "000.json").write_text(json.dumps({"jaw_pose": "open"}))
    with pytest.raises(UserError, match="000.json.*jaw_pose"):
        animation.read_animation(bad, REST, 2, 30.0)
    with pytest.raises(ValueError, match="fps"):
        animation.sequence_animation("x", [], REST, 2, 0.0)
