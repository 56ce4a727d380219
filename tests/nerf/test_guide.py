# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME-guided deformation prior: rigid part, residual field, folding, model and penalty."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from capture_util import write_capture
from guide_util import build_in_flame_units, in_flame_units
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from flamenerf import configs
from flamenerf.datasets.rays import RayBatch
from flamenerf.geometry import flame
from flamenerf.geometry.subject import Subject
from flamenerf.nerf import guide
from flamenerf.nerf import model as model_lib
from flamenerf.training import experiment

SETTINGS = guide.GuideSettings(
    sigma=0.004, resolution=24, move_threshold=0.002, undo_rigid=True, rigid_fade=0.06
)
SIGMA = 0.008  # the fade length for the folding checks
TINY = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")


def turned(degrees=15.0, shift=0.02, jaw=0.35, axis=1, expression=None):
    """A head turned about `axis` (1: yaw, 0: nod) and shifted along x, the jaw open."""
    pose = [0.0, 0.0, 0.0]
    pose[axis] = np.deg2rad(degrees)
    return flame.FlameParams(
        expression=expression, jaw_pose=[jaw, 0.0, 0.0], global_pose=pose, translation=[shift, 0, 0]
    )


def build(head_model, params, settings=SETTINGS):
    """Posed and neutral vertices of `params` and their grids (FLAME units as the frame)."""
    return build_in_flame_units(head_model, params, settings)


APPLY, TO_REST = jax.jit(guide.apply), jax.jit(guide.to_rest)


def canonical(grids, frame, points):
    """The whole guide map of one frame on (P, 3) points, as numpy."""
    out = APPLY(grids, jnp.array([frame]), jnp.asarray(points[None], jnp.float32))[0]
    return np.asarray(out[0], np.float64)


def rest_of(grids, frame, points):
    """The rigid part of one frame on (P, 3) points, as numpy."""
    out = TO_REST(grids, jnp.array([frame]), jnp.asarray(points[None], jnp.float32))
    return np.asarray(out[0], np.float64)


@pytest.fixture(scope="module")
def frames(head_model):
    """Two frames: jaw 0.1 and 0.3 rad with different expressions, the second head turned."""
    params = [
        flame.FlameParams(expression=[0.5, 0.0, 0.3], jaw_pose=[0.1, 0.0, 0.0]),
        flame.FlameParams(
            expression=[0.0, 1.0, 0.0],
            jaw_pose=[0.3, 0.0, 0.0],
            global_pose=[0.0, 0.05, 0.0],
            translation=[0.003, 0.0, 0.0],
        ),
    ]
    posed, neutral, grids = build(head_model, params)
    return params, posed, neutral, grids


def lower_lip_vertex(head_model):
    weights = np.asarray(head_model.weights)
    template = np.asarray(head_model.v_template)
    # The most forward vertex driven fully by the jaw: a lower-lip/chin point.
    jaw = np.where(weights[:, 2] > 0.99)[0]
    return jaw[np.argmax(template[jaw, 2])]


# --------------------------------------------------------------------------------------------
# The head's rigid motion.


def test_head_transform_is_flames_own_posing_of_the_head(head_model):
    params = [
        flame.FlameParams(global_pose=[0.1, -0.3, 0.05], neck_pose=[0.2, 0.1, -0.1]),
        flame.FlameParams(global_pose=[0.0, 0.2, 0.0], translation=[0.02, -0.01, 0.03]),
    ]
    subject = in_flame_units(head_model)
    posed, neutral = subject.posed_and_neutral(params, undo_rigid=True)
    transforms = guide.head_transforms(subject, params)
    neck_only = np.asarray(head_model.weights)[:, 1] > 1.0 - 1e-6
    for f in range(2):
        moved = neutral[f] @ transforms[f, :3, :3].T + transforms[f, :3, 3]
        np.testing.assert_allclose(moved[neck_only], posed[f][neck_only], atol=1e-6)
        rotation = transforms[f, :3, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)


def test_transform_in_another_frame_moves_the_mapped_points():
    rotation = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    to_frame = lambda x: 2.5 * (x @ rotation.T) + np.array([0.1, -0.4, 2.0])
    motion = np.eye(4)[None].repeat(2, axis=0)
    motion[:, :3, :3] = Rotation.from_rotvec([[0.1, 0.2, 0.0], [0.0, 0.0, -0.4]]).as_matrix()
    motion[:, :3, 3] = [[0.01, 0.02, 0.0], [-0.03, 0.0, 0.05]]
    points = np.random.default_rng(0).normal(size=(7, 3))
    scene = guide.in_frame(motion, to_frame)
    for f in range(2):
        expected = to_frame(points @ motion[f, :3, :3].T + motion[f, :3, 3])
        got = to_frame(points) @ scene[f, :3, :3].T + scene[f, :3, 3]
        np.testing.assert_allclose(got, expected, atol=1e-9)


