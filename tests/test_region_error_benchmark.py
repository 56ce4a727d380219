# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/region_error.py: the region split of a rasterised frame and the per-region
table, against hand-made face indices and errors."""

import types

import numpy as np
import pytest
from benchmark_util import clean_gin, load  # noqa: F401 (autouse fixture)

from flamenerf import configs
from flamenerf.datasets import capture as capture_lib
from flamenerf.evaluation import metrics
from flamenerf.geometry import flame
from flamenerf.nerf import guide
from flamenerf.synthetic import generator

region_error = load("region_error")


def _scene():
    # 2 head faces, then 3 static faces: two torso faces (vertices 0-3), one wall face.
    return types.SimpleNamespace(
        head_faces=np.zeros((2, 3), np.int64),
        static_faces=np.array([[0, 1, 2], [1, 2, 3], [4, 5, 6]]),
        num_torso_vertices=4,
    )


def test_regions_split_every_covered_pixel_once():
    index = np.array(
        [
            [0, 1, 4, 4, 4],
            [2, 2, 3, 4, -1],
            [3, 3, 3, 4, 4],
        ]
    )
    masks = region_error.region_masks(index, _scene(), collar_px=1)
    np.testing.assert_array_equal(masks["head"], (index >= 0) & (index < 2))
    # Torso faces 2 and 3; the collar is the torso pixels 4-adjacent to a head pixel.
    expected_collar = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(masks["collar"], expected_collar)
    np.testing.assert_array_equal(masks["torso"], ((index == 2) | (index == 3)) & ~expected_collar)
    np.testing.assert_array_equal(masks["wall"], index == 4)
    union = sum(m.astype(int) for m in masks.values())
    np.testing.assert_array_equal(union, (index >= 0).astype(int))


def test_table_psnr_and_shares():
    index = np.array([[0, 2, 4, 4]])
    masks = [region_error.region_masks(index, _scene(), collar_px=0)] * 2
    errors = [np.array([[1e-2, 1e-4, 1e-4, 1e-4]]), np.array([[1e-2, 1e-4, 1e-4, 1e-4]])]
    table = region_error.region_table(errors, masks)
    assert table["head"][0] == 1 and table["wall"][0] == 2
    assert table["head"][1] == pytest.approx(20.0)
    assert table["torso"][1] == pytest.approx(40.0) and table["wall"][1] == pytest.approx(40.0)
    assert table["head"][2] == pytest.approx(1e-2 / (1e-2 + 3e-4))
    assert np.isnan(table["collar"][1]) and table["collar"][2] == 0.0
    assert sum(v[2] for v in table.values()) == pytest.approx(1.0)


def test_a_region_without_error_has_the_librarys_psnr_of_a_perfect_match():
    index = np.array([[0, 2, 4, 4]])
    masks = [region_error.region_masks(index, _scene(), collar_px=0)]
    table = region_error.region_table([np.array([[1e-2, 1e-4, 0.0, 0.0]])], masks)
    # metrics.mse_to_psnr (eval's conversion) of a zero mean squared error: +inf, no floor.
    assert float(metrics.mse_to_psnr(0.0)) == np.inf
    assert table["wall"][1] == np.inf and table["wall"][2] == 0.0
    assert table["head"][1] == pytest.approx(20.0) and table["torso"][1] == pytest.approx(40.0)
    assert np.isnan(table["collar"][1])  # no pixels: no PSNR


def test_the_head_ball_against_the_torso_of_the_generator():
    scene = generator.build_scene()
    radius, inside, faded = region_error.torso_in_head_ball(scene, 0.06)
    # Brute force: the ball holds every head vertex and touches the farthest one.
    rest = scene.pose([flame.FlameParams()])[0][guide.head_vertices(scene.model)]
    centre = 0.5 * (rest.min(0) + rest.max(0))
    assert radius == pytest.approx(np.linalg.norm(rest - centre, axis=1).max(), rel=1e-6)
    torso = scene.static_vertices[: scene.num_torso_vertices]
    distance = np.linalg.norm(torso - centre, axis=1)
    assert inside == pytest.approx((distance < radius).mean())
    assert faded == pytest.approx((distance < radius + 0.06).mean())
    assert 0.0 < inside < faded < 1.0


def test_the_rigid_weights_shares_of_torso_and_head(tmp_path):
    # A tiny capture of the turning head (seed 1), the identity of the benchmark's.
    root = generator.generate(
        tmp_path / "turn", size=8, frames=2, val=0, seed=1, head_motion=15, show_progress=False
    )
    capture = capture_lib.load_capture(root)
    scene = generator.build_scene()
    shape = capture.flame_params[capture.train_ids[0]].shape
    radius, _, faded = region_error.torso_in_head_ball(scene, 0.06, shape)
    ball = region_error.rigid_weight_shares(capture, configs.GuideConfig(enabled=True), scene)
    assert ball["torso_moved"] == pytest.approx(faded) and ball["head_partial"] == 0.0
    # Brute force: the ball's weight times smoothstep of the height above the root joint (y up
    # in FLAME space, the generator's world), 0 at neck_fade_m below neck_level_m.
    level, fade = -0.005, 0.03
    config = configs.GuideConfig(rigid_weight="neck", neck_level_m=level, neck_fade_m=fade)
    neck = region_error.rigid_weight_shares(capture, config, scene)
    rest = flame.forward(scene.model, flame.FlameParams(shape=shape))
    vertices, root_joint = np.asarray(rest.vertices), np.asarray(rest.joints)[0]
    head = vertices[guide.head_vertices(scene.model)]
    centre = 0.5 * (head.min(0) + head.max(0))
    smooth = lambda t: np.clip(t, 0, 1) ** 2 * (3 - 2 * np.clip(t, 0, 1))

    def weight(points):
        ball = 1 - smooth((np.linalg.norm(points - centre, axis=1) - radius) / 0.06)
        return ball * smooth((points[:, 1] - root_joint[1] - level + fade) / fade)

    torso = weight(scene.static_vertices[: scene.num_torso_vertices])
    assert neck["torso_moved"] == pytest.approx(np.mean(torso > 0))
    assert neck["torso_half"] == pytest.approx(np.mean(torso > 0.5))
    assert neck["head_partial"] == pytest.approx(np.mean(weight(head) < 1))
    # The neck cut leaves less of the torso to follow the head, and some of the neck's base.
    assert neck["torso_moved"] < ball["torso_moved"] and neck["torso_half"] < ball["torso_half"]
    assert 0 < neck["head_partial"] < 0.05


def test_surface_distance_of_a_plane_is_the_pinhole_rays_length():
    # A camera 2 m above the plane z = 0 looking straight at it: the pixel (i, j)'s ray
    # meets the plane 2 sqrt(1 + u^2 + v^2) from the centre, u and v the pixel centre's offsets
    # from the principal point over the focal length (whatever the image's orientation).
    from flamenerf.geometry.camera import look_at
    from flamenerf.geometry.rasterize import rasterize

    size, focal = 16, 12.0
    camera = look_at(
        np.array([0.0, 0.0, 2.0]),
        np.zeros(3),
        np.array([0.0, 1.0, 0.0]),
        focal_length=focal,
        image_size=(size, size),
    )
    vertices = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    fragments = rasterize(vertices, faces, camera)
    distance = region_error.surface_distance(vertices, fragments, camera)
    hit = fragments.face_index >= 0
    assert hit.any() and (~hit).any()
    j, i = np.mgrid[0:size, 0:size]
    u = (i + 0.5 - camera.principal_point[0]) / focal
    v = (j + 0.5 - camera.principal_point[1]) / focal
    np.testing.assert_allclose(distance[hit], (2.0 * np.sqrt(1 + u**2 + v**2))[hit], rtol=1e-9)
    assert np.isnan(distance[~hit]).all()


def test_rendered_distance_is_metres_along_the_ray():
    depth = np.array([2.0, 0.5])
    directions = np.array([[0.0, 0.0, 3.0], [3.0, 4.0, 0.0]])  # lengths 3 and 5
    np.testing.assert_allclose(
        region_error.rendered_distance(depth, directions, units_per_metre=3.5),
        [6.0 / 3.5, 2.5 / 3.5],
    )


def test_depth_table_medians_per_region_in_cm():
    index = np.array([[0, 0, 0, 2, 4, 4]])
    masks = [region_error.region_masks(index, _scene(), collar_px=0)]
    # Head: +1, +2, -3 cm; torso: +0.5 cm; wall: 2 cm and a pixel without a surface (NaN).
    differences = [np.array([[0.01, 0.02, -0.03, 0.005, 0.02, np.nan]])]
    table = region_error.depth_table(differences, masks)
    assert table["head"][0] == pytest.approx(1.0)  # median of +1, +2, -3
    assert table["head"][1] == pytest.approx(2.0)  # median of 1, 2, 3
    assert table["head"][2] == pytest.approx(np.quantile([1.0, 2.0, 3.0], 0.9))
    assert table["torso"] == pytest.approx((0.5, 0.5, 0.5))
    assert table["wall"] == pytest.approx((2.0, 2.0, 2.0))  # the NaN is not counted
    assert all(np.isnan(table["collar"]))  # no pixels
