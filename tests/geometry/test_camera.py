# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests for flamenerf.geometry.camera: projection, rays, scaling, JSON and look_at."""

import json
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from flamenerf.geometry import camera as camera_lib
from flamenerf.geometry.camera import Camera


def random_camera(rng: np.random.Generator, distorted: bool) -> Camera:
    width, height = int(rng.integers(40, 90)), int(rng.integers(30, 70))
    return Camera(
        orientation=Rotation.random(random_state=rng).as_matrix(),
        position=rng.normal(size=3),
        focal_length=rng.uniform(1.0, 1.6) * width,  # keeps |normalised xy| < 0.75
        principal_point=np.array([width, height]) / 2 + rng.uniform(-3, 3, size=2),
        skew=rng.uniform(-0.5, 0.5),
        pixel_aspect_ratio=rng.uniform(0.9, 1.1),
        radial_distortion=rng.uniform([-0.1, -0.02, -0.005], [0.1, 0.02, 0.005])
        if distorted
        else np.zeros(3),
        tangential_distortion=rng.uniform(-0.003, 0.003, size=2) if distorted else np.zeros(2),
        image_size=(width, height),
    )


def simple_camera(**overrides) -> Camera:
    fields = dict(
        orientation=np.eye(3),
        position=np.zeros(3),
        focal_length=100.0,
        principal_point=np.array([50.0, 40.0]),
        image_size=(100, 80),
    )
    fields.update(overrides)
    return Camera(**fields)


@pytest.mark.parametrize("distorted", [False, True])
def test_project_inverts_pixels_to_rays(distorted):
    rng = np.random.default_rng(0 + distorted)
    for _ in range(5):
        cam = random_camera(rng, distorted)
        pixels = rng.uniform([0, 0], cam.image_size, size=(7, 3, 2))
        origins, directions = cam.pixels_to_rays(pixels)
        assert origins.shape == directions.shape == (7, 3, 3)
        np.testing.assert_allclose(origins, np.broadcast_to(cam.position, (7, 3, 3)))
        np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0, atol=1e-12)
        t = rng.uniform(0.5, 5.0, size=(7, 3, 1))
        points = origins + t * directions
        np.testing.assert_allclose(cam.project(points), pixels, atol=1e-4)
        np.testing.assert_allclose(cam.depth(points), cam.points_to_local(points)[..., 2])
        assert np.all(cam.depth(points) > 0)


def test_principal_point_ray_is_optical_axis():
    cam = random_camera(np.random.default_rng(3), distorted=True)
    _, direction = cam.pixels_to_rays(cam.principal_point)
    np.testing.assert_allclose(direction, cam.orientation[2], atol=1e-12)


def test_undistort_inverts_distort():
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-0.6, 0.6, size=(2, 50))
    radial, tangential = np.array([-0.2, 0.05, -0.01]), np.array([0.004, -0.002])
    xd, yd = camera_lib._distort(x, y, radial, tangential)
    xu, yu = camera_lib._undistort(xd, yd, radial, tangential)
    np.testing.assert_allclose(xu, x, atol=1e-10)
    np.testing.assert_allclose(yu, y, atol=1e-10)


def test_hand_computed_projection():
    # Camera at the origin looking down +z, f = 100, principal point (50, 40).
    # Point (0.2, -0.1, 2): normalised (0.1, -0.05) -> pixel (100 * 0.1 + 50, 100 * -0.05 + 40).
    cam = simple_camera()
    np.testing.assert_allclose(cam.project(np.array([0.2, -0.1, 2.0])), [60.0, 35.0])
    # Same point seen from a rotated, translated camera: rows of R are the camera axes, so
    # R = [[0,1,0],[0,0,1],[1,0,0]] looks down world +x with camera x = world y, camera y =
    # world z. At position (-2, 0, 0), world (0, 0.2, -0.1) has camera coords (0.2, -0.1, 2).
    rotated = simple_camera(
        orientation=np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]), position=[-2.0, 0, 0]
    )
    np.testing.assert_allclose(rotated.project(np.array([0.0, 0.2, -0.1])), [60.0, 35.0])
    # Distortion k1 = 0.1, p1 = 0.01, p2 = 0.02 at (x, y) = (0.1, -0.05):
    #   r2 = 0.0125, d = 1 + 0.1 * 0.0125 = 1.00125
    #   xd = 0.1 * 1.00125 + 2 * 0.01 * (0.1 * -0.05) + 0.02 * (0.0125 + 2 * 0.01)
    #      = 0.100125 - 0.0001 + 0.00065 = 0.100675
    #   yd = -0.05 * 1.00125 + 2 * 0.02 * (0.1 * -0.05) + 0.01 * (0.0125 + 2 * 0.0025)
    #      = -0.0500625 - 0.0002 + 0.000175 = -0.0500875
    #   u = 100 * 0.100675 + 50 = 60.0675, v = 100 * -0.0500875 + 40 = 34.99125
    distorted = simple_camera(radial_distortion=[0.1, 0, 0], tangential_distortion=[0.01, 0.02])
    np.testing.assert_allclose(
        distorted.project(np.array([0.2, -0.1, 2.0])), [60.0675, 34.99125], atol=1e-12
    )
    # Skew 2 and aspect 1.5: u = 100 * 0.1 + 2 * -0.05 + 50 = 59.9, v = 150 * -0.05 + 40 = 32.5.
    skewed = simple_camera(skew=2.0, pixel_aspect_ratio=1.5)
    np.testing.assert_allclose(skewed.project(np.array([0.2, -0.1, 2.0])), [59.9, 32.5])
    np.testing.assert_allclose(skewed.K, [[100, 2, 50], [0, 150, 40], [0, 0, 1]])


