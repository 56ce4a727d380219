# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Figures: maps against matplotlib's colormaps, the disentanglement figure, training curves
from a hand-written metrics.jsonl."""

import matplotlib
import numpy as np
import pytest
from metrics_util import write_metrics
from PIL import Image

from flamenerf.evaluation import figures


def test_error_map_has_a_fixed_scale():
    target = np.zeros((2, 3, 3))
    pred = target.copy()
    pred[0, 0] = figures.ERROR_VMAX  # the top of the scale
    pred[0, 1] = 2 * figures.ERROR_VMAX  # clipped to the top
    pred[1, 2, 0] = 3 * figures.ERROR_VMAX / 2  # mean over channels: vmax / 2
    image = figures.error_map(pred, target)
    inferno = matplotlib.colormaps["inferno"]
    assert image.shape == (2, 3, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0], inferno(1.0)[:3], atol=1e-6)
    np.testing.assert_allclose(image[0, 1], inferno(1.0)[:3], atol=1e-6)
    np.testing.assert_allclose(image[1, 2], inferno(0.5)[:3], atol=1e-6)
    np.testing.assert_allclose(image[1, 0], inferno(0.0)[:3], atol=1e-6)


def test_depth_map_spans_the_percentiles_of_the_opaque_pixels():
    depth = np.linspace(1.0, 2.0, 100).reshape(10, 10)
    acc = np.ones((10, 10))
    acc[0] = 0.0  # the first row (the nearest pixels) is transparent
    image = figures.depth_map(depth, acc)
    low, high = np.percentile(depth[1:], [1, 99])
    turbo = matplotlib.colormaps["turbo"]
    assert image.shape == (10, 10, 3)
    np.testing.assert_allclose(image[0, 0], turbo(0.0)[:3], atol=1e-6)  # below: clipped
    value = (depth[5, 5] - low) / (high - low)
    np.testing.assert_allclose(image[5, 5], turbo(value)[:3], atol=1e-6)


def test_depth_bounds_of_a_video_share_one_scale():
    near = np.full((4, 4), 1.0)
    far = np.full((4, 4), 3.0)
    acc = [np.ones((4, 4)), np.ones((4, 4))]
    acc[1][0, 0] = 0.0
    far[0, 0] = 100.0  # transparent: left out
    low, high = figures.depth_bounds([near, far], acc)
    expected = np.percentile(np.concatenate([near.ravel(), far.ravel()[1:]]), [1, 99])
    assert (low, high) == pytest.approx(tuple(expected))
    # Without opaque pixels (or acc), every pixel counts.
    assert figures.depth_bounds([far], [np.zeros((4, 4))]) == pytest.approx(
        tuple(np.percentile(far, [1, 99]))
    )
    # Given bounds, frames are colour-mapped on that scale, not their own.
    turbo = matplotlib.colormaps["turbo"]
    image = figures.depth_map(near, bounds=(0.0, 2.0))
    np.testing.assert_allclose(image[1, 1], turbo(0.5)[:3], atol=1e-6)


def test_silhouette_overlay_tints_inside_and_outlines_the_edge():
    rgb = np.full((6, 6, 3), 0.5, np.float32)
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    out = figures.silhouette_overlay(rgb, mask, opacity=0.25)
    cyan = np.asarray(figures.SILHOUETTE_COLOR)
    assert out.shape == (6, 6, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], rgb[0, 0])  # outside: unchanged
    np.testing.assert_allclose(out[2, 2], 0.75 * 0.5 + 0.25 * cyan, atol=1e-6)  # interior
    for row, col in [(1, 1), (1, 3), (4, 2), (3, 4)]:  # the edge
        np.testing.assert_array_equal(out[row, col], cyan)
    assert np.array_equal(figures.silhouette_overlay(rgb, np.zeros_like(mask)), rgb)


def test_disentanglement_figure_shows_both_renders_and_the_region_edge():
    a = np.zeros((8, 8, 3))
    mask_a = np.zeros((8, 8), bool)
    mask_a[3:5, 3:5] = True
    mask_b = np.zeros((8, 8), bool)
    mask_b[3:5, 5] = True
    b = a.copy()
    b[4, 6] = 0.6
    b[2, 2] = 0.3
    b[0, 0] = 0.9
    figure = figures.disentanglement_figure(a, b, mask_a, mask_b)
    assert figure.shape == (8, 24, 3)
    np.testing.assert_array_equal(figure[:, :8], a)
    np.testing.assert_array_equal(figure[:, 8:16], b)
    # The region (rows 2-5, cols 2-6) has its edge in cyan, its interior not.
    np.testing.assert_array_equal(figure[2, 16 + 2], (0.0, 1.0, 1.0))
    np.testing.assert_array_equal(figure[5, 16 + 6], (0.0, 1.0, 1.0))
    assert tuple(figure[3, 16 + 3]) != (0.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------
# Training curves.


def test_read_metrics_groups_by_split_and_key(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    series = figures.read_metrics(tmp_path / "metrics.jsonl")
    assert series["train"]["psnr"] == [(10, 12.0), (20, 14.0), (30, 16.0)]
    assert series["val"]["psnr_face"] == [(20, 15.0)]
    assert "wall_s" not in series["train"]


def test_plot_file_is_created(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    out = figures.plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "plots" / "c.png")
    assert out.stat().st_size > 0
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.std() > 0  # something was drawn


@pytest.mark.parametrize(
    "text, error, message",
    [
        (None, FileNotFoundError, "metrics file not found"),
        ("{oops\n", ValueError, "line 1: not JSON"),
        ('{"split": "train"}\n', ValueError, 'line 1: expected an object with an integer "step"'),
        ("", ValueError, "no metrics records to plot"),
    ],
)
def test_bad_metrics_name_the_file(tmp_path, text, error, message):
    path = tmp_path / "metrics.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=message) as info:
        figures.plot_training_curves(path, tmp_path / "c.png")
    assert str(path) in str(info.value)
    assert not (tmp_path / "c.png").exists()


def test_training_curves_plot_every_registered_loss_term():
    from flamenerf.training import losses

    stats = {term.stat for term in losses.LOSS_TERMS.values()}
    assert stats <= set(figures.LOSS_KEYS), sorted(stats - set(figures.LOSS_KEYS))
