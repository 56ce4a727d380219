# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.datasets.synthetic (tiny captures) and flamenerf.textures."""

import json
from pathlib import Path

import numpy as np
import pytest

from flamenerf import flame, rasterize, textures
from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import synthetic, validate

TINY = {"size": 16, "frames": 6, "val": 2, "seed": 0}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    return synthetic.generate(out, **TINY, show_progress=False)


@pytest.fixture(scope="session")
def tiny_capture(tiny) -> capture_lib.Capture:
    return capture_lib.load_capture(tiny)


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _read(path: Path):
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# The capture on disk.


def test_capture_loads_at_every_written_scale(tiny, tiny_capture, capsys):
    assert tiny_capture.num_train == 6 and len(tiny_capture.val_ids) == 2
    assert tiny_capture.image(tiny_capture.train_ids[0]).shape == (16, 16, 3)
    assert tiny_capture.scene.num_expression == 10
    assert len(tiny_capture.flame_params[tiny_capture.train_ids[0]].expression) == 10
    # 16 px: 2x (8 px) is written, 4x (4 px) is not.
    assert (tiny / "rgb" / "2x").is_dir() and (tiny / "mask" / "2x").is_dir()
    assert not (tiny / "rgb" / "4x").exists()
    half = capture_lib.load_capture(tiny, scale=2)
    assert half.image(half.train_ids[0]).shape == (8, 8, 3)
    assert validate.main([str(tiny)]) == 0
    assert validate.main([str(tiny), "--scale", "2"]) == 0
    assert "OK" in capsys.readouterr().out
    assert len(tiny_capture.camera_path("orbit")) == synthetic.ORBIT_FRAMES
    # The capture is self-contained.
    scene = _read(tiny / "scene.json")
    assert scene["flame"]["model"] == "flame_model.npz"
    assert tiny_capture.scene.flame_model == tiny / "flame_model.npz"


def test_scene_bounds_hold_the_geometry(tiny, tiny_capture):
    scene = tiny_capture.scene
    camera = tiny_capture.cameras[tiny_capture.train_ids[0]]
    vertices = tiny_capture.vertices(tiny_capture.train_ids[0])
    # The head lies well inside the unit ball and inside the bbox.
    assert np.linalg.norm(vertices, axis=-1).max() < 0.7
    assert np.all(vertices >= scene.bbox[0]) and np.all(vertices <= scene.bbox[1])
    distances = np.linalg.norm(vertices - camera.position, axis=-1)
    assert scene.near < distances.min() and distances.max() < scene.far
    wall_distance = (synthetic.WALL_Z - synthetic.SCENE_CENTER[2]) * scene.scale
    assert camera.position[2] - wall_distance < scene.far


def test_same_arguments_give_identical_bytes_and_seeds_differ(tiny, tmp_path):
    again = synthetic.generate(tmp_path / "again", **TINY, show_progress=False)
    assert _files(again) == _files(tiny)
    other = synthetic.generate(tmp_path / "other", **{**TINY, "seed": 1}, show_progress=False)
    frame = "0000"
    for name in (f"rgb/1x/{frame}.png", f"flame/{frame}.json", f"camera/{frame}.json"):
        assert (other / name).read_bytes() != (tiny / name).read_bytes(), name


@pytest.mark.parametrize("scale", [1, 2])
def test_masks_are_the_rasterised_flame_silhouette(tiny, scale):
    capture = capture_lib.load_capture(tiny, scale=scale)
    faces = np.asarray(capture.flame_model.faces)
    for frame_id in capture.ids:
        mask = capture.mask(frame_id)
        expected = rasterize.silhouette(
            capture.vertices(frame_id), faces, capture.cameras[frame_id]
        )
        assert mask.any()
        assert np.count_nonzero(mask != expected) <= 2, frame_id