def test_k_matches_undistorted_projection():
    cam = random_camera(np.random.default_rng(5), distorted=False)
    points = cam.position + np.random.default_rng(6).normal(size=(10, 3)) + 4 * cam.orientation[2]
    homogeneous = cam.points_to_local(points) @ cam.K.T
    np.testing.assert_allclose(homogeneous[:, :2] / homogeneous[:, 2:], cam.project(points))


def test_pixel_centers():
    cam = simple_camera(image_size=(4, 3))
    centers = cam.get_pixel_centers()
    assert centers.shape == (3, 4, 2)
    np.testing.assert_array_equal(centers[0, 0], [0.5, 0.5])
    np.testing.assert_array_equal(centers[2, 1], [1.5, 2.5])
    assert cam.image_shape == (3, 4)


def test_scale():
    cam = random_camera(np.random.default_rng(7), distorted=True)
    cam = Camera(**{**cam.to_dict(), "image_size": (101, 75)})
    half = cam.scale(2)
    assert half.image_size == (50, 38)  # Python round: 50.5 -> 50, 37.5 -> 38
    assert half.focal_length == cam.focal_length / 2 and half.skew == cam.skew / 2
    np.testing.assert_array_equal(half.principal_point, cam.principal_point / 2)
    points = cam.pixels_to_rays(np.array([[10.0, 20.0], [60.3, 5.5]]))[1] * 3 + cam.position
    np.testing.assert_allclose(half.project(points), cam.project(points) / 2, atol=1e-9)
    np.testing.assert_allclose(cam.scale(4).project(points), cam.project(points) / 4, atol=1e-9)
    # The centre of 2x pixel (0, 0) is the corner shared by 1x pixels (0..1, 0..1).
    _, ray_half = half.pixels_to_rays(half.get_pixel_centers()[0, 0])
    _, ray_full = cam.pixels_to_rays(np.array([1.0, 1.0]))
    np.testing.assert_allclose(ray_half, ray_full, atol=1e-9)
    assert cam.scale(0.5).image_size == (202, 150)
    with pytest.raises(ValueError, match="scale"):
        cam.scale(0)


def test_json_round_trip(tmp_path):
    cam = random_camera(np.random.default_rng(8), distorted=True)
    path = tmp_path / "cam.json"
    cam.to_json(path)
    raw = json.loads(path.read_text())
    assert list(raw) == [
        "orientation",
        "position",
        "focal_length",
        "principal_point",
        "skew",
        "pixel_aspect_ratio",
        "radial_distortion",
        "tangential_distortion",
        "image_size",
    ]
    assert all(isinstance(v, int) for v in raw["image_size"])
    loaded = Camera.from_json(path)
    for key, value in cam.to_dict().items():
        np.testing.assert_array_equal(getattr(loaded, key), value)


def test_optional_fields_default(tmp_path):
    raw = simple_camera().to_dict()
    for key in ("skew", "pixel_aspect_ratio", "radial_distortion", "tangential_distortion"):
        del raw[key]
    raw["unknown_extra_key"] = 1
    cam = Camera.from_dict(raw)
    assert cam.skew == 0.0 and cam.pixel_aspect_ratio == 1.0 and not cam.has_distortion


