# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME-in-NeRF model: spatial prior, gradients, shapes, ablation switches."""

import dataclasses
import functools

import chex
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flamenerf import configs
from flamenerf.datasets.rays import RayBatch
from flamenerf.nerf import guide, volume
from flamenerf.nerf import model as model_lib

FIELD = configs.FieldConfig(
    field_type="triplane",
    depth=1,
    width=16,
    skips=(),
    rgb_width=16,
    viewdir_freqs=2,
    triplane_resolutions=(8, 16),
    triplane_features=4,
    geometry_features=7,
)
MODEL = configs.ModelConfig(
    coarse=FIELD,
    fine=FIELD,
    num_coarse_samples=8,
    num_fine_samples=6,
    fine_includes_coarse=False,
    appearance_dim=3,
)
WARP = configs.WarpConfig(warp_type="se3", code_dim=2, num_freqs=2, depth=2, width=16, skips=())
EXPRESSION = configs.ExpressionConfig(where="trunk", use_jaw=True, spatial_prior="silhouette")
N = 6


def make(model=MODEL, warp=WARP, expression=EXPRESSION, **kwargs):
    return model_lib.make_model(
        model, warp, expression, num_codes=4, condition_dim=5, near=0.5, far=2.0, **kwargs
    )


def rays(condition, inside, n=N):
    key = jax.random.PRNGKey(3)
    directions = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (n, 1)) + 0.1 * jax.random.normal(
        key, (n, 3)
    )
    return RayBatch(
        origins=jnp.tile(jnp.array([[0.0, 0.0, -1.2]]), (n, 1)),
        directions=directions / jnp.linalg.norm(directions, axis=-1, keepdims=True),
        rgb=jnp.zeros((n, 3)),  # not read by the model
        frame=jnp.zeros((n,), jnp.int32),
        warp_id=jnp.arange(n) % 4,
        appearance_id=jnp.arange(n) % 4,
        condition=jnp.broadcast_to(jnp.asarray(condition, jnp.float32), (n, 5)),
        inside=jnp.asarray(inside, jnp.float32),
    )


def replace(batch, **fields):
    """`batch` with some fields replaced."""
    return batch._replace(**fields)


# Compiled, once per distinct model (modules compare and hash by their fields): run op by op,
# the first initialisation and render of a model took 20 and 15 s.
@functools.partial(jax.jit, static_argnums=0)
def _init(model, key):
    return model_lib.init_params(model, key)


