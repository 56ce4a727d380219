# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`import-flame --from vhap`: VHAP exports and npz files written from synthetic truth."""

import json

import numpy as np
import pytest
from capture_util import tree_digest, write_capture
from scipy.spatial.transform import Rotation
from tracker_util import (
    HEIGHT,
    IDS,
    WIDTH,
    F,
    assert_capture_vertices,
    assert_params,
    assert_to_world,
    c2w,
    head_in_cameras,
    import_flame,
    inverse,
    orbit_cameras,
    random_params,
    random_similarity,
    save_npz,
    still_head_truth,
    unposed_roots,
    world_vertices,
    write_cameras,
)

from flamenerf.capture import __main__ as capture_main
from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.similarity import scaling, transform_camera
from flamenerf.capture.trackers.vhap import read_vhap
from flamenerf.datasets.capture import load_capture
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera


def write_vhap_export(folder, truth, cameras, expression_pad=2, shape_pad=3):
    """A VHAP NeRF export: transforms.json (OpenGL, cy from the bottom) + per-frame npz."""
    frames = []
    for k, (frame_id, p, camera) in enumerate(zip(IDS, truth, cameras, strict=True)):
        npz = f"flame_param/{k:05d}.npz"
        save_npz(
            folder / npz,
            translation=p.translation[None],
            rotation=p.global_pose[None],
            neck_pose=p.neck_pose[None],
            jaw_pose=p.jaw_pose[None],
            eyes_pose=p.eye_pose[None],
            shape=np.concatenate([p.shape, np.zeros(shape_pad)]),
            expr=np.concatenate([p.expression, np.full(expression_pad, 0.5)])[None],
        )
        fx = camera.focal_length
        frames.append(
            {
                "timestep_index": k,
                "timestep_id": frame_id,
                "camera_index": 0,
                "fl_x": fx,
                "fl_y": fx * camera.pixel_aspect_ratio,
                "cx": camera.principal_point[0],
                "cy": camera.height - camera.principal_point[1],
                "w": camera.width,
                "h": camera.height,
                "transform_matrix": c2w(camera, opengl=True).tolist(),
                "file_path": f"images/{k:05d}_00.png",
                "flame_param_path": npz,
            }
        )
    (folder / "transforms.json").write_text(json.dumps({"frames": frames}))