REFLECTION = [[1, 0, 0], [0, 1, 0], [0, 0, -1]]
SHEARED = [[1, 0.01, 0], [0, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize(
    "field, value",
    [
        ("orientation", None),  # None means: delete the field
        ("orientation", [[1, 0, 0], [0, 1, 0]]),
        ("orientation", REFLECTION),
        ("orientation", SHEARED),
        ("orientation", [[1, 0, 0], [0, 1, 0], [0, 0, "1"]]),
        ("position", [0, 0]),
        ("position", None),
        ("position", [0, float("nan"), 0]),
        ("focal_length", 0.0),
        ("focal_length", -5.0),
        ("focal_length", [100.0]),
        ("focal_length", float("inf")),
        ("principal_point", "center"),
        ("principal_point", None),
        ("skew", True),
        ("pixel_aspect_ratio", 0.0),
        ("radial_distortion", [0.1, 0.0]),
        ("tangential_distortion", [0.0, 0.0, 0.0]),
        ("image_size", [100.5, 80]),
        ("image_size", [100, 0]),
        ("image_size", [100]),
        ("image_size", None),
    ],
)
def test_bad_field_names_file_and_field(tmp_path, field, value):
    raw = simple_camera().to_dict()
    if value is None:
        del raw[field]
    else:
        raw[field] = value
    path = tmp_path / "bad_cam.json"
    path.write_text(json.dumps(raw))  # json writes NaN/Infinity literals, which json reads
    with pytest.raises(ValueError) as info:
        Camera.from_json(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and "expected" in message


def test_bad_json_names_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        Camera.from_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="broken.json.*expected a JSON object"):
        Camera.from_json(path)
    with pytest.raises(FileNotFoundError):
        Camera.from_json(tmp_path / "missing.json")


def test_camera_is_immutable():
    cam = simple_camera()
    with pytest.raises(ValueError):
        cam.position[0] = 1.0
    with pytest.raises(AttributeError):
        cam.focal_length = 3.0


def test_look_at():
    rng = np.random.default_rng(9)
    for _ in range(5):
        position, target = rng.normal(size=3) * 3, rng.normal(size=3)
        up = rng.normal(size=3)
        cam = camera_lib.look_at(position, target, up, focal_length=50.0, image_size=(64, 48))
        np.testing.assert_allclose(cam.project(target), [32.0, 24.0], atol=1e-9)
        # Upright: a point above the target (along up) lands straight above it in the image.
        above = cam.project(target + 0.1 * up / np.linalg.norm(up))
        assert abs(above[0] - 32.0) < 1e-9 and above[1] < 24.0
        np.testing.assert_allclose(cam.orientation @ cam.orientation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(cam.orientation) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="parallel"):
        camera_lib.look_at([0, 0, -1], [0, 0, 0], [0, 0, 2], focal_length=1.0, image_size=(2, 2))
    with pytest.raises(ValueError, match="target == position"):
        camera_lib.look_at([0, 0, 0], [0, 0, 0], [0, 1, 0], focal_length=1.0, image_size=(2, 2))


def test_orbit_path():
    cam = camera_lib.look_at(
        [0, 0, -3.0], [0, 0, 0], [0, -1, 0], focal_length=50.0, image_size=(64, 48)
    )
    path = camera_lib.orbit_path(cam, [0, 0, 0], [0, -1, 0], num_frames=4)
    assert len(path) == 4
    np.testing.assert_allclose(path[0].position, cam.position, atol=1e-12)
    for frame in path:
        assert np.linalg.norm(frame.position) == pytest.approx(3.0)
        np.testing.assert_allclose(frame.project(np.zeros(3)), [32.0, 24.0], atol=1e-9)
    np.testing.assert_allclose(path[2].position, [0, 0, 3.0], atol=1e-12)


def test_from_json_errors_name_the_file(tmp_path):
    raw = simple_camera().to_dict()
    path = tmp_path / "cam.json"
    cases = {
        "key 'skew' twice in one object": '{"skew": 0.0, ' + json.dumps(raw)[1:],
        "not UTF-8": b'{"skew": "\xff"}',
        "nested too deeply": "[" * 100000 + "]" * 100000,
        "invalid JSON": '{"focal_length": ' + "9" * 5000 + "}",  # beyond int digit limits
    }
    for message, content in cases.items():
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(ValueError, match=f"{path}: .*{message}"):
            Camera.from_json(path)
    with pytest.raises(ValueError, match=f"{tmp_path}: cannot read the file"):
        Camera.from_json(tmp_path)  # a folder
    raw["position"] = [10**400, 0, 0]  # an integer beyond float64
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=f"{path}: field 'position': found .*, expected a list"):
        Camera.from_json(path)


@pytest.mark.parametrize(
    "field, value, found",
    [
        ("focal_length", "50", "the string '50'"),
        ("skew", False, "false (a bool)"),
        ("principal_point", None, "null"),
    ],
)
def test_messages_say_what_json_value_was_found(field, value, found):
    raw = simple_camera().to_dict()
    raw[field] = value
    with pytest.raises(ValueError, match=re.escape(f"cam.json: field '{field}': found {found},")):
        Camera.from_dict(raw, source="cam.json")
