# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The Python render of the asset: the pose maths against the contract written out by hand,
the image against a brute-force per-pixel ray/triangle reference and an analytic triangle."""

import numpy as np
import pytest
from export_util import contract_pose, tiny_asset

from flamenerf.export import gltf, preview, rig
from flamenerf.geometry.camera import Camera, look_at_rotation

WIDTH, HEIGHT = 20, 16


def camera(position, target=(0.0, 0.0, -0.2), focal=18.0):
    position = np.asarray(position, np.float64)
    return Camera(
        orientation=look_at_rotation(position, np.asarray(target), np.array([0.0, 1.0, 0.0])),
        position=position,
        focal_length=focal,
        principal_point=[WIDTH / 2 - 0.3, HEIGHT / 2 + 0.2],
        skew=0.4,
        pixel_aspect_ratio=1.1,
        image_size=(WIDTH, HEIGHT),
    )


def brute_force(vertices, faces, colours, cam, near, far):
    """Per pixel: the nearest ray/triangle hit (Moller-Trumbore) within [near, far] camera depth,
    its linear colour by the hit's barycentrics, then sRGB by the formula."""
    image = np.zeros((HEIGHT, WIDTH, 3))
    closest = np.full((HEIGHT, WIDTH), np.inf)
    margin = np.full((HEIGHT, WIDTH), np.inf)  # distance of the hit to its triangle's edges
    for j in range(HEIGHT):
        for i in range(WIDTH):
            origin, direction = cam.pixels_to_rays(np.array([i + 0.5, j + 0.5]))
            for face in faces:
                a, b, c = vertices[face]
                e1, e2 = b - a, c - a
                p = np.cross(direction, e2)
                det = e1 @ p
                if abs(det) < 1e-12:
                    continue
                s = origin - a
                u = (s @ p) / det
                q = np.cross(s, e1)
                v = (direction @ q) / det
                t = (e2 @ q) / det
                if u < -1e-9 or v < -1e-9 or u + v > 1 + 1e-9 or t <= 0:
                    continue
                depth = t * (direction @ cam.optical_axis)
                if depth < near or depth > far or depth >= closest[j, i]:
                    continue
                closest[j, i] = depth
                margin[j, i] = min(u, v, 1 - u - v)
                linear = (
                    (1 - u - v) * colours[face[0]] + u * colours[face[1]] + v * colours[face[2]]
                )
                image[j, i] = np.where(
                    linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055
                )
    return image, margin


def front_camera():
    """A pinhole at the origin looking down -z (y up in the world), 10 px focal, centred."""
    return Camera(
        orientation=np.diag([1.0, -1.0, -1.0]),
        position=[0.0, 0.0, 0.0],
        focal_length=10.0,
        principal_point=[WIDTH / 2, HEIGHT / 2],
        image_size=(WIDTH, HEIGHT),
    )


def room_only(positions, colours, faces):
    """`tiny_asset`'s rig (2 expression coefficients) with this room mesh and no head."""
    asset = tiny_asset(animations=False)
    asset.room = gltf.Mesh(
        np.asarray(positions, np.float32),
        np.asarray(colours, np.float32),
        np.asarray(faces, np.uint32),
    )
    asset.head = gltf.SkinnedMesh.empty(2)
    return asset


def render(asset, cam, near, far, pose=None, **kwargs):
    """`preview.render` of `asset` in `pose` (default: rest) through `cam`'s OpenGL matrices
    with these near and far planes, WIDTH x HEIGHT."""
    gl = (preview.gl_from_camera(cam), preview.projection_matrix(cam, near, far))
    return preview.render(asset, *gl, WIDTH, HEIGHT, REST if pose is None else pose, **kwargs)


def reference(asset, pose, cam, near, far):
    """`brute_force` of the asset's room and head posed by `preview.pose`."""
    room, head = preview.pose(asset, pose)
    vertices = np.concatenate([room, head])
    faces = np.concatenate([asset.room.faces, asset.head.faces + len(room)]).astype(np.int64)
    colours = np.concatenate([asset.room.colours, asset.head.colours]).astype(np.float64)
    return brute_force(vertices, faces, colours, cam, near, far)


@pytest.fixture(scope="module")
def asset():
    return tiny_asset()


REST = rig.Pose(np.zeros(2))
POSES = [REST, rig.Pose(np.array([0.7, -1.5]), jaw=0.3, yaw=0.4, pitch=-0.25)]


@pytest.mark.parametrize("pose", POSES)
def test_pose_is_the_contract(asset, pose):
    room, head = preview.pose(asset, pose)
    want_room, want_head = contract_pose(asset, pose.expression, pose.jaw, pose.yaw, pose.pitch)
    np.testing.assert_allclose(room, want_room)
    np.testing.assert_allclose(head, want_head, atol=1e-6)


def test_rest_pose_is_the_stored_mesh(asset):
    _, head = preview.pose(asset, REST)
    np.testing.assert_allclose(head, asset.head.positions, atol=1e-6)


@pytest.mark.parametrize("pose", POSES)
def test_render_matches_brute_force(asset, pose):
    cam = camera([0.5, 0.3, 1.2])
    near, far = 0.05, 10.0
    image = render(asset, cam, near, far, pose)
    want, margin = reference(asset, pose, cam, near, far)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.min() >= 0 and image.max() <= 1
    clear = margin > 1e-3  # pixel centres on (or next to) an edge may pick either side
    assert clear.sum() > 0.8 * clear.size
    np.testing.assert_allclose(image[clear], want[clear], atol=1e-5)
    assert (image.sum(axis=-1) > 0).sum() > 0.5 * clear.size


