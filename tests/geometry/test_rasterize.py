# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests for flamenerf.geometry.rasterize against brute-force and analytic references."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from flamenerf.geometry import camera as camera_lib
from flamenerf.geometry import rasterize as rasterize_lib

EPS = 1e-9  # pixels this close to an edge (or depth ties this close) are not compared


def small_camera(width=16, height=12, **intrinsics):
    return camera_lib.look_at(
        [0.3, -0.2, -4.0], [0, 0, 0], [0, -1, 0], focal_length=14.0, image_size=(width, height),
        **intrinsics,
    )  # fmt: skip


def random_soup(seed, count=10):
    """`count` independent random triangles in front of `small_camera`, many overlapping."""
    rng = np.random.default_rng(seed)
    vertices = rng.uniform([-2.5, -2.0, -1.0], [2.5, 2.0, 1.0], size=(count * 3, 3))
    return vertices, np.arange(count * 3).reshape(count, 3)


def brute_force(vertices, faces, camera):
    """Per pixel and triangle: 2D point-in-triangle and 3D ray-plane depth.

    Returns face index (-1 empty), camera depth and the 3D surface point per pixel, and a
    mask of pixels that are unambiguous (no centre within EPS of an edge, no depth tie).
    """
    height, width = camera.image_shape
    face_index = np.full((height, width), -1)
    depth = np.full((height, width), np.inf)
    point = np.zeros((height, width, 3))
    clear = np.ones((height, width), dtype=bool)
    projected = camera.project(vertices)
    for j in range(height):
        for i in range(width):
            q = np.array([i + 0.5, j + 0.5])
            origin, direction = camera.pixels_to_rays(q)
            depths = []
            for f, (i0, i1, i2) in enumerate(faces):
                p0, p1, p2 = projected[[i0, i1, i2]]
                lam12 = np.linalg.solve(np.stack([p1 - p0, p2 - p0], axis=1), q - p0)
                lam = np.array([1 - lam12.sum(), *lam12])
                if np.abs(lam).min() < EPS:
                    clear[j, i] = False
                if lam.min() < 0:
                    continue
                v0, v1, v2 = vertices[[i0, i1, i2]]
                normal = np.cross(v1 - v0, v2 - v0)
                t = normal @ (v0 - origin) / (normal @ direction)
                hit = origin + t * direction
                depths.append((camera.depth(hit), f, hit))
            depths.sort(key=lambda item: item[0])
            if len(depths) > 1 and depths[1][0] - depths[0][0] < EPS:
                clear[j, i] = False
            if depths:
                depth[j, i], face_index[j, i], point[j, i] = depths[0]
    return face_index, depth, point, clear


@pytest.fixture(params=["default", "tiny_tiles_and_chunks"])
def tiling(request, monkeypatch):
    """Runs a test with the real tile/chunk sizes and with tiny ones (forces splitting)."""
    if request.param == "tiny_tiles_and_chunks":
        monkeypatch.setattr(rasterize_lib, "_TILE", 3)
        monkeypatch.setattr(rasterize_lib, "_CHUNK", 20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed, tiling):
    vertices, faces = random_soup(seed)
    camera = small_camera()
    fragments = rasterize_lib.rasterize(vertices, faces, camera)
    ref_index, ref_depth, ref_point, clear = brute_force(vertices, faces, camera)
    assert clear.mean() > 0.9
    assert fragments.face_index.dtype == np.int32
    np.testing.assert_array_equal(fragments.face_index[clear], ref_index[clear])
    covered = clear & (ref_index >= 0)
    assert covered.any() and (~covered).any()
    np.testing.assert_allclose(fragments.depth[covered], ref_depth[covered], rtol=1e-9)
    assert np.all(np.isinf(fragments.depth[fragments.face_index < 0]))
    # Barycentrics give the surface point on the pixel's ray, which projects to the centre.
    surface = rasterize_lib.interpolate(fragments, vertices)
    np.testing.assert_allclose(surface[covered], ref_point[covered], atol=1e-9)
    centres = camera.get_pixel_centers()
    np.testing.assert_allclose(camera.project(surface[covered]), centres[covered], atol=1e-9)
    np.testing.assert_allclose(fragments.barycentric.sum(-1)[covered], 1.0)


