# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`import-flame`: tracker outputs written from synthetic truth, imported into tiny captures."""

import argparse
import io
import json
import os
import pickle
import zipfile

import jax
import numpy as np
import pytest
from capture_util import tree_digest, write_capture
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from flamenerf.capture import __main__ as capture_main
from flamenerf.capture import trackers
from flamenerf.capture.io import StepError
from flamenerf.datasets.capture import load_capture
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera, look_at

IDS = ["t00", "t01", "t02", "v00"]  # write_capture's frames (3 train, 1 validation)
WIDTH, HEIGHT = 8, 6  # write_capture's image size
F = np.diag([1.0, -1.0, -1.0])  # OpenGL <-> OpenCV camera axes


# ------------------------------------------------------------------------------- helpers


def import_flame(capture, tracker, path, *extra):
    """Runs the step's `run` on parsed arguments, so StepError propagates to the test."""
    parser = argparse.ArgumentParser()
    trackers.add_arguments(parser)
    return trackers.run(parser.parse_args([str(capture), "--from", tracker, str(path), *extra]))


def orbit_cameras(rng, count=None, distance=0.5):
    """Capture cameras (one per frame of IDS unless `count`) looking at the head, 8x6 pixels."""
    cameras = []
    for _ in range(count or len(IDS)):
        yaw, pitch = rng.uniform(-0.7, 0.7), rng.uniform(-0.3, 0.3)
        direction = [np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)]
        position = np.array(direction) * distance * rng.uniform(0.9, 1.1)
        cameras.append(
            look_at(
                position,
                rng.normal(scale=0.01, size=3),
                [0.0, 1.0, 0.0],
                focal_length=10.0,
                image_size=(WIDTH, HEIGHT),
            )
        )
    return cameras


def write_cameras(root, cameras):
    for frame_id, camera in zip(IDS, cameras, strict=True):
        camera.to_json(root / "camera" / f"{frame_id}.json")


def random_similarity(rng):
    return trackers.Similarity(
        float(rng.uniform(0.5, 3.0)),
        Rotation.random(random_state=rng).as_matrix(),
        rng.normal(size=3),
    )


def inverse(similarity):
    rotation = similarity.rotation.T
    return trackers.Similarity(
        1 / similarity.scale, rotation, -rotation @ similarity.translation / similarity.scale
    )


def random_params(rng, num_shape=2, num_expression=4):
    return flame.FlameParams(
        shape=rng.normal(size=num_shape),
        expression=rng.normal(size=num_expression),
        global_pose=rng.normal(scale=0.2, size=3),
        neck_pose=rng.normal(scale=0.1, size=3),
        jaw_pose=rng.normal(scale=0.1, size=3),
        eye_pose=rng.normal(scale=0.1, size=6),
        translation=rng.normal(scale=0.02, size=3),
    )


def read_flame(root, frame_id):
    return json.loads((root / "flame" / f"{frame_id}.json").read_text())


def assert_params(root, truth, num_shape=2, num_expression=4, fields=None):
    """flame/ID.json equals the truth, cut to the model's shape and expression counts."""
    for frame_id, params in zip(IDS, truth, strict=True):
        written = read_flame(root, frame_id)
        for name in fields or flame.FlameParams._fields:
            expected = getattr(params, name)
            if name == "shape":
                expected = expected[:num_shape]
            if name == "expression":
                expected = expected[:num_expression]
            np.testing.assert_allclose(written[name], expected, atol=1e-9, err_msg=name)


def assert_to_world(root, similarity):
    to_world = json.loads((root / "scene.json").read_text())["flame"]["to_world"]
    np.testing.assert_allclose(to_world["scale"], similarity.scale, rtol=1e-9)
    np.testing.assert_allclose(to_world["rotation"], similarity.rotation, atol=1e-9)
    np.testing.assert_allclose(to_world["translation"], similarity.translation, atol=1e-9)


def posed(model, params):
    """FLAME output of the parameter sets, batched (the compilation is shared with the loader)."""
    return jax.jit(flame.forward)(model, flame.stack_params(params, model))


