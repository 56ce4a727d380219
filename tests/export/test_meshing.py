# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Marching cubes on a rectilinear grid (against an analytic sphere), its mask of seen cells,
and the removal of small components."""

import numpy as np

from flamenerf.export import grids, meshing


def test_marching_cubes_on_a_rectilinear_grid():
    lower, upper = np.full(3, -1.0), np.full(3, 1.0)
    axes = grids.grid_axes(lower, upper, 21, [(np.full(3, -0.3), np.full(3, 0.3), 25)])
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    values = 0.6 - np.linalg.norm(points, axis=-1)  # higher inside a sphere of radius 0.6
    vertices, faces = meshing.extract_mesh(values, axes, 0.0)
    radius = np.linalg.norm(vertices, axis=1)
    assert np.abs(radius - 0.6).max() < 0.02  # linear interpolation across a 0.1 cell
    normals = meshing.vertex_normals(vertices, faces)
    assert np.all(np.einsum("vc,vc->v", normals, vertices / radius[:, None]) > 0.9)  # outward
    seen = np.zeros(values.shape, bool)
    seen[: len(axes[0]) // 2] = True  # the grid points with x < 0
    half, _ = meshing.extract_mesh(values, axes, 0.0, meshing.seen_cells(seen))
    assert 0 < len(half) < len(vertices)
    last = axes[0][len(axes[0]) // 2 - 1]  # cells wholly within the seen points
    assert half[:, 0].max() <= last + 1e-12 and half[:, 0].max() > last - 0.1
    assert len(meshing.extract_mesh(values, axes, 5.0)[0]) == 0


def test_small_components_are_dropped():
    big = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    small = np.array([[6, 7, 8]])
    vertices = np.arange(27.0).reshape(9, 3)
    kept_vertices, kept_faces = meshing.drop_small_components(
        vertices, np.concatenate([big, small]), 2
    )
    np.testing.assert_array_equal(kept_vertices, vertices[:6])
    np.testing.assert_array_equal(kept_faces, big)


def test_grow_offsets_a_sphere_along_its_normals():
    # A finely meshed sphere (a convex hull of points on it: an independent mesher) grown by d
    # is a sphere of radius r + d; vertices in no face stay.
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(0)
    points = rng.normal(size=(2000, 3))
    points = 0.6 * points / np.linalg.norm(points, axis=1, keepdims=True)
    hull = ConvexHull(points)
    faces = hull.simplices.copy()
    # The hull's simplices are not consistently wound: make every normal point outwards.
    v0, v1, v2 = (points[faces[:, k]] for k in range(3))
    inward = np.einsum("fc,fc->f", np.cross(v1 - v0, v2 - v0), v0) < 0
    faces[inward] = faces[inward][:, ::-1]
    vertices = np.concatenate([points, [[5.0, 5.0, 5.0]]])  # one vertex in no face
    for distance in (0.01, -0.02):
        grown = meshing.grow(vertices, faces, distance)
        radius = np.linalg.norm(grown[:-1], axis=1)
        np.testing.assert_allclose(radius, 0.6 + distance, atol=2e-4)
        np.testing.assert_array_equal(grown[-1], vertices[-1])