def init(model):
    """The model's parameters from key 0."""
    return _init(model, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def model_and_params():
    model = make()
    return model, init(model)


@functools.partial(jax.jit, static_argnums=0)
def render(model, params, batch, grids=None):
    return model.apply({"params": params}, batch, 1.0, False, grids)


def test_output_shapes(model_and_params):
    model, params = model_and_params
    out = render(model, params, rays(np.zeros(5), np.ones(N)))
    assert out["coarse"]["rgb"].shape == (N, 3) and out["coarse"]["weights"].shape == (N, 8)
    assert out["fine"]["rgb"].shape == (N, 3) and out["fine"]["z_vals"].shape == (N, 6)
    assert out["fine"]["depth"].shape == (N,) and out["fine"]["acc"].shape == (N,)


@pytest.mark.parametrize("spacing", ["linear", "disparity", "contracted"])
def test_coarse_samples_follow_the_configured_spacing(model_and_params, spacing):
    """The model samples as `ModelConfig.spacing` says (the sampler's own tests check the
    spacings); the parameters do not depend on it, so the shared ones serve."""
    _, params = model_and_params
    model = make(dataclasses.replace(MODEL, spacing=spacing))
    batch = rays(np.zeros(5), np.ones(N))
    out = render(model, params, batch)
    expected, _ = volume.sample_along_rays(
        jax.random.PRNGKey(0), batch.origins, batch.directions, 8, 0.5, 2.0, False, spacing
    )
    np.testing.assert_allclose(out["coarse"]["z_vals"], expected, rtol=1e-6)
    assert out["fine"]["z_vals"].shape == (N, 6)
    for level in ("coarse", "fine"):
        assert np.all(np.isfinite(np.asarray(out[level]["rgb"])))
    if spacing == "linear":
        np.testing.assert_allclose(out["coarse"]["z_vals"][0], np.linspace(0.5, 2.0, 8), rtol=1e-6)


def test_spatial_prior_outside_identical_inside_not(model_and_params):
    model, params = model_and_params
    inside = np.array([1, 0, 1, 0, 1, 0])
    a = render(model, params, rays(np.zeros(5), inside))["fine"]["rgb"]
    b = render(model, params, rays(np.full(5, 2.0), inside))["fine"]["rgb"]
    outside = inside == 0
    np.testing.assert_array_equal(a[outside], b[outside])
    assert np.all(np.abs(a[~outside] - b[~outside]).max(axis=-1) > 1e-6)


def test_gradients_reach_every_parameter_group(model_and_params):
    model, params = model_and_params
    batch = rays(np.ones(5), np.ones(N))

    def loss(p):
        out = model.apply(
            {"params": p},
            batch,
            1.0,
            True,
            rngs={"sampling": jax.random.PRNGKey(1), "condition": jax.random.PRNGKey(2)},
        )
        return jnp.sum(out["fine"]["rgb"] ** 2) + jnp.sum(out["coarse"]["rgb"] ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    groups = {"warp_codes", "warp_field", "appearance_codes", "coarse_field", "fine_field"}
    assert set(grads) == groups
    for name in groups:
        norm = sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(grads[name]))
        assert np.isfinite(norm) and norm > 0, name
    # The appearance codes used by the batch (ids 0..3) all receive gradient (Nerfies bug).
    table = grads["appearance_codes"]["embed"]["embedding"]
    assert np.all(np.abs(np.asarray(table)).sum(axis=-1) > 0)


PROPOSAL = dataclasses.replace(MODEL, sampler="proposal")
COLOUR_LAYERS = {"bottleneck", "rgb_0", "rgb"}  # the colour branch of a (1-layer) field


@pytest.fixture(scope="module")
def proposal_and_params():
    """A proposal model whose conditioning has a learned projection (shared by both levels)."""
    model = make(PROPOSAL, expression=dataclasses.replace(EXPRESSION, projection_dim=3))
    return model, init(model)


def test_proposal_level_has_no_colour_branch(proposal_and_params):
    model, params = proposal_and_params
    assert not COLOUR_LAYERS & set(params["coarse_field"])  # never built, never evaluated
    assert {"sigma", "trunk_0", "triplane"} <= set(params["coarse_field"])
    assert COLOUR_LAYERS <= set(params["fine_field"])
    out = render(model, params, rays(np.ones(5), np.ones(N)))
    assert set(out["coarse"]) == {"depth", "acc", "weights", "z_vals", "points", "warp_inputs"}
    assert out["coarse"]["weights"].shape == (N, 8)
    assert out["fine"]["rgb"].shape == (N, 3) and out["fine"]["z_vals"].shape == (N, 6)


def test_proposal_density_is_the_coarse_fields(model_and_params):
    """The proposal level is the coarse level without colour: given the coarse field's density
    parameters it gives the coarse level's weights, hence the same fine samples and render."""
    model, params = model_and_params
    proposal = make(PROPOSAL)
    density = {k: v for k, v in params["coarse_field"].items() if k not in COLOUR_LAYERS}
    proposal_params = dict(params, coarse_field=density)
    own = jax.eval_shape(functools.partial(model_lib.init_params, proposal), jax.random.PRNGKey(0))
    assert jax.tree.structure(proposal_params) == jax.tree.structure(own)
    batch = rays(np.ones(5), np.ones(N))
    a, b = render(model, params, batch), render(proposal, proposal_params, batch)
    for key in ("weights", "z_vals", "depth", "acc"):
        np.testing.assert_allclose(b["coarse"][key], a["coarse"][key], rtol=1e-6, atol=1e-7)
    for key in ("rgb", "z_vals", "weights"):
        np.testing.assert_allclose(b["fine"][key], a["fine"][key], rtol=1e-5, atol=1e-6)


def test_renders_without_coarse_colour_give_the_same_fine_level(model_and_params):
    """`coarse_rgb=False` (the renderer's call) skips the coarse colour branch only: the
    coarse weights, hence the fine samples and everything the fine level renders, agree."""
    model, params = model_and_params
    batch = rays(np.full(5, 0.3), np.array([1, 0, 1, 0, 1, 1], np.float32))
    full = render(model, params, batch)
    fast = jax.jit(lambda p, b: model.apply({"params": p}, b, 1.0, False, None, coarse_rgb=False))(
        params, batch
    )
    assert "rgb" not in fast["coarse"] and "rgb" in full["coarse"]
    for key in ("weights", "z_vals", "depth", "acc"):
        np.testing.assert_allclose(fast["coarse"][key], full["coarse"][key], rtol=1e-6, atol=1e-7)
    for key in ("rgb", "depth", "acc", "z_vals", "weights"):
        np.testing.assert_allclose(fast["fine"][key], full["fine"][key], rtol=1e-6, atol=1e-7)


def test_proposal_without_the_warp_reads_the_points_before_it(proposal_and_params):
    """`ModelConfig.proposal_warp = False`: the proposal level's weights do not depend on the
    warp codes (the fine level's still do), and equal the proposal's of a model without a
    learned warp whose proposal field has the same parameters."""
    model, params = proposal_and_params
    # Codes and warp away from their initial (identity) values, so that the warp moves points.
    keys = iter(jax.random.split(jax.random.PRNGKey(7), 64))
    params = dict(params)
    for name in ("warp_codes", "warp_field"):
        params[name] = jax.tree.map(
            lambda v: v + 0.3 * jax.random.normal(next(keys), v.shape), params[name]
        )
    unwarped = make(
        dataclasses.replace(PROPOSAL, proposal_warp=False),
        expression=dataclasses.replace(EXPRESSION, projection_dim=3),
    )
    batch = rays(np.ones(5), np.ones(N))
    other = replace(batch, warp_id=(batch.warp_id + 1) % 4)
    for m, coarse_moves in ((model, True), (unwarped, False)):
        a, b = render(m, params, batch), render(m, params, other)
        moved = np.abs(a["coarse"]["weights"] - b["coarse"]["weights"]).max()
        assert (moved > 1e-6) == coarse_moves, moved
        assert np.abs(a["fine"]["rgb"] - b["fine"]["rgb"]).max() > 1e-6
    static = make(
        PROPOSAL,
        warp=dataclasses.replace(WARP, warp_type="none"),
        expression=dataclasses.replace(EXPRESSION, projection_dim=3),
    )
    static_params = {k: v for k, v in params.items() if k not in ("warp_codes", "warp_field")}
    a, b = render(unwarped, params, batch), render(static, static_params, batch)
    np.testing.assert_allclose(a["coarse"]["weights"], b["coarse"]["weights"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(a["coarse"]["z_vals"], b["coarse"]["z_vals"])


def test_proposal_field_learns_from_its_own_weights_alone(proposal_and_params):
    """The proposal's outputs train its field only (not the warp, the codes or the
    conditioning's projection, which the fine level trains); the fine render trains
    everything but the proposal field."""
    model, params = proposal_and_params
    batch = rays(np.ones(5), np.ones(N))
    rngs = {"sampling": jax.random.PRNGKey(1), "condition": jax.random.PRNGKey(2)}
    cotangent = jax.random.normal(jax.random.PRNGKey(6), (N, 8))

    def outputs(p):
        return model.apply({"params": p}, batch, 1.0, True, rngs=rngs)

    def norms(grads):
        return {k: sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(v)) for k, v in grads.items()}

    from_proposal = norms(
        jax.jit(jax.grad(lambda p: jnp.sum(outputs(p)["coarse"]["weights"] * cotangent)))(params)
    )
    from_fine = norms(jax.jit(jax.grad(lambda p: jnp.sum(outputs(p)["fine"]["rgb"] ** 2)))(params))
    groups = {"warp_codes", "warp_field", "appearance_codes", "projection", "fine_field"}
    assert set(from_proposal) == groups | {"coarse_field"}
    assert from_proposal["coarse_field"] > 0
    assert all(from_proposal[name] == 0.0 for name in groups), from_proposal
    assert from_fine["coarse_field"] == 0.0
    assert all(np.isfinite(from_fine[name]) and from_fine[name] > 0 for name in groups), from_fine


def test_ablation_switches_change_only_what_they_should():
    no_expr = make(expression=dataclasses.replace(EXPRESSION, where="none"))
    params = init(no_expr)
    a = render(no_expr, params, rays(np.zeros(5), np.ones(N)))["fine"]["rgb"]
    b = render(no_expr, params, rays(np.full(5, 3.0), np.ones(N)))["fine"]["rgb"]
    np.testing.assert_array_equal(a, b)  # Nerfies: the expression is ignored
    assert "warp_field" in params and "appearance_codes" in params

    no_prior = make(expression=dataclasses.replace(EXPRESSION, spatial_prior="none"))
    params = init(no_prior)
    a = render(no_prior, params, rays(np.zeros(5), np.zeros(N)))["fine"]["rgb"]
    b = render(no_prior, params, rays(np.full(5, 2.0), np.zeros(N)))["fine"]["rgb"]
    assert np.abs(a - b).max() > 1e-6  # without the prior, outside rays see the expression

    static = make(warp=dataclasses.replace(WARP, warp_type="none"))
    params = init(static)
    assert "warp_field" not in params and "warp_codes" not in params
    assert "coarse_field" in params


def test_warp_starts_as_identity(model_and_params):
    model, params = model_and_params
    points = jax.random.uniform(jax.random.PRNGKey(4), (N, 7, 3), minval=-1, maxval=1)
    warped = model.apply(
        {"params": params}, points, jnp.arange(N) % 4, 0.0, method=model_lib.FlameNerf.warp_points
    )
    assert float(jnp.abs(warped - points).max()) < 1e-3


def test_configuration_needing_grids_refuses_none():
    guided = make(use_guide=True)
    params = init(guided)
    with pytest.raises(ValueError, match="needs guide_grids"):
        render(guided, params, rays(np.zeros(5), np.ones(N)))


def rigid_grids(rotation, centre, radius=0.3, fade=0.3):
    """Two frames of guide grids, no residual, the head at rest in frame 0 and turned by
    `rotation` (axis-angle; posed -> rest, about `centre`) in frame 1."""
    return guide.GuideGrids(
        values=jnp.zeros((2, 2, 2, 2, 4), jnp.float16).at[..., 3].set(guide.FAR),
        lower=-jnp.ones(3),
        upper=jnp.ones(3),
        rigid=jnp.tile(jnp.eye(3, 4)[None], (2, 1, 1)),  # the ball's centre stays put
        rotation=jnp.array([[0.0, 0.0, 0.0], rotation], jnp.float32),
        centre=jnp.tile(jnp.asarray(centre, jnp.float32)[None], (2, 1)),
        radius=jnp.full((2,), radius),
        fade=jnp.asarray(fade),
    )


def test_pose_shading_reaches_colour_only():
    field = model_lib.RadianceField(FIELD)
    points = jax.random.normal(jax.random.PRNGKey(1), (N, 4, 3))
    viewdirs = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (N, 1))
    shading = jax.random.normal(jax.random.PRNGKey(2), (N, 4, 3))
    variables = jax.jit(field.init)(jax.random.PRNGKey(0), points, viewdirs, None, None, shading)
    # Its layer starts at zero; give it values as training would.
    kernel = variables["params"]["pose_shading"]["kernel"]
    trained = jax.random.normal(jax.random.PRNGKey(3), kernel.shape)
    variables = {"params": {**variables["params"], "pose_shading": {"kernel": trained}}}
    apply = jax.jit(lambda s: field.apply(variables, points, viewdirs, None, None, s))
    rgb_a, sigma_a = apply(shading)
    rgb_b, sigma_b = apply(0 * shading)
    np.testing.assert_array_equal(sigma_a, sigma_b)
    assert np.abs(rgb_a - rgb_b).max() > 1e-4


@pytest.mark.parametrize("rgb_depth", [1, 0])
def test_pose_shading_starts_as_the_field_without_it(rgb_depth):
    """Its layer is the only new parameter (the others initialise to the same values) and
    starts at zero: the colour equals the plain field's for any rotation, and a call without
    shading (as `export` bakes) uses the same parameters. With no hidden colour layer it adds
    to the colour's logits."""
    config = dataclasses.replace(FIELD, rgb_depth=rgb_depth)
    field = model_lib.RadianceField(config)
    points = jax.random.normal(jax.random.PRNGKey(1), (N, 4, 3))
    viewdirs = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (N, 1))
    shading = jax.random.normal(jax.random.PRNGKey(2), (N, 4, 3))
    key = jax.random.PRNGKey(0)
    plain = field.init(key, points, viewdirs, None, None)
    shaded = field.init(key, points, viewdirs, None, None, shading)
    assert set(shaded["params"]) - set(plain["params"]) == {"pose_shading"}
    width = FIELD.rgb_width if rgb_depth else 3
    assert shaded["params"]["pose_shading"]["kernel"].shape == (3, width)
    np.testing.assert_array_equal(shaded["params"]["pose_shading"]["kernel"], 0.0)
    chex.assert_trees_all_equal(
        {k: v for k, v in shaded["params"].items() if k != "pose_shading"}, plain["params"]
    )
    rgb_plain, sigma_plain = field.apply(plain, points, viewdirs, None, None)
    rgb_shaded, sigma_shaded = field.apply(shaded, points, viewdirs, None, None, shading)
    rgb_none, _ = field.apply(shaded, points, viewdirs, None, None)
    np.testing.assert_array_equal(sigma_shaded, sigma_plain)
    np.testing.assert_array_equal(rgb_shaded, rgb_plain)
    np.testing.assert_array_equal(rgb_none, rgb_plain)


