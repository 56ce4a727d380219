# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Loss terms against numpy references, and the registry: names, weights, weight 0 is off."""

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flamenerf import configs, schedules
from flamenerf.datasets.rays import RayBatch
from flamenerf.nerf import model as model_lib
from flamenerf.training import losses

FIELD = configs.FieldConfig(
    field_type="triplane",
    depth=1,
    width=8,
    skips=(),
    rgb_width=8,
    viewdir_freqs=1,
    triplane_resolutions=(4, 8),
    triplane_features=2,
    geometry_features=3,
)
MODEL = configs.ModelConfig(
    coarse=FIELD,
    fine=FIELD,
    num_coarse_samples=4,
    num_fine_samples=4,
    fine_includes_coarse=False,
    appearance_dim=0,
)
WARP = configs.WarpConfig(
    warp_type="translation", code_dim=2, num_freqs=1, depth=1, width=8, skips=()
)
NO_EXPRESSION = configs.ExpressionConfig(where="none")
N, S, F, V = 8, 4, 3, 5  # rays, samples per ray, frames, FLAME vertices
OFF = configs.LossConfig(coarse_weight=0.0, fine_weight=0.0)  # every weight 0
RNGS = {"sampling": jax.random.PRNGKey(1), "condition": jax.random.PRNGKey(2)}


def make_model(warp=WARP):
    return model_lib.make_model(
        MODEL, warp, NO_EXPRESSION, num_codes=F, condition_dim=2, near=0.5, far=2.0
    )


def init(model):
    return jax.jit(functools.partial(model_lib.init_params, model))(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def model_and_params():
    model = make_model()
    return model, init(model)


@pytest.fixture(scope="module")
def static_model_and_params():
    static = make_model(dataclasses.replace(WARP, warp_type="none"))
    return static, init(static)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(N, 3)) * 0.1 + [0.0, 0.0, 1.0]
    return RayBatch(
        origins=jnp.tile(jnp.array([[0.0, 0.0, -1.2]]), (N, 1)),
        directions=jnp.asarray(directions / np.linalg.norm(directions, axis=-1, keepdims=True)),
        rgb=jnp.asarray(rng.uniform(size=(N, 3)), jnp.float32),
        frame=jnp.arange(N) % F,
        warp_id=jnp.arange(N) % F,
        appearance_id=jnp.zeros(N, jnp.int32),
        condition=jnp.zeros((N, 2)),
        inside=jnp.asarray(np.arange(N) % 2, jnp.float32),  # half the rays outside
    )


def context(model, params, config=OFF, extras=None, step=0, alpha=1.0):
    return losses.LossContext(
        params=params,
        model=model,
        config=config,
        extras=extras or losses.TrainExtras(),
        step=jnp.asarray(step),
        warp_alpha=jnp.asarray(alpha),
        key=jax.random.PRNGKey(5),
    )


def run_term(name, outputs, rays, ctx):
    """The registered term `name`, jitted (arrays as arguments, the rest closed over)."""
    fn = losses.get_loss_term(name).fn
    traced = lambda params, extras, outputs, rays: fn(
        outputs, rays, dataclasses.replace(ctx, params=params, extras=extras)
    )
    return jax.jit(traced)(ctx.params, ctx.extras, outputs, rays)


def warp_output(params, kernel_scale=None, bias=None):
    """Parameters with the warp field's output layer scaled, or set to a constant `bias`."""
    flat = flax.traverse_util.flatten_dict(params)
    for key in flat:
        if key[0] == "warp_field" and "output" in key:
            if bias is not None:
                value = jnp.zeros_like(flat[key]) if key[-1] == "kernel" else jnp.asarray(bias)
            else:
                value = flat[key] * kernel_scale
            flat[key] = value
    return flax.traverse_util.unflatten_dict(flat)


def one_point_per_ray(points):
    """Outputs whose coarse samples of a ray all sit at one point (N, 3): any pick is it."""
    return {"coarse": {"warp_inputs": jnp.broadcast_to(points[:, None], (N, S, 3))}}


def np_geman_mcclure(x2, scale):
    x2 = x2 / scale**2
    return 2 * x2 / (x2 + 4)


# --------------------------------------------------------------------------------------------
# The math.


