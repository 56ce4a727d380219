# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The canonical field of a trained tiny experiment against the model's own forward pass."""

import numpy as np
import pytest
from test_eval import tiny_experiment

from flamenerf.export import field


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    from flamenerf.training.experiment import Experiment

    with Experiment.restore(tiny_experiment(tmp_path_factory)) as restored:
        yield restored


def _implied_and_canonical(restored, ray_condition, inside, **canonical_args):
    """The densities the model's own forward pass (no warp, no guide in this experiment)
    implies at its fine samples, for rays with `ray_condition` and silhouette flag `inside`, and
    the canonical field's densities there; and where they are comparable."""
    import jax.numpy as jnp

    from flamenerf.datasets import rays

    exp, state = restored.exp, restored.state
    capture = exp.capture
    frame = capture.train_ids[0]
    batch = rays.frame_rays(capture, frame, exp.expression_config.use_jaw)
    batch = rays.RayBatch(*[np.asarray(f)[:8] for f in batch])
    batch = batch._replace(
        condition=np.broadcast_to(ray_condition, batch.condition.shape).astype(np.float32),
        inside=np.full_like(batch.inside, inside),
    )
    out = exp.model.apply({"params": state.params}, jax_tree(batch), jnp.zeros(()), False)["fine"]
    z, weights = np.asarray(out["z_vals"]), np.asarray(out["weights"])
    delta = np.diff(z, axis=1) * np.linalg.norm(batch.directions, axis=1)[:, None]
    transmittance = 1 - np.concatenate([np.zeros((len(z), 1)), np.cumsum(weights, 1)[:, :-1]], 1)
    alpha = weights / np.maximum(transmittance, 1e-12)
    implied = -np.log(np.clip(1 - alpha[:, :-1], 1e-12, 1)) / delta
    canonical = field.CanonicalField(
        exp.model,
        state.params,
        "frame",
        frame=capture.frames[frame].appearance_id,
        **canonical_args,
    )
    sigma = canonical.density(np.asarray(out["points"])[:, :-1].reshape(-1, 3)).reshape(
        implied.shape
    )
    ok = (transmittance[:, :-1] > 1e-3) & (alpha[:, :-1] < 0.999)
    return implied, sigma, ok


