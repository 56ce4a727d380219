# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Baking a field into a coloured mesh: the grid, its resumable sampling, marching cubes on a
rectilinear grid, optical depths from cameras, the whole bake of an analytic soft sphere in
front of a wall (against its known surface and colours), and the canonical field of a trained
tiny experiment against the model's own forward pass."""

import numpy as np
import pytest
from export_util import SoftSphere
from test_eval import tiny_experiment

from flamenerf.export import bake
from flamenerf.geometry.camera import Camera, look_at_rotation

RADIUS, SIGMA, RAMP = 0.5, 60.0, 0.02  # export_util.SoftSphere's defaults
WALL_Z, WALL_COLOUR = -1.5, np.array([0.2, 0.3, 0.9])


def ring_cameras(count=10, distance=3.0, size=24):
    cameras = []
    for k in range(count):
        azimuth = 2 * np.pi * k / count
        elevation = 0.5 if k % 2 else -0.5
        position = distance * np.array(
            [
                np.sin(azimuth) * np.cos(elevation),
                np.sin(elevation),
                np.cos(azimuth) * np.cos(elevation),
            ]
        )
        cameras.append(
            Camera(
                orientation=look_at_rotation(position, np.zeros(3), np.array([0, 1.0, 0])),
                position=position,
                focal_length=size * 1.2,
                principal_point=[size / 2, size / 2],
                image_size=(size, size),
            )
        )
    return cameras


def front_cameras(size=24):
    """Cameras in front of the wall (z > 0), looking at the sphere."""
    cameras = []
    for x, y in [(0, 0), (-0.6, 0.1), (0.6, -0.1), (0.2, 0.4), (-0.2, -0.4)]:
        position = np.array([x, y, 3.0])
        cameras.append(
            Camera(
                orientation=look_at_rotation(position, np.zeros(3), np.array([0, 1.0, 0])),
                position=position,
                focal_length=size * 1.2,
                principal_point=[size / 2, size / 2],
                image_size=(size, size),
            )
        )
    return cameras


def test_grid_axes_with_finer_regions():
    axes = bake.grid_axes(
        np.array([-1.0, -1.0, -2.0]),
        np.array([1.0, 1.0, 2.0]),
        resolution=9,  # step 0.5 along the longest side (z, 4 long)
        regions=[(np.array([-0.2, -0.2, -0.2]), np.array([0.2, 0.2, 0.2]), 5)],  # step 0.1
    )
    for axis, lower, upper in zip(axes, (-1, -1, -2), (1, 1, 2), strict=True):
        assert axis[0] == lower and axis[-1] == pytest.approx(upper)
        step = np.diff(axis)
        assert np.all(step > 0) and step.max() <= 0.5 + 1e-12
        middle = (axis[:-1] >= -0.2 - 1e-12) & (axis[1:] <= 0.2 + 1e-12)
        assert middle.sum() == 4 and np.allclose(step[middle], 0.1)
    assert len(bake.grid_axes(np.zeros(3), np.ones(3), 2)[0]) == 2


def test_sample_grid_resumes_from_its_slabs(tmp_path):
    axes = [np.linspace(0, 1, 7), np.linspace(0, 2, 5), np.linspace(-1, 1, 4)]
    calls = []

    def function(points):
        calls.append(len(points))
        return points @ [1.0, 10.0, 100.0]

    want = axes[0][:, None, None] + 10 * axes[1][None, :, None] + 100 * axes[2][None, None, :]
    first = bake.sample_grid(function, axes, tmp_path / "slabs", slab_points=40)
    np.testing.assert_allclose(first, want, rtol=1e-6)
    assert sum(calls) == 7 * 5 * 4 and len(calls) == 4  # slabs of 2 x-slices
    calls.clear()
    np.testing.assert_array_equal(
        bake.sample_grid(function, axes, tmp_path / "slabs", slab_points=40), first
    )
    assert calls == []
    (tmp_path / "slabs" / "slab_0001.npy").write_bytes(b"broken")  # an interrupted write
    np.save(tmp_path / "slabs" / "slab_0002.npy", np.zeros((1, 1, 1)))  # another grid's
    again = bake.sample_grid(function, axes, tmp_path / "slabs", slab_points=40)
    np.testing.assert_allclose(again, want, rtol=1e-6)
    assert len(calls) == 2


