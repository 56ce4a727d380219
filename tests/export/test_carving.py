# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Carving: depth maps of a density grid seen from cameras (against the analytic optical depth
of a constant density), their reads across a silhouette, the choice of views and the carved
depth with a quorum."""

import numpy as np
from export_util import ring_cameras

from flamenerf.export import carving


def test_view_depth_of_a_constant_density():
    axes = [np.linspace(-4, 4, 9)] * 3
    grid = np.full((9, 9, 9), 2.0, np.float32)
    camera = carving.view_camera(ring_cameras(1)[0], 16)
    near, far, level = 0.5, 5.0, 0.7
    view = carving.view_depth(grid, axes, camera, near, far, 64, level)
    # Opacity builds up from `near`: the level is reached level / 2 beyond it, on every ray.
    np.testing.assert_allclose(view.depth, near + level / 2.0, rtol=1e-5)
    rng = np.random.default_rng(0)
    points = (
        camera.position
        + rng.uniform(0.3, 3.0, (200, 1))
        * carving.view_camera(ring_cameras(1)[0], 16).pixels_to_rays(rng.uniform(1, 15, (200, 2)))[
            1
        ]
    )
    free, seen = carving.free_depth([view], points)
    distance = np.linalg.norm(points - camera.position, axis=1)
    assert seen.all()
    np.testing.assert_allclose(free[0], near + level / 2.0 - distance, atol=1e-5)
    behind = camera.position + (camera.position - points[:3])  # behind the camera
    free, seen = carving.free_depth([view], behind)
    assert not seen.any() and np.all(free == -carving.UNSEEN)
    empty = carving.view_depth(np.zeros_like(grid), axes, camera, near, far, 64, level)
    assert np.all(empty.depth == carving.SEE_THROUGH)


def test_depth_map_reads_keep_silhouettes():
    """Across a jump in a depth map the nearest pixel is read: no blend of the two depths."""
    camera = carving.view_camera(ring_cameras(1)[0], 8)
    depth = np.full((8, 8), 2.0, np.float32)
    depth[:, 4:] = 6.0  # a silhouette between pixel columns 3 and 4
    view = carving.View(camera, 0.5, 10.0, depth)
    pixels = np.array([[4.3, 4.5], [3.7, 4.5], [2.2, 4.5]])  # (u, v): centres at +0.5
    origins, directions = camera.pixels_to_rays(pixels)
    points = origins + 1.0 * directions
    free, _ = carving.free_depth([view], points)
    np.testing.assert_allclose(free[0], [5.0, 1.0, 1.0], atol=1e-5)


def test_choose_views_spreads_the_cameras():
    cameras = ring_cameras(12)
    chosen = carving.choose_views(cameras, 4)
    assert len(set(chosen.tolist())) == 4
    positions = np.array([cameras[i].position for i in chosen])
    assert np.linalg.norm(positions[1] - positions[0]) > 4.0  # opposite sides first
    assert len(carving.choose_views(cameras, 50)) == 12


def test_carved_depth_takes_the_quorum_th_view():
    """Three views of planes at distances 2, 3 and 4 in front of one camera: a point at
    distance 2.5 is in front of two views' surfaces and behind one."""
    camera = carving.view_camera(ring_cameras(1)[0], 8)
    views = [carving.View(camera, 0.5, 10.0, np.full((8, 8), d, np.float32)) for d in (2, 3, 4)]
    _, direction = camera.pixels_to_rays(np.array([[4.0, 4.0]]))
    point = camera.position + 2.5 * direction
    hidden = camera.position - direction  # behind the camera: no view sees it
    got = [carving.carved_depth(views, np.stack([point[0], hidden[0]]), q) for q in (1, 2, 3, 5)]
    np.testing.assert_allclose([g[0] for g in got], [-1.5, -0.5, 0.5, 0.5], atol=1e-5)
    assert all(g[1] == carving.UNSEEN for g in got)