def test_canonical_density_is_the_models(restored):
    """The neutral canonical field's densities are those the model's forward pass implies
    for rays with the zero conditioning vector."""
    dim = restored.exp.model.condition_dim
    implied, sigma, ok = _implied_and_canonical(restored, np.zeros(dim), 1.0)
    np.testing.assert_allclose(sigma[ok], implied[ok], rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("inside", [1.0, 0.0])
def test_a_conditioned_canonical_field_is_the_models_inside_its_box(restored, inside):
    """With a conditioning vector, the canonical field inside its box is the model's forward
    pass on rays with that vector inside the FLAME silhouette; outside the box, the model's
    on rays outside the silhouette (the spatial prior zeroes the conditioning there)."""
    dim = restored.exp.model.condition_dim
    condition = np.random.default_rng(0).normal(0.0, 1.0, dim).astype(np.float32)
    everywhere = field.box_region(np.full(3, -1e6), np.full(3, 1e6))
    nowhere = field.box_region(np.full(3, 1e5), np.full(3, 1e6))
    implied, sigma, ok = _implied_and_canonical(
        restored,
        condition,
        inside,
        condition=condition,
        condition_region=everywhere if inside else nowhere,
    )
    np.testing.assert_allclose(sigma[ok], implied[ok], rtol=2e-3, atol=1e-3)
    # and the conditioning matters here (the test could fail)
    _, neutral, _ = _implied_and_canonical(restored, np.zeros(dim), 1.0)
    if inside:
        assert np.abs(neutral[ok] - sigma[ok]).max() > 1e-3
    with pytest.raises(ValueError, match="condition: expected"):
        field.CanonicalField(restored.exp.model, restored.state.params, condition=np.ones(dim + 1))


def jax_tree(batch):
    import jax.numpy as jnp

    from flamenerf.datasets import rays

    return rays.RayBatch(*[jnp.asarray(f) for f in batch])


def _fake_experiment(prior: str, grids=None):
    from types import SimpleNamespace

    expression = SimpleNamespace(spatial_prior=prior)
    return SimpleNamespace(
        model=SimpleNamespace(expression=expression, mesh_radius=0.3),
        capture=SimpleNamespace(ids=["a", "b"]),
        guide_grids=lambda show_progress, frames: grids if frames == ["b"] else None,
    )


def test_the_conditioning_region_follows_the_models_spatial_prior():
    """silhouette: the body's box; none: everywhere; mesh: within mesh_radius of the frame's
    mesh by its guide grid's distance (here a hand-made field: distance = x + 1 in frame "b",
    NaN in frame "a", which must not be read)."""
    import jax.numpy as jnp

    from flamenerf.export import pipeline
    from flamenerf.nerf import guide

    points = jnp.asarray([[[-0.9, 0.0, 0.0], [-0.6, 0.2, 0.1], [0.5, 0.0, 0.0], [0.0, 0.0, 0.9]]])
    box = (np.array([-1.0, -1.0, -1.0]), np.array([0.0, 1.0, 0.5]))
    region = pipeline.conditioning_region(_fake_experiment("silhouette"), box, "b")
    np.testing.assert_array_equal(region(points), [[True, True, False, False]])
    assert pipeline.conditioning_region(_fake_experiment("none"), box, "b") is None
    size = 5
    x = np.linspace(-1.0, 1.0, size)[:, None, None] * np.ones((size, size, size))
    values = np.zeros((2, size, size, size, 4), np.float16)
    values[0] = np.nan
    values[1, ..., 3] = x + 1.0
    grids = guide.GuideGrids(values=jnp.asarray(values), lower=-np.ones(3), upper=np.ones(3))
    region = pipeline.conditioning_region(_fake_experiment("mesh", grids), box, "b")
    # distances 0.1, 0.4, 1.5, 1.0 against mesh_radius 0.3
    np.testing.assert_array_equal(region(points), [[True, False, False, False]])


def test_a_pose_shading_model_bakes_its_colour_at_rest():
    """`ModelConfig.pose_shading` adds a layer that reads the head's rotation; the canonical
    field (the head at rest) evaluates without it, as the fine field with zero rotation."""
    import jax
    import jax.numpy as jnp

    from flamenerf import configs
    from flamenerf.nerf import model as model_lib

    tiny = configs.FieldConfig(
        field_type="triplane",
        depth=1,
        width=16,
        skips=(),
        rgb_width=16,
        viewdir_freqs=0,
        triplane_resolutions=(8, 16),
        triplane_features=4,
        geometry_features=7,
    )
    model = model_lib.make_model(
        configs.ModelConfig(
            coarse=tiny, fine=tiny, appearance_dim=3, appearance_mode="color", pose_shading=True
        ),
        configs.WarpConfig(
            warp_type="translation", code_dim=2, num_freqs=2, depth=1, width=8, skips=()
        ),
        configs.ExpressionConfig(where="trunk", use_jaw=True, spatial_prior="silhouette"),
        num_codes=4,
        condition_dim=5,
        near=0.5,
        far=2.0,
        use_guide=True,
    )
    params = model_lib.init_params(model, jax.random.PRNGKey(0))
    kernel = params["fine_field"]["pose_shading"]["kernel"]
    trained = jax.random.normal(jax.random.PRNGKey(1), kernel.shape)  # as training leaves it
    params = {**params, "fine_field": {**params["fine_field"], "pose_shading": {"kernel": trained}}}
    points = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (50, 3), minval=-1, maxval=1))
    rgb, sigma = field.CanonicalField(model, params, "frame", frame=1).evaluate(points)

    def fine(module, shading):
        code = module.appearance_codes(jnp.ones((50,), jnp.int32))
        rgb, sigma = module.fields["fine"](
            jnp.asarray(points)[:, None],
            jnp.tile(jnp.float32([[0, 0, 1]]), (50, 1)),
            None,
            jnp.zeros((50, 5)),
            shading,
        )
        gain_bias = module.color_transform(code)[:, None, :]
        return rgb * (1.0 + gain_bias[..., :3]) + gain_bias[..., 3:], sigma

    at_rest = model.apply({"params": params}, jnp.zeros((50, 1, 3)), method=fine)
    turned = model.apply({"params": params}, jnp.full((50, 1, 3), 0.2), method=fine)
    np.testing.assert_allclose(rgb, np.asarray(at_rest[0])[:, 0], atol=1e-6)
    np.testing.assert_allclose(sigma, np.asarray(at_rest[1])[:, 0], rtol=1e-5, atol=1e-6)
    assert np.abs(rgb - np.asarray(turned[0])[:, 0]).max() > 1e-3  # the layer matters