def test_warp_regularisers_against_hand_values():
    # Elastic: zero for a rotation, positive for a stretch; Geman-McClure by hand.
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    stretch = np.diag([2.0, 1.0, 1.0])
    values = losses.elastic_loss(jnp.asarray(np.stack([rotation, stretch])), scale=1.0)
    x2 = np.log(2.0) ** 2
    np.testing.assert_allclose(values, [0.0, 2 * x2 / (x2 + 4)], atol=1e-6)
    # Background: only rays outside the silhouette count.
    points = jnp.zeros((3, 3))
    warped = jnp.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 4.0]])
    inside = jnp.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(losses.background_loss(warped, points, inside), 3.0)
    assert float(losses.background_loss(warped, points, jnp.ones(3))) == 0.0


def np_distortion(weights, z_vals, near, far):
    """mip-NeRF 360's distortion loss by its double sum (O(S^2)), one ray at a time."""
    out = []
    for w, z in zip(weights, z_vals, strict=True):
        s = (z - near) / (far - near)
        w, mid, width = w[:-1], (s[1:] + s[:-1]) / 2, s[1:] - s[:-1]
        pairs = sum(
            w[i] * w[j] * abs(mid[i] - mid[j]) for i in range(len(w)) for j in range(len(w))
        )
        out.append(pairs + np.sum(w**2 * width) / 3)
    return np.array(out)


def test_distortion_loss_against_the_double_sum():
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 0.3, (5, 9))
    z_vals = np.sort(rng.uniform(0.5, 3.0, (5, 9)), axis=-1)
    value = losses.distortion_loss(jnp.asarray(weights), jnp.asarray(z_vals), 0.5, 3.0)
    np.testing.assert_allclose(value, np_distortion(weights, z_vals, 0.5, 3.0), rtol=1e-5)
    # One interval holding all the weight: only its own width counts, w^2 (s1 - s0) / 3.
    z = np.array([[1.0, 1.5, 2.0, 2.5]])
    single = losses.distortion_loss(jnp.array([[0.0, 1.0, 0.0, 0.0]]), jnp.asarray(z), 1.0, 3.0)
    np.testing.assert_allclose(single, [0.25 / 3], rtol=1e-6)
    # Weight split between two far intervals costs more than on two neighbours.
    apart = losses.distortion_loss(jnp.array([[0.5, 0.0, 0.5, 0.0]]), jnp.asarray(z), 1.0, 3.0)
    close = losses.distortion_loss(jnp.array([[0.5, 0.5, 0.0, 0.0]]), jnp.asarray(z), 1.0, 3.0)
    assert float(apart[0]) > float(close[0])


def np_interlevel(edges, weights, proposal_edges, proposal_weights):
    """mip-NeRF 360's proposal loss per ray, its bound by a loop over every pair of intervals
    (overlapping: u_j < t_{i+1} and u_{j+1} > t_i)."""
    out = []
    for t, w, u, v in zip(edges, weights, proposal_edges, proposal_weights, strict=True):
        total = 0.0
        for i in range(len(w)):
            bound = sum(v[j] for j in range(len(v)) if u[j] < t[i + 1] and u[j + 1] > t[i])
            total += max(0.0, w[i] - bound) ** 2 / (w[i] + np.finfo(np.float32).eps)
        out.append(total)
    return np.array(out)