@pytest.fixture(scope="module")
def rigid_only(head_model):
    """Pure rigid motions (an 18 degree nod and turn; a 17 degree neck turn; 2 cm) and grids."""
    params = [
        flame.FlameParams(global_pose=[0.25, 0.2, 0.0], translation=[0.02, 0.0, 0.0]),
        flame.FlameParams(neck_pose=[0.0, -0.3, 0.0], translation=[0.0, 0.0, -0.02]),
    ]
    posed, neutral, grids = build(head_model, params)
    return params, posed, neutral, grids


def test_rigid_part_undoes_a_rigid_head_motion_near_the_head(rigid_only, head_model):
    params, posed, neutral, grids = rigid_only
    transforms = guide.head_transforms(in_flame_units(head_model), params)
    neck_only = np.asarray(head_model.weights)[:, 1] > 1.0 - 1e-6
    rng = np.random.default_rng(1)
    for f in range(2):
        # The head's vertices and points up to 2 cm off them, in the ball: exactly T^-1.
        rest = neutral[f][neck_only][::7]
        rest = rest + rng.uniform(-0.02, 0.02, rest.shape)
        rest_centre = rest_of(grids, f, np.asarray(grids.centre[f : f + 1], np.float64))[0]
        rest = rest[np.linalg.norm(rest - rest_centre, axis=1) < float(grids.radius[f])]
        assert len(rest) > 100
        moved = rest @ transforms[f, :3, :3].T + transforms[f, :3, 3]
        np.testing.assert_allclose(rest_of(grids, f, moved), rest, atol=2e-6)
        # The whole map on the posed head: its rest position (the residual is ~0 here).
        np.testing.assert_allclose(
            canonical(grids, f, posed[f][neck_only]), neutral[f][neck_only], atol=2e-4
        )


def test_rigid_part_is_the_identity_far_from_the_head(rigid_only):
    _, _, _, grids = rigid_only
    rng = np.random.default_rng(2)
    for f in range(2):
        centre, radius = np.asarray(grids.centre[f], np.float64), float(grids.radius[f])
        rest_centre = rest_of(grids, f, centre[None])[0]
        direction = rng.normal(size=(500, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        # At the fade length (plus float slack) beyond both ends of the sweep.
        reach = radius + float(grids.fade) + np.linalg.norm(rest_centre - centre) + 1e-4
        points = centre + direction * reach * rng.uniform(1.0, 3.0, (500, 1))
        points = points.astype(np.float32)
        np.testing.assert_array_equal(rest_of(grids, f, points), points)
        # Beyond the residual's box too: the whole map is the identity.
        outside = np.any((points < grids.lower) | (points > grids.upper), axis=1)
        points = points[outside]
        assert len(points) > 400
        out, distance = APPLY(grids, jnp.array([f]), jnp.asarray(points[None]))
        np.testing.assert_array_equal(out[0], points)
        assert np.all(np.asarray(distance) == guide.FAR)


def test_rigid_part_never_folds_for_the_motions_in_scope(head_model):
    # 20 degrees about each axis (global pose pivots at the neck's base) and 2 cm.
    params = [
        flame.FlameParams(global_pose=list(v), translation=[0.02, 0.0, 0.0])
        for v in 0.35 * np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]])
    ]
    subject = in_flame_units(head_model)
    transforms = guide.head_transforms(subject, params)
    _, neutral = subject.posed_and_neutral(params, undo_rigid=True)
    rigid, rotation, centre, radius = guide.head_ball(
        transforms, neutral, guide.head_vertices(head_model)
    )
    fade = 0.06  # GuideConfig.rigid_fade_m
    bound = guide.rigid_margin(rigid, centre, fade)
    assert np.all(bound > 0.1), bound  # |delta| < K L / 1.5 with room to spare
    undo = jax.jit(guide.undo_head_motion)
    for f in range(len(params)):
        reach = radius[f] + fade + 0.07
        lower, upper = centre[f] - reach, centre[f] + reach
        points = guide.grid_points(lower, upper, 40)
        args = [np.float32(a[f]) for a in (rigid, rotation, centre, radius)]
        mapped = np.asarray(undo(jnp.asarray(points, jnp.float32), *args, fade), np.float64)
        det = guide.jacobian_determinants(mapped, (upper - lower) / 39)
        assert det.min() > bound[f] - 1e-3, (det.min(), bound[f])


# --------------------------------------------------------------------------------------------
# The residual field.


