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
    canonical = field.CanonicalField(
        exp.model, state.params, "frame", frame=capture.frames[frame].appearance_id
    )
    sigma = canonical.density(np.asarray(out["points"])[:, :-1].reshape(-1, 3)).reshape(
        implied.shape
    )
    ok = (transmittance[:, :-1] > 1e-3) & (alpha[:, :-1] < 0.999)
    np.testing.assert_allclose(sigma[ok], implied[ok], rtol=2e-3, atol=1e-3)


def jax_tree(batch):
    import jax.numpy as jnp

    from flamenerf.datasets import rays

    return rays.RayBatch(*[jnp.asarray(f) for f in batch])