def test_interlevel_loss_against_the_loop_over_intervals():
    rng = np.random.default_rng(1)
    edges = np.sort(rng.uniform(0.5, 3.0, (6, 10)), axis=-1).astype(np.float32)
    edges[:3, -1] = np.inf  # the renderer's last interval
    proposal_edges = np.sort(rng.uniform(0.5, 3.0, (6, 6)), axis=-1).astype(np.float32)
    proposal_edges[:, -1] = np.inf
    weights = rng.uniform(0, 0.3, (6, 9)).astype(np.float32)
    proposal_weights = (rng.uniform(0, 0.3, (6, 5)) * (rng.uniform(size=(6, 5)) < 0.6)).astype(
        np.float32
    )
    value = jax.jit(losses.interlevel_loss)(edges, weights, proposal_edges, proposal_weights)
    expected = np_interlevel(edges, weights, proposal_edges, proposal_weights)
    assert np.all(expected > 0)  # some fine mass misses the sparse proposal on every ray
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_interlevel_loss_is_zero_when_bounded_positive_when_missed():
    z = jnp.array([[1.0, 1.5, 2.0, 3.0, np.inf]])
    w = jnp.array([[0.1, 0.6, 0.2, 0.1]])
    # Equal histograms bound each other (to float rounding: the bound is a difference of
    # prefix sums).
    assert float(losses.interlevel_loss(z, w, z, w)[0]) < 1e-12
    # A finer fine histogram inside a proposal that holds at least its mass around it.
    fine = jnp.array([[1.0, 1.2, 1.5, 1.7, 1.9, 2.5, np.inf]])
    fine_w = jnp.array([[0.05, 0.05, 0.3, 0.3, 0.1, 0.1]])
    assert float(losses.interlevel_loss(fine, fine_w, z, w)[0]) < 1e-12
    # Fine mass 0.5 on [1.2, 1.5], where the proposal has none: 0.5^2 / 0.5.
    empty_there = jnp.array([[0.1, 0.0, 0.6, 0.3]])
    miss_w = jnp.array([[0.0, 0.5, 0.0, 0.0, 0.0, 0.0]])
    value = losses.interlevel_loss(
        fine, miss_w, jnp.array([[1.0, 1.2, 1.5, 2.0, np.inf]]), empty_there
    )
    np.testing.assert_allclose(value, [0.5], rtol=1e-5)
    # Fine mass beyond the proposal's support (it ends at 2.0) is missed too.
    outside = losses.interlevel_loss(
        jnp.array([[2.5, 2.8, 3.0]]), jnp.array([[0.4, 0.0]]), z[:, :3], w[:, :2]
    )
    np.testing.assert_allclose(outside, [0.4], rtol=1e-5)


def test_interlevel_loss_trains_the_proposal_only():
    fine = jnp.array([[1.0, 1.2, 1.5, 1.7, np.inf]])
    fine_w = jnp.array([[0.1, 0.5, 0.05, 0.05]])
    proposal = jnp.array([[1.0, 1.5, 2.0, np.inf]])
    proposal_w = jnp.array([[0.2, 0.1, 0.1]])
    grads = jax.grad(lambda *a: jnp.sum(losses.interlevel_loss(*a)), argnums=(0, 1, 2, 3))(
        fine, fine_w, proposal, proposal_w
    )
    for g in grads[:3]:
        np.testing.assert_array_equal(g, 0.0)
    # The fine mass 0.5 on [1.2, 1.5] exceeds the proposal's 0.2 over [1.0, 1.5]: more
    # proposal mass there lowers the loss; elsewhere the bound holds and nothing moves.
    assert float(grads[3][0, 0]) < 0.0
    np.testing.assert_array_equal(grads[3][0, 1:], 0.0)


# --------------------------------------------------------------------------------------------
# Each registered term against a numpy reference.


def test_photometric_terms(model_and_params, batch):
    model, params = model_and_params
    outputs = jax.jit(lambda p: model.apply({"params": p}, batch, 1.0, False))(params)
    ctx = context(model, params)
    target = np.asarray(batch.rgb, np.float64)
    coarse = run_term("coarse", outputs, batch, ctx)
    fine, stats = run_term("fine", outputs, batch, ctx)
    expected = {
        level: np.mean((np.asarray(outputs[level]["rgb"], np.float64) - target) ** 2)
        for level in ("coarse", "fine")
    }
    np.testing.assert_allclose(coarse, expected["coarse"], rtol=1e-5)
    np.testing.assert_allclose(fine, expected["fine"], rtol=1e-5)
    np.testing.assert_allclose(stats["psnr"], -10 * np.log10(expected["fine"]), rtol=1e-5)