def test_distorted_coverage_matches_brute_force():
    vertices, faces = random_soup(3)
    camera = small_camera(radial_distortion=[-0.08, 0.01, 0.0], tangential_distortion=[2e-3, 0])
    fragments = rasterize_lib.rasterize(vertices, faces, camera)
    ref_index, _, _, clear = brute_force(vertices, faces, camera)
    # Depth is interpolated in the distorted image (approximate), so only compare coverage,
    # and that the chosen face covers the pixel.
    covered = fragments.face_index >= 0
    np.testing.assert_array_equal(covered[clear], ref_index[clear] >= 0)
    projected = camera.project(vertices)[faces[fragments.face_index[covered & clear]]]
    centres = camera.get_pixel_centers()[covered & clear]
    cross = lambda a, b: a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    signs = np.stack(
        [cross(projected[:, (k + 1) % 3] - projected[:, k], centres - projected[:, k])
         for k in range(3)], axis=1,
    )  # fmt: skip
    assert np.all((signs >= 0).all(1) | (signs <= 0).all(1))


def test_behind_camera_and_off_screen_render_nothing():
    camera = camera_lib.Camera(
        orientation=np.eye(3),
        position=np.zeros(3),
        focal_length=10.0,
        principal_point=[8.0, 6.0],
        image_size=(16, 12),
    )
    behind = np.array([[-1.0, -1, -2], [1, -1, -2], [0, 1, -2]])
    straddling = np.array([[-1.0, -1, -2], [1, -1, 2], [0, 1, 2]])
    off_screen = np.array([[10.0, 10, 2], [11, 10, 2], [10, 11, 2]])
    for triangle in (behind, straddling, off_screen):
        fragments = rasterize_lib.rasterize(triangle, [[0, 1, 2]], camera)
        assert np.all(fragments.face_index == -1) and np.all(np.isinf(fragments.depth))
    visible = rasterize_lib.rasterize(behind * [1, 1, -1], [[0, 1, 2]], camera)
    assert visible.face_index.max() == 0


def test_folded_back_distortion_is_culled():
    # With k1 = -0.5, x (1 + k1 x^2) stops growing at x^2 = 2/3: a point at x = 1.5 would
    # land at 1.5 * (1 - 1.125) = -0.1875, i.e. back inside the image.
    camera = camera_lib.Camera(
        orientation=np.eye(3),
        position=np.zeros(3),
        focal_length=10.0,
        principal_point=[8.0, 6.0],
        radial_distortion=[-0.5, 0, 0],
        image_size=(16, 12),
    )
    triangle = np.array([[1.4, -0.3, 1.0], [1.6, -0.3, 1.0], [1.5, 0.3, 1.0]])
    assert np.all((camera.project(triangle)[:, 0] > 0) & (camera.project(triangle)[:, 0] < 16))
    assert not rasterize_lib.silhouette(triangle, [[0, 1, 2]], camera).any()
    assert rasterize_lib._max_monotonic_radius2(camera) == pytest.approx(2 / 3)


