# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.geometry.subject: posing against the independent float64 brute-force LBS and the
scene's affine maps written out by hand; neutrals field by field; the conditioning vector's
layout; camera normalisation against the intrinsics and position moved by hand; a capture's
subject against the capture's own meshes and cameras."""

from pathlib import Path

import numpy as np
import pytest
from capture_util import write_capture
from flame_util import brute_force, make_raw, random_params
from scipy.spatial.transform import Rotation

from flamenerf.datasets import capture as capture_lib
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.geometry.scene import Scene, ToWorld
from flamenerf.geometry.subject import Subject, pose_flame

NUM_SHAPE, NUM_EXPRESSION = 4, 3
ROTATION = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
PLACEMENT = dict(scale=1.7, rotation=ROTATION, translation=np.array([0.1, -0.2, 0.3]))
CENTER, SCALE = np.array([0.05, 0.1, -0.2]), 2.5


@pytest.fixture(scope="module")
def raw():
    return make_raw(np.random.default_rng(0), num_shape=NUM_SHAPE, num_expression=NUM_EXPRESSION)


@pytest.fixture(scope="module")
def subject(raw):
    scene = Scene(
        center=CENTER,
        scale=SCALE,
        near=0.1,
        far=4.0,
        flame_model=Path("flame_model.npz"),
        to_world=ToWorld(**PLACEMENT),
        num_expression=2,  # the scene conditions on fewer coefficients than the model has
        bbox=None,
    )
    return Subject(flame.model_from_arrays(raw), scene)


def to_scene_by_hand(points):
    """FLAME space -> world (s R x + t) -> normalised ((X - center) * scale), in numpy."""
    world = PLACEMENT["scale"] * points @ ROTATION.T + PLACEMENT["translation"]
    return (world - CENTER) * SCALE


def params_sets(seed, count=3):
    """`count` random parameter dicts (numpy) and the same as FlameParams; the last one with
    shorter shape and expression vectors (zero-padded by FLAME)."""
    rng = np.random.default_rng(seed)
    dicts = [random_params(rng, NUM_SHAPE, NUM_EXPRESSION) for _ in range(count)]
    dicts[-1]["shape"], dicts[-1]["expression"] = (
        dicts[-1]["shape"][:2],
        dicts[-1]["expression"][:1],
    )
    return dicts, [flame.FlameParams(**d) for d in dicts]


def zeroed(values, *names):
    """A parameter dict with the named fields set to zeros of their length."""
    return {k: np.zeros_like(v) if k in names else v for k, v in values.items()}


# --------------------------------------------------------------------------------------------
# Meshes.


def test_pose_is_flames_forward_then_the_scenes_affine(raw, subject):
    dicts, params = params_sets(1)
    expected = np.stack([brute_force(raw, d, NUM_SHAPE)[0] for d in dicts])  # (3, V, 3)
    in_flame = subject.pose_flame(params)
    assert in_flame.shape == expected.shape and in_flame.dtype == np.float64
    np.testing.assert_allclose(in_flame, expected, atol=1e-5)
    np.testing.assert_array_equal(pose_flame(subject.model, params), in_flame)
    posed = subject.pose(params)
    assert posed.shape == expected.shape and posed.dtype == np.float64
    np.testing.assert_allclose(posed, to_scene_by_hand(expected), atol=1e-5 * 1.7 * SCALE)
    # The scene's map is applied to the float32 FLAME vertices in float64, exactly.
    np.testing.assert_array_equal(posed, to_scene_by_hand(in_flame))
    # One batch poses each set as it would be posed alone.
    alone = subject.pose(params[1:2])
    np.testing.assert_allclose(alone[0], posed[1], atol=1e-6)


def test_neutral_zeroes_exactly_the_right_fields():
    values = dict(
        shape=[0.5, 0.2],
        expression=[1.0, -2.0],
        global_pose=[0.1, 0.2, 0.3],
        neck_pose=[0.0, 0.4, 0.0],
        jaw_pose=[0.3, 0.0, 0.0],
        eye_pose=[0.1] * 6,
        translation=[0.0, 0.0, 0.05],
    )
    params = flame.FlameParams(**values)
    face = Subject.neutral(params)  # undo_rigid defaults to False: the head pose is kept
    rest = Subject.neutral(params, undo_rigid=True)
    for name in flame.FlameParams._fields:
        zero_in_face = name in ("expression", "jaw_pose")
        zero_at_rest = zero_in_face or name in ("global_pose", "neck_pose", "translation")
        assert (getattr(face, name) is None) == zero_in_face, name
        assert (getattr(rest, name) is None) == zero_at_rest, name
        for neutral, zero in ((face, zero_in_face), (rest, zero_at_rest)):
            if not zero:
                assert getattr(neutral, name) == values[name], name
    assert params == flame.FlameParams(**values)  # the input is not modified
    assert Subject.neutral(params, undo_rigid=False) == face


