# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The colour fit: the pixel matrix against the preview's own renders (per sample, with
colours varying over triangles and triangles the near plane cuts; supersampled, as block means),
and the fit against targets the preview rendered from known colours."""

import dataclasses

import numpy as np
import pytest
from export_util import tiny_asset
from test_preview import HEIGHT, WIDTH, camera

from flamenerf.export import gltf, preview, refine, rig

POSE = rig.Pose(np.array([0.7, -1.5]), jaw=0.3, yaw=0.4, pitch=-0.25)
NEAR, FAR = 0.05, 10.0


def _render(asset, cam, pose, k=1, near=NEAR, far=FAR):
    return preview.render(
        asset,
        preview.gl_from_camera(cam),
        preview.projection_matrix(cam, near, far),
        WIDTH,
        HEIGHT,
        pose,
        k,
    )


def _matrix(asset, cam, pose, k=1, near=NEAR, far=FAR, width=WIDTH, height=HEIGHT):
    matrices = rig.joint_matrices(asset.inverse_bind, asset.skeleton, pose)
    return refine.pixel_matrix(
        asset,
        preview.gl_from_camera(cam),
        preview.projection_matrix(cam, near, far),
        width,
        height,
        matrices,
        pose.expression,
        k,
    )


def _colours(asset):
    return np.concatenate([asset.room.colours, asset.head.colours]).astype(np.float64)


def _floor_asset():
    """A floor passing under the camera of `test_preview`'s clipping test: the near plane cuts
    its triangles."""
    asset = tiny_asset(animations=False)
    asset.room = gltf.Mesh(
        positions=np.array(
            [[-3, -0.2, 2], [3, -0.2, 2], [3, -0.2, -6], [-3, -0.2, -6]], np.float32
        ),
        colours=np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32),
        faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
    )
    return asset


@pytest.mark.parametrize("scene", ["tiny", "floor"])
def test_pixel_matrix_blends_what_the_preview_blends(scene):
    """One sample a pixel: the preview interpolates linear colours, so A @ linear colours is the
    preview's image decoded, for any colours (the head's and the room's vary over every
    triangle; the floor's triangles are cut by the near plane)."""
    if scene == "tiny":
        asset, cam, near = tiny_asset(animations=False), camera([0.5, 0.3, 1.2]), NEAR
    else:
        asset, cam, near = _floor_asset(), camera([0.0, 0.5, 0.0], target=(0, 0, -2)), 0.3
    matrix, covered = _matrix(asset, cam, POSE, near=near)
    image = _render(asset, cam, POSE, near=near)
    decoded = preview.srgb_to_linear(image).reshape(-1, 3)
    assert matrix.shape == (WIDTH * HEIGHT, len(_colours(asset)))
    np.testing.assert_allclose(matrix @ _colours(asset), decoded, atol=1e-6)
    # Covered pixels: their weights sum to one; the others show the black beyond.
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums[covered], 1.0, atol=1e-9)
    assert np.all(sums[~covered] == 0) and np.all(decoded[~covered] == 0)
    assert 0.2 < covered.mean() < 1.0


