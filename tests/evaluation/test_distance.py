# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Quality against the code frame's distance: hand-computed distances, scipy's Pearson r."""

import numpy as np
import pytest
from capture_util import write_capture

from flamenerf.evaluation import distance as distance_lib


def test_code_frame_distances_by_hand(tmp_path):
    from flamenerf.datasets.capture import load_capture

    # Cameras at x = 0.01 k m (k: the frame's index), frame k >= 3 uses the code of t02.
    capture = load_capture(write_capture(tmp_path / "cap", num_train=3, num_val=2))
    assert capture.file_scene.scale == 2.0  # the distances come back in metres, whatever it is
    distances = distance_lib.code_frame_distances(capture, ["v01", "v00", "t01"])
    assert list(distances) == ["v01", "v00", "t01"]
    assert distances["v00"] == pytest.approx(0.01) and distances["v01"] == pytest.approx(0.02)
    assert distances["t01"] == 0.0
    with pytest.raises(ValueError, match="no frame 'x9'"):
        distance_lib.code_frame_distances(capture, ["x9"])


def test_distance_report_against_scipy_and_by_hand():
    from scipy import stats

    distance = {"a": 0.30, "b": 0.10, "c": 0.20, "d": 0.05, "e": 0.25, "f": 0.15, "g": 0.4}
    psnr = {"a": 20.0, "b": 27.0, "c": 24.0, "d": 29.0, "e": 22.0, "f": 25.0, "g": 21.0}
    report = distance_lib.distance_report(psnr, distance)
    ids = list(psnr)
    r = stats.pearsonr([distance[i] for i in ids], [psnr[i] for i in ids]).statistic
    assert report["pearson"] == pytest.approx(r, abs=1e-12) and report["pearson"] < 0
    # 7 frames: thirds of round(7 / 3) = 2; nearest d (0.05), b (0.10); farthest a, g.
    assert report["count"] == 7 and report["third"] == 2
    assert report["near_third_psnr"] == pytest.approx((29.0 + 27.0) / 2)
    assert report["far_third_psnr"] == pytest.approx((20.0 + 21.0) / 2)
    assert report["near_minus_far"] == pytest.approx(28.0 - 20.5)
    assert report["near_third_distance_m"] == pytest.approx(0.075)
    assert report["far_third_distance_m"] == pytest.approx(0.35)
    assert [p["id"] for p in report["pairs"]] == ["d", "b", "f", "c", "e", "a", "g"]
    assert report["pairs"][0] == {"id": "d", "distance_m": 0.05, "psnr": 29.0}
    # NaN PSNRs are left out; one frame is its own near and far third; no spread: no r.
    one = distance_lib.distance_report({"a": 20.0, "b": float("nan")}, distance)
    assert one["count"] == 1 and one["third"] == 1 and np.isnan(one["pearson"])
    assert one["near_third_psnr"] == one["far_third_psnr"] == 20.0
    flat = distance_lib.distance_report({"a": 20.0, "b": 20.0}, distance)
    assert np.isnan(flat["pearson"]) and flat["near_minus_far"] == 0.0
    with pytest.raises(ValueError, match="no distance"):
        distance_lib.distance_report({"zz": 1.0}, distance)
    assert "pearson_nearest_train" not in report and "nearest_train_m" not in report["pairs"][0]


def test_distance_report_with_the_nearest_training_camera():
    from scipy import stats

    distance = {"a": 0.30, "b": 0.10, "c": 0.20, "d": 0.05, "e": 0.25, "f": 0.15}
    nearest = {"a": 0.04, "b": 0.01, "c": 0.03, "d": 0.0, "e": 0.02, "f": 0.05}
    psnr = {"a": 20.0, "b": 27.0, "c": 24.0, "d": 29.0, "e": 22.0, "f": 25.0}
    report = distance_lib.distance_report(psnr, distance, nearest)
    ids = list(psnr)
    r = stats.pearsonr([nearest[i] for i in ids], [psnr[i] for i in ids]).statistic
    assert report["pearson_nearest_train"] == pytest.approx(r, abs=1e-12)
    # Thirds by code-frame distance: d, b near; e, a far.
    assert report["near_third_nearest_train_m"] == pytest.approx(0.005)
    assert report["far_third_nearest_train_m"] == pytest.approx(0.03)
    assert report["pairs"][-1] == {
        "id": "a",
        "distance_m": 0.30,
        "psnr": 20.0,
        "nearest_train_m": 0.04,
    }
    assert distance_lib.far_third_ids(report) == ["e", "a"]
    assert distance_lib.far_third_ids(distance_lib.distance_report({}, distance)) == []
    with pytest.raises(ValueError, match="no nearest for frames"):
        distance_lib.distance_report(psnr, distance, {"a": 0.1})