def test_marching_cubes_on_a_rectilinear_grid():
    lower, upper = np.full(3, -1.0), np.full(3, 1.0)
    axes = bake.grid_axes(lower, upper, 21, [(np.full(3, -0.3), np.full(3, 0.3), 25)])
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    values = 0.6 - np.linalg.norm(points, axis=-1)  # higher inside a sphere of radius 0.6
    vertices, faces = bake.extract_mesh(values, axes, 0.0)
    radius = np.linalg.norm(vertices, axis=1)
    assert np.abs(radius - 0.6).max() < 0.02  # linear interpolation across a 0.1 cell
    normals = bake.vertex_normals(vertices, faces)
    assert np.all(np.einsum("vc,vc->v", normals, vertices / radius[:, None]) > 0.9)  # outward
    seen = np.zeros(values.shape, bool)
    seen[: len(axes[0]) // 2] = True  # the grid points with x < 0
    half, _ = bake.extract_mesh(values, axes, 0.0, bake.seen_cells(seen))
    assert 0 < len(half) < len(vertices)
    last = axes[0][len(axes[0]) // 2 - 1]  # cells wholly within the seen points
    assert half[:, 0].max() <= last + 1e-12 and half[:, 0].max() > last - 0.1
    assert len(bake.extract_mesh(values, axes, 5.0)[0]) == 0


def test_small_components_are_dropped():
    big = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    small = np.array([[6, 7, 8]])
    vertices = np.arange(27.0).reshape(9, 3)
    kept_vertices, kept_faces = bake.drop_small_components(
        vertices, np.concatenate([big, small]), 2
    )
    np.testing.assert_array_equal(kept_vertices, vertices[:6])
    np.testing.assert_array_equal(kept_faces, big)


def test_view_depth_of_a_constant_density():
    axes = [np.linspace(-4, 4, 9)] * 3
    grid = np.full((9, 9, 9), 2.0, np.float32)
    camera = bake.view_camera(ring_cameras(1)[0], 16)
    near, far, level = 0.5, 5.0, 0.7
    view = bake.view_depth(grid, axes, camera, near, far, 64, level)
    # Opacity builds up from `near`: the level is reached level / 2 beyond it, on every ray.
    np.testing.assert_allclose(view.depth, near + level / 2.0, rtol=1e-5)
    rng = np.random.default_rng(0)
    points = (
        camera.position
        + rng.uniform(0.3, 3.0, (200, 1))
        * bake.view_camera(ring_cameras(1)[0], 16).pixels_to_rays(rng.uniform(1, 15, (200, 2)))[1]
    )
    free, seen = bake.free_depth([view], points)
    distance = np.linalg.norm(points - camera.position, axis=1)
    assert seen.all()
    np.testing.assert_allclose(free[0], near + level / 2.0 - distance, atol=1e-5)
    behind = camera.position + (camera.position - points[:3])  # behind the camera
    free, seen = bake.free_depth([view], behind)
    assert not seen.any() and np.all(free == -bake.UNSEEN)
    empty = bake.view_depth(np.zeros_like(grid), axes, camera, near, far, 64, level)
    assert np.all(empty.depth == bake.SEE_THROUGH)


def test_depth_map_reads_keep_silhouettes():
    """Across a jump in a depth map the nearest pixel is read: no blend of the two depths."""
    camera = bake.view_camera(ring_cameras(1)[0], 8)
    depth = np.full((8, 8), 2.0, np.float32)
    depth[:, 4:] = 6.0  # a silhouette between pixel columns 3 and 4
    view = bake.View(camera, 0.5, 10.0, depth)
    pixels = np.array([[4.3, 4.5], [3.7, 4.5], [2.2, 4.5]])  # (u, v): centres at +0.5
    origins, directions = camera.pixels_to_rays(pixels)
    points = origins + 1.0 * directions
    free, _ = bake.free_depth([view], points)
    np.testing.assert_allclose(free[0], [5.0, 1.0, 1.0], atol=1e-5)


def test_choose_views_spreads_the_cameras():
    cameras = ring_cameras(12)
    chosen = bake.choose_views(cameras, 4)
    assert len(set(chosen.tolist())) == 4
    positions = np.array([cameras[i].position for i in chosen])
    assert np.linalg.norm(positions[1] - positions[0]) > 4.0  # opposite sides first
    assert len(bake.choose_views(cameras, 50)) == 12


OPTIONS = dict(
    resolution=48,
    body_resolution=0,
    head_resolution=0,
    views=10,
    view_pixels=64,
    view_samples=96,
    colour_samples=32,
    min_component_faces=8,
)


def test_bake_of_a_soft_sphere(tmp_path):
    field = SoftSphere()
    box = (np.full(3, -1.0), np.full(3, 1.0))
    options = bake.BakeOptions(**OPTIONS, room="surface", fog=0.0)
    baked = bake.bake(
        field, box, None, None, ring_cameras(), 1.0, 6.0, options, tmp_path, {"id": 1}
    )
    radius = np.linalg.norm(baked.vertices, axis=1)
    # Opacity 0.3 is reached sqrt(-2 ln(0.7) RAMP / SIGMA) into the soft edge seen head-on,
    # less deep seen obliquely (the best view of a point is up to about 30 degrees off).
    head_on = RADIUS + RAMP / 2 - np.sqrt(-2 * np.log(0.7) * RAMP / SIGMA)
    outer = RADIUS + RAMP / 2
    assert head_on - 0.005 < np.median(radius) < outer + 0.005
    assert head_on - 0.025 < radius.min() and radius.max() < outer + 0.025  # cells: 0.043
    outward = 0.5 + 0.5 * baked.vertices / radius[:, None]
    # The colour the best view's ray collects crossing the soft edge, near the vertex.
    colour_error = np.abs(baked.colours - outward)
    assert colour_error.max() < 0.08 and colour_error.mean() < 0.015
    assert baked.faces.shape[1] == 3 and baked.faces.max() < len(baked.vertices)
    calls = field.calls
    again = bake.bake(
        field, box, None, None, ring_cameras(), 1.0, 6.0, options, tmp_path, {"id": 1}
    )
    assert field.calls == calls  # the coloured mesh came from the cache
    np.testing.assert_array_equal(again.faces, baked.faces)


def test_bake_with_a_backdrop(tmp_path):
    field = SoftSphere(wall_z=WALL_Z, wall_colour=WALL_COLOUR)
    box = (np.array([-3.0, -3.0, -2.0]), np.array([3.0, 3.0, 1.0]))
    body = (np.full(3, -0.7), np.full(3, 0.7))
    options = bake.BakeOptions(**OPTIONS, backdrop_pixels=24, backdrop_widen=1.2, thickness_m=0.1)
    cameras = front_cameras()
    baked = bake.bake(field, box, None, body, cameras, 1.0, 6.0, options)
    inside = np.all((baked.vertices >= body[0]) & (baked.vertices <= body[1]), axis=1)
    sphere = baked.vertices[inside]
    # The front of the sphere: its back is unseen, left open (skirts at most thickness_m deep).
    on_sphere = np.abs(np.linalg.norm(sphere, axis=1) - RADIUS) < 0.05
    assert on_sphere.mean() > 0.7 and sphere[on_sphere, 2].max() > 0.45
    assert sphere[:, 2].min() > -0.3
    room = baked.vertices[~inside]
    assert len(room) == 29 * 29  # one vertex per backdrop pixel (24 x 1.2, rounded up)
    assert np.abs(room[:, 2] - WALL_Z).max() < 0.1  # the wall, seen through the sphere too
    np.testing.assert_allclose(
        baked.colours[~inside], np.tile(WALL_COLOUR, (len(room), 1)), atol=0.02
    )


def test_first_surface():
    weights = np.array([[0.1, 0.3, 0.4, 0.1], [0.1, 0.1, 0.1, 0.1]])
    z = np.array([[1.0, 2.0, 3.0, 4.0]] * 2)
    hit, depth = bake.first_surface(weights, z)
    assert hit.tolist() == [True, False] and depth[0] == 3.0 and np.isnan(depth[1])


def test_options_are_checked():
    with pytest.raises(ValueError, match="surface"):
        bake.BakeOptions(surface="mesh")
    with pytest.raises(ValueError, match="opacity"):
        bake.BakeOptions(opacity=1.0)
    with pytest.raises(ValueError, match="views"):
        bake.BakeOptions(views=0)


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    from flamenerf.training.experiment import Experiment

    with Experiment.restore(tiny_experiment(tmp_path_factory)) as restored:
        yield restored


def test_canonical_density_is_the_models(restored):
    """The model's own forward pass (no warp, no guide in this experiment) gives weights;
    the densities they imply at its fine samples are the canonical field's there."""
    import jax.numpy as jnp

    from flamenerf.datasets import rays

    exp, state = restored.exp, restored.state
    capture = exp.capture
    frame = capture.train_ids[0]
    batch = rays.frame_rays(capture, frame, exp.expression_config.use_jaw)
    batch = rays.RayBatch(*[np.asarray(f)[:8] for f in batch])
    batch = batch._replace(condition=np.zeros_like(batch.condition))
    out = exp.model.apply({"params": state.params}, jax_tree(batch), jnp.zeros(()), False)["fine"]
    z, weights = np.asarray(out["z_vals"]), np.asarray(out["weights"])
    delta = np.diff(z, axis=1) * np.linalg.norm(batch.directions, axis=1)[:, None]
    transmittance = 1 - np.concatenate([np.zeros((len(z), 1)), np.cumsum(weights, 1)[:, :-1]], 1)
    alpha = weights / np.maximum(transmittance, 1e-12)
    implied = -np.log(np.clip(1 - alpha[:, :-1], 1e-12, 1)) / delta
    field = bake.CanonicalField(
        exp.model, state.params, "frame", frame=capture.frames[frame].appearance_id
    )
    sigma = field.density(np.asarray(out["points"])[:, :-1].reshape(-1, 3)).reshape(implied.shape)
    ok = (transmittance[:, :-1] > 1e-3) & (alpha[:, :-1] < 0.999)
    np.testing.assert_allclose(sigma[ok], implied[ok], rtol=2e-3, atol=1e-3)


def jax_tree(batch):
    import jax.numpy as jnp

    from flamenerf.datasets import rays

    return rays.RayBatch(*[jnp.asarray(f) for f in batch])
