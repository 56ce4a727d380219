# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.capture cameras`: SfM on a synthetic video, COLMAP model import, errors."""

import argparse
import json
import re
import shutil

import mediapy
import numpy as np
import pycolmap
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from flamenerf.capture import cameras, frames, io
from flamenerf.capture.io import StepError
from flamenerf.datasets import capture as capture_lib
from flamenerf.geometry.camera import Camera, look_at
from flamenerf.io.media import ffmpeg_path
from flamenerf.synthetic import generator as synthetic

RENDERED, KEPT = 24, 20  # synthetic frames rendered, frames kept by `frames`


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cameras.add_arguments(parser)
    return parser.parse_args(argv)


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, A, t) minimising |target - (s A source + t)|^2 over points (N, 3)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    cov = (target - mu_t).T @ (source - mu_s) / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / ((source - mu_s) ** 2).sum(axis=1).mean()
    return scale, rotation, mu_t - scale * rotation @ mu_s


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation a b^T, degrees."""
    return float(np.degrees(np.arccos(np.clip((np.trace(a @ b.T) - 1.0) / 2.0, -1.0, 1.0))))


@pytest.fixture(scope="module")
def sfm_capture(tmp_path_factory):
    """A 256 px synthetic capture as an mp4 -> `frames` -> `cameras` (SfM): (capture, truth)."""
    root = tmp_path_factory.mktemp("sfm")
    truth = synthetic.generate(
        root / "truth", size=256, frames=RENDERED, val=0, seed=0, show_progress=False
    )
    images = [
        np.asarray(Image.open(truth / "rgb" / "1x" / f"{i:04d}.png")) for i in range(RENDERED)
    ]
    assert ffmpeg_path() is not None
    mediapy.write_video(root / "video.mp4", images, fps=30, qp=10)
    capture = root / "capture"
    frames.extract_frames(root / "video.mp4", capture, max_frames=KEPT, val_every=5)
    assert cameras.run(parse([str(capture)])) == 0
    return capture, truth


def test_sfm_recovers_the_cameras(sfm_capture):
    capture, truth = sfm_capture
    ids = sorted(json.loads((capture / "dataset.json").read_text())["ids"])
    assert len(ids) == KEPT  # every frame registered
    found = [Camera.from_json(capture / "camera" / f"{i}.json") for i in ids]
    true = [Camera.from_json(truth / "camera" / f"{int(i):04d}.json") for i in ids]
    s, a, t = umeyama(np.array([c.position for c in found]), np.array([c.position for c in true]))
    aligned = s * np.array([c.position for c in found]) @ a.T + t
    distance = np.linalg.norm(np.array([c.position for c in true]) - synthetic.TARGET, axis=1)
    position_error = np.linalg.norm(aligned - [c.position for c in true], axis=1) / distance
    rotation_error = [
        angle_deg(f.orientation @ a.T, g.orientation) for f, g in zip(found, true, strict=True)
    ]
    # Gauge-free: relative rotations between frames.
    relative_error = [
        angle_deg(f.orientation @ found[0].orientation.T, g.orientation @ true[0].orientation.T)
        for f, g in zip(found, true, strict=True)
    ]
    focal_error = found[0].focal_length / true[0].focal_length - 1.0
    print(
        f"position error max {position_error.max():.4f} of the camera distance; rotation error "
        f"max {max(rotation_error):.3f} deg (relative {max(relative_error):.3f} deg); focal "
        f"error {100 * focal_error:+.2f}%"
    )
    assert position_error.max() < 0.02
    assert max(rotation_error) < 1.5 and max(relative_error) < 0.6
    assert abs(focal_error) < 0.03 and found[0].pixel_aspect_ratio == 1.0
    np.testing.assert_allclose(found[0].principal_point, [128.0, 128.0], atol=1.0)
    assert all(c.focal_length == found[0].focal_length for c in found)  # one shared camera
    # scene.json: the subject's distance (0.56 m) lies between near and far.
    scene = json.loads((capture / "scene.json").read_text())
    subject = distance.mean() / s * scene["scale"]
    assert 0 < scene["near"] < subject < scene["far"] < 20 * subject


def test_sfm_capture_loads_and_rerun_reuses_the_model(sfm_capture, tmp_path, capsys):
    capture, truth = sfm_capture
    copy = shutil.copytree(capture, tmp_path / "capture")
    ids = json.loads((copy / "dataset.json").read_text())["ids"]
    # Add FLAME parameters, so that the capture is complete.
    (copy / "flame").mkdir()
    for i in ids:
        shutil.copy(truth / "flame" / f"{int(i):04d}.json", copy / "flame" / f"{i}.json")
    flame = json.loads((truth / "scene.json").read_text())["flame"]
    io.update_scene(copy, flame={**flame, "model": str(truth / flame["model"])})
    before = {i: (copy / "camera" / f"{i}.json").read_bytes() for i in ids}
    scene = (copy / "scene.json").read_bytes()
    cameras.compute_cameras(copy)
    assert "reusing" in capsys.readouterr().out
    assert {i: (copy / "camera" / f"{i}.json").read_bytes() for i in ids} == before
    assert (copy / "scene.json").read_bytes() == scene  # the flame section is kept
    loaded = capture_lib.load_capture(copy)
    assert sorted(loaded.ids) == sorted(ids) and len(loaded.val_ids) == KEPT // 5


# --------------------------------------------------------------------------------------------
# Import of COLMAP models.

WIDTH, HEIGHT = 64, 48
OPENCV = [50.0, 52.0, 31.5, 24.25, 0.05, -0.02, 0.001, -0.002]  # fx fy cx cy k1 k2 p1 p2


def known_cameras(n: int = 6) -> list[Camera]:
    """n cameras on an arc looking at the origin, with OPENCV intrinsics and distortion."""
    fx, fy, cx, cy, k1, k2, p1, p2 = OPENCV
    return [
        look_at(
            np.array([np.sin(a), 0.2 * np.cos(3 * a), np.cos(a)]) * 3.0,
            np.zeros(3),
            np.array([0.0, 1.0, 0.0]),
            focal_length=fx,
            image_size=(WIDTH, HEIGHT),
            principal_point=np.array([cx, cy]),
            pixel_aspect_ratio=fy / fx,
            radial_distortion=np.array([k1, k2, 0.0]),
            tangential_distortion=np.array([p1, p2]),
        )
        for a in np.linspace(-0.6, 0.6, n)
    ]


def known_points() -> np.ndarray:
    """(200, 3) points in the box [-0.5, 0.5]^3 around the origin."""
    return np.random.default_rng(0).uniform(-0.5, 0.5, (200, 3))


def write_text_model(folder, cams, names, model="OPENCV", params=OPENCV):
    """Writes cameras.txt, images.txt and points3D.txt by hand (COLMAP's text format)."""
    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text(
        f"# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n1 {model} {WIDTH} {HEIGHT} "
        + " ".join(repr(p) for p in params)
        + "\n"
    )
    lines = [
        "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then POINTS2D[] as (X, Y, POINT3D_ID)"
    ]
    for n, (camera, name) in enumerate(zip(cams, names, strict=True), start=1):
        qx, qy, qz, qw = Rotation.from_matrix(camera.orientation).as_quat()
        t = -camera.orientation @ camera.position
        values = [qw, qx, qy, qz, *t]
        lines += [f"{n} " + " ".join(repr(float(v)) for v in values) + f" 1 {name}", ""]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    (folder / "points3D.txt").write_text(
        "".join(
            f"{n} " + " ".join(repr(float(v)) for v in point) + " 128 128 128 0\n"
            for n, point in enumerate(known_points(), 1)
        )
    )


def small_capture(root, ids, val=()):
    """rgb/1x/ID.png (WIDTH x HEIGHT, grey) and the split; returns root."""
    for i in ids:
        path = root / "rgb" / "1x" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90)).save(path)
    io.write_split(root, [i for i in ids if i not in val], list(val))
    return root