def test_pose_shading_changes_nothing_beyond_the_head_ball():
    model = make(model=dataclasses.replace(MODEL, pose_shading=True), use_guide=True)
    params = init(model)
    # Its layers start at zero; give them values as training would.
    params = jax.tree_util.tree_map_with_path(
        lambda path, leaf: (
            jax.random.normal(jax.random.PRNGKey(4), leaf.shape)
            if "pose_shading" in jax.tree_util.keystr(path)
            else leaf
        ),
        params,
    )
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    assert sum("pose_shading" in p for p in paths) == 2  # the coarse and the fine field
    batch = rays(np.zeros(5), np.ones(N))
    frame1 = replace(batch, frame=jnp.ones((N,), jnp.int32))
    # The ball about the origin, which every test ray crosses: the turned frame looks different.
    near = rigid_grids([0.0, 0.3, 0.0], [0.0, 0.0, 0.0])
    a, b = render(model, params, batch, near), render(model, params, frame1, near)
    assert np.abs(a["fine"]["rgb"] - b["fine"]["rgb"]).max() > 1e-4
    # The ball far from every ray: the two frames render identically.
    far = rigid_grids([0.0, 0.3, 0.0], [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(
        render(model, params, batch, far)["fine"]["rgb"],
        render(model, params, frame1, far)["fine"]["rgb"],
    )


def test_pose_shading_needs_the_guides_rigid_part():
    unguided = make(model=dataclasses.replace(MODEL, pose_shading=True))
    with pytest.raises(ValueError, match="pose_shading"):
        init(unguided)


def test_mesh_prior_zeroes_condition_far_from_mesh():
    expression = dataclasses.replace(EXPRESSION, spatial_prior="mesh")
    model = make(expression=expression, mesh_radius=0.2)
    params = init(model)
    # A "mesh" of one vertex at the origin: grid distance = |x|; the test rays pass near it
    # (rays 0, 2, 4 through the origin region) or not at all (box far away for the others).
    posed = np.zeros((1, 1, 3))
    grids = guide.build_grids(posed, posed, guide.GuideSettings(0.1, 16, 0.0, True))
    near_ray = rays(np.zeros(5), np.ones(N))
    a = render(model, params, near_ray, grids)["fine"]["rgb"]
    b = render(model, params, rays(np.full(5, 2.0), np.ones(N)), grids)["fine"]["rgb"]
    assert np.abs(a - b).max() > 1e-6  # samples near the vertex see the expression
    far = dataclasses.replace(model, mesh_radius=1e-6)
    a = render(far, params, near_ray, grids)["fine"]["rgb"]
    b = render(far, params, rays(np.full(5, 2.0), np.ones(N)), grids)["fine"]["rgb"]
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Per-frame codes only for what changes per frame: the warp region and colour-only appearance.

REGION = ((-0.2, -0.2, -0.2), (0.2, 0.2, 0.2))


def test_region_weight_is_one_inside_zero_beyond_fade_and_smooth():
    lower, upper = np.array(REGION[0]), np.array(REGION[1])
    points = jnp.array([[0.0, 0.0, 0.0], [0.2, 0.2, 0.2], [0.25, 0, 0], [0.3, 0, 0], [0.5, 0.5, 0]])
    w = model_lib.region_weight(points, lower, upper, 0.1)
    # Inside and on the box: 1; 0.05 outside (half the fade): smoothstep(0.5) = 0.5; beyond: 0.
    np.testing.assert_allclose(w, [1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-6)
    grad = jax.vmap(jax.grad(lambda p: model_lib.region_weight(p, lower, upper, 0.1)))(points)
    assert np.all(np.isfinite(grad))
    # Analytic derivative of smoothstep at t = 0.5: 6 t (1 - t) / fade = 15 along -x.
    np.testing.assert_allclose(grad[2], [-15.0, 0.0, 0.0], atol=1e-4)


@pytest.fixture(scope="module")
def confined_model_and_params():
    model = make(warp_region=REGION, warp_fade=0.1)
    params = init(model)
    # Make the warp move points visibly (its output layer starts tiny) and the field vary.
    scale = {"warp_field": 300.0, "warp_codes": 100.0, "triplane": 3.0}
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            x * next((v for k, v in scale.items() if k in jax.tree_util.keystr(path)), 1.0)
        ),
        params,
    )
    return model, params


def test_confined_warp_is_identity_beyond_fade_and_moves_inside(confined_model_and_params):
    model, params = confined_model_and_params
    points = jnp.array([[0.0, 0.05, 0.1], [0.1, -0.1, 0.0], [0.31, 0.0, 0.0], [1.5, -2.0, 3.0]])
    ids = jnp.array([0, 1, 2, 3])
    warped = model.apply(
        {"params": params}, points, ids, jnp.asarray(2.0), method=model_lib.FlameNerf.warp_points
    )
    np.testing.assert_array_equal(warped[2:], points[2:])
    assert np.all(np.linalg.norm(warped[:2] - points[:2], axis=-1) > 1e-3)


def test_confined_warp_jacobian_matches_autodiff(confined_model_and_params):
    model, params = confined_model_and_params
    # Points inside, in the fade shell and outside; code 1 for every point.
    points = jnp.array([[0.0, 0.05, 0.1], [0.24, 0.1, -0.05], [0.22, 0.27, 0.0], [0.5, 0, 0]])
    ids = jnp.ones((4,), jnp.int32)
    alpha = jnp.asarray(2.0)

    def warp_one(p):
        return model.apply(
            {"params": params}, p[None], ids[:1], alpha, method=model_lib.FlameNerf.warp_points
        )[0]

    expected = jax.jit(jax.vmap(jax.jacfwd(warp_one)))(points)
    found = jax.jit(
        lambda p: model.apply(
            {"params": params}, p, ids, alpha, method=model_lib.FlameNerf.warp_jacobian
        )
    )(points)
    np.testing.assert_allclose(found, expected, rtol=1e-2, atol=1e-2)


def test_static_part_unchanged_by_warp_codes(confined_model_and_params):
    """Two frames' warp codes rendered from one camera: rays that never enter the warp region
    (plus fade) give identical pixels; rays through the head differ."""
    model, params = confined_model_and_params
    n = 4
    # Rays along +z at x = 0 (through the box) and at x = 0.6, 0.8, -0.7 (miss box + fade).
    origins = jnp.array([[0.0, 0.0, -1.2], [0.6, 0.0, -1.2], [0.8, 0.1, -1.2], [-0.7, 0, -1.2]])
    batch = replace(
        rays(np.zeros(5), np.zeros(n), n=n),
        origins=origins,
        directions=jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (n, 1)),
    )
    outputs = []
    for code in (0, 3):
        frame = replace(batch, warp_id=jnp.full((n,), code), appearance_id=jnp.zeros((n,), int))
        outputs.append(render(model, params, frame)["fine"]["rgb"])
    np.testing.assert_array_equal(outputs[0][1:], outputs[1][1:])
    assert np.abs(outputs[0][0] - outputs[1][0]).max() > 1e-3


