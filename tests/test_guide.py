# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME-guided deformation prior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flamenerf import configs, flame, guide
from flamenerf import model as model_lib

SETTINGS = guide.GuideSettings(sigma=0.004, resolution=24, move_threshold=0.002, undo_rigid=True)


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
    posed, neutral = guide.posed_and_neutral(head_model, params, undo_rigid=True)
    return params, posed, neutral


def lower_lip_vertex(head_model):
    weights = np.asarray(head_model.weights)
    template = np.asarray(head_model.v_template)
    # The most forward vertex driven fully by the jaw: a lower-lip/chin point.
    jaw = np.where(weights[:, 2] > 0.99)[0]
    return jaw[np.argmax(template[jaw, 2])]


def test_point_on_vertex_lands_on_its_neutral_position(frames):
    _, posed, neutral = frames
    k = 123
    field = guide.frame_field(posed[1], neutral[1] - posed[1], posed[1][k][None], SETTINGS.sigma)
    np.testing.assert_allclose(posed[1][k] + field[0, :3], neutral[1][k], atol=1e-12)
    assert field[0, 3] == 0.0


def test_grid_reproduces_the_field_at_grid_points(frames):
    _, posed, neutral = frames
    grids = guide.build_grids(posed, neutral, SETTINGS)
    points = guide.grid_points(grids.lower, grids.upper, SETTINGS.resolution)
    sample = points[::5, ::7, ::3].reshape(1, -1, 3)
    displacement, distance = guide.lookup(grids, jnp.array([1]), jnp.asarray(sample, jnp.float32))
    exact = guide.frame_field(posed[1], neutral[1] - posed[1], sample[0], SETTINGS.sigma)
    np.testing.assert_allclose(displacement[0], exact[:, :3], atol=2e-4)  # float16 storage
    np.testing.assert_allclose(distance[0], exact[:, 3], rtol=2e-3, atol=1e-4)


def test_far_point_does_not_move(frames):
    _, posed, neutral = frames
    grids = guide.build_grids(posed, neutral, SETTINGS)
    far = jnp.array([[[0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]])
    displacement, distance = guide.lookup(grids, jnp.array([0]), far)
    np.testing.assert_array_equal(displacement, 0.0)
    assert np.all(np.asarray(distance) == guide.FAR)
    # Inside the box but far (>> sigma) from every vertex: the fade makes it ~0.
    field = guide.frame_field(
        posed[0], neutral[0] - posed[0], posed[0].mean(axis=0)[None], SETTINGS.sigma
    )
    assert np.abs(field[0, :3]).max() < 1e-8


def test_jaw_openings_move_a_lower_lip_point_differently(frames, head_model):
    _, posed, neutral = frames
    k = lower_lip_vertex(head_model)
    point = 0.5 * (posed[0][k] + posed[1][k])
    moves = [
        guide.frame_field(p, n - p, point[None], 0.05)[0, :3]
        for p, n in zip(posed, neutral, strict=True)
    ]
    assert np.linalg.norm(moves[1] - moves[0]) > 1e-3


def test_neutral_undoes_rigid_motion_and_expression(frames, head_model):
    params, _, neutral = frames
    rest = flame.forward(head_model, flame.FlameParams()).vertices
    np.testing.assert_allclose(neutral[0], rest, atol=1e-6)
    np.testing.assert_allclose(neutral[1], rest, atol=1e-6)
    keep_pose = guide.neutral_params(params[1], undo_rigid=False)
    assert keep_pose.global_pose is not None and keep_pose.expression is None


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
    _, posed, neutral = frames
    a = guide.build_grids(posed[:1], neutral[:1], SETTINGS)
    b = guide.build_grids(posed[1:], neutral[1:], SETTINGS)
    model = guided_model(near=0.03, far=0.07)
    params = model_lib.init_params(model, jax.random.PRNGKey(0))
    lip = posed[0][lower_lip_vertex(head_model)]
    # Ray 0 passes through a lower-lip vertex (samples every ~1 mm around it); ray 1 passes
    # 0.3 m beside the head, farther than 3 sigma from both meshes.
    origins = jnp.array([lip + [0, 0, 0.05], lip + [0.3, 0, 0.05]], jnp.float32)
    batch = {
        "origins": origins,
        "directions": jnp.array([[0, 0, -1.0]] * 2),
        "frame": jnp.zeros(2, jnp.int32),
        "warp_id": jnp.zeros(2, jnp.int32),
        "appearance_id": jnp.zeros(2, jnp.int32),
        "condition": jnp.zeros((2, 3)),
        "inside": jnp.ones(2),
    }
    out_a = model.apply({"params": params}, batch, 0.0, False, a)["fine"]["rgb"]
    out_b = model.apply({"params": params}, batch, 0.0, False, b)["fine"]["rgb"]
    np.testing.assert_array_equal(out_a[1], out_b[1])
    assert np.abs(out_a[0] - out_b[0]).max() > 0


def test_gradient_reaches_the_field_not_the_lookup(frames):
    _, posed, neutral = frames
    grids = guide.build_grids(posed, neutral, SETTINGS)
    points = jnp.asarray(posed[0][:5][None], jnp.float32)
    grad = jax.grad(lambda p: jnp.sum(guide.lookup(grids, jnp.array([0]), p)[0]))(points)
    np.testing.assert_array_equal(grad, 0.0)  # no gradient through the look-up
    model = guided_model(where="trunk")
    params = model_lib.init_params(model, jax.random.PRNGKey(0))
    batch = {
        "origins": jnp.asarray(posed[0][:4] + [0, 0, 0.5], jnp.float32),
        "directions": jnp.array([[0, 0, -1.0]] * 4),
        "frame": jnp.array([0, 1, 0, 1]),
        "warp_id": jnp.zeros(4, jnp.int32),
        "appearance_id": jnp.zeros(4, jnp.int32),
        "condition": jnp.ones((4, 3)),
        "inside": jnp.ones(4),
    }
    grads = jax.grad(
        lambda p: jnp.sum(model.apply({"params": p}, batch, 0.0, False, grids)["fine"]["rgb"])
    )(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert float(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads["fine_field"]))) > 0
