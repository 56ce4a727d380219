# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`import-flame --from imavatar`: flame_params.json written from synthetic truth."""

import json

import numpy as np
from capture_util import write_capture
from tracker_util import (
    HEIGHT,
    IDS,
    WIDTH,
    F,
    assert_params,
    assert_to_world,
    import_flame,
    orbit_cameras,
    random_params,
    world_vertices,
)

from flamenerf.capture.trackers.similarity import scaling
from flamenerf.datasets.capture import load_capture
from flamenerf.geometry import flame


def test_imavatar_cameras_and_the_factor_four(tmp_path):
    rng = np.random.default_rng(9)
    root = write_capture(tmp_path / "cap")
    for path in (root / "camera").iterdir():
        path.unlink()
    cameras = orbit_cameras(rng, distance=2.0)  # IMavatar's world: 4x FLAME
    truth = [random_params(rng, num_shape=100, num_expression=50) for _ in IDS]
    truth = [p._replace(translation=np.zeros(3)) for p in truth]
    intrinsics = [-10.0 / WIDTH, 10.0 / HEIGHT, 4.0 / WIDTH, 3.0 / HEIGHT]
    frames = []
    for frame_id, p, camera in zip(IDS, truth, cameras, strict=True):
        w2c_cv = np.c_[camera.orientation, -camera.orientation @ camera.position]
        pose = np.concatenate([p.global_pose, p.neck_pose, p.jaw_pose, p.eye_pose])
        frames.append(
            {
                "file_path": f"./image/{frame_id}",
                "world_mat": (F @ w2c_cv).tolist(),  # OpenGL-like camera, looking along -z
                "expression": p.expression.tolist(),
                "pose": pose.tolist(),
                "bbox": [-1, -1, 1, 1],
            }
        )
    flame_params = {"shape_params": truth[0].shape.tolist(), "intrinsics": intrinsics}
    (tmp_path / "flame_params.json").write_text(json.dumps({**flame_params, "frames": frames}))
    truth = [p._replace(shape=truth[0].shape) for p in truth]

    assert import_flame(root, "imavatar", tmp_path / "flame_params.json") == 0
    assert_params(root, truth, fields=("shape", "expression", "global_pose", "jaw_pose"))
    assert_to_world(root, scaling(4.0))
    # IMavatar's projection of its 4x FLAME vertices: u = (-fx) x / z + cx, v = fy y / z + cy
    # in its camera (z < 0); the capture's cameras and vertices give the same pixels.
    model = flame.load_model(root / "flame_model.npz")
    capture = load_capture(root)
    fx, fy, cx, cy = np.array(intrinsics) * [WIDTH, HEIGHT, WIDTH, HEIGHT]
    cut = [p._replace(shape=p.shape[:2], expression=p.expression[:4]) for p in truth]
    for frame, frame_id, vertices in zip(
        frames, IDS, world_vertices(model, cut, scaling(4.0)), strict=True
    ):
        local = (
            vertices @ np.array(frame["world_mat"])[:, :3].T + np.array(frame["world_mat"])[:, 3]
        )
        expected = np.stack(
            [fx * local[:, 0] / local[:, 2] + cx, fy * local[:, 1] / local[:, 2] + cy], -1
        )
        projected = capture.cameras[frame_id].project(capture.vertices(frame_id))
        np.testing.assert_allclose(projected, expected, atol=1e-4)