def test_point_on_vertex_lands_on_its_neutral_position(frames):
    _, posed, neutral, grids = frames
    rest = rest_of(grids, 1, posed[1])
    k = 123
    field = guide.residual_field(rest, neutral[1] - rest, rest[k][None], SETTINGS.sigma)
    np.testing.assert_allclose(rest[k] + field[0, :3], neutral[1][k], atol=1e-12)
    assert field[0, 3] == 0.0


def brute_force_field(vertices, displacement, points, sigma, neighbours, reach):
    """residual_field's definition with every distance computed: (N, 4)."""
    fades = np.maximum(sigma, guide.FADE_RATIO * np.linalg.norm(displacement, axis=-1))
    cut = 3.0 * fades.max()
    distances = np.linalg.norm(points[:, None] - vertices[None], axis=-1)
    order = np.argsort(distances, axis=1)
    out = np.zeros((len(points), 4))
    for n, (row, near) in enumerate(zip(distances, order, strict=True)):
        d = row[near]
        faded = displacement[near] * np.exp(-((d / fades[near]) ** 2))[:, None]
        if d[0] >= cut:
            out[n, :3] = 0.0
        elif neighbours == 1:
            out[n, :3] = faded[0]
        else:
            weights = 1 / d[:neighbours] ** 2 - 1 / d[neighbours] ** 2
            out[n, :3] = weights @ faded[:neighbours] / weights.sum()
        out[n, 3] = d[0] if d[0] < max(cut, reach) else guide.FAR
    return out


@pytest.mark.parametrize("neighbours", [1, guide.NEIGHBOURS])
@pytest.mark.parametrize("reach", [0.0, 0.5])
def test_residual_field_matches_brute_force(neighbours, reach):
    rng = np.random.default_rng(7)
    vertices = rng.uniform(-0.05, 0.05, (300, 3))
    displacement = rng.normal(scale=0.004, size=(300, 3))
    # Points inside the cloud, at its edge and far beyond the blend's reach (0.03-0.05).
    points = np.concatenate(
        [rng.uniform(-0.06, 0.06, (1000, 3)), rng.uniform(-0.2, 0.2, (1000, 3))]
    )
    field = guide.residual_field(vertices, displacement, points, 0.01, neighbours, reach)
    expected = brute_force_field(vertices, displacement, points, 0.01, neighbours, reach)
    far = expected[:, 3] == guide.FAR
    assert far.any() != (reach > 0) and not far.all()  # both kinds when the reach is the cut
    np.testing.assert_allclose(field, expected, rtol=1e-10, atol=1e-15)


