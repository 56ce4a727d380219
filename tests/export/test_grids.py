# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The bake's grids: finer slabs through given boxes, resumable sampling, box masks and
trilinear reads (against numpy and scipy)."""

import numpy as np
import pytest

from flamenerf.export import grids


def test_grid_axes_with_finer_regions():
    axes = grids.grid_axes(
        np.array([-1.0, -1.0, -2.0]),
        np.array([1.0, 1.0, 2.0]),
        resolution=9,  # step 0.5 along the longest side (z, 4 long)
        regions=[(np.array([-0.2, -0.2, -0.2]), np.array([0.2, 0.2, 0.2]), 5)],  # step 0.1
    )
    for axis, lower, upper in zip(axes, (-1, -1, -2), (1, 1, 2), strict=True):
        assert axis[0] == lower and axis[-1] == pytest.approx(upper)
        step = np.diff(axis)
        assert np.all(step > 0) and step.max() <= 0.5 + 1e-12
        middle = (axis[:-1] >= -0.2 - 1e-12) & (axis[1:] <= 0.2 + 1e-12)
        assert middle.sum() == 4 and np.allclose(step[middle], 0.1)
    assert len(grids.grid_axes(np.zeros(3), np.ones(3), 2)[0]) == 2


def test_sample_grid_resumes_from_its_slabs(tmp_path):
    axes = [np.linspace(0, 1, 7), np.linspace(0, 2, 5), np.linspace(-1, 1, 4)]
    calls = []

    def function(points):
        calls.append(len(points))
        return points @ [1.0, 10.0, 100.0]

    want = axes[0][:, None, None] + 10 * axes[1][None, :, None] + 100 * axes[2][None, None, :]
    first = grids.sample_grid(function, axes, tmp_path / "slabs", slab_points=40)
    np.testing.assert_allclose(first, want, rtol=1e-6)
    assert sum(calls) == 7 * 5 * 4 and len(calls) == 4  # slabs of 2 x-slices
    calls.clear()
    np.testing.assert_array_equal(
        grids.sample_grid(function, axes, tmp_path / "slabs", slab_points=40), first
    )
    assert calls == []
    (tmp_path / "slabs" / "slab_0001.npy").write_bytes(b"broken")  # an interrupted write
    np.save(tmp_path / "slabs" / "slab_0002.npy", np.zeros((1, 1, 1)))  # another grid's
    again = grids.sample_grid(function, axes, tmp_path / "slabs", slab_points=40)
    np.testing.assert_allclose(again, want, rtol=1e-6)
    assert len(calls) == 2


def test_box_mask_and_trilinear_reads():
    from scipy.interpolate import RegularGridInterpolator

    rng = np.random.default_rng(0)
    axes = [np.array([0.0, 0.5, 2.0]), np.linspace(-1, 1, 5), np.array([0.0, 0.1, 0.3, 1.0])]
    values = rng.normal(size=tuple(len(a) for a in axes))
    mask = grids.box_mask(axes, np.array([0.4, -0.6, 0.05]), np.array([2.0, 0.6, 0.3]))
    want = np.zeros(values.shape, bool)
    want[1:, 1:4, 1:3] = True
    np.testing.assert_array_equal(mask, want)
    inside = rng.uniform([0, -1, 0], [2, 1, 1], (50, 3))
    points = np.concatenate([inside, [[2.5, 0.0, 0.5], [-0.1, 0.0, 0.5]]])
    index, contained = grids.grid_index(
        [np.asarray(a, np.float32) for a in axes], np.asarray(points, np.float32)
    )
    read = np.asarray(grids.trilinear(np.asarray(values, np.float32), index))
    reference = RegularGridInterpolator(axes, values)(inside)
    np.testing.assert_allclose(read[:50], reference, atol=1e-5)
    assert np.asarray(contained).tolist() == [True] * 50 + [False, False]