IDS = [f"{i:06d}" for i in range(6)]


@pytest.mark.parametrize("form", ["text", "binary"])
def test_import_gives_back_known_cameras(tmp_path, form):
    cams = known_cameras()
    text = tmp_path / "text"
    write_text_model(text, cams, [f"frames/{i}.jpg" for i in IDS])
    model = text
    if form == "binary":
        model = tmp_path / "binary"
        model.mkdir()
        pycolmap.Reconstruction(text).write_binary(model)
        assert not list(model.glob("*.txt"))
    capture = small_capture(tmp_path / "capture", IDS, val=[IDS[3]])
    cameras.run(parse([str(capture), "--colmap_model", str(model)]))
    for frame_id, known in zip(IDS, cams, strict=True):
        got = Camera.from_json(capture / "camera" / f"{frame_id}.json")
        for field in ("orientation", "position", "principal_point", "radial_distortion"):
            np.testing.assert_allclose(getattr(got, field), getattr(known, field), atol=1e-12)
        np.testing.assert_allclose(got.tangential_distortion, known.tangential_distortion)
        assert got.focal_length == known.focal_length and got.image_size == (WIDTH, HEIGHT)
        np.testing.assert_allclose(got.pixel_aspect_ratio, known.pixel_aspect_ratio, rtol=1e-15)
    dataset = json.loads((capture / "dataset.json").read_text())
    assert dataset["val_ids"] == [IDS[3]] and len(dataset["train_ids"]) == 5
    scene = json.loads((capture / "scene.json").read_text())
    # The inlier points fill [-0.475, 0.475]^3, the cameras are 3 units from the origin.
    np.testing.assert_allclose(scene["center"], 0.0, atol=0.05)
    np.testing.assert_allclose(scene["scale"], 2.0 / (0.95 * np.sqrt(3.0)), rtol=0.03)
    assert 2.0 * 0.8 * scene["scale"] < scene["near"] < 2.5 * scene["scale"]
    assert 3.5 * scene["scale"] < scene["far"] < 4.0 * 1.2 * scene["scale"]


