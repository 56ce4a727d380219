# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.views.reanimation: FLAME parameter arithmetic against hand-computed values and
rotation matrices (posing, neutrals, conditioning vectors and cameras are the capture's
`Subject`: tests/geometry/test_subject.py)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from views_util import CODE_POSE, matrix, rotation_x, rotation_y, write_params

from flamenerf.geometry import flame
from flamenerf.views import reanimation


def test_relative_transfer_adds_offsets_to_the_subject_neutral():
    driving = flame.FlameParams(expression=[1.0, 2.0], jaw_pose=[0.3, 0.0, 0.1])
    neutral = flame.FlameParams(expression=[0.5, 0.5, 0.5], jaw_pose=[0.1, 0.0, 0.0])
    subject = flame.FlameParams(expression=[0.1], jaw_pose=[0.0, 0.2, 0.0])
    expression, jaw = reanimation.relative_transfer(driving, neutral, subject, 3)
    np.testing.assert_allclose(expression, [0.6, 1.5, -0.5], atol=1e-6)
    np.testing.assert_allclose(jaw, [0.2, 0.2, 0.1], atol=1e-6)


def test_driven_params_keep_identity_and_head_pose():
    subject = flame.FlameParams(
        shape=[0.5], expression=[1.0], global_pose=[0, 0.2, 0], translation=[0, 0, 0.1]
    )
    driven = reanimation.with_expression(subject, np.array([3.0, 4.0]), np.array([0.2, 0, 0]))
    assert driven.shape == [0.5] and driven.global_pose == [0, 0.2, 0]
    assert driven.translation == [0, 0, 0.1]
    np.testing.assert_allclose(driven.expression, [3, 4])
    np.testing.assert_allclose(driven.jaw_pose, [0.2, 0, 0])


def test_too_many_expression_coefficients_name_the_file(tmp_path):
    write_params(tmp_path / "f.json", expression=[0.0] * 5)
    with pytest.raises(ValueError, match=r"f\.json: field 'expression' has 5 .* at most 3"):
        reanimation.read_sequence(tmp_path, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no \*\.json"):
        reanimation.read_sequence(tmp_path / "empty", 3)


def test_head_pose_helpers_against_rotation_matrices():
    subject = flame.FlameParams(shape=[0.5], expression=[1.0], eye_pose=[0.1] * 6, **CODE_POSE)
    # turn_head: neck R -> R R_y(yaw) R_x(pitch), the rest kept; zero angles: unchanged.
    turned = reanimation.turn_head(subject, 10.0, -5.0)
    expected = matrix(CODE_POSE["neck_pose"]) @ rotation_y(10.0) @ rotation_x(-5.0)
    np.testing.assert_allclose(matrix(turned.neck_pose), expected, atol=1e-6)
    assert turned.global_pose == subject.global_pose and turned.eye_pose == subject.eye_pose
    assert reanimation.turn_head(subject, 0.0, 0.0) is subject
    # A positive yaw turns the face (+z) towards +x; a positive pitch tilts it down (-y).
    np.testing.assert_allclose(
        matrix(reanimation.turn_head(flame.FlameParams(), 30.0, 0.0).neck_pose) @ [0, 0, 1],
        [0.5, 0.0, np.sqrt(3) / 2],
        atol=1e-6,
    )
    down = matrix(reanimation.turn_head(flame.FlameParams(), 0.0, 30.0).neck_pose) @ [0, 0, 1]
    np.testing.assert_allclose(down, [0.0, -0.5, np.sqrt(3) / 2], atol=1e-6)
    # relative_head_pose: R_subject R_neutral^T R_driving per joint; translations add.
    neutral = flame.FlameParams(global_pose=[0.1, -0.2, 0.05], translation=[0.01, 0.0, 0.02])
    driving = flame.FlameParams(
        global_pose=[0.3, 0.1, -0.1], neck_pose=[0.0, 0.2, 0.0], translation=[0.0, 0.01, 0.0]
    )
    g, n, t = reanimation.relative_head_pose(driving, neutral, subject)
    np.testing.assert_allclose(
        matrix(g),
        matrix(CODE_POSE["global_pose"]) @ matrix([0.1, -0.2, 0.05]).T @ matrix([0.3, 0.1, -0.1]),
        atol=1e-9,
    )
    np.testing.assert_allclose(matrix(n), matrix(CODE_POSE["neck_pose"]) @ matrix([0, 0.2, 0]))
    np.testing.assert_allclose(t, np.add(CODE_POSE["translation"], [-0.01, 0.01, -0.02]))
    # The driving neutral's own pose transfers as the subject's; the rotation offset does not
    # depend on how the driving capture's FLAME space is turned.
    same = reanimation.relative_head_pose(neutral, neutral, subject)
    for found, pose in zip(same, reanimation.head_pose(subject), strict=True):
        np.testing.assert_allclose(found, pose, atol=1e-9)
    q = Rotation.from_rotvec([0.4, -0.3, 0.2])
    turn = lambda p: p._replace(
        global_pose=(q * Rotation.from_rotvec(reanimation.head_pose(p)[0])).as_rotvec()
    )
    g2, _, _ = reanimation.relative_head_pose(turn(driving), turn(neutral), subject)
    np.testing.assert_allclose(g2, g, atol=1e-9)
