# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The room as a backdrop: the height field of an analytic wall seen past a soft sphere
(the sphere's box excluded), its colours, its size and its winding."""

import numpy as np
from export_util import SoftSphere, front_cameras

from flamenerf.export import backdrop, carving, grids, meshing

WALL_Z, WALL_COLOUR = -1.5, np.array([0.2, 0.3, 0.9])


def test_backdrop_of_a_wall_behind_a_sphere():
    field = SoftSphere(wall_z=WALL_Z, wall_colour=WALL_COLOUR)
    axes = grids.grid_axes(np.array([-3.0, -3.0, -2.0]), np.array([3.0, 3.0, 1.0]), 64)
    density = grids.sample_grid(field.density, axes)
    body = (np.full(3, -0.7), np.full(3, 0.7))
    camera = backdrop.backdrop_camera(front_cameras()[0], 16, 1.25)
    assert camera.image_size == (20, 20)  # 16 pixels widened 1.25 times
    vertices, faces, colours = backdrop.backdrop_mesh(
        field, density, axes, camera, 1.0, 6.0, body, 96, -np.log(0.7), 16
    )
    assert vertices.shape == (400, 3) and faces.shape == (2 * 19 * 19, 3)
    # The wall, seen through the sphere's box. The smoothing (a median filter and a Gaussian
    # in disparity, edges replicated) pulls the image's border a little nearer on a wall
    # seen at an angle: checked inside a 4-pixel border, bounded on it.
    error = np.abs(vertices[:, 2] - WALL_Z).reshape(20, 20)
    assert error[4:-4, 4:-4].max() < 0.1 and error.max() < 0.25
    np.testing.assert_allclose(colours, np.tile(WALL_COLOUR, (400, 1)), atol=0.02)
    normals = meshing.vertex_normals(vertices, faces)
    towards = camera.position - vertices
    assert np.all(np.einsum("vc,vc->v", normals, towards) > 0)  # wound towards the camera
    assert carving.view_camera(front_cameras()[0], 16).image_size == (16, 16)