def test_residual_is_continuous_across_voronoi_borders():
    rng = np.random.default_rng(3)
    vertices = rng.uniform(-0.05, 0.05, (40, 3))
    displacement = rng.normal(scale=0.01, size=(40, 3))
    # Ten lines through the cloud, sampled every 10 um: the largest step between neighbours.
    t = np.linspace(-0.05, 0.05, 10001)[:, None]
    starts, directions = rng.uniform(-0.02, 0.02, (10, 3)), rng.normal(size=(10, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lines = np.stack([s + t * d for s, d in zip(starts, directions, strict=True)])

    def largest_step(neighbours):
        field = guide.residual_field(vertices, displacement, lines, 0.01, neighbours)[..., :3]
        return np.linalg.norm(np.diff(field, axis=1), axis=-1).max()

    assert largest_step(1) > 1e-3  # the nearest vertex alone tears space at Voronoi borders
    assert largest_step(guide.NEIGHBOURS) < 1e-4  # the blend does not


def test_one_vertex_fade_never_folds():
    # det(I + dr/dx) along the displacement of one vertex, at its steepest point.
    for size in (0.2, 1.0, 3.0):
        displacement = np.array([[size * 0.01, 0.0, 0.0]])
        line = np.zeros((2001, 3))
        line[:, 0] = np.linspace(-0.1, 0.1, 2001)
        field = guide.residual_field(np.zeros((1, 3)), displacement, line, 0.01)[:, 0]
        slope = np.gradient(field, line[:, 0])
        assert 1 + slope.min() > 1 - np.sqrt(2 / np.e) / guide.FADE_RATIO - 1e-3


def test_jaw_openings_move_a_lower_lip_point_differently(frames, head_model):
    _, posed, neutral, _ = frames
    k = lower_lip_vertex(head_model)
    point = 0.5 * (posed[0][k] + posed[1][k])
    moves = [
        guide.residual_field(p, n - p, point[None], 0.05)[0, :3]
        for p, n in zip(posed, neutral, strict=True)
    ]
    assert np.linalg.norm(moves[1] - moves[0]) > 1e-3


def test_neutral_undoes_rigid_motion_and_expression(frames, head_model):
    params, _, neutral, _ = frames
    rest = flame.forward(head_model, flame.FlameParams()).vertices
    np.testing.assert_allclose(neutral[0], rest, atol=1e-6)
    np.testing.assert_allclose(neutral[1], rest, atol=1e-6)
    keep_pose = Subject.neutral(params[1], undo_rigid=False)
    assert keep_pose.global_pose is not None and keep_pose.expression is None


def test_cell_determinants_of_a_linear_field():
    a = np.array([[0.2, -0.1, 0.0], [0.3, -0.5, 0.1], [0.0, 0.2, 0.4]])
    points = guide.grid_points(np.zeros(3), np.array([1.0, 2.0, 1.5]), 5)
    det = guide.cell_determinants(points @ a.T, np.array([0.25, 0.5, 0.375]))
    np.testing.assert_allclose(det, np.linalg.det(np.eye(3) + a))


def test_unfold_removes_a_fold_and_leaves_the_rest():
    points = guide.grid_points(np.zeros(3), np.ones(3), 21)
    spacing = np.full(3, 0.05)
    # A bump that pushes x back by more than the distance covered: det < 0 at its flank.
    x = points[..., 0]
    residual = np.zeros_like(points)
    residual[..., 0] = 0.15 * np.exp(-(((x - 0.5) / 0.05) ** 2))
    assert guide.cell_determinants(residual, spacing).min() < 0
    fixed = guide.unfold(residual, spacing)
    assert guide.cell_determinants(fixed, spacing).min() >= guide.MIN_DETERMINANT
    far = np.abs(x - 0.5) > 0.3
    np.testing.assert_array_equal(fixed[far], residual[far])


def test_grid_reproduces_the_field_at_grid_points(frames):
    _, posed, neutral, grids = frames
    points = guide.grid_points(grids.lower, grids.upper, SETTINGS.resolution)
    rest = rest_of(grids, 1, posed[1])
    spacing = (grids.upper - grids.lower).astype(np.float64) / (SETTINGS.resolution - 1)
    exact = guide.residual_field(rest, neutral[1] - rest, points.astype(np.float64), 0.004)
    exact[..., :3] = guide.unfold(exact[..., :3], spacing)
    sample = points[::5, ::7, ::3].reshape(1, -1, 3)
    residual, distance = guide.lookup(grids, jnp.array([1]), jnp.asarray(sample, jnp.float32))
    expected = exact[::5, ::7, ::3].reshape(-1, 4)
    np.testing.assert_allclose(residual[0], expected[:, :3], atol=2e-4)  # float16 storage
    np.testing.assert_allclose(distance[0], expected[:, 3], rtol=2e-3, atol=1e-4)


def test_lookup_is_scipys_trilinear_interpolation_of_each_rays_frame():
    """Random fields of 3 frames on an anisotropic box, read at points of mixed frames."""
    from scipy.interpolate import RegularGridInterpolator

    rng = np.random.default_rng(7)
    size, lower, upper = 9, np.array([-0.3, -0.2, -0.1]), np.array([0.2, 0.4, 0.3])
    values = rng.normal(size=(3, size, size, size, 4)).astype(np.float16)
    grids = guide.GuideGrids(values=jnp.asarray(values), lower=lower, upper=upper)
    frame = np.array([2, 0, 1, 2])
    points = rng.uniform(lower - 0.05, upper + 0.05, (4, 50, 3)).astype(np.float32)
    residual, distance = guide.lookup(grids, jnp.asarray(frame), jnp.asarray(points))
    axes = [np.linspace(lower[a], upper[a], size) for a in range(3)]
    inside = np.all((points >= lower) & (points <= upper), axis=-1)
    assert 0 < inside.mean() < 1
    for ray, f in enumerate(frame):
        expected = RegularGridInterpolator(axes, values[f].astype(np.float64))(
            np.clip(points[ray], lower, upper)
        )
        ok = inside[ray]
        np.testing.assert_allclose(residual[ray][ok], expected[ok, :3], atol=1e-5)
        np.testing.assert_allclose(distance[ray][ok], expected[ok, 3], atol=1e-5)
        assert np.all(np.asarray(residual[ray])[~ok] == 0)
        assert np.all(np.asarray(distance[ray])[~ok] == guide.FAR)


def test_lookup_refuses_grids_beyond_one_gathers_index():
    """Checked when traced: nothing of the (never allocated) grids is read."""
    values = jax.ShapeDtypeStruct((8193, 64, 64, 64, 4), jnp.float16)
    grids = guide.GuideGrids(values=values, lower=np.zeros(3), upper=np.ones(3))
    points = jax.ShapeDtypeStruct((2, 3, 3), jnp.float32)
    with pytest.raises(ValueError, match="8193 frames of 64\\^3 points.*GuideConfig.resolution"):
        jax.eval_shape(guide.lookup, grids, jax.ShapeDtypeStruct((2,), jnp.int32), points)


def test_far_point_does_not_move(frames):
    _, posed, neutral, grids = frames
    far = jnp.array([[[0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]])
    out, distance = guide.apply(grids, jnp.array([0]), far)
    np.testing.assert_array_equal(out, far)
    assert np.all(np.asarray(distance) == guide.FAR)
    # Inside the box but far (>> sigma) from every vertex: the fade makes it ~0.
    field = guide.residual_field(
        posed[0], neutral[0] - posed[0], posed[0].mean(axis=0)[None], SETTINGS.sigma
    )
    assert np.abs(field[0, :3]).max() < 1e-8


# --------------------------------------------------------------------------------------------
# The whole map.


def old_guide(posed, neutral, sigma):
    """The guide before this design: nearest vertex, fixed fade, rigid motion included."""
    tree, displacement = cKDTree(posed), neutral - posed

    def mapping(points):
        distance, index = tree.query(points)
        return points + displacement[index] * np.exp(-((distance / sigma) ** 2))[:, None]

    return mapping


def test_fold_fraction_matches_the_whole_grid_by_brute_force():
    rng = np.random.default_rng(11)
    vertices = rng.uniform(-0.05, 0.05, (200, 3))
    near, resolution = 0.02, 24
    # A map that folds in a band of x (det = 1 + 0.9 * 20 * cos(20 x) * 0.1 < 0 there).
    calls = []

    def mapping(p):
        calls.append(len(p))
        return p + np.stack([0.09 * np.sin(20 * p[:, 0] / 0.1), 0 * p[:, 1], 0 * p[:, 2]], 1)

    share = guide.fold_fraction(mapping, vertices, near, resolution)
    lower, upper = vertices.min(axis=0) - near, vertices.max(axis=0) + near
    points = guide.grid_points(lower, upper, resolution)
    det = guide.jacobian_determinants(
        mapping(points.reshape(-1, 3)).reshape(points.shape), (upper - lower) / (resolution - 1)
    )
    distance = np.linalg.norm(points[..., None, :] - vertices, axis=-1).min(axis=-1)
    expected = np.mean(det[distance <= near] <= 0)
    assert 0.05 < expected < 0.95
    assert share == expected
    assert calls[0] < resolution**3  # only the near points and their neighbours were mapped


def folding_residual(grids, rest_vertices):
    """`grids` on a box around all of `rest_vertices` (3 sigma wider) with a residual that
    folds in bands across x (det = 1 + 2 cos(k x) <= 0 on a third of space) and the exact
    distance to them."""
    lower, upper = rest_vertices.min(axis=0) - 3 * SIGMA, rest_vertices.max(axis=0) + 3 * SIGMA
    points = guide.grid_points(lower, upper, 48)
    k = 2 * np.pi / 0.03
    residual = np.zeros(points.shape)
    residual[..., 0] = 2.0 / k * np.sin(k * points[..., 0])
    distance, _ = cKDTree(rest_vertices).query(points.reshape(-1, 3))
    values = np.concatenate([residual, distance.reshape(points.shape[:3] + (1,))], axis=-1)
    f32 = lambda a: np.asarray(a, np.float32)
    return grids.replace(values=values[None].astype(np.float16), lower=f32(lower), upper=f32(upper))


def test_grid_measure_agrees_with_the_whole_map_when_the_rigid_part_is_one_to_one(head_model):
    # A turned, shifted head (the rigid part moves it) whose box holds the whole mesh: the
    # default measure reads the residual grid, the whole map is measured at posed points.
    settings = guide.GuideSettings(SIGMA, 32, 0.002, True, rigid_fade=0.06)
    posed, _, grids = build(head_model, [turned(15.0, 0.02, 0.0)], settings)
    grids = folding_residual(grids, rest_of(grids, 0, posed[0]))
    stats = guide.folded_fraction(grids, posed, SIGMA, resolution=48)
    assert stats.rigid_margin > 0
    spacing = (np.asarray(grids.upper, np.float64) - grids.lower) / 47
    assert stats.folded[0] == guide.grid_fold_fraction(grids.values[0], spacing, 2 * SIGMA)
    mapping = lambda p: canonical(grids, 0, p)
    whole = guide.fold_fraction(mapping, posed[0], 2 * SIGMA, 48)
    assert 0.2 < whole < 0.5
    assert abs(stats.folded[0] - whole) < 0.04, (stats.folded[0], whole)


def test_a_frame_whose_rigid_part_may_fold_is_measured_on_the_whole_map(head_model):
    # A 2 cm shift over a 5 mm fade: the rigid bound is negative, so the grid says nothing.
    settings = guide.GuideSettings(SIGMA, 32, 0.002, True, rigid_fade=0.005)
    posed, _, grids = build(head_model, [turned(15.0, 0.02, 0.0)], settings)
    grids = folding_residual(grids, rest_of(grids, 0, posed[0]))
    stats = guide.folded_fraction(grids, posed, SIGMA, resolution=24)
    assert stats.rigid_margin <= 0 and "MAY FOLD" in stats.summary()
    mapping = lambda p: canonical(grids, 0, p)
    assert stats.folded[0] == guide.fold_fraction(mapping, posed[0], 2 * SIGMA, 24)


def test_grid_measure_reads_the_near_points_of_the_whole_grid():
    rng = np.random.default_rng(5)
    spacing = np.array([0.5, 0.4, 0.3])
    # A linear residual r = A z: det(I + A) everywhere, exactly.
    a = np.array([[-1.5, 0.2, 0.0], [0.1, 0.3, 0.0], [0.0, 0.4, -0.2]])
    points = guide.grid_points(np.zeros(3), spacing * 11, 12)
    values = np.zeros((12, 12, 12, 4))
    values[..., :3] = points @ a.T
    values[..., 3] = rng.uniform(0.0, 1.0, (12, 12, 12))
    assert np.linalg.det(np.eye(3) + a) < 0
    assert guide.grid_fold_fraction(values, spacing, 0.2) == 1.0
    values[..., 3] = 1.0
    assert guide.grid_fold_fraction(values, spacing, 0.2) == 0.0
    # A random residual: the share among the near points of the whole grid's determinants.
    values[..., :3] = rng.normal(0.0, 0.3, (12, 12, 12, 3))
    values[..., 3] = 1.0
    values[3:7, 2:9, 5:12, 3] = rng.uniform(0.0, 0.4, (4, 7, 7))
    det = guide.jacobian_determinants(points + values[..., :3], spacing)
    expected = np.mean(det[values[..., 3] <= 0.2] <= 0)
    assert 0.05 < expected < 0.95
    assert guide.grid_fold_fraction(values, spacing, 0.2) == expected


def test_turned_head_with_open_jaw_hardly_folds(head_model):
    settings = guide.GuideSettings(SIGMA, 32, 0.002, True, rigid_fade=0.06)
    posed, neutral, grids = build(head_model, [turned(15.0, 0.02, 0.35)], settings)
    stats = guide.folded_fraction(grids, posed, SIGMA, resolution=48)
    old = guide.fold_fraction(old_guide(posed[0], neutral[0], SIGMA), posed[0], 2 * SIGMA, 48)
    print(f"folded near the surface: old guide {100 * old:.2f}%, new {100 * stats.folded[0]:.3f}%")
    assert old > 0.05  # about 13% at this resolution
    assert stats.folded[0] < 0.001
    assert stats.rigid_margin > 0 and "one-to-one" in stats.summary()


def test_mesh_vertices_land_on_their_neutral_at_rest(head_model):
    # A smile, a brow raise and a slightly open jaw, on a turned and shifted head.
    params = [turned(12.0, 0.015, 0.1, expression=[1.0, 1.0, 0.0, 0.0, 0.0, 0.5])]
    settings = guide.GuideSettings(SIGMA, 40, 0.002, True, rigid_fade=0.06)
    posed, neutral, grids = build(head_model, params, settings)
    cell = float(np.max((grids.upper - grids.lower) / (settings.resolution - 1)))
    error = np.linalg.norm(canonical(grids, 0, posed[0]) - neutral[0], axis=1)
    # Within a fraction of a grid cell (trilinear reading of the residual) ...
    assert np.percentile(error, 95) < 0.35 * cell
    assert error.max() < 0.75 * cell
    # ... and far less than the expression moved them.
    moved = np.linalg.norm(neutral[0] - rest_of(grids, 0, posed[0]), axis=1)
    moving = moved > 0.005
    assert moving.sum() > 100
    assert error[moving].mean() < 0.25 * moved[moving].mean()


def test_gradient_reaches_the_field_not_the_guide(frames):
    _, posed, _, grids = frames
    points = jnp.asarray(posed[1][:5][None], jnp.float32)
    jac = jax.jit(jax.jacobian(lambda p, g: guide.apply(g, jnp.array([1]), p)[0]))(points, grids)
    np.testing.assert_array_equal(jac.reshape(15, 15), np.eye(15))  # no gradient through it
    model = guided_model(where="trunk")
    params = jax.jit(lambda key: model_lib.init_params(model, key))(jax.random.PRNGKey(0))
    batch = RayBatch(
        origins=jnp.asarray(posed[0][:4] + [0, 0, 0.5], jnp.float32),
        directions=jnp.array([[0, 0, -1.0]] * 4),
        rgb=jnp.zeros((4, 3)),
        frame=jnp.array([0, 1, 0, 1]),
        warp_id=jnp.zeros(4, jnp.int32),
        appearance_id=jnp.zeros(4, jnp.int32),
        condition=jnp.ones((4, 3)),
        inside=jnp.ones(4),
    )
    loss = lambda p, g: jnp.sum(model.apply({"params": p}, batch, 0.0, False, g)["fine"]["rgb"])
    grads = jax.jit(jax.grad(loss))(params, grids)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert float(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads["fine_field"]))) > 0


# --------------------------------------------------------------------------------------------
# In the model.


FIELD = configs.FieldConfig(
    field_type="triplane",
    depth=1,
    width=8,
    skips=(),
    rgb_width=8,
    viewdir_freqs=0,
    triplane_resolutions=(8,),
    triplane_features=4,
    geometry_features=4,
)


def guided_model(where="none", near=0.3, far=0.9):
    model = configs.ModelConfig(
        coarse=FIELD,
        fine=FIELD,
        num_coarse_samples=32,
        num_fine_samples=8,
        fine_includes_coarse=False,
        appearance_dim=0,
    )
    return model_lib.make_model(
        model,
        configs.WarpConfig(warp_type="none"),
        configs.ExpressionConfig(where=where),
        num_codes=2,
        condition_dim=3,
        near=near,
        far=far,
        use_guide=True,
    )


def test_far_ray_renders_identically_for_two_expressions(frames, head_model):
    params, posed, neutral, _ = frames
    a = build(head_model, params[:1])[2]
    b = build(head_model, params[1:])[2]
    model = guided_model(near=0.03, far=0.07)
    weights = jax.jit(lambda key: model_lib.init_params(model, key))(jax.random.PRNGKey(0))
    lip = posed[0][lower_lip_vertex(head_model)]
    # Ray 0 passes through a lower-lip vertex (samples every ~1 mm around it); ray 1 passes
    # 0.4 m beside the head, beyond the rigid part's reach and the residual's box.
    origins = jnp.array([lip + [0, 0, 0.05], lip + [0.4, 0, 0.05]], jnp.float32)
    batch = RayBatch(
        origins=origins,
        directions=jnp.array([[0, 0, -1.0]] * 2),
        rgb=jnp.zeros((2, 3)),
        frame=jnp.zeros(2, jnp.int32),
        warp_id=jnp.zeros(2, jnp.int32),
        appearance_id=jnp.zeros(2, jnp.int32),
        condition=jnp.zeros((2, 3)),
        inside=jnp.ones(2),
    )
    render = jax.jit(
        lambda g: model.apply({"params": weights}, batch, 0.0, False, g)["fine"]["rgb"]
    )
    out_a, out_b = render(a), render(b)
    np.testing.assert_array_equal(out_a[1], out_b[1])
    assert np.abs(out_a[0] - out_b[0]).max() > 0


# --------------------------------------------------------------------------------------------
# In an experiment: grids of the normalised frame, folding stats and the warp penalty's table.


def test_experiment_penalises_only_what_the_guide_leaves(tmp_path):
    capture = write_capture(tmp_path / "cap", num_train=3, num_val=1)
    # Turn and shift the heads (the tiny model: an octahedron with a jaw vertex).
    for k, path in enumerate(sorted((capture / "flame").glob("*.json"))):
        values = json.loads(path.read_text())
        values.update(global_pose=[0.0, 0.1 * k, 0.05], translation=[0.01 * k, 0.0, 0.0])
        path.write_text(json.dumps(values))
    bindings = ["GuideConfig.enabled = True", "GuideConfig.resolution = 16"]
    exp = experiment.Experiment.create(
        tmp_path / "exp", [TINY], bindings, data_dir=str(capture), write_config=False
    )
    extras = exp.extras()
    assert exp.guide_stats is not None and len(exp.guide_stats.folded) == len(exp.capture.ids)
    assert exp.guide_stats.rigid_margin > 0
    params = [exp.capture.flame_params[i] for i in exp.capture.ids]
    posed, neutral = exp.capture.subject.posed_and_neutral(params, undo_rigid=True)
    table = np.asarray(extras.vertices)
    targets = np.asarray(extras.vertex_targets)
    np.testing.assert_allclose(targets, neutral, atol=1e-6)
    # The guide takes the posed vertices to their canonical positions (the octahedron's
    # rigid motion exactly, its expression to within the grid), so the penalty of an
    # identity warp is the guide's small remainder, not the head's motion.
    remainder = np.abs(table - targets).sum(axis=-1).mean()
    motion = np.abs(posed - neutral).sum(axis=-1).mean()
    assert remainder < 0.2 * motion, (remainder, motion)
    # Cached: a second experiment loads the same grids and statistics.
    again = experiment.Experiment.create(
        tmp_path / "exp", [TINY], bindings, data_dir=str(capture), write_config=False
    )
    grids = again.guide_grids(show_progress=False)
    np.testing.assert_array_equal(grids.values, extras.guide.values)
    np.testing.assert_array_equal(again.guide_stats.folded, exp.guide_stats.folded)


def test_kd_tree_queries_use_every_core(monkeypatch):
    workers = []

    class Recording(cKDTree):
        def query(self, *args, **kwargs):
            workers.append(kwargs.get("workers"))
            return super().query(*args, **kwargs)

    monkeypatch.setattr(guide, "cKDTree", Recording)
    rng = np.random.default_rng(0)
    vertices = 0.05 * rng.normal(size=(20, 3))
    points = 0.05 * rng.normal(size=(50, 3))
    guide.residual_field(vertices, 0.01 * rng.normal(size=(20, 3)), points, 0.01)
    guide.fold_fraction(lambda p: p, vertices, 0.05, 8)
    assert len(workers) == 3 and set(workers) == {-1}


def test_head_rotation_feature_is_the_rotation_in_the_ball_faded_to_zero():
    rotation = np.array([0.1, -0.2, 0.05], np.float32)
    grids = guide.GuideGrids(
        values=jnp.zeros((2, 2, 2, 2, 4), jnp.float16),
        lower=-jnp.ones(3),
        upper=jnp.ones(3),
        rigid=jnp.tile(jnp.eye(3, 4)[None], (2, 1, 1)),
        rotation=jnp.stack([jnp.zeros(3), -jnp.asarray(rotation)]),  # posed -> rest: A = R^-1
        centre=jnp.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]]),
        radius=jnp.array([0.2, 0.2]),
        fade=jnp.asarray(0.4),
    )
    # Distances from the second frame's centre: inside the ball, mid-fade, beyond the fade.
    points = jnp.array([[[0.1, 0.1, 0.0], [0.1, 0.0, 0.4], [0.1, 0.0, 0.61], [0.8, 0.0, 0.0]]])
    feature = np.asarray(guide.head_rotation_feature(grids, jnp.array([1]), points))
    smoothstep = lambda t: 1 - t * t * (3 - 2 * t)  # the rigid part's ball weight
    expected = np.array([1.0, smoothstep(0.5), 0.0, 0.0])
    np.testing.assert_allclose(feature[0], expected[:, None] * rotation, atol=1e-6)
    # A head at rest (frame 0) gives zeros everywhere; no rigid part is an error.
    assert not np.asarray(guide.head_rotation_feature(grids, jnp.array([0]), points)).any()
    with pytest.raises(ValueError, match="rigid part"):
        guide.head_rotation_feature(
            guide.GuideGrids(grids.values, grids.lower, grids.upper), jnp.array([0]), points
        )


# --------------------------------------------------------------------------------------------
# Building some frames only, on every core.


def test_grids_of_some_frames_are_those_of_a_full_build(head_model, frames):
    params, posed, neutral, full = frames
    _, _, some = build_in_flame_units(head_model, params, SETTINGS, frames=[1])
    # Bit for bit: the box and the rigid part come from every frame whichever are built.
    np.testing.assert_array_equal(np.asarray(some.values[1]), np.asarray(full.values[1]))
    assert np.isnan(np.asarray(some.values[0], np.float32)).all()
    for name in ("lower", "upper", "rigid", "rotation", "centre", "radius", "fade"):
        np.testing.assert_array_equal(getattr(some, name), getattr(full, name))
    stats = guide.folded_fraction(some, posed, SIGMA, resolution=16, frames=[1])
    reference = guide.folded_fraction(full, posed, SIGMA, resolution=16)
    assert np.isnan(stats.folded[0]) and stats.folded[1] == reference.folded[1]
    assert "worst: frame 1" in guide.GuideStats(np.array([np.nan, 0.5]), 1.0).summary()
    with pytest.raises(ValueError, match="outside"):
        guide.build_grids(posed, neutral, SETTINGS, frames=[2])
