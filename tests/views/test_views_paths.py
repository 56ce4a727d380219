# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.views.paths: orbits against their geometry, the capture's camera paths against
its cameras, head sweeps against rotation matrices.

On test_eval's tiny trained experiment; the head sweep on its copy rendered through the FLAME
guide (`views_util.guided_folder`).
"""

import numpy as np
import pytest
import views_util
from test_eval import tiny_experiment
from views_util import CODE, CODE_POSE, matrix, rotation_x, rotation_y

from flamenerf.views import paths, reanimation


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from views_util.restored(tiny_experiment(tmp_path_factory))


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    trained = tiny_experiment(tmp_path_factory)
    yield from views_util.restored(
        views_util.guided_folder(trained, tmp_path_factory.mktemp("guided"))
    )


def test_orbit_cameras_look_at_the_centre(loaded):
    exp, _, _ = loaded
    camera = exp.capture.cameras["t00"]
    center = np.array([0.0, 0.05, 0.1])
    full = paths.orbit_cameras(camera, center, 4, 360)
    arc = paths.orbit_cameras(camera, center, 3, 90)
    radius = np.linalg.norm(camera.position - center)
    for cam in full + arc:
        np.testing.assert_allclose(cam.project(center), camera.principal_point, atol=1e-6)
        assert np.linalg.norm(cam.position - center) == pytest.approx(radius)
    np.testing.assert_allclose(full[0].position, camera.position, atol=1e-9)
    np.testing.assert_allclose(arc[1].position, camera.position, atol=1e-9)  # arc centred
    up = -camera.orientation[1]  # the orbit axis
    offsets = [a.position - center for a in (arc[0], arc[2])]
    offsets = [o - (o @ up) * up for o in offsets]  # components turning about the axis
    cosine = offsets[0] @ offsets[1] / np.linalg.norm(offsets[0]) / np.linalg.norm(offsets[1])
    assert cosine == pytest.approx(0.0, abs=1e-9)  # -45 to +45 degrees


def test_capture_camera_path_views(loaded):
    exp, _, _ = loaded
    cameras = exp.capture.root / "camera"
    folder = exp.capture.root / "camera-paths" / "spin"
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame_id in enumerate(["t04", "t02"]):
        (folder / f"{k:03d}.json").write_text((cameras / f"{frame_id}.json").read_text())
    views, code = paths.path_views(exp, expression_frame="t01", path="spin")
    assert code == "t01" and [v.label["camera"] for v in views] == ["spin/00000", "spin/00001"]
    own = exp.capture.condition("t01", True)
    for view, frame_id in zip(views, ["t04", "t02"], strict=True):
        np.testing.assert_allclose(view.camera.position, exp.capture.cameras[frame_id].position)
        np.testing.assert_allclose(view.condition, own)
        silhouette = reanimation.silhouette(
            exp.capture.flame_model, exp.capture.vertices("t01"), view.camera
        )
        np.testing.assert_array_equal(view.inside, silhouette)


def test_head_sweep_turns_the_head_before_the_code_frames_camera(guided):
    exp, _, _ = guided
    views, code = paths.path_views(
        exp, expression_frame=CODE, head_yaw=(-10.0, 10.0), head_pitch=(5.0, 5.0), num_frames=3
    )
    assert code == CODE and len(views) == 3
    assert [v.label["head_yaw"] for v in views] == [-10.0, 0.0, 10.0]
    assert [v.label["head_pitch"] for v in views] == [5.0, 5.0, 5.0]
    for view, yaw in zip(views, (-10.0, 0.0, 10.0), strict=True):
        assert view.camera is exp.capture.cameras[CODE]  # the camera stays
        expected = matrix(CODE_POSE["neck_pose"]) @ rotation_y(yaw) @ rotation_x(5.0)
        np.testing.assert_allclose(matrix(view.flame.neck_pose), expected, atol=1e-6)
        np.testing.assert_allclose(view.flame.global_pose, CODE_POSE["global_pose"])
        np.testing.assert_allclose(view.condition, exp.capture.condition(CODE, True))
    assert not np.array_equal(views[0].inside, views[2].inside)
