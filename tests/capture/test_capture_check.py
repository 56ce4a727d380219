# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of `python -m flamenerf.capture check` on synthetic captures with known landmarks."""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flamenerf.capture import check, io, landmarks
from flamenerf.datasets import capture as capture_lib
from flamenerf.geometry import flame
from flamenerf.synthetic import generator as synthetic

NOISE_PX = 0.3


def run_check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    check.add_arguments(parser)
    return check.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A synthetic capture with its true landmarks (plus noise) in landmarks/."""
    root = tmp_path_factory.mktemp("check") / "good"
    synthetic.generate(root, size=64, frames=6, val=2, seed=3, show_progress=False)
    capture = capture_lib.load_capture(root)
    model, rng = capture.flame_model, np.random.default_rng(0)
    for frame_id in capture.ids:
        points = flame.barycentric_points(
            capture.vertices(frame_id), model.faces, model.lmk_faces_idx, model.lmk_bary_coords
        )
        pixels = capture.cameras[frame_id].project(np.asarray(points))
        pixels = pixels + rng.normal(0.0, NOISE_PX, pixels.shape)
        detection = landmarks.Detection("model", capture.image_size(frame_id), pixels, "truth")
        io.write_json(root / "landmarks" / f"{frame_id}.json", detection.to_dict())
    return root


def test_check_passes_a_good_capture(good, capsys):
    assert run_check([str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK, 6 train + 2 val frames" in out and "0 frame(s) to drop" in out
    report = json.loads((good / "check.json").read_text())
    assert report["drop"] == [] and report["landmarks"] == "ibug51"
    errors = [f["error_px"] for f in report["frames"].values()]
    assert len(errors) == 8 and max(errors) < 2 * NOISE_PX  # E|noise| = 1.25 sigma
    with Image.open(good / "check.png") as sheet:
        assert sheet.mode == "RGB" and sheet.width > 4 * check.TILE and sheet.height > check.TILE


def test_check_lists_frames_to_drop(good, tmp_path, capsys):
    root = shutil.copytree(good, tmp_path / "capture")
    params = json.loads((root / "flame" / "0003.json").read_text())
    params["jaw_pose"] = [0.9, 0.0, 0.0]  # the mouth wide open where the landmarks are not
    (root / "flame" / "0003.json").write_text(json.dumps(params))
    face = json.loads((root / "landmarks" / "0005.json").read_text())
    (root / "landmarks" / "0005.json").write_text(json.dumps({**face, "points": None}))
    out_png = root / "pictures" / "sheet.png"
    assert run_check([str(root), "--out", str(out_png)]) == 0
    report = json.loads((root / "check.json").read_text())
    assert report["drop"] == ["0003", "0005"]
    assert report["frames"]["0003"]["status"] == "drop"
    assert report["frames"]["0005"] == {"status": "no face", "error_px": None}
    assert out_png.is_file()
    assert "2 frame(s) to drop: 0003, 0005" in capsys.readouterr().out
    with capsys.disabled():
        error = report["frames"]["0003"]["error_px"]
        print(f"\ncorrupted jaw: {error:.2f} px (threshold {report['threshold_px']:.2f} px)")


def test_check_rejects_a_broken_capture(good, tmp_path, capsys):
    root = shutil.copytree(good, tmp_path / "capture", ignore=shutil.ignore_patterns("check*"))
    (root / "camera" / "0002.json").unlink()
    scene = json.loads((root / "scene.json").read_text())
    scene["near"] = "close"
    (root / "scene.json").write_text(json.dumps(scene))
    assert run_check([str(root)]) == 1
    err = capsys.readouterr().err
    assert "camera/0002.json: file not found" in err
    assert "scene.json: field 'near'" in err
    assert not (root / "check.json").exists()


def test_check_writes_only_inside_the_capture(good, tmp_path):
    with pytest.raises(io.StepError, match="refusing to write outside the capture"):
        run_check([str(good), "--out", str(tmp_path / "sheet.png")])


def test_drop_threshold():
    errors = np.array([1.0, 1.2, 0.8, 1.1, 0.9, 6.0])
    # median 1.05, MAD 0.15: robust = 1.05 + 5 * 1.4826 * 0.15 (above 2 * median).
    assert check.drop_threshold(errors, 200.0, None) == pytest.approx(1.05 + 5 * 1.4826 * 0.15)
    # A tight cluster: twice the median, or 0.5% of the diagonal, whichever is larger.
    assert check.drop_threshold(np.full(4, 1.0), 200.0, None) == pytest.approx(2.0)
    assert check.drop_threshold(np.full(4, 0.1), 1000.0, None) == pytest.approx(5.0)
    # The absolute limit (default 2% of the diagonal) caps it.
    assert check.drop_threshold(np.full(4, 9.0), 100.0, None) == pytest.approx(2.0)
    assert check.drop_threshold(errors, 100.0, 1.5) == pytest.approx(1.5)
    model_px = {i: np.zeros((3, 2)) for i in "abc"}
    detected = {"a": np.full((3, 2), [3.0, 4.0]), "b": None}
    checks, threshold = check.frame_checks(model_px, detected, 100.0, None)
    assert threshold == pytest.approx(2.0)  # the absolute limit: 5 px > 2 px
    assert checks == {
        "a": {"status": "drop", "error_px": 5.0},
        "b": {"status": "no face", "error_px": None},
        "c": {"status": "no landmarks", "error_px": None},
    }