def test_one_triangle_centroid_and_background():
    # A triangle facing the camera at constant depth: perspective-correct interpolation is
    # affine on it, so its centroid shows the mean of the vertex colours (linear), in sRGB.
    cam = front_camera()
    # Vertices whose centroid projects onto the centre of pixel (10, 8).
    z = -2.0
    centre = np.array([(10.5 - WIDTH / 2) / 10 * 2, -(8.5 - HEIGHT / 2) / 10 * 2, z])
    vertices = centre + np.array([[-0.6, -0.4, 0], [0.6, -0.4, 0], [0.0, 0.8, 0]])
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.25]], np.float32)
    asset = room_only(vertices, colours, [[0, 1, 2]])
    image = render(asset, cam, 0.1, 5.0)
    mean = colours.mean(axis=0)
    srgb = np.where(mean <= 0.0031308, 12.92 * mean, 1.055 * mean ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(image[8, 10], srgb, atol=1e-6)
    assert np.all(image[0, 0] == 0) and np.all(image[15, 19] == 0)
    # Beyond the far plane: black.
    far = render(asset, cam, 0.1, 1.5)
    assert np.all(far == 0)


def test_gl_camera_round_trip_and_projection():
    cam = camera([0.3, -0.2, 1.5])
    near, far = 0.1, 20.0
    world_from_camera = preview.gl_from_camera(cam)
    projection = preview.projection_matrix(cam, near, far)
    back = preview.camera_from_gl(world_from_camera, projection, WIDTH, HEIGHT)
    for name in ("orientation", "position", "principal_point"):
        np.testing.assert_allclose(getattr(back, name), getattr(cam, name), atol=1e-9)
    for name in ("focal_length", "skew", "pixel_aspect_ratio"):
        assert getattr(back, name) == pytest.approx(getattr(cam, name))
    assert preview.near_far(projection) == pytest.approx((near, far))
    # OpenGL: clip = P inverse(world_from_camera) X; window = (ndc + 1) / 2 * size, y up.
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 3)) + [0, 0, -0.3]
    clip = (projection @ np.linalg.inv(world_from_camera) @ np.c_[points, np.ones(10)].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    window = np.stack([(ndc[:, 0] + 1) / 2 * WIDTH, (1 - ndc[:, 1]) / 2 * HEIGHT], axis=-1)
    np.testing.assert_allclose(window, cam.project(points), atol=1e-9)
    depth = cam.depth(points)
    np.testing.assert_allclose(
        ndc[:, 2], (far + near) / (far - near) - 2 * far * near / ((far - near) * depth)
    )


def test_camera_from_gl_refuses_what_is_not_a_pinhole():
    with pytest.raises(ValueError, match="projection"):
        preview.camera_from_gl(np.eye(4), np.eye(4), WIDTH, HEIGHT)
    with pytest.raises(ValueError, match="world_from_camera"):
        preview.camera_from_gl(
            2 * np.eye(4), preview.projection_matrix(camera([0, 0, 1]), 0.1, 2), WIDTH, HEIGHT
        )


def test_srgb_round_trip():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(preview.srgb_to_linear(preview.linear_to_srgb(x)), x, atol=1e-12)
    assert preview.linear_to_srgb(0.5) == pytest.approx(0.7353569830524495)


def test_triangles_crossing_the_near_plane_are_clipped_not_dropped():
    # A floor passing under the camera, from behind it to far in front: the near plane cuts
    # its two triangles; what lies beyond `near` must still show, as in OpenGL.
    cam = camera([0.0, 0.5, 0.0], target=(0.0, 0.0, -2.0))
    asset = room_only(
        positions=[[-3, -0.2, 2], [3, -0.2, 2], [3, -0.2, -6], [-3, -0.2, -6]],
        colours=[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]],
        faces=[[0, 1, 2], [0, 2, 3]],
    )
    near, far = 0.3, 20.0
    image = render(asset, cam, near, far)
    want, margin = reference(asset, REST, cam, near, far)  # the room alone: no head
    clear = margin > 1e-3
    assert (want.sum(axis=-1) > 0).sum() > 0.3 * want.shape[0] * want.shape[1]
    np.testing.assert_allclose(image[clear], want[clear], atol=1e-5)


@pytest.mark.parametrize("k", [3, 4])
def test_supersampling_averages_encoded_samples(k):
    """A flat quad facing the camera, its right edge at x = 10.25 pixels: with k x k samples
    per pixel (centres at 10 + (i + 0.5) / k), column 10 has one sample column in the quad
    (10 + 0.5 / k < 10.25 < 10 + 1.5 / k), so it shows a k-th of the quad's encoded colour
    over the black background (the mean of encoded samples, not the encoded mean)."""
    cam = front_camera()
    z = -2.0  # pixel x = 10 * X / 2 + 10: X = (x - 10) / 5
    right, left = (10.25 - 10) / 5, -3.0
    vertices = [[left, -3, z], [right, -3, z], [right, 3, z], [left, 3, z]]
    colour = 0.2
    asset = room_only(vertices, np.full((4, 3), colour), [[0, 1, 2], [0, 2, 3]])
    image = render(asset, cam, 0.1, 5.0, supersample=k)
    encoded = 1.055 * colour ** (1 / 2.4) - 0.055
    np.testing.assert_allclose(image[:, :10], encoded, atol=1e-12)
    np.testing.assert_allclose(image[:, 10], encoded / k, atol=1e-12)
    assert np.all(image[:, 11:] == 0)
    single = render(asset, cam, 0.1, 5.0)
    assert np.all(single[:, 10] == 0)  # the pixel's centre, 10.5, is outside
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="supersample"):
            render(asset, cam, 0.1, 5.0, supersample=bad)