def test_warp_on_the_region_alone_renders_and_trains_the_same(confined_model_and_params):
    """The warp's MLP on the samples in the region only (capacity 1: always; 0.01: every block
    overflows, so it runs everywhere) gives the render and gradients of running it on every
    sample; the rays cross the region, so both branches have samples in it and out of it."""
    model, params = confined_model_and_params
    with_capacity = lambda c: model.clone(
        warp=dataclasses.replace(WARP, coarse_capacity=c, fine_capacity=c)
    )
    full, part = with_capacity(0.0), with_capacity(1.0)
    batch = rays(np.zeros(5), np.ones(64), n=64)
    expected = render(full, params, batch)
    inside = model_lib.region_weight(expected["coarse"]["warp_inputs"], *REGION, 0.1) > 0
    assert 0 < float(jnp.mean(inside)) < 1
    for other in (part, with_capacity(0.01)):
        found = render(other, params, batch)
        for level in ("coarse", "fine"):
            np.testing.assert_allclose(
                found[level]["rgb"], expected[level]["rgb"], rtol=1e-6, atol=1e-7
            )

    def gradients(m):
        rngs = {"sampling": jax.random.PRNGKey(1), "condition": jax.random.PRNGKey(2)}
        out = lambda p: m.apply({"params": p}, batch, 1.0, True, rngs=rngs)["fine"]["rgb"]
        return jax.jit(jax.grad(lambda p: jnp.sum(out(p) ** 2)))(params)

    reference, found = gradients(full), gradients(part)
    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(found), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * float(jnp.abs(a).max()))
    assert float(jnp.abs(reference["warp_field"]["v"]["output"]["kernel"]).max()) > 0


