# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`import-flame --from metrical`: torch.save frames from synthetic truth; hostile pickles."""

import io
import json
import os
import pickle
import zipfile

import bomb_util
import numpy as np
import pytest
from capture_util import tree_digest, write_capture
from scipy.spatial.transform import Rotation
from tracker_util import (
    HEIGHT,
    IDS,
    WIDTH,
    assert_capture_vertices,
    assert_params,
    assert_to_world,
    import_flame,
    orbit_cameras,
    random_params,
    read_flame,
    world_vertices,
)

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.metrical import read_metrical, read_torch_zip
from flamenerf.capture.trackers.similarity import scaling
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera


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
    assert_to_world(root, scaling(1.0))
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
    assert_capture_vertices(root, world_vertices(model, truth, scaling(1.0)))
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
        read_metrical(tmp_path / "bad")
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
        read_torch_zip(tmp_path / "tensor.frame")
    (tmp_path / "plain.frame").write_bytes(pickle.dumps({}, protocol=2))
    with pytest.raises(StepError, match="plain.frame: not a torch.save zip"):
        read_torch_zip(tmp_path / "plain.frame")


def test_pickle_bombs_in_frames_are_refused(tmp_path):
    bombs = bomb_util.bombs(b"flame")
    bombs["memo"] = (bombs["memo"][0], "refused before unpickling: memo index")
    bombs["length"] = (b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b".", "expected 1099")
    for name, (data, message) in bombs.items():
        path = bomb_util.write_zip(tmp_path / f"{name}.frame", data)
        with pytest.raises(StepError, match=f"{name}.frame: .*{message}"):
            read_torch_zip(path)
