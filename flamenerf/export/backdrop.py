# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The room as one smooth backdrop: a height field seen from the central camera.

Outside the body's box, a room behind a NeRF's haze has no sharper geometry to trust, and its
carved surface would be spikes along the rays. `backdrop_mesh` makes it one vertex per pixel
of a widened camera at the central view (`backdrop_camera`), at the depth where that pixel's
ray through the density grid (the body's box emptied) becomes opaque (`carving.view_depth`),
smoothed in disparity, coloured by the canonical field's render along the ray without the
body. Lengths are in model-frame units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from flamenerf.export import carving, grids
from flamenerf.export.field import CanonicalField
from flamenerf.geometry.camera import Camera

BACKDROP_SMOOTHING = 0.05  # the backdrop's disparity blur, a share of its longer image side


def backdrop_camera(camera: Camera, pixels: int, widen: float) -> Camera:
    """A distortion-free camera at `camera`'s pose: `pixels` along the longer side of its
    image, widened `widen` times about the principal point (same focal length)."""
    base = carving.view_camera(camera, pixels)
    width, height = base.image_size
    wide = (int(np.ceil(width * widen)), int(np.ceil(height * widen)))
    shift = np.array([(wide[0] - width) / 2, (wide[1] - height) / 2])
    return dataclasses.replace(base, image_size=wide, principal_point=base.principal_point + shift)


def backdrop_mesh(
    field: CanonicalField,
    density: np.ndarray,
    axes: Sequence[np.ndarray],
    camera: Camera,
    near: float,
    far: float,
    exclude: tuple[np.ndarray, np.ndarray] | None,
    samples: int,
    level: float,
    colour_samples: int,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The room as a height field seen from one camera (module docstring).

    One vertex per pixel centre of `camera`, on its ray where the optical depth of `density`
    (the grid, fog already removed; zero inside `exclude`, the body's box) reaches `level`
    (`carving.view_depth`); rays where it never does take their nearest neighbour's depth; the
    disparities are then smoothed (a median filter over 5 pixels, then a Gaussian of
    BACKDROP_SMOOTHING times the image's longer side: a room seen through a NeRF's haze has no
    sharper depth to trust). Each vertex is coloured by the field rendered along its ray
    (`CanonicalField.render` without the excluded box), divided by its opacity. Two triangles
    per pixel square.

    Args:
      field: the canonical field; density: float32 (Gx, Gy, Gz) on the grid `axes`.
      camera: the backdrop's camera (`backdrop_camera`), H x W pixels; near, far: ray bounds.
      exclude: the body's box (lower (3,), upper (3,)), or None.
      samples: depths per ray for the depth map; level: the optical depth of the surface.
      colour_samples: coarse and fine samples per ray for the colours.

    Returns:
      vertices (H W, 3), faces (2 (H - 1) (W - 1), 3), colours float32 (H W, 3).
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter, median_filter

    height, width = camera.image_shape
    density = np.asarray(density, np.float32)
    if exclude is not None:
        density = np.where(grids.box_mask(axes, *exclude), 0.0, density).astype(np.float32)
    depth = carving.view_depth(density, axes, camera, near, far, samples, level).depth
    valid = depth < carving.SEE_THROUGH
    if not valid.any():
        depth = np.full((height, width), far)
    elif not valid.all():
        nearest = distance_transform_edt(~valid, return_distances=False, return_indices=True)
        depth = depth[nearest[0], nearest[1]]
    disparity = median_filter(1.0 / depth, size=5, mode="nearest")
    disparity = gaussian_filter(disparity, BACKDROP_SMOOTHING * max(height, width), mode="nearest")
    depth = 1.0 / disparity
    origins, directions = camera.pixels_to_rays(camera.get_pixel_centers().reshape(-1, 2))
    vertices = origins + depth.reshape(-1, 1) * directions
    rgb, acc = field.render(
        origins, directions, near, far, colour_samples, "backdrop colours", show_progress, exclude
    )
    colours = np.clip(rgb / np.maximum(acc, 1e-3)[:, None], 0.0, 1.0).astype(np.float32)
    grid = np.arange(height * width).reshape(height, width)
    a, b = grid[:-1, :-1].reshape(-1), grid[:-1, 1:].reshape(-1)
    c, d = grid[1:, :-1].reshape(-1), grid[1:, 1:].reshape(-1)
    # Wound so that the right-hand normal faces the camera (pixel rows go down the image).
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return vertices, faces.astype(np.int64), colours