def test_validation_frames_are_held_out(tiny, tiny_capture):
    train, val = tiny_capture.train_ids, tiny_capture.val_ids
    assert not set(train) & set(val)
    train_conditions = np.stack([tiny_capture.condition(i) for i in train])
    train_positions = np.stack([tiny_capture.cameras[i].position for i in train])
    metadata = _read(tiny / "metadata.json")
    for i in val:
        assert np.all(np.abs(train_conditions - tiny_capture.condition(i)).max(axis=1) > 1e-3)
        assert np.all(np.linalg.norm(train_positions - tiny_capture.cameras[i].position, axis=1))
        # The code of the nearest training frame in time (ids are time indices).
        nearest = min(train, key=lambda t, i=i: (abs(int(t) - int(i)), int(t)))
        assert metadata[i]["warp_id"] == metadata[nearest]["warp_id"]
        assert metadata[i]["appearance_id"] == metadata[nearest]["appearance_id"]
    assert [metadata[i]["warp_id"] for i in train] == list(range(len(train)))
    assert sorted(int(i) for i in train + val) == list(range(len(train) + len(val)))


def test_expression_sequence_is_smooth_and_in_range():
    t = np.linspace(0.0, 1.0, 136)
    curves = synthetic.expression_curves(0, t, 10)
    assert curves.min() >= -0.5 and curves.max() <= 1.5
    assert curves[:, synthetic.EYES_CLOSE].max() <= 1.0
    assert curves.std(axis=0).min() > 0.05  # every coefficient moves
    jaw = synthetic.jaw_curve(0, t)
    assert jaw.min() >= 0.0 and jaw.max() <= synthetic.JAW_MAX and jaw.max() > 0.2
    # Smooth: neighbouring frames differ much less than the range.
    assert np.abs(np.diff(curves, axis=0)).max() < 0.5


# --------------------------------------------------------------------------------------------
# Rendering.


def test_expressions_change_only_the_face():
    scene = synthetic.build_scene()
    camera = synthetic.camera_trajectory(0, np.array([0.3]), 32)[0]
    neutral = {"jaw_pose": [0.0, 0.0, 0.0]}
    expressive = {"expression": [1.2, 1.0, 0.0, 0.0, 0.8], "jaw_pose": [0.3, 0.0, 0.0]}
    vertices = scene.pose([neutral, expressive])
    images = [scene.render(camera, v, 4) for v in vertices]
    masks = [scene.silhouette(camera, v) for v in vertices]
    union = masks[0] | masks[1]
    padded = np.pad(union, 1)
    dilated = np.zeros_like(union)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            dilated |= padded[1 + dy : 1 + dy + 32, 1 + dx : 1 + dx + 32]
    changed = np.abs(images[0] - images[1]).max(axis=-1) > 1e-9
    assert not np.any(changed & ~dilated)  # torso and wall do not follow the expression
    assert np.count_nonzero(changed & union) > 10
    assert np.count_nonzero(~dilated) > 500


def test_every_view_is_filled_by_the_scene():
    scene = synthetic.build_scene()
    size = 16
    t = np.linspace(0.0, 1.0, 40)
    cameras = synthetic.camera_trajectory(0, t, size) + synthetic.orbit_cameras(size)
    for camera in cameras:
        fragments = rasterize.rasterize(scene.static_vertices, scene.static_faces, camera)
        assert np.all(fragments.face_index >= 0)


def test_head_motion_is_small_and_nonzero(tmp_path):
    out = synthetic.generate(
        tmp_path / "motion", size=8, frames=3, val=1, head_motion=True, show_progress=False
    )
    poses = [_read(p) for p in sorted((out / "flame").glob("*.json"))]
    rotation = np.array([p["global_pose"] for p in poses])
    translation = np.array([p["translation"] for p in poses])
    assert np.all(np.linalg.norm(rotation, axis=1) > 0)
    assert np.all(np.linalg.norm(translation, axis=1) > 0)
    assert np.linalg.norm(rotation, axis=1).max() <= np.radians(3.0) + 1e-6
    assert np.linalg.norm(translation, axis=1).max() <= 0.005 + 1e-6
    static = synthetic.make_timeline(8, 3, 1, 0, False, 10)
    assert all(p["global_pose"] == [0.0, 0.0, 0.0] for p in static.params)