def test_vhap_opengl_camera_projects_like_vhaps_renderer(tmp_path):
    """The converted camera projects a point where VHAP's nvdiffrast projection puts it."""
    rng = np.random.default_rng(3)
    camera = orbit_cameras(rng, 1)[0]
    c2w_gl = c2w(camera, opengl=True)
    fx, fy, cx, cy_gl, w, h = 10.0, 11.0, 3.7, 2.2, WIDTH, HEIGHT  # cy from the bottom
    frame = {
        "transform_matrix": c2w_gl.tolist(),
        **dict(fl_x=fx, fl_y=fy, cx=cx, cy=cy_gl, w=w, h=h),
        "file_path": "images/00000_00.png",
        "flame_param_path": "p.npz",
    }
    (tmp_path / "transforms.json").write_text(json.dumps({"frames": [frame]}))
    p = random_params(rng)
    save_npz(
        tmp_path / "p.npz",
        translation=p.translation[None],
        rotation=p.global_pose[None],
        neck_pose=p.neck_pose[None],
        jaw_pose=p.jaw_pose[None],
        eyes_pose=p.eye_pose[None],
        shape=p.shape,
        expr=p.expression[None],
    )
    converted = read_vhap(tmp_path).frames[0].camera

    # VHAP's NVDiffRenderer.projection_from_intrinsics, then the vertical flip of its output.
    near, far = 0.1, 10.0
    projection = np.array(
        [
            [2 * fx / w, 0.0, (w - 2 * cx) / w, 0.0],
            [0.0, 2 * fy / h, (h - 2 * cy_gl) / h, 0.0],
            [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )
    points = rng.normal(scale=0.05, size=(5, 3))
    clip = (projection @ np.linalg.inv(c2w_gl) @ np.c_[points, np.ones(5)].T).T
    ndc = clip[:, :2] / clip[:, 3:]
    expected = np.stack([(ndc[:, 0] + 1) * w / 2, h - (ndc[:, 1] + 1) * h / 2], axis=-1)
    np.testing.assert_allclose(converted.project(points), expected, atol=1e-9)


def test_vhap_export_through_the_cli_with_a_similarity(tmp_path, capsys):
    rng = np.random.default_rng(4)
    root = write_capture(tmp_path / "cap")
    cameras = orbit_cameras(rng)
    write_cameras(root, cameras)
    truth_similarity = random_similarity(rng)  # tracker world -> capture world
    tracker_cameras = [transform_camera(c, inverse(truth_similarity)) for c in cameras]
    truth = [random_params(rng) for _ in IDS]
    export = tmp_path / "vhap_export"
    write_vhap_export(export, truth, tracker_cameras)
    before = tree_digest(export)

    argv = ["import-flame", str(root), "--from", "vhap", str(export)]
    assert capture_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "similarity (Umeyama on 4 camera centres)" in out

    assert tree_digest(export) == before  # the tracker's folder is only read
    assert_params(root, truth)  # expression 6 -> 4 (the model's), shape 5 -> 2
    assert_to_world(root, truth_similarity)
    scene = json.loads((root / "scene.json").read_text())
    assert scene["flame"]["num_expression"] == 4
    model = flame.load_model(root / "flame_model.npz")
    assert_capture_vertices(root, world_vertices(model, truth, truth_similarity))


def test_vhap_monocular_npz_is_placed_per_frame(tmp_path):
    """A still camera (VHAP monocular): the camera-relative head poses are kept."""
    rng = np.random.default_rng(5)
    root = write_capture(tmp_path / "cap")
    cameras = orbit_cameras(rng)
    write_cameras(root, cameras)
    model = flame.load_model(root / "flame_model.npz")
    truth_to_world = random_similarity(rng)
    truth = still_head_truth(rng, model, truth_to_world)
    # VHAP's fixed camera: OpenCV orientation diag(1, -1, -1), centre (0, 0, 1).
    tracked = []
    for p, (orientation, position), root_joint in zip(
        truth,
        head_in_cameras(model, truth, truth_to_world, cameras),
        unposed_roots(model, truth),
        strict=True,
    ):
        tracked.append(
            p._replace(
                global_pose=Rotation.from_matrix(F @ orientation).as_rotvec(),
                translation=F @ position + [0.0, 0.0, 1.0] - root_joint,
            )
        )
    save_npz(
        tmp_path / "vhap" / "tracked_flame_params_30.npz",
        rotation=np.stack([p.global_pose for p in tracked]),
        translation=np.stack([p.translation for p in tracked]),
        neck_pose=np.stack([p.neck_pose for p in tracked]),
        jaw_pose=np.stack([p.jaw_pose for p in tracked]),
        eyes_pose=np.stack([p.eye_pose for p in tracked]),
        shape=tracked[0].shape,
        expr=np.stack([p.expression for p in tracked]),
        timestep_id=np.array(IDS),
        focal_length=np.array([10.0 / WIDTH]),
        image_size=np.array([HEIGHT, WIDTH]),
    )
    save_npz(tmp_path / "vhap" / "tracked_flame_params_10.npz", rotation=np.zeros((1, 4)))

    assert import_flame(root, "vhap", tmp_path / "vhap") == 0
    assert_params(root, truth, fields=("shape", "expression", "neck_pose", "jaw_pose", "eye_pose"))
    assert_capture_vertices(root, world_vertices(model, truth, truth_to_world))


def test_vhap_npz_without_capture_cameras_writes_vhaps_camera(tmp_path):
    rng = np.random.default_rng(6)
    root = write_capture(tmp_path / "cap")
    for path in (root / "camera").iterdir():
        path.unlink()
    truth = [random_params(rng) for _ in IDS[:3]]  # v00 is not tracked
    save_npz(
        tmp_path / "tracked_flame_params.npz",
        rotation=np.stack([p.global_pose for p in truth]),
        translation=np.stack([p.translation for p in truth]),
        neck_pose=np.stack([p.neck_pose for p in truth]),
        jaw_pose=np.stack([p.jaw_pose for p in truth]),
        eyes_pose=np.stack([p.eye_pose for p in truth]),
        shape=truth[0].shape,
        expr=np.stack([p.expression for p in truth]),
        timestep_id=np.array(["0", "1", "2"]),
        focal_length=np.array([1.25]),
        image_size=np.array([HEIGHT, WIDTH]),
    )
    npz = tmp_path / "tracked_flame_params.npz"
    # Names "0".."2" become t00.. only through an offset of ids; here they match nothing.
    with pytest.raises(StepError, match="4 frames have no tracked parameters"):
        import_flame(root, "vhap", npz)
    data = dict(np.load(npz))
    data["timestep_id"] = np.array(IDS[:3])
    save_npz(tmp_path / "renamed.npz", **data)
    with pytest.raises(StepError, match=r"1 frames have no tracked parameters.*--drop_missing"):
        import_flame(root, "vhap", tmp_path / "renamed.npz")

    assert import_flame(root, "vhap", tmp_path / "renamed.npz", "--drop_missing") == 0
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["val_ids"] == [] and dataset["train_ids"] == IDS[:3]
    camera = Camera.from_json(root / "camera" / "t01.json")
    np.testing.assert_allclose(camera.orientation, F)
    np.testing.assert_allclose(camera.position, [0.0, 0.0, 1.0])
    assert camera.focal_length == 10.0 and camera.principal_point.tolist() == [4.0, 3.0]
    assert_to_world(root, scaling(1.0))
    assert load_capture(root).num_train == 3
