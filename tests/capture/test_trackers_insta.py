# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`import-flame --from insta`: an INSTA folder written from synthetic truth."""

import json

import numpy as np
from capture_util import write_capture
from tracker_util import (
    HEIGHT,
    IDS,
    WIDTH,
    assert_to_world,
    c2w,
    import_flame,
    inverse,
    orbit_cameras,
    random_similarity,
    read_flame,
    write_cameras,
)

from flamenerf.capture.trackers.insta import read_insta
from flamenerf.capture.trackers.similarity import transform_camera


def test_insta_expressions_and_opencv_cameras(tmp_path):
    rng = np.random.default_rng(8)
    root = write_capture(tmp_path / "cap")
    cameras = orbit_cameras(rng)
    write_cameras(root, cameras)
    truth_similarity = random_similarity(rng)
    tracker_cameras = [transform_camera(c, inverse(truth_similarity)) for c in cameras]
    folder = tmp_path / "insta"
    frames = []
    expressions = [rng.normal(size=100) for _ in IDS]
    for frame_id, camera, expression in zip(IDS, tracker_cameras, expressions, strict=True):
        (folder / "flame" / "exp").mkdir(parents=True, exist_ok=True)
        (folder / "flame" / "exp" / f"{frame_id}.txt").write_text(
            " ".join(str(float(x)) for x in expression)
        )
        frames.append(
            {
                "transform_matrix": c2w(camera, opengl=False).tolist(),
                "file_path": f"images/{frame_id}.png",
                "exp_path": f"flame/exp/{frame_id}.txt",
                "mesh_path": f"meshes/{frame_id}.obj",
            }
        )
    intrinsics = dict(fl_x=10.0, fl_y=10.0, cx=4.0, cy=3.0, w=WIDTH, h=HEIGHT)
    (folder / "transforms.json").write_text(json.dumps({**intrinsics, "frames": frames}))
    identity = rng.normal(size=300)
    np.save(tmp_path / "identity.npy", identity)

    # The tracker's camera projects a point like INSTA's OpenCV world-to-camera.
    tracked = read_insta(folder)
    points = rng.normal(scale=0.05, size=(3, 3))
    w2c = np.linalg.inv(c2w(tracker_cameras[0], opengl=False))
    local = points @ w2c[:3, :3].T + w2c[:3, 3]
    expected = local[:, :2] / local[:, 2:] * 10.0 + [4.0, 3.0]
    np.testing.assert_allclose(tracked.frames[0].camera.project(points), expected, atol=1e-9)

    assert import_flame(root, "insta", folder, "--identity", str(tmp_path / "identity.npy")) == 0
    for frame_id, expression in zip(IDS, expressions, strict=True):
        written = read_flame(root, frame_id)
        assert written.keys() == {"shape", "expression"}
        np.testing.assert_allclose(written["expression"], expression[:4])
        np.testing.assert_allclose(written["shape"], identity[:2])
    assert_to_world(root, truth_similarity)