@pytest.mark.parametrize("with_targets", [False, True])
def test_flame_warp_term_with_a_constant_warp(model_and_params, batch, with_targets):
    # A constant translation t: every vertex moves by t whichever are drawn, so the penalty
    # is |t|_1 (targets where the vertices are) or |t - d|_1 (targets moved by d).
    model, params = model_and_params
    t, d = np.array([0.1, -0.2, 0.05]), np.array([0.03, 0.0, -0.3])
    params = warp_output(params, bias=t.astype(np.float32))
    vertices = np.random.default_rng(1).normal(size=(F, V, 3)).astype(np.float32)
    targets = jnp.asarray(vertices + d, jnp.float32) if with_targets else None
    extras = losses.TrainExtras(vertices=jnp.asarray(vertices), vertex_targets=targets)
    config = dataclasses.replace(OFF, flame_warp_weight=1.0, flame_warp_vertices=16)
    value = run_term("flame_warp", {}, batch, context(model, params, config, extras))
    expected = np.abs(t - d).sum() if with_targets else np.abs(t).sum()
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_flame_warp_term_needs_vertices_and_a_warp(
    model_and_params, static_model_and_params, batch
):
    model, params = model_and_params
    assert run_term("flame_warp", {}, batch, context(model, params)) is None
    static, static_params = static_model_and_params
    extras = losses.TrainExtras(vertices=jnp.zeros((F, V, 3)))
    assert run_term("flame_warp", {}, batch, context(static, static_params, extras=extras)) is None


def test_elastic_term_against_svd_of_jacfwd(model_and_params, batch):
    model, params = model_and_params
    params = warp_output(params, kernel_scale=300.0)  # far from rigid
    points = jax.random.uniform(jax.random.PRNGKey(2), (N, 3), minval=-0.5, maxval=0.5)
    ctx = context(model, params, dataclasses.replace(OFF, elastic_scale=0.5))
    value = run_term("elastic", one_point_per_ray(points), batch, ctx)

    def warp_one(point, warp_id):
        return model.apply(
            {"params": params},
            point[None],
            warp_id[None],
            jnp.asarray(1.0),
            method=model_lib.FlameNerf.warp_points,
        )[0]

    jacobians = jax.jit(jax.vmap(jax.jacfwd(warp_one)))(points, batch.warp_id)
    jacobians = np.asarray(jacobians, np.float64)
    singular = np.linalg.svd(jacobians, compute_uv=False)
    expected = np.mean(np_geman_mcclure(np.sum(np.log(singular) ** 2, axis=-1), 0.5))
    assert expected > 1e-3  # not trivially rigid
    np.testing.assert_allclose(value, expected, rtol=1e-4)


def test_background_term_counts_outside_rays_only(model_and_params, batch):
    model, params = model_and_params
    params = warp_output(params, kernel_scale=300.0)
    points = jax.random.uniform(jax.random.PRNGKey(3), (N, 3), minval=-0.5, maxval=0.5)
    value = run_term("background", one_point_per_ray(points), batch, context(model, params))
    warped = model.apply(
        {"params": params},
        points,
        batch.warp_id,
        jnp.asarray(1.0),
        method=model_lib.FlameNerf.warp_points,
    )
    moved = np.abs(np.asarray(warped, np.float64) - np.asarray(points)).sum(axis=-1)
    outside = np.asarray(batch.inside) == 0
    np.testing.assert_allclose(value, moved[outside].mean(), rtol=1e-5)


def test_warp_regularisers_need_a_warp(static_model_and_params, batch):
    static, params = static_model_and_params
    outputs = one_point_per_ray(jnp.zeros((N, 3)))
    for name in ("elastic", "background"):
        assert run_term(name, outputs, batch, context(static, params)) is None


def test_triplane_tv_term(model_and_params, batch):
    model, params = model_and_params
    planes = [
        np.asarray(value, np.float64)
        for key, value in flax.traverse_util.flatten_dict(params).items()
        if key[-1].startswith("planes_")
    ]
    assert len(planes) == 4  # two resolutions, two levels
    expected = np.mean(
        [np.mean(np.diff(p, axis=1) ** 2) + np.mean(np.diff(p, axis=2) ** 2) for p in planes]
    )
    value = run_term("triplane_tv", {}, batch, context(model, params))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    mlp_params = {"coarse_field": {"trunk_0": {"kernel": jnp.ones((2, 2))}}}
    assert float(run_term("triplane_tv", {}, batch, context(model, mlp_params))) == 0.0