def test_colmap_keypoints_use_the_spec_pixel_convention():
    """SIFT finds a blob centred at continuous (x, y) at (x, y): pixel (i, j) is at (i+.5, j+.5)."""
    rng = np.random.default_rng(0)
    grid = np.array([(x, y) for x in (24, 52, 80, 104) for y in (24, 52, 80, 104)], float)
    centres = grid + rng.uniform(-0.5, 0.5, grid.shape)
    u = np.arange(128) + 0.5  # pixel centres
    blobs = sum(np.exp(-((u[None] - x) ** 2 + (u[:, None] - y) ** 2) / 18.0) for x, y in centres)
    image = np.round(255.0 * (1.0 - blobs)).astype(np.uint8)
    pycolmap.logging.minloglevel = 2
    keypoints, _ = pycolmap.FeatureExtractor.create().extract_from_uint8_array(image)
    found = pycolmap.keypoints_to_matrix(keypoints)[:, :2]
    distance = np.linalg.norm(found[:, None] - centres[None], axis=-1).min(axis=1)
    assert (distance < 0.05).sum() >= len(centres)  # every blob (some twice: 2 orientations)


def test_projection_matches_colmap(tmp_path):
    """COLMAP's projection of the imported model equals the spec camera's (with distortion)."""
    write_text_model(tmp_path / "model", known_cameras(), [f"{i}.png" for i in IDS])
    reconstruction = pycolmap.Reconstruction(tmp_path / "model")
    converted = cameras.registered_cameras(reconstruction, IDS, "model")
    points = known_points()
    for image in reconstruction.images.values():
        camera = converted[image.name.removesuffix(".png")]
        expected = np.array([image.project_point(p) for p in points])
        np.testing.assert_allclose(camera.project(points), expected, atol=1e-9)


@pytest.mark.parametrize(
    ("model", "params", "focal", "aspect", "radial", "tangential"),
    [
        ("SIMPLE_PINHOLE", [10.0, 4.0, 3.0], 10.0, 1.0, [0, 0, 0], [0, 0]),
        ("PINHOLE", [10.0, 11.0, 4.0, 3.0], 10.0, 1.1, [0, 0, 0], [0, 0]),
        ("SIMPLE_RADIAL", [10.0, 4.0, 3.0, 0.1], 10.0, 1.0, [0.1, 0, 0], [0, 0]),
        ("RADIAL", [10.0, 4.0, 3.0, 0.1, 0.2], 10.0, 1.0, [0.1, 0.2, 0], [0, 0]),
        (
            "OPENCV",
            [10.0, 11.0, 4.0, 3.0, 0.1, 0.2, 0.3, 0.4],
            10.0,
            1.1,
            [0.1, 0.2, 0],
            [0.3, 0.4],
        ),
        (
            "FULL_OPENCV",
            [10.0, 11.0, 4.0, 3.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0, 0, 0],
            10.0,
            1.1,
            [0.1, 0.2, 0.5],
            [0.3, 0.4],
        ),
    ],
)
def test_camera_models(model, params, focal, aspect, radial, tangential):
    rotation = Rotation.from_rotvec([0.1, -0.2, 0.3]).as_matrix()
    camera = cameras.camera_from_colmap(model, np.array(params), (8, 6), rotation, np.ones(3))
    assert camera.focal_length == focal
    np.testing.assert_allclose(camera.pixel_aspect_ratio, aspect)
    np.testing.assert_allclose(camera.principal_point, [4.0, 3.0])
    np.testing.assert_allclose(camera.radial_distortion, radial)
    np.testing.assert_allclose(camera.tangential_distortion, tangential)
    np.testing.assert_allclose(camera.position, -rotation.T @ np.ones(3))