@pytest.mark.parametrize("undo_rigid", [True, False])
def test_posed_and_neutral_against_brute_force(raw, subject, undo_rigid):
    dicts, params = params_sets(2, count=2)
    posed, neutral = subject.posed_and_neutral(params, undo_rigid)
    fields = ("expression", "jaw_pose") + (
        ("global_pose", "neck_pose", "translation") if undo_rigid else ()
    )
    expected = [brute_force(raw, zeroed(d, *fields), NUM_SHAPE)[0] for d in dicts]
    assert posed.shape == neutral.shape == (2, len(raw["v_template"]), 3)
    np.testing.assert_array_equal(posed, subject.pose(params))
    np.testing.assert_allclose(neutral, to_scene_by_hand(np.stack(expected)), atol=5e-5)


def test_rest_joints_are_the_regressed_joints_of_the_identity(raw, subject):
    dicts, params = params_sets(3)
    joints = subject.rest_joints(params)
    assert joints.shape == (3, 5, 3) and joints.dtype == np.float64
    for d, found in zip(dicts, joints, strict=True):
        shape = np.zeros(NUM_SHAPE + NUM_EXPRESSION)
        shape[: len(d["shape"])] = d["shape"]  # the identity only: no expression, no pose
        v_shaped = raw["v_template"] + np.asarray(raw["shapedirs"]) @ shape
        np.testing.assert_allclose(found, raw["J_regressor"] @ v_shaped, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Conditioning.


def test_condition_vector_pads_truncates_and_appends_the_jaw(subject):
    assert subject.num_expression == 2
    params = flame.FlameParams(expression=[1.0, 2.0, 3.0], jaw_pose=[0.1, 0.2, 0.3])
    vector = subject.condition(params, jaw=True)
    assert vector.dtype == np.float32 and vector.shape == (5,)
    np.testing.assert_allclose(vector, [1, 2, 0.1, 0.2, 0.3], atol=1e-7)
    assert subject.condition(params, jaw=False).tolist() == [1, 2]
    short = subject.condition(flame.FlameParams(expression=[4.0]), jaw=True)
    assert short.tolist() == [4, 0, 0, 0, 0]
    assert subject.condition(flame.FlameParams(), jaw=False).tolist() == [0, 0]
    expression, jaw = subject.expression_and_jaw(params)
    assert expression.dtype == jaw.dtype == np.float32
    assert expression.tolist() == [1, 2] and jaw.shape == (3,)


# --------------------------------------------------------------------------------------------
# Cameras.


def test_camera_normalisation_moves_the_camera_by_hand(subject):
    camera = Camera(
        orientation=Rotation.from_rotvec([0.0, 0.2, 0.1]).as_matrix(),
        position=[0.3, -0.1, 1.2],
        focal_length=90.0,
        principal_point=[49.5, 37.0],
        skew=1.0,
        radial_distortion=[0.01, 0.0, 0.0],
        image_size=(101, 75),
    )
    for image_scale in (1, 2, 4):
        moved = subject.camera(camera, image_scale)
        np.testing.assert_array_equal(moved.position, (camera.position - CENTER) * SCALE)
        np.testing.assert_array_equal(moved.orientation, camera.orientation)
        assert moved.focal_length == 90.0 / image_scale and moved.skew == 1.0 / image_scale
        np.testing.assert_array_equal(moved.principal_point, [49.5 / image_scale, 37 / image_scale])
        assert moved.image_size == (round(101 / image_scale), round(75 / image_scale))
        np.testing.assert_array_equal(moved.radial_distortion, camera.radial_distortion)
        assert moved.pixel_aspect_ratio == camera.pixel_aspect_ratio
    assert camera.position.tolist() == [0.3, -0.1, 1.2]  # the input is not modified


# --------------------------------------------------------------------------------------------
# A capture's subject.


def test_a_captures_subject_gives_its_meshes_and_cameras(tmp_path):
    root = write_capture(tmp_path / "cap")
    capture = capture_lib.load_capture(root, scale=2)
    subject = capture.subject
    assert subject.model is capture.flame_model and subject.scene is capture.scene
    ids = capture.ids
    vertices = subject.pose([capture.flame_params[i] for i in ids]).astype(np.float32)
    for frame_id, found in zip(ids, vertices, strict=True):
        np.testing.assert_array_equal(found, capture.vertices(frame_id))
        camera = subject.camera(capture_lib.read_camera(root / "camera" / f"{frame_id}.json"), 2)
        own = capture.cameras[frame_id]
        np.testing.assert_array_equal(camera.position, own.position)
        np.testing.assert_array_equal(camera.orientation, own.orientation)
        assert camera.focal_length == own.focal_length and camera.image_size == own.image_size
        np.testing.assert_array_equal(
            subject.condition(capture.flame_params[frame_id], jaw=True), capture.condition(frame_id)
        )