def test_color_appearance_is_affine_and_starts_as_identity():
    model_cfg = dataclasses.replace(MODEL, appearance_mode="color")
    model = make(model=model_cfg)
    params = init(model)
    batch = rays(np.zeros(5), np.ones(N))
    base = render(model, params, batch)["fine"]
    # Zero-initialised transform: the identity for every code.
    same_codes = replace(batch, appearance_id=jnp.zeros((N,), int))
    np.testing.assert_allclose(render(model, params, same_codes)["fine"]["rgb"], base["rgb"])
    # A set transform acts as rgb * (1 + g) + b * acc, for exactly the rays of that code.
    bias = np.zeros(6, np.float32)
    bias[:3], bias[3:] = [0.5, -0.2, 0.1], [0.05, 0.0, -0.1]
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            jnp.asarray(bias)
            if "color_transform" in jax.tree_util.keystr(path) and x.ndim == 1
            else x
        ),
        params,
    )
    out = render(model, params, batch)["fine"]
    expected = base["rgb"] * (1 + bias[:3]) + bias[3:] * base["acc"][:, None]
    np.testing.assert_allclose(out["rgb"], expected, atol=1e-6)
    # The field itself never sees the appearance code: no colour-branch input for it.
    assert "color_transform" in params


# ---------------------------------------------------------------------------------------------
# Conditioning noise scaled per component by its spread over the training frames.