def world_vertices(model, params, to_world):
    """(N, V, 3) posed FLAME vertices of each parameter set, placed by `to_world`."""
    return to_world.apply(np.asarray(posed(model, params).vertices, np.float64))


def assert_capture_vertices(root, expected_world):
    """The loader's normalised vertices of every frame equal the expected world vertices."""
    capture = load_capture(root)
    for frame_id, expected in zip(IDS, expected_world, strict=True):
        np.testing.assert_allclose(
            capture.vertices(frame_id), capture.scene.normalize(expected), atol=2e-5
        )


def unposed_roots(model, params):
    """(N, 3) root joints of the shaped, expressed meshes (the pivot of the global rotation)."""
    bare = [flame.FlameParams(shape=p.shape, expression=p.expression) for p in params]
    return np.asarray(posed(model, bare).joints[:, 0], np.float64)


def still_head_truth(rng, model, to_world, neck_and_eyes=True):
    """Per-frame parameters whose root joint stays at one point; shape shared."""
    shape = rng.normal(size=2)
    centre = rng.normal(scale=0.02, size=3)
    global_pose = rng.normal(scale=0.2, size=3)
    truth = [random_params(rng)._replace(shape=shape, global_pose=global_pose) for _ in IDS]
    if not neck_and_eyes:
        truth = [p._replace(neck_pose=np.zeros(3), eye_pose=np.zeros(6)) for p in truth]
    roots = unposed_roots(model, truth)
    return [p._replace(translation=centre - r) for p, r in zip(truth, roots, strict=True)]


def head_in_cameras(model, truth, to_world, cameras):
    """Per frame (O, q): head orientation and root position in OpenCV camera axes, FLAME units."""
    heads = []
    for p, camera, root in zip(truth, cameras, unposed_roots(model, truth), strict=True):
        root = to_world.apply(root + p.translation)
        rotation = to_world.rotation @ Rotation.from_rotvec(p.global_pose).as_matrix()
        heads.append(
            (
                camera.orientation @ rotation,
                camera.orientation @ (root - camera.position) / to_world.scale,
            )
        )
    return heads


def c2w(camera, opengl):
    """(4, 4) camera-to-world of an OpenCV camera, in OpenGL camera axes if `opengl`."""
    matrix = np.eye(4)
    matrix[:3, :3] = camera.orientation.T @ (F if opengl else np.eye(3))
    matrix[:3, 3] = camera.position
    return matrix


def save_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


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


# ------------------------------------------------------------------------------- Umeyama


def test_umeyama_recovers_a_similarity_exactly():
    rng = np.random.default_rng(0)
    truth = random_similarity(rng)
    source = rng.normal(size=(6, 3))
    found = trackers.umeyama(source, truth.apply(source))
    np.testing.assert_allclose(found.scale, truth.scale, rtol=1e-12)
    np.testing.assert_allclose(found.rotation, truth.rotation, atol=1e-12)
    np.testing.assert_allclose(found.translation, truth.translation, atol=1e-12)


def test_umeyama_is_the_least_squares_optimum_with_noise():
    rng = np.random.default_rng(1)
    truth = random_similarity(rng)
    source = rng.normal(size=(8, 3))
    target = truth.apply(source) + rng.normal(scale=0.05, size=(8, 3))
    found = trackers.umeyama(source, target)
    # The rotation is the one align_vectors finds between the centred sets.
    rotation, _ = Rotation.align_vectors(target - target.mean(0), source - source.mean(0))
    np.testing.assert_allclose(found.rotation, rotation.as_matrix(), atol=1e-9)

    # A general least-squares solver over (rotation vector, log scale, translation) agrees.
    def residuals(x):
        similarity = trackers.Similarity(
            np.exp(x[3]), Rotation.from_rotvec(x[:3]).as_matrix(), x[4:]
        )
        return (similarity.apply(source) - target).ravel()

    start = np.concatenate(
        [Rotation.from_matrix(truth.rotation).as_rotvec() + 0.1, [np.log(truth.scale) + 0.1]]
    )
    brute = least_squares(residuals, np.concatenate([start, truth.translation + 0.1]), xtol=1e-14)
    np.testing.assert_allclose(found.scale, np.exp(brute.x[3]), rtol=1e-6)
    np.testing.assert_allclose(found.translation, brute.x[4:], atol=1e-6)
    umeyama_cost = np.sum((found.apply(source) - target) ** 2)
    assert umeyama_cost <= 2 * brute.cost + 1e-12  # least_squares' cost is half the sum


