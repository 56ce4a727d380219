# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The scene's box: where rays first become half opaque, and the box of those points around
an analytic soft sphere."""

import numpy as np
from export_util import SoftSphere, ring_cameras

from flamenerf.export import scene_box


def test_first_surface():
    weights = np.array([[0.1, 0.3, 0.4, 0.1], [0.1, 0.1, 0.1, 0.1]])
    z = np.array([[1.0, 2.0, 3.0, 4.0]] * 2)
    hit, depth = scene_box.first_surface(weights, z)
    assert hit.tolist() == [True, False] and depth[0] == 3.0 and np.isnan(depth[1])


def test_surface_box_of_a_soft_sphere():
    """Rays half opaque within the sphere's soft edge (radius 0.5, ramp 0.02): every surface
    point lies within 0.51 of its centre, and the rays through every pixel of ten cameras
    around it reach close to its extremes; plus the margin."""
    lower, upper = scene_box.surface_box(
        SoftSphere(), ring_cameras(10), 1.0, 6.0, samples=512, rays_per_camera=576, margin=0.1
    )
    assert np.all(lower > -0.61) and np.all(upper < 0.61)
    assert np.all(lower < -0.56) and np.all(upper > 0.56)