def test_distortion_term_is_the_mean_over_rays_of_the_fine_render(model_and_params, batch):
    model, params = model_and_params
    outputs = jax.jit(lambda p: model.apply({"params": p}, batch, 1.0, False))(params)
    value = run_term("distortion", outputs, batch, context(model, params))
    fine = {k: np.asarray(outputs["fine"][k], np.float64) for k in ("weights", "z_vals")}
    expected = np.mean(np_distortion(fine["weights"], fine["z_vals"], model.near, model.far))
    np.testing.assert_allclose(value, expected, rtol=1e-4)


def test_interlevel_term_is_the_mean_over_rays_of_coarse_against_fine(model_and_params, batch):
    model, params = model_and_params
    outputs = jax.jit(lambda p: model.apply({"params": p}, batch, 1.0, True, rngs=RNGS))(params)
    value = run_term("interlevel", outputs, batch, context(model, params))

    def edges(level):
        z = np.asarray(outputs[level]["z_vals"], np.float64)
        return np.concatenate([z, np.full_like(z[:, :1], np.inf)], -1)

    expected = np_interlevel(
        edges("fine"),
        np.asarray(outputs["fine"]["weights"], np.float64),
        edges("coarse"),
        np.asarray(outputs["coarse"]["weights"], np.float64),
    )
    np.testing.assert_allclose(value, np.mean(expected), rtol=1e-4, atol=1e-9)


# --------------------------------------------------------------------------------------------
# The registry and compute_loss.


def test_every_term_has_its_weight_and_every_weight_its_term():
    weights = {f.name for f in dataclasses.fields(configs.LossConfig) if f.name.endswith("_weight")}
    assert {term.weight_field for term in losses.LOSS_TERMS.values()} == weights
    assert list(losses.LOSS_TERMS) == [
        "coarse",
        "fine",
        "flame_warp",
        "elastic",
        "background",
        "triplane_tv",
        "distortion",
        "interlevel",
    ]


def test_unknown_term_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown loss term 'elastik': expected one of .*"):
        losses.get_loss_term("elastik")
    with pytest.raises(ValueError) as info:
        losses.get_loss_term("elastik")
    assert all(repr(name) in str(info.value) for name in losses.LOSS_TERMS)


def test_registering_needs_a_weight_field_and_a_new_name():
    before = dict(losses.LOSS_TERMS)
    with pytest.raises(ValueError, match=r"LossConfig has no field 'sparsity_weight'"):
        losses.loss_term("sparsity")(lambda outputs, rays, ctx: jnp.zeros(()))
    with pytest.raises(ValueError, match=r"loss term 'elastic' is already registered"):
        losses.loss_term("elastic")(lambda outputs, rays, ctx: jnp.zeros(()))
    assert losses.LOSS_TERMS == before


def loss_of(model, params, batch, config, extras=None, step=5):
    """compute_loss, jitted as in the train step: (loss, stats) as python floats."""
    compute = functools.partial(
        losses.compute_loss,
        model=model,
        loss_config=config,
        warp_alpha=schedules.as_schedule(1.0),
    )
    loss, stats = jax.jit(compute)(
        params,
        batch,
        jax.random.PRNGKey(0),
        jnp.asarray(step),
        extras=extras or losses.TrainExtras(),
    )
    return float(loss), {k: float(v) for k, v in stats.items()}


def test_weight_zero_skips_the_term(model_and_params, batch, monkeypatch):
    model, params = model_and_params
    calls = []

    def spy(outputs, rays, ctx):
        calls.append(1)
        return jnp.asarray(2.0)

    spied = losses.LossTerm("triplane_tv", spy, "triplane_tv")
    monkeypatch.setitem(losses.LOSS_TERMS, "triplane_tv", spied)
    base = configs.LossConfig()  # photometric weights 1, every other weight 0
    loss, stats = loss_of(model, params, batch, base)
    assert not calls and "triplane_tv" not in stats
    assert set(stats) == {"mse_coarse", "mse_fine", "psnr", "loss", "warp_alpha"}
    assert loss == pytest.approx(stats["mse_coarse"] + stats["mse_fine"], rel=1e-6)
    loss, stats = loss_of(model, params, batch, dataclasses.replace(base, triplane_tv_weight=0.25))
    assert calls and stats["triplane_tv"] == 2.0
    assert loss == pytest.approx(stats["mse_coarse"] + stats["mse_fine"] + 0.5, rel=1e-6)


