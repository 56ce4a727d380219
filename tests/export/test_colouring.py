# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Vertex colours of points on an analytic soft sphere: the radiance at the point ("point"),
the colour rendered along the best view's ray ("camera"), and which view is best."""

import numpy as np
from export_util import SoftSphere, ring_cameras

from flamenerf.export import carving, colouring, grids


def test_colours_of_points_on_a_soft_sphere():
    field = SoftSphere()
    axes = grids.grid_axes(np.full(3, -1.0), np.full(3, 1.0), 48)
    density = grids.sample_grid(field.density, axes)
    cameras = [carving.view_camera(c, 32) for c in ring_cameras(8)]
    views = [carving.view_depth(density, axes, c, 1.0, 6.0, 96, -np.log(0.7)) for c in cameras]
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(200, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    vertices = 0.5 * normals  # on the sphere, within its soft edge
    best = colouring.best_views(views, vertices)
    eyes = np.array([cameras[k].position for k in best])
    assert np.all(np.einsum("vc,vc->v", normals, eyes - vertices) > 0)  # a view facing it
    point = colouring.colour_vertices(field, vertices, views, "point", 0.1)
    np.testing.assert_allclose(point, 0.5 + 0.5 * normals, atol=1e-6)
    camera = colouring.colour_vertices(field, vertices, views, "camera", 0.1, samples=32)
    error = np.abs(camera - (0.5 + 0.5 * normals))
    assert camera.dtype == np.float32 and error.max() < 0.08 and error.mean() < 0.015