def test_supersampled_pixel_matrix_is_the_mean_of_its_samples():
    asset, cam, k = tiny_asset(animations=False), camera([0.5, 0.3, 1.2]), 3
    fine_cam = dataclasses.replace(cam).scale(1.0 / k)
    fine, fine_covered = _matrix(asset, fine_cam, POSE, width=k * WIDTH, height=k * HEIGHT)
    matrix, covered = _matrix(asset, cam, POSE, k)
    colours = _colours(asset)
    blocks = (fine @ colours).reshape(HEIGHT, k, WIDTH, k, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(matrix @ colours, blocks.reshape(-1, 3), atol=1e-9)
    all_covered = fine_covered.reshape(HEIGHT, k, WIDTH, k).all(axis=(1, 3)).ravel()
    np.testing.assert_array_equal(covered, all_covered)
    # With colours uniform per mesh the encoded blends are exact: A @ sRGB colours is the
    # preview's supersampled render (the mean of k x k encoded samples).
    flat = tiny_asset(animations=False)
    flat.room.colours[:] = [0.2, 0.5, 0.1]
    flat.head.colours[:] = [0.9, 0.3, 0.6]
    flat_matrix, _ = _matrix(flat, cam, POSE, k)
    want = _render(flat, cam, POSE, k).reshape(-1, 3)
    np.testing.assert_allclose(
        flat_matrix @ preview.linear_to_srgb(_colours(flat)), want, atol=1e-9
    )


def _pairs(poses, cameras):
    return [(pose, cam) for pose in poses for cam in cameras]


def _targets(asset, poses, cameras, k):
    targets = []
    for pose, cam in _pairs(poses, cameras):
        targets.append(
            refine.Target(
                world_from_camera=preview.gl_from_camera(cam),
                projection=preview.projection_matrix(cam, NEAR, FAR),
                matrices=rig.joint_matrices(asset.inverse_bind, asset.skeleton, pose),
                expression=pose.expression,
                image=_render(asset, cam, pose, k),
            )
        )
    return targets


CAMERAS = [camera([0.5, 0.3, 1.2]), camera([-0.4, -0.2, 1.3]), camera([0.0, 0.6, 1.1])]
POSES = [rig.Pose(np.zeros(2)), POSE]


def test_the_fit_finds_colours_that_explain_the_targets():
    """Targets rendered by the preview from known colours (uniform on each of the room's
    triangles, so the encoded blend is exact there); the fit from grey finds them."""
    truth = tiny_asset(animations=False)
    # The room's two triangles share an edge: one colour for the room, one per head vertex.
    truth.room.colours[:] = [0.6, 0.2, 0.05]
    truth.head.colours[:] = np.linspace(0.25, 0.6, 15).reshape(5, 3)
    targets = _targets(truth, POSES, CAMERAS, k=2)
    start = tiny_asset(animations=False)
    start.room.colours[:] = 0.2
    start.head.colours[:] = 0.2
    fitted, report = refine.fit_colours(start, targets, supersample=2, weight=1e-6)
    assert report["frames"] == 6 and report["pixels"] > 0.3 * 6 * WIDTH * HEIGHT
    assert report["rmse_after"] < 0.05 * report["rmse_before"]
    np.testing.assert_allclose(fitted.room.colours, truth.room.colours, atol=1e-3)
    # The head's colours vary over its triangles (the encoded blend is close, not exact: the
    # module docstring): its renders match the targets' (what the fit minimises).
    for target, (pose, cam) in zip(targets, _pairs(POSES, CAMERAS), strict=True):
        error = np.abs(_render(fitted, cam, pose, 2) - target.image)
        assert error.max() < 0.02 and error.mean() < 0.002
    # The reported error before the fit is the start's over the covered pixels.
    squared, count = 0.0, 0
    for target, (pose, cam) in zip(targets, _pairs(POSES, CAMERAS), strict=True):
        _, covered = _matrix(start, cam, pose, 2)
        difference = (_render(start, cam, pose, 2) - target.image).reshape(-1, 3)[covered]
        squared += float((difference**2).sum())
        count += difference.size
    assert report["rmse_before"] == pytest.approx(np.sqrt(squared / count), rel=1e-6)


def test_the_weight_keeps_the_baked_colours():
    truth = tiny_asset(animations=False)
    truth.head.colours[:] = [0.9, 0.9, 0.1]
    targets = _targets(truth, POSES[:1], CAMERAS[:1], k=1)
    start = tiny_asset(animations=False)
    # A vertex no camera sees (behind the room's quad, outside every view) keeps its colour.
    start.room = gltf.Mesh(
        positions=np.concatenate([start.room.positions, [[9, 9, 9], [9, 9.1, 9], [9.1, 9, 9]]]),
        colours=np.concatenate([start.room.colours, np.full((3, 3), 0.3)]).astype(np.float32),
        faces=np.concatenate([start.room.faces, [[4, 5, 6]]]).astype(np.uint32),
    )
    stiff, _ = refine.fit_colours(start, targets, supersample=1, weight=1e6)
    np.testing.assert_allclose(_colours(stiff), _colours(start), atol=1e-4)
    loose, report = refine.fit_colours(start, targets, supersample=1, weight=1e-3)
    assert report["rmse_after"] < 0.5 * report["rmse_before"]
    np.testing.assert_allclose(loose.room.colours[4:], 0.3, atol=1e-6)
    assert np.abs(_colours(loose) - _colours(start)).max() > 0.1


def test_vertices_at_one_position_share_a_colour():
    """The head's border vertices are also the room's: one colour after the fit."""
    asset = tiny_asset(animations=False)
    asset.room.positions[0] = asset.head.positions[0]  # a shared position
    asset.room.colours[0] = [1.0, 0.0, 0.0]
    asset.head.colours[0] = [0.0, 0.0, 1.0]
    shared, count = refine.shared_vertices(asset)
    assert count == len(shared) - 1 and shared[0] == shared[len(asset.room.positions)]
    truth = tiny_asset(animations=False)
    truth.room.positions[0] = truth.head.positions[0]
    targets = _targets(truth, POSES, CAMERAS, k=1)
    fitted, _ = refine.fit_colours(asset, targets, supersample=1, weight=1e-3)
    np.testing.assert_array_equal(fitted.room.colours[0], fitted.head.colours[0])


def test_no_targets_no_change():
    asset = tiny_asset(animations=False)
    same, report = refine.fit_colours(asset, [])
    assert same is asset and report == {"frames": 0, "pixels": 0}