SPREAD = (0.8, 0.0, 0.05, 2.0, 0.0)  # two constant components (zero spread)


def noisy_condition(noise_scale, spread, n=20000, key=7):
    """The conditioning vector the field sees in training (noise on, no prior, no dropout)."""
    expression = dataclasses.replace(
        EXPRESSION, spatial_prior="none", noise_std=0.5, noise_scale=noise_scale
    )
    model = make(expression=expression, condition_spread=spread)
    params = init(model)
    base = np.array([0.3, -1.0, 0.1, 2.0, 0.0], np.float32)
    batch = rays(base, np.ones(n), n=n)  # the model's conditioning reads condition and inside
    out = model.apply(
        {"params": params},
        batch,
        True,
        method=model_lib.FlameNerf.condition,
        rngs={"condition": jax.random.PRNGKey(key)},
    )
    return np.asarray(out, np.float64) - base


def test_spread_noise_has_each_components_scale():
    n = 20000
    noise = noisy_condition("spread", SPREAD, n)
    expected = 0.5 * np.array(SPREAD)
    moving = expected > 0
    # The sample std of n normal draws has relative standard error 1 / sqrt(2 n) (0.5%).
    np.testing.assert_allclose(
        noise[:, moving].std(axis=0), expected[moving], rtol=5 / np.sqrt(2 * n)
    )
    assert np.all(np.abs(noise[:, moving].mean(axis=0)) < 5 * expected[moving] / np.sqrt(n))
    np.testing.assert_array_equal(noise[:, ~moving], 0.0)  # constant components: no noise