def test_textures_are_deterministic_noise():
    rng = np.random.default_rng(0)
    points = rng.uniform(-10, 10, (5000, 3))
    a = textures.gradient_noise(points, seed=3)
    assert np.array_equal(a, textures.gradient_noise(points, seed=3))
    assert not np.allclose(a, textures.gradient_noise(points, seed=4))
    assert np.abs(a).max() <= 1.0 and a.std() > 0.1
    assert np.allclose(textures.gradient_noise(np.round(points)), 0.0)  # zero on the lattice
    # Continuity: a tiny step changes little.
    b = textures.gradient_noise(points + 1e-6, seed=3)
    assert np.abs(a - b).max() < 1e-4
    for material in textures.MATERIALS:
        color = material(rng.uniform(-0.1, 0.1, (50, 3)))
        assert color.shape == (50, 3) and np.all(np.isfinite(color))


# --------------------------------------------------------------------------------------------
# The cached default capture.


def test_default_capture_is_cached_and_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAMENERF_CACHE", str(tmp_path / "cache"))
    args = {"size": 8, "frames": 2, "val": 1}
    path = synthetic.default_capture(**args, show_progress=False)
    assert path.parent == tmp_path / "cache" / "captures"
    assert path.name == synthetic.capture_key(**args)
    capture_lib.load_capture(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a cached capture")

    monkeypatch.setattr(synthetic, "generate", fail)
    assert synthetic.default_capture(**args, show_progress=False) == path
    keys = {
        synthetic.capture_key(),
        synthetic.capture_key(seed=1),
        synthetic.capture_key(size=32),
        synthetic.capture_key(head_motion=True),
        synthetic.capture_key(num_expression=5),
        synthetic.capture_key(frames=10, val=2),
    }
    assert len(keys) == 6
    assert synthetic.capture_key() == synthetic.capture_key(**synthetic.DEFAULTS)
    assert synthetic.GENERATOR_VERSION in synthetic.capture_key()


# --------------------------------------------------------------------------------------------
# Command line.


def _run(argv, capsys):
    try:
        code = synthetic.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "4"], "--size"),
        (["--frames", "1"], "--frames"),
        (["--val", "9", "--frames", "3"], "--val"),
        (["--num_expression", "99"], "--num_expression"),
        (["--seed", "-1"], "--seed"),
        (["--size", "big"], "--size"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, extra, message):
    code, output = _run(["--out", str(tmp_path / "x"), *extra], capsys)
    assert code != 0
    lines = output.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "x").exists()


def test_cli_refuses_a_non_empty_folder_and_overwrites(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--out", str(out), "--size", "8", "--frames", "2", "--val", "0", "--quiet"]
    code, output = _run(args, capsys)
    assert code != 0 and len(output.err.strip().splitlines()) == 1
    assert "--overwrite" in output.err
    sheet = tmp_path / "sheet.png"
    code, output = _run([*args, "--overwrite", "--contact_sheet", str(sheet)], capsys)
    assert code == 0, output.err
    assert (out / "keep.txt").read_text() == "mine"
    capture_lib.load_capture(out)
    assert sheet.is_file()


def test_cli_help_documents_every_flag(capsys):
    code, output = _run(["--help"], capsys)
    assert code == 0
    for flag in (
        "--out",
        "--size",
        "--frames",
        "--val",
        "--seed",
        "--head_motion",
        "--num_expression",
        "--contact_sheet",
        "--overwrite",
        "--quiet",
    ):
        assert flag in output.out


def test_flame_params_round_trip(tiny, tiny_capture):
    """What flame/ID.json says is what was rendered: rounded values, exact JSON numbers."""
    frame_id = tiny_capture.train_ids[0]
    raw = _read(tiny / "flame" / f"{frame_id}.json")
    assert set(raw) == set(flame.FlameParams._fields)
    assert len(raw["shape"]) == 20 and len(raw["eye_pose"]) == 6
    timeline = synthetic.make_timeline(**TINY, head_motion=False, num_expression=10)
    assert timeline.params[0] == raw
