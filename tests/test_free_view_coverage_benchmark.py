# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/free_view_coverage.py: which validation pixels some training camera saw, checked
on analytic cases (a plane, an occluder, points outside the image) and on a tiny generated
capture (a frame's own camera sees everything it rasterises), and the near / far report on an
eval folder written by hand."""

import json
import shutil

import numpy as np
import pytest
from benchmark_util import clean_gin, load  # noqa: F401 (autouse fixture)
from PIL import Image

from flamenerf.evaluation import metrics
from flamenerf.geometry.camera import look_at
from flamenerf.geometry.rasterize import rasterize
from flamenerf.synthetic import generator

coverage = load("free_view_coverage")


def _camera(position, size=16):
    return look_at(
        np.asarray(position, float),
        np.zeros(3),
        np.array([0.0, 1.0, 0.0]),
        focal_length=16.0,
        image_size=(size, size),
    )


def _plane(z=0.0, half=1.0):
    vertices = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def test_surface_points_lie_on_the_plane_and_nan_where_empty():
    vertices, faces = _plane(half=0.2)
    fragments = rasterize(vertices, faces, _camera([0, 0, 2]))
    points = coverage.surface_points(fragments, vertices)
    hit = fragments.face_index >= 0
    assert hit.any() and (~hit).any()
    np.testing.assert_allclose(points[hit][:, 2], 0.0, atol=1e-9)
    assert np.isnan(points[~hit]).all()
    # Each point projects back to its own pixel centre.
    camera = _camera([0, 0, 2])
    j, i = np.nonzero(hit)
    np.testing.assert_allclose(camera.project(points[hit]), np.stack([i, j], 1) + 0.5, atol=1e-6)


def test_seen_by_front_hidden_outside_and_nan():
    camera = _camera([0, 0, 2])
    depth = rasterize(*_plane(z=0.0), camera).depth  # the plane fills the image at depth 2
    points = np.array(
        [
            [0.1, 0.1, 0.0],  # on the plane: seen
            [0.1, 0.1, -0.5],  # behind it: hidden
            [0.1, 0.1, 0.5],  # in front of it: seen
            [5.0, 0.0, 0.0],  # outside the image
            [0.0, 0.0, 3.0],  # behind the camera
            [np.nan, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(
        coverage.seen_by(points, camera, depth, 0.01), [True, False, True, False, False, False]
    )


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory):
    out = tmp_path_factory.mktemp("capture") / "c"
    generator.generate(out, size=16, frames=6, val=1, vrig=1, head_motion=15, show_progress=False)
    return out


def test_a_frame_sees_what_it_rasterises(tiny_capture):
    dataset = json.loads((tiny_capture / "dataset.json").read_text())
    train_ids, val_ids = dataset["train_ids"], dataset["val_ids"]
    counts = coverage.coverage(tiny_capture, train_ids[:2] + val_ids, tolerance=0.01)
    for frame_id in train_ids[:2]:
        count = counts[frame_id]
        assert count.shape == (16, 16) and count.max() <= len(train_ids)
        # Every pixel with geometry (the wall fills the view) is seen at least by itself.
        assert (count >= 1).all(), frame_id
    for frame_id in val_ids:
        assert counts[frame_id].min() >= 0 and counts[frame_id].max() <= len(train_ids)


def _write_eval(folder, frames):
    """An eval folder: frames {id: (distance, prediction, target)} (16, 16, 3) in [0, 1]."""
    folder.mkdir(parents=True)
    metrics = {"frames": {}, "distance": {"pairs": []}}
    for frame_id, (distance, pred, target) in frames.items():
        metrics["frames"][frame_id] = {"psnr": 0.0}
        metrics["distance"]["pairs"].append({"id": frame_id, "distance_m": distance})
        for name, image in (("prediction", pred), ("target", target)):
            Image.fromarray(np.uint8(np.round(image * 255))).save(folder / f"{frame_id}_{name}.png")
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_covered_report_separates_unseen_pixels(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (16, 16, 3)) / 255.0
    wrong_corner = target.copy()
    wrong_corner[:4, :4] = 1.0 - target[:4, :4]  # error only where nothing is covered
    noisy = np.clip(target + (rng.integers(-2, 3, target.shape) / 255.0), 0, 1)
    frames = {
        "a": (0.0, noisy, target),
        "b": (0.1, noisy, target),
        "c": (0.2, noisy, target),
        "d": (0.3, wrong_corner, target),
        "e": (0.4, wrong_corner, target),
        "f": (0.5, wrong_corner, target),
    }
    _write_eval(tmp_path / "eval" / "step_5", frames)
    counts = {k: np.full((16, 16), 3) for k in frames}
    for k in "def":
        counts[k][:4, :4] = 1  # seen by one frame only: not covered at min_views 2
    report = coverage.covered_report(coverage.eval_folder(tmp_path), counts, min_views=2)
    mse_noisy = np.mean((np.round(noisy * 255) / 255 - np.round(target * 255) / 255) ** 2)
    mse_corner = np.mean((np.round(wrong_corner * 255) / 255 - np.round(target * 255) / 255) ** 2)
    # The library's conversion (metrics.mse_to_psnr, as eval) works in float32: 1 ulp at
    # 45 dB is 4e-6 dB, hence a relative tolerance of 1e-6 (4.5e-5 dB) against float64.
    assert report["near"] == pytest.approx(-10 * np.log10(mse_noisy), rel=1e-6)
    assert report["far"] == pytest.approx(-10 * np.log10(mse_corner), rel=1e-6)
    # Over covered pixels the far frames are exact: the library's PSNR of a perfect match
    # (no floor) is +inf, as eval reports it.
    assert float(metrics.mse_to_psnr(0.0)) == np.inf
    assert report["far_covered"] == np.inf
    assert report["near_covered"] == pytest.approx(report["near"])  # covered everywhere
    assert report["covered_near"] == 1.0
    assert report["covered_far"] == pytest.approx(1 - 16 / 256)


def test_a_twin_of_a_training_frame_is_covered_as_that_frame(tiny_capture, tmp_path):
    """A validation frame given a training frame's camera and FLAME parameters sees the same
    points (the head, turned, included), so its counts equal that frame's own."""
    twin = tmp_path / "twin"
    shutil.copytree(tiny_capture, twin)
    dataset = json.loads((twin / "dataset.json").read_text())
    source, val_id = dataset["train_ids"][3], dataset["val_ids"][0]
    for folder in ("camera", "flame"):
        shutil.copy(twin / folder / f"{source}.json", twin / folder / f"{val_id}.json")
    counts = coverage.coverage(twin, [source, val_id], tolerance=0.01)
    np.testing.assert_array_equal(counts[val_id], counts[source])
    assert (counts[val_id] >= 1).all()
    half = coverage.coverage(twin, [val_id], tolerance=0.01, scale=2)[val_id]
    # At 2x other points are sampled: a few near silhouettes meet the training depth map's
    # pixel of the nearer surface and count as hidden (the depth test's resolution).
    assert half.shape == (8, 8) and (half >= 1).mean() >= 0.9


def test_a_capture_of_another_head_is_refused(tiny_capture, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_capture, other)
    scene = json.loads((other / "scene.json").read_text())
    scene["flame"]["to_world"]["translation"] = [0.0, 0.1, 0.0]
    (other / "scene.json").write_text(json.dumps(scene))
    with pytest.raises(SystemExit, match="not a capture of flamenerf's synthetic generator"):
        coverage.coverage(other, [], tolerance=0.01)