def test_nearest_training_frames_by_hand(tmp_path):
    from flamenerf.datasets.capture import load_capture

    # Cameras at x = 0.01 k m (k: the frame's index): t00 t01 t02, then v00 at 0.03, v01 at 0.04.
    capture = load_capture(write_capture(tmp_path / "cap", num_train=3, num_val=2))
    nearest = distance_lib.nearest_training_frames(capture, ["v01", "t01", "v00"])
    assert list(nearest) == ["v01", "t01", "v00"]
    assert nearest["v01"][0] == "t02" and nearest["v01"][1] == pytest.approx(0.02)
    assert nearest["v00"][0] == "t02" and nearest["v00"][1] == pytest.approx(0.01)
    assert nearest["t01"] == ("t01", 0.0)
    with pytest.raises(ValueError, match=r"dataset\.json: no frame 'x9'"):
        distance_lib.nearest_training_frames(capture, ["x9"])


def test_code_swap_report_by_hand():
    own = {"a": 20.0, "b": 24.0, "c": 30.0, "d": 21.0}
    codes_from = {"a": "t1", "b": "t2", "c": None, "d": "t3"}
    swapped = {"b": 25.0, "a": 22.0, "d": float("nan")}
    report = distance_lib.code_swap_report(own, codes_from, swapped)
    # c was not rendered again (None), d's swapped render is not finite: a and b count.
    assert report["rendered"] == 2
    assert report["own_psnr"] == 22.0 and report["swapped_psnr"] == 23.5
    assert report["code_dependence_db"] == 1.5
    assert report["frames"]["a"] == {"codes_from": "t1", "own_psnr": 20.0, "swapped_psnr": 22.0}
    assert report["frames"]["c"] == {"codes_from": None, "own_psnr": 30.0, "swapped_psnr": None}
    assert list(report["frames"]) == ["a", "b", "c", "d"]
    # Nothing rendered again: nothing measured.
    none = distance_lib.code_swap_report({"a": 20.0}, {"a": None}, {})
    assert none["rendered"] == 0 and np.isnan(none["code_dependence_db"])
    empty = distance_lib.code_swap_report({}, {}, {})
    assert empty["frames"] == {} and np.isnan(empty["code_dependence_db"])
    with pytest.raises(ValueError, match="differ in ids"):
        distance_lib.code_swap_report(own, {"a": "t1"}, swapped)
    with pytest.raises(ValueError, match=r"no swapped PSNR for frames \['b'\]"):
        distance_lib.code_swap_report({"b": 1.0}, {"b": "t2"}, {})


def test_distance_report_leaves_non_finite_frames_out_of_the_nearest_figures():
    distance = {"a": 0.30, "b": 0.10, "c": 0.20, "d": 0.05}
    nearest = {"a": 0.04, "b": 0.01, "c": 0.03, "d": 0.0}
    psnr = {"a": 20.0, "b": float("inf"), "c": 24.0, "d": 29.0}
    report = distance_lib.distance_report(psnr, distance, nearest)
    assert [(p["id"], p["nearest_train_m"]) for p in report["pairs"]] == [
        ("d", 0.0),
        ("c", 0.03),
        ("a", 0.04),
    ]
    assert report["third"] == 1 and distance_lib.far_third_ids(report) == ["a"]
    assert report["far_third_nearest_train_m"] == 0.04


def test_nearest_training_frames_breaks_ties_by_training_order(tmp_path):
    import json

    from flamenerf.datasets.capture import load_capture

    root = write_capture(tmp_path / "cap", num_train=3, num_val=1)
    # Put t00 where t02 is (x = 0.02 m): both are 0.01 m from v00 (x = 0.03).
    path = root / "camera" / "t00.json"
    camera = json.loads(path.read_text())
    camera["position"][0] = 0.02
    path.write_text(json.dumps(camera))
    capture = load_capture(root)
    frame, metres = distance_lib.nearest_training_frames(capture, ["v00"])["v00"]
    assert frame == "t00" and metres == pytest.approx(0.01)