def test_unsupported_camera_models_are_refused():
    eye, zero = np.eye(3), np.zeros(3)
    with pytest.raises(StepError, match="camera model SIMPLE_RADIAL_FISHEYE: expected one of"):
        cameras.camera_from_colmap("SIMPLE_RADIAL_FISHEYE", np.ones(4), (8, 6), eye, zero)
    with pytest.raises(StepError, match="rational terms k4 k5 k6"):
        cameras.camera_from_colmap("FULL_OPENCV", np.r_[np.ones(9), 0.1, 0, 0], (8, 6), eye, zero)
    with pytest.raises(StepError, match="found 3 parameters, expected 4"):
        cameras.camera_from_colmap("PINHOLE", np.ones(3), (8, 6), eye, zero)


def test_scene_bounds_ignore_outliers():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(-1.0, 1.0, (2000, 3)), [[500.0, 0, 0], [0, -900.0, 0]]])
    camera = look_at(
        np.array([0.0, 0.0, 4.0]),
        np.zeros(3),
        np.array([0.0, 1.0, 0.0]),
        focal_length=20.0,
        image_size=(40, 40),
    )
    bounds = cameras.scene_bounds(points, [camera])
    np.testing.assert_allclose(bounds["center"], 0.0, atol=0.05)
    # The inliers (central 95% on each axis) fill [-0.95, 0.95]^3.
    np.testing.assert_allclose(bounds["scale"], 2.0 / (0.95 * np.sqrt(12.0)), rtol=0.01)
    np.testing.assert_allclose(bounds["near"], 3.05 * 0.8 * bounds["scale"], rtol=0.01)
    np.testing.assert_allclose(bounds["far"], 4.95 * 1.2 * bounds["scale"], rtol=0.01)


def test_unregistered_frames_leave_the_split(tmp_path, capsys):
    capture = small_capture(tmp_path / "capture", IDS + ["000006"], val=["000006"])
    (capture / "camera").mkdir()
    (capture / "camera" / "000006.json").write_text("{}")  # stale, from an earlier run
    write_text_model(tmp_path / "model", known_cameras(), [f"{i}.png" for i in IDS])
    _, unregistered = cameras.compute_cameras(capture, tmp_path / "model")
    assert unregistered == ["000006"]
    assert "unregistered frames (1), removed from dataset.json: 000006" in capsys.readouterr().out
    dataset = json.loads((capture / "dataset.json").read_text())
    assert dataset["ids"] == IDS and dataset["val_ids"] == []
    assert sorted(json.loads((capture / "metadata.json").read_text())) == IDS
    assert sorted(p.stem for p in (capture / "camera").iterdir()) == IDS


def test_too_few_registered_frames_is_an_error(tmp_path):
    ids = [f"{i:06d}" for i in range(13)]
    capture = small_capture(tmp_path / "capture", ids)
    write_text_model(tmp_path / "model", known_cameras(), [f"{i}.png" for i in IDS])
    with pytest.raises(StepError, match="only 6 of 13 frames registered"):
        cameras.compute_cameras(capture, tmp_path / "model")
    assert not (capture / "camera").exists()


def test_bad_input_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(StepError, match=re.escape(f"{missing}: capture folder not found")):
        cameras.compute_cameras(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StepError, match=re.escape(f"{empty / 'rgb' / '1x'}: folder not found")):
        cameras.compute_cameras(empty)
    capture = small_capture(tmp_path / "capture", IDS)
    (capture / "rgb" / "1x" / f"{IDS[2]}.png").unlink()
    with pytest.raises(StepError, match=re.escape(f"{IDS[2]}.png: frame image not found")):
        cameras.compute_cameras(capture, tmp_path)
    capture = small_capture(tmp_path / "capture2", IDS)
    with pytest.raises(StepError, match=re.escape(f"{missing}: COLMAP model folder not found")):
        cameras.compute_cameras(capture, missing)
    with pytest.raises(
        StepError, match=re.escape(f"{empty}: not a COLMAP model: found no cameras")
    ):
        cameras.compute_cameras(capture, empty)
    garbage = tmp_path / "garbage"
    write_text_model(garbage, known_cameras(), [f"{i}.png" for i in IDS])
    (garbage / "cameras.txt").write_text("1 OPENCV sixty-four 48\n")
    with pytest.raises(StepError, match=re.escape(f"{garbage}: cannot read the COLMAP model")):
        cameras.compute_cameras(capture, garbage)
    wrong_size = tmp_path / "wrong_size"
    write_text_model(wrong_size, known_cameras(), [f"{i}.png" for i in IDS])
    (wrong_size / "cameras.txt").write_text(f"1 OPENCV 128 96 {' '.join(map(str, OPENCV))}\n")
    message = r"rgb/1x/\d{6}\.png: found 64x48 pixels, but " + re.escape(
        f"{wrong_size} has a camera of 128x96"
    )
    with pytest.raises(StepError, match=message):
        cameras.compute_cameras(capture, wrong_size)
    assert not (capture / "camera").exists() and not (capture / "scene.json").exists()