def test_photometric_terms_are_logged_at_weight_zero(model_and_params, batch):
    model, params = model_and_params
    loss, stats = loss_of(model, params, batch, dataclasses.replace(OFF, fine_weight=1.0))
    assert {"mse_coarse", "mse_fine", "psnr"} <= set(stats)
    assert loss == pytest.approx(stats["mse_fine"], rel=1e-6)


def test_loss_is_the_weighted_sum_with_schedules_at_the_step(model_and_params, batch):
    model, params = model_and_params
    config = configs.LossConfig(
        coarse_weight=0.5,
        fine_weight=2.0,
        flame_warp_weight=schedules.LinearSchedule(0.0, 1.0, 10),  # 0.5 at step 5
        flame_warp_vertices=4,
        elastic_weight=0.3,
        background_weight=0.2,
        triplane_tv_weight=0.1,
    )
    extras = losses.TrainExtras(vertices=jnp.ones((F, V, 3)))
    loss, stats = loss_of(model, params, batch, config, extras, step=5)
    assert set(stats) == {
        "mse_coarse",
        "mse_fine",
        "psnr",
        "flame_warp",
        "elastic",
        "background",
        "triplane_tv",
        "loss",
        "warp_alpha",
    }
    expected = (
        0.5 * stats["mse_coarse"]
        + 2.0 * stats["mse_fine"]
        + 0.5 * stats["flame_warp"]
        + 0.3 * stats["elastic"]
        + 0.2 * stats["background"]
        + 0.1 * stats["triplane_tv"]
    )
    assert stats["flame_warp"] > 0 and stats["background"] > 0 and stats["triplane_tv"] > 0
    assert loss == pytest.approx(expected, rel=1e-6)
    assert stats["warp_alpha"] == 1.0


def test_terms_that_do_not_apply_are_not_logged(static_model_and_params, batch):
    static, params = static_model_and_params
    config = configs.LossConfig(elastic_weight=0.1, background_weight=0.1, flame_warp_weight=1.0)
    extras = losses.TrainExtras(vertices=jnp.ones((F, V, 3)))
    loss, stats = loss_of(static, params, batch, config, extras)
    assert set(stats) == {"mse_coarse", "mse_fine", "psnr", "loss", "warp_alpha"}
    assert loss == pytest.approx(stats["mse_coarse"] + stats["mse_fine"], rel=1e-6)


# --------------------------------------------------------------------------------------------
# The proposal sampler (ModelConfig.sampler = "proposal").


@pytest.fixture(scope="module")
def proposal_model_and_params():
    proposal = model_lib.make_model(
        dataclasses.replace(MODEL, sampler="proposal"),
        WARP,
        NO_EXPRESSION,
        num_codes=F,
        condition_dim=2,
        near=0.5,
        far=2.0,
    )
    return proposal, init(proposal)


def test_proposal_loss_is_fine_plus_interlevel_without_coarse_colour(
    proposal_model_and_params, batch
):
    model, params = proposal_model_and_params
    config = configs.LossConfig(coarse_weight=0.0, interlevel_weight=0.5)
    loss, stats = loss_of(model, params, batch, config)
    assert set(stats) == {"mse_fine", "psnr", "interlevel", "loss", "warp_alpha"}
    assert stats["interlevel"] >= 0.0 and np.isfinite(stats["interlevel"])
    assert loss == pytest.approx(stats["mse_fine"] + 0.5 * stats["interlevel"], rel=1e-6)
    outputs = model.apply({"params": params}, batch, 1.0, False)
    assert run_term("coarse", outputs, batch, context(model, params)) is None


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"interlevel_weight": 1.0}, r"LossConfig\.coarse_weight: expected 0 with ModelConfig"),
        ({"coarse_weight": 0.0}, r"LossConfig\.interlevel_weight: expected > 0 with ModelConfig"),
    ],
)
def test_proposal_loss_refuses_weights_that_do_not_suit(
    proposal_model_and_params, batch, weights, message
):
    model, params = proposal_model_and_params
    with pytest.raises(ValueError, match=message):
        loss_of(model, params, batch, configs.LossConfig(**weights))