def cube(rotation):
    """Unit-half-size cube: 8 vertices, 12 faces wound counter-clockwise seen from outside."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    faces = ConvexHull(corners).simplices
    v0, v1, v2 = (corners[faces[:, k]] for k in range(3))
    outward = np.einsum("fi,fi->f", np.cross(v1 - v0, v2 - v0), v0 + v1 + v2) > 0
    faces = np.where(outward[:, None], faces, faces[:, ::-1])
    return corners @ rotation.T, faces


@pytest.mark.parametrize("seed", [0, 1])
def test_cube_silhouette_is_convex_hull(seed, tiling):
    vertices, faces = cube(Rotation.random(random_state=seed).as_matrix())
    assert len(faces) == 12
    camera = camera_lib.look_at(
        [0.2, 0.1, -6.0], [0, 0, 0], [0, -1, 0], focal_length=30.0, image_size=(40, 32)
    )
    mask = rasterize_lib.silhouette(vertices, faces, camera)
    hull = ConvexHull(camera.project(vertices))
    centres = camera.get_pixel_centers()
    signed = (centres @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=-1)
    clear = np.abs(signed) > EPS
    np.testing.assert_array_equal(mask[clear], signed[clear] <= 0)
    assert abs(mask.sum() - hull.volume) <= hull.area  # 2D: volume = area, area = perimeter
    # A closed convex mesh: its front faces alone give the same silhouette ...
    culled = rasterize_lib.rasterize(vertices, faces, camera, cull_backfaces=True)
    np.testing.assert_array_equal(culled.face_index >= 0, mask)
    # ... and with the winding reversed only the far side is drawn.
    flipped = rasterize_lib.rasterize(vertices, faces[:, ::-1], camera, cull_backfaces=True)
    np.testing.assert_array_equal(flipped.face_index >= 0, mask)
    near_faces, far_faces = set(culled.face_index[mask]), set(flipped.face_index[mask])
    assert near_faces.isdisjoint(far_faces) and len(near_faces) + len(far_faces) <= 12
    assert np.all(flipped.depth[mask] >= culled.depth[mask])


def test_interpolate():
    vertices, faces = random_soup(4)
    fragments = rasterize_lib.rasterize(vertices, faces, small_camera())
    covered = fragments.face_index >= 0
    constant = rasterize_lib.interpolate(fragments, np.full((len(vertices), 2), [0.25, -3.0]))
    assert constant.shape == (12, 16, 2)
    np.testing.assert_allclose(constant[covered], np.broadcast_to([0.25, -3.0], (covered.sum(), 2)))
    np.testing.assert_array_equal(constant[~covered], 0.0)
    # Per-corner attributes: a face-constant value reproduces the face index.
    per_corner = np.repeat(np.arange(len(faces), dtype=float)[:, None, None], 3, axis=1)
    face_value = rasterize_lib.interpolate(fragments, per_corner)[..., 0]
    np.testing.assert_allclose(face_value[covered], fragments.face_index[covered])
    with pytest.raises(ValueError, match="attributes"):
        rasterize_lib.interpolate(fragments, np.zeros((2, 3, 4)))


def test_planar_triangle_depth(tiling):
    camera = small_camera(width=20, height=14)
    vertices = np.array([[-12.0, -10.0, -1.0], [12.0, -8.0, 2.0], [0.0, 12.0, 0.5]])
    fragments = rasterize_lib.rasterize(vertices, [[0, 1, 2]], camera)
    covered = fragments.face_index == 0
    assert covered.all()
    origins, directions = camera.pixels_to_rays(camera.get_pixel_centers())
    normal = np.cross(vertices[1] - vertices[0], vertices[2] - vertices[0])
    t = ((vertices[0] - origins) @ normal) / (directions @ normal)
    expected = t * (directions @ camera.optical_axis)
    np.testing.assert_allclose(fragments.depth, expected, rtol=1e-10)


def test_bad_mesh():
    camera = small_camera()
    with pytest.raises(ValueError, match="vertices"):
        rasterize_lib.rasterize(np.zeros((3, 2)), [[0, 1, 2]], camera)
    with pytest.raises(ValueError, match="faces"):
        rasterize_lib.rasterize(np.zeros((3, 3)), [[0, 1, 3]], camera)
    with pytest.raises(ValueError, match="faces"):
        rasterize_lib.rasterize(np.zeros((3, 3)), [[0.0, 1.0, 2.0]], camera)
    empty = rasterize_lib.rasterize(np.zeros((0, 3)), np.zeros((0, 3), int), camera)
    assert np.all(empty.face_index == -1)


def test_downsample():
    image = np.arange(4 * 6, dtype=float).reshape(4, 6)
    np.testing.assert_allclose(
        rasterize_lib.downsample(image, 2), [[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]]
    )
    mask = np.zeros((4, 4, 1), dtype=bool)
    mask[0, 0] = True
    np.testing.assert_allclose(rasterize_lib.downsample(mask, 2)[..., 0], [[0.25, 0], [0, 0]])
    with pytest.raises(ValueError, match="downsample"):
        rasterize_lib.downsample(image, 4)


def test_supersampled_coverage_matches_scaled_camera():
    # Rendering at 2x with camera.scale(1 / 2) and box-downsampling gives the fraction of the
    # 4 sub-pixel centres covered: half-covered pixels of a vertical edge read 0.5.
    camera = camera_lib.Camera(
        orientation=np.eye(3),
        position=np.zeros(3),
        focal_length=10.0,
        principal_point=[8.0, 6.0],
        image_size=(16, 12),
    )
    # A quad whose left edge is at pixel u = 8.0 (x = 0): columns 8.. fully covered.
    quad = np.array([[0.0, -5, 1], [5, -5, 1], [5, 5, 1], [0, 5, 1]])
    faces = [[0, 1, 2], [0, 2, 3]]
    fine = rasterize_lib.silhouette(quad, faces, camera.scale(0.5))
    assert fine.shape == (24, 32)
    coverage = rasterize_lib.downsample(fine, 2)
    np.testing.assert_array_equal(coverage[:, :8], 0.0)
    np.testing.assert_array_equal(coverage[:, 8:], 1.0)


def test_outline_matches_a_brute_force_neighbour_check():
    rng = np.random.default_rng(3)
    mask = rng.random((9, 11)) > 0.4
    found = rasterize_lib.outline(mask)
    expected = np.zeros_like(mask)
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            if mask[y, x]:
                neighbours = [
                    mask[
                        min(max(y + dy, 0), mask.shape[0] - 1),
                        min(max(x + dx, 0), mask.shape[1] - 1),
                    ]
                    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
                ]
                expected[y, x] = not all(neighbours)
    np.testing.assert_array_equal(found, expected)