def test_absolute_noise_is_unchanged_and_the_same_for_every_component():
    n = 20000
    absolute = noisy_condition("absolute", None, n)
    np.testing.assert_allclose(absolute.std(axis=0), 0.5, rtol=5 / np.sqrt(2 * n))
    # The same draws as "spread" with a unit spread: only the scale differs.
    ones = noisy_condition("spread", (1.0,) * 5, n)
    np.testing.assert_array_equal(absolute, ones)
    scaled = noisy_condition("spread", SPREAD, n)
    np.testing.assert_allclose(scaled, absolute * np.array(SPREAD), rtol=1e-5, atol=1e-6)


def test_condition_spread_against_numpy_and_make_model_checks():
    rng = np.random.default_rng(0)
    conditions = np.stack(
        [
            rng.normal(0, 1.5, 50),
            np.full(50, 0.2),
            rng.uniform(0, 0.35, 50),
            1e-8 * rng.normal(size=50),
        ],
        axis=1,
    )
    spread = model_lib.condition_spread(conditions)
    expected = np.std(conditions, axis=0)
    expected[[1, 3]] = 0.0  # below the floor: no noise
    np.testing.assert_allclose(spread, expected, rtol=1e-12)
    spread_noise = dataclasses.replace(EXPRESSION, noise_std=0.5, noise_scale="spread")
    with pytest.raises(ValueError, match="noise_scale = 'spread' needs"):
        make(expression=spread_noise)
    with pytest.raises(ValueError, match="condition_spread has 3 components, expected"):
        make(expression=spread_noise, condition_spread=(1.0, 1.0, 1.0))
    make(expression=dataclasses.replace(spread_noise, noise_std=0.0))  # no noise: not needed


def test_experiment_passes_the_training_frames_spread(tmp_path):
    from capture_util import write_capture

    from flamenerf.training import experiment

    capture = write_capture(tmp_path / "cap", num_train=4, num_val=2)
    exp = experiment.Experiment.create(
        tmp_path / "exp",
        [],
        ["ExpressionConfig.noise_std = 0.5", "ExpressionConfig.noise_scale = 'spread'"],
        data_dir=str(capture),
        write_config=False,
    )
    # Training frames k = 0..3: expression (0.1 k, -0.2, 0), jaw (0.05 k, 0, 0) (capture_util).
    k = np.arange(4.0)
    expected = [np.std(0.1 * k), 0.0, 0.0, np.std(0.05 * k), 0.0, 0.0]
    np.testing.assert_allclose(exp.model.condition_spread, expected, rtol=1e-5)
    exp.close()
    gin.clear_config()  # the bindings above must not reach later tests' configs