def test_umeyama_refuses_collinear_centres():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 0.5])
    with pytest.raises(StepError, match="line"):
        trackers.umeyama(line, line)


# ------------------------------------------------------------------------------- 6-D rotations


def pytorch3d_rotation_6d_to_matrix(d6):
    """PyTorch3D's definition, one vector at a time: Gram-Schmidt, b1, b2, b3 stacked on dim -2."""
    a1, a2 = np.asarray(d6[:3], float), np.asarray(d6[3:], float)
    b1 = a1 / np.sqrt(a1 @ a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 = b2 / np.sqrt(b2 @ b2)
    b3 = np.array(
        [
            b1[1] * b2[2] - b1[2] * b2[1],
            b1[2] * b2[0] - b1[0] * b2[2],
            b1[0] * b2[1] - b1[1] * b2[0],
        ]
    )
    matrix = np.empty((3, 3))
    for row, vector in enumerate((b1, b2, b3)):
        matrix[row, :] = vector
    return matrix


def test_rotation_6d_matches_pytorch3d():
    rng = np.random.default_rng(2)
    d6 = rng.normal(size=(5, 6))
    expected = np.stack([pytorch3d_rotation_6d_to_matrix(v) for v in d6])
    np.testing.assert_allclose(trackers.rotation_6d_to_matrix(d6), expected, atol=1e-12)
    # PyTorch3D's matrix_to_rotation_6d keeps the first two rows: the inverse of the above.
    rotations = Rotation.random(4, random_state=rng).as_matrix()
    np.testing.assert_allclose(
        trackers.rotation_6d_to_matrix(rotations[:, :2].reshape(4, 6)), rotations, atol=1e-12
    )


# ------------------------------------------------------------------------------- VHAP


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
    converted = trackers.read_vhap(tmp_path).frames[0].camera

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
    tracker_cameras = [trackers.transform_camera(c, inverse(truth_similarity)) for c in cameras]
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
    assert_to_world(root, trackers.scaling(1.0))
    assert load_capture(root).num_train == 3


# ------------------------------------------------------------------------------- metrical-tracker


def write_frame(path, payload, prefix, numpy1_names=False):
    """A torch.save-style zip: PREFIX/data.pkl (pickle protocol 2), version, byteorder."""
    data = pickle.dumps(payload, protocol=2)
    if numpy1_names:  # what files written with numpy 1.x name
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{prefix}/data.pkl", data)
        archive.writestr(f"{prefix}/version", "3\n")
        archive.writestr(f"{prefix}/byteorder", "little")


def to_6d(rotvec, rng):
    """PyTorch3D's matrix_to_rotation_6d (first two rows), then a non-orthonormal equivalent."""
    rows = Rotation.from_rotvec(rotvec).as_matrix()[:2]
    return np.concatenate([1.3 * rows[0], 0.7 * rows[1] + rng.normal() * rows[0]])


def test_metrical_frames_into_a_capture_without_cameras(tmp_path):
    rng = np.random.default_rng(7)
    root = write_capture(tmp_path / "cap")
    for path in (root / "camera").iterdir():
        path.unlink()
    (root / "scene.json").unlink()  # the importer writes the scene's defaults too
    tracker_cameras = orbit_cameras(rng)
    truth = [
        random_params(rng)
        ._replace(global_pose=np.zeros(3), neck_pose=np.zeros(3))
        ._replace(translation=np.zeros(3))
        for _ in IDS
    ]
    for k, (frame_id, p, camera) in enumerate(zip(IDS, truth, tracker_cameras, strict=True)):
        k_matrix = np.diag([2 * camera.focal_length, 2 * camera.focal_length, 1.0])
        k_matrix[:2, 2] = 2 * camera.principal_point  # the tracker ran at twice the resolution
        payload = {
            "flame": {
                "exp": p.expression[None],
                "shape": p.shape[None],
                "tex": np.zeros((1, 50), np.float32),
                "sh": np.zeros((1, 9, 3), np.float32),
                "eyes": np.concatenate([to_6d(p.eye_pose[:3], rng), to_6d(p.eye_pose[3:], rng)])[
                    None
                ],
                "eyelids": np.array([[0.1, 0.0]], np.float32),
                "jaw": to_6d(p.jaw_pose, rng)[None],
            },
            "camera": {"R": np.zeros((1, 6)), "t": np.zeros((1, 3)), "fl": np.ones((1, 1))},
            "opencv": {
                "R": camera.orientation[None],
                "t": (-camera.orientation @ camera.position)[None],
                "K": k_matrix[None],
            },
            "img_size": np.array([2 * HEIGHT, 2 * WIDTH]),
            "frame_id": frame_id,
            "global_step": 3,
        }
        prefix = "archive" if k % 2 else frame_id
        write_frame(
            tmp_path / "metrical" / "checkpoint" / f"{frame_id}.frame", payload, prefix, k == 1
        )
    before = tree_digest(tmp_path / "metrical")

    args = ("--flame_model", str(root / "flame_model.npz"))
    assert import_flame(root, "metrical", tmp_path / "metrical", *args) == 0
    assert tree_digest(tmp_path / "metrical") == before
    assert_params(root, truth, fields=("shape", "expression", "jaw_pose", "eye_pose"))
    assert read_flame(root, "t00").keys() == {"shape", "expression", "jaw_pose", "eye_pose"}
    assert_to_world(root, trackers.scaling(1.0))
    # The written cameras project like metrical-tracker's own K (R X + t), at the 1x size.
    points = rng.normal(scale=0.05, size=(4, 3))
    for frame_id, camera in zip(IDS, tracker_cameras, strict=True):
        written = Camera.from_json(root / "camera" / f"{frame_id}.json")
        k_matrix = np.array([[10.0, 0, 4.0], [0, 10.0, 3.0], [0, 0, 1]])
        local = (points - camera.position) @ camera.orientation.T
        expected = (local @ k_matrix.T)[:, :2] / local[:, 2:]
        np.testing.assert_allclose(written.project(points), expected, atol=1e-9)
    scene = json.loads((root / "scene.json").read_text())
    assert scene["flame"]["model"] == "flame_model.npz" and scene["scale"] == 3.5
    model = flame.load_model(root / "flame_model.npz")
    assert_capture_vertices(root, world_vertices(model, truth, trackers.scaling(1.0)))
    # Resumable: a second run finds its own cameras in the capture and writes the same files.
    written = tree_digest(root)
    assert import_flame(root, "metrical", tmp_path / "metrical") == 0
    assert tree_digest(root) == written


def test_hostile_pickles_are_refused_without_running(tmp_path):
    sentinel = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    write_frame(tmp_path / "bad" / "00000.frame", {"flame": Hostile()}, "archive")
    with pytest.raises(StepError, match=r"00000.frame: refused to load '(posix|nt).system'"):
        trackers.read_metrical(tmp_path / "bad")
    assert not sentinel.exists()

    class Storage:
        pass

    class TorchLike(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "FloatStorage", "0", "cpu", 4) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    TorchLike(buffer, protocol=2).dump({"flame": Storage()})
    with zipfile.ZipFile(tmp_path / "tensor.frame", "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
    with pytest.raises(StepError, match="torch tensors"):
        trackers.read_torch_zip(tmp_path / "tensor.frame")
    (tmp_path / "plain.frame").write_bytes(pickle.dumps({}, protocol=2))
    with pytest.raises(StepError, match="plain.frame: not a torch.save zip"):
        trackers.read_torch_zip(tmp_path / "plain.frame")


def test_pickle_bombs_in_frames_are_refused(tmp_path):
    u32 = lambda n: n.to_bytes(4, "little")
    laughs = b"]r" + u32(0)  # l_k = [l_k-1, l_k-1]: 2**30 leaves in a few hundred bytes
    for k in range(1, 31):
        laughs += b"0](j" + u32(k - 1) + b"j" + u32(k - 1) + b"er" + u32(k)
    bombs = {
        "memo": (b"\x80\x02j" + u32(2**31) + b".", "refused before unpickling: memo index"),
        "length": (b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b".", "expected 1099"),
        "marks": (b"\x80\x02" + b"(" * 100_000 + b".", "more than 64 nested MARKs"),
        "laughs": (b"\x80\x02}(X\x05\x00\x00\x00flame" + laughs + b"u.", "more than 100000"),
    }
    for name, (data, message) in bombs.items():
        with zipfile.ZipFile(tmp_path / f"{name}.frame", "w") as archive:
            archive.writestr("archive/data.pkl", data)
        with pytest.raises(StepError, match=f"{name}.frame: .*{message}"):
            trackers.read_torch_zip(tmp_path / f"{name}.frame")


# ------------------------------------------------------------------------------- INSTA


def test_insta_expressions_and_opencv_cameras(tmp_path):
    rng = np.random.default_rng(8)
    root = write_capture(tmp_path / "cap")
    cameras = orbit_cameras(rng)
    write_cameras(root, cameras)
    truth_similarity = random_similarity(rng)
    tracker_cameras = [trackers.transform_camera(c, inverse(truth_similarity)) for c in cameras]
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
    tracked = trackers.read_insta(folder)
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


# ------------------------------------------------------------------------------- IMavatar


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
    assert_to_world(root, trackers.scaling(4.0))
    # IMavatar's projection of its 4x FLAME vertices: u = (-fx) x / z + cx, v = fy y / z + cy
    # in its camera (z < 0); the capture's cameras and vertices give the same pixels.
    model = flame.load_model(root / "flame_model.npz")
    capture = load_capture(root)
    fx, fy, cx, cy = np.array(intrinsics) * [WIDTH, HEIGHT, WIDTH, HEIGHT]
    cut = [p._replace(shape=p.shape[:2], expression=p.expression[:4]) for p in truth]
    for frame, frame_id, vertices in zip(
        frames, IDS, world_vertices(model, cut, trackers.scaling(4.0)), strict=True
    ):
        local = (
            vertices @ np.array(frame["world_mat"])[:, :3].T + np.array(frame["world_mat"])[:, 3]
        )
        expected = np.stack(
            [fx * local[:, 0] / local[:, 2] + cx, fy * local[:, 1] / local[:, 2] + cy], -1
        )
        projected = capture.cameras[frame_id].project(capture.vertices(frame_id))
        np.testing.assert_allclose(projected, expected, atol=1e-4)


# ------------------------------------------------------------------------------- DECA


def test_deca_weak_perspective_is_placed_in_the_capture_cameras(tmp_path):
    rng = np.random.default_rng(10)
    root = write_capture(tmp_path / "cap")
    cameras = orbit_cameras(rng)
    write_cameras(root, cameras)
    model = flame.load_model(root / "flame_model.npz")
    truth_to_world = random_similarity(rng)
    truth = still_head_truth(rng, model, truth_to_world, neck_and_eyes=False)
    folder = tmp_path / "deca"
    folder.mkdir()
    half = 112.0
    heads = head_in_cameras(model, truth, truth_to_world, cameras)
    roots = unposed_roots(model, truth)
    for k, (frame_id, p, camera, (orientation, position), root_joint) in enumerate(
        zip(IDS, truth, cameras, heads, roots, strict=True)
    ):
        # A crop similarity image -> crop (scale, rotation, offset), as DECA's TestData's tform.
        angle, crop_scale = rng.uniform(-0.3, 0.3), rng.uniform(5.0, 20.0)
        tform = np.eye(3)
        tform[:2, :2] = crop_scale * np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        )
        tform[:2, 2] = rng.uniform(-50, 50, size=2)
        # Weak perspective matching the pinhole camera at the root joint's depth.
        pixels_per_metre = camera.focal_length / position[2]
        s = pixels_per_metre * crop_scale / half
        crop = tform @ np.append(
            camera.project(camera.position + camera.orientation.T @ position), 1.0
        )
        tx = (crop[0] / half - 1) / s - root_joint[0]
        ty = (1 - crop[1] / half) / s - root_joint[1]
        spin = Rotation.from_rotvec([0.0, 0.0, -angle]).as_matrix()  # crop -> image turns by -angle
        deca_rotation = F @ spin.T @ orientation
        codes = {
            "shape": p.shape[None],
            "exp": p.expression[None],
            "pose": np.concatenate([Rotation.from_matrix(deca_rotation).as_rotvec(), p.jaw_pose])[
                None
            ],
            "cam": np.array([[s, tx, ty]]),
            "tform": tform,
        }
        if k == 0:  # EMOCA's save_codes layout: one .npy per code in a folder per frame
            (folder / frame_id).mkdir()
            for key, value in codes.items():
                np.save(folder / frame_id / f"{key}.npy", value)
        else:
            np.savez(folder / f"{frame_id}.npz", **codes)

    assert import_flame(root, "deca", folder) == 0
    assert_params(root, truth, fields=("shape", "expression", "jaw_pose"))
    assert_capture_vertices(root, world_vertices(model, truth, truth_to_world))

    bare = write_capture(tmp_path / "bare")
    for path in (bare / "camera").iterdir():
        path.unlink()
    with pytest.raises(StepError, match="run the cameras step first"):
        import_flame(bare, "deca", folder)


# ------------------------------------------------------------------------------- matching, errors


def test_frame_matching_by_name_and_number():
    frames = [
        trackers.TrackerFrame(("00007_00", "00007"), flame.FlameParams()),
        trackers.TrackerFrame(("8",), flame.FlameParams()),
        trackers.TrackerFrame(("intro",), flame.FlameParams()),
    ]
    matched, unused = trackers.match_frames(["7", "000008", "intro", "9"], frames)
    assert matched == {"7": frames[0], "000008": frames[1], "intro": frames[2]} and unused == 0
    matched, unused = trackers.match_frames(["8", "9"], frames, offset=1)
    assert matched == {"8": frames[0], "9": frames[1]} and unused == 1
    twins = [trackers.TrackerFrame(("3",), flame.FlameParams())] * 2
    with pytest.raises(StepError, match="'03' matches several tracker frames"):
        trackers.match_frames(["03"], twins)


def test_bad_tracker_files_name_the_file_and_field(tmp_path):
    root = write_capture(tmp_path / "cap")
    arrays = dict(
        rotation=np.zeros((4, 3)),
        translation=np.zeros((4, 3)),
        neck_pose=np.zeros((4, 3)),
        jaw_pose=np.zeros((4, 3)),
        eyes_pose=np.zeros((4, 6)),
        shape=np.zeros(5),
        expr=np.zeros((4, 6)),
        timestep_id=np.array(IDS),
    )
    nan = {**arrays, "expr": np.full((4, 6), np.nan)}
    save_npz(tmp_path / "nan.npz", **nan)
    with pytest.raises(StepError, match=r"nan.npz: field 'expr': expected finite numbers"):
        import_flame(root, "vhap", tmp_path / "nan.npz")
    save_npz(tmp_path / "shape.npz", **{**arrays, "eyes_pose": np.zeros((4, 3))})
    with pytest.raises(StepError, match=r"shape.npz: field 'eyes_pose': expected shape \(N, 6\)"):
        import_flame(root, "vhap", tmp_path / "shape.npz")
    with pytest.raises(StepError, match="missing.npz: tracker output not found"):
        import_flame(root, "vhap", tmp_path / "missing.npz")
    (tmp_path / "flame_params.json").write_text(
        json.dumps({"shape_params": [0.0], "intrinsics": [1, 1, 0.5, 0.5], "frames": []})
    )
    with pytest.raises(StepError, match="negative first value"):
        import_flame(root, "imavatar", tmp_path / "flame_params.json")
