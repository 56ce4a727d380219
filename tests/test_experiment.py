# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Experiment.save: a state holding NaN or inf is never written; a finite one is."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flamenerf import configs, sharding
from flamenerf.training import experiment
from flamenerf.training import step as training


def bare_experiment(folder):
    """An Experiment with only what checkpointing reads (folder and TrainConfig)."""
    fields = {f.name: None for f in dataclasses.fields(experiment.Experiment) if f.init}
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    fields.update(base_folder=folder, train_config=configs.TrainConfig(keep_checkpoints=5))
    return experiment.Experiment(**fields)


def state(w=(1.0, 2.0, 3.0), mu_scale=1.0):
    """A small TrainState: params {"b", "w"}, Adam's state (counts are integers)."""
    params = {"w": jnp.asarray(w, jnp.float32), "b": jnp.zeros((2,), jnp.float32)}
    result = training.create_state(params, optax.adam(1e-3))
    adam = result.opt_state[0]
    mu = jax.tree.map(lambda m: m + mu_scale, adam.mu)
    return dataclasses.replace(result, opt_state=(adam._replace(mu=mu),) + result.opt_state[1:])


def saved_steps(folder):
    path = folder / "checkpoints"
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []


def test_finite_state_saves(tmp_path):
    exp = bare_experiment(tmp_path / "exp")
    exp.save(state(), 10)
    assert saved_steps(tmp_path / "exp") == [10]
    exp.close()


@pytest.mark.parametrize(
    "bad, leaf",
    [
        (state(w=(1.0, np.nan, 3.0)), ".params['w']"),
        (state(mu_scale=np.inf), ".opt_state[0].mu['b']"),
    ],
    ids=["nan_param", "inf_adam_moment"],
)
def test_nonfinite_state_is_refused_and_the_last_good_one_kept(tmp_path, bad, leaf):
    exp = bare_experiment(tmp_path / "exp")
    exp.save(state(), 10)
    with pytest.raises(experiment.NonFiniteStateError) as info:
        exp.save(bad, 20)
    message = str(info.value)
    assert message.startswith("step 20: not saving a checkpoint: NaN or infinite values in ")
    assert leaf in message
    assert f"the last good checkpoint (step 10) is kept in {tmp_path / 'exp' / 'checkpoints'}" in (
        message
    )
    assert saved_steps(tmp_path / "exp") == [10]
    assert exp.checkpoints.all_steps() == [10]
    exp.save(state(), 30)  # training may go on (e.g. after a restore) and save again
    assert saved_steps(tmp_path / "exp") == [10, 30]
    exp.close()


def test_nonfinite_state_without_an_earlier_checkpoint(tmp_path):
    exp = bare_experiment(tmp_path / "exp")
    with pytest.raises(experiment.NonFiniteStateError, match="no checkpoint was written to"):
        exp.save(state(w=(np.inf, 0.0, 0.0)), 5)
    assert saved_steps(tmp_path / "exp") == []
    exp.close()


def test_nonfinite_leaves_names_every_bad_leaf_and_skips_integers():
    tree = {
        "a": np.array([1.0, np.nan]),
        "b": np.array([np.inf]),
        "c": np.array([1, 2], np.int32),
        "d": jnp.ones((2, 2), jnp.bfloat16),
    }
    assert experiment.nonfinite_leaves(tree) == ["['a']", "['b']"]
    assert experiment.nonfinite_leaves(state()) == []


def test_nonfinite_leaves_checks_replicated_and_sharded_arrays():
    mesh = sharding.make_mesh()
    assert mesh.devices.size == 4
    replicated = jax.device_put(jnp.asarray([1.0, np.nan]), sharding.replicated(mesh))
    values = np.zeros((8,), np.float32)
    values[-1] = np.nan  # only the last device's shard holds it
    sharded = jax.device_put(jnp.asarray(values), sharding.batch_sharding(mesh))
    assert experiment.nonfinite_leaves({"r": replicated, "s": sharded}) == ["['r']", "['s']"]
    fine = jax.device_put(jnp.zeros((8,)), sharding.batch_sharding(mesh))
    assert experiment.nonfinite_leaves({"s": fine}) == []


# ---------------------------------------------------------------------------------------------
# Quality does not depend on how the capturing tool normalised the scene.


def test_two_normalisations_render_the_same_image(tmp_path):
    """The same synthetic scene written with the head's and with another tool's (room in the
    unit box) scene.json: a tiny model with the same seed, the FLAME guide and the warp
    region on, renders the same validation image from both."""
    from pathlib import Path

    from flamenerf.datasets import rays
    from flamenerf.synthetic import generator as synthetic

    tiny_gin = str(Path(__file__).parent / "gin" / "tiny.gin")
    bindings = [
        "GuideConfig.enabled = True",
        "GuideConfig.resolution = 16",
        "WarpConfig.region = 'head'",
        "ModelConfig.appearance_mode = 'color'",
    ]
    images = []
    for normalisation in ("head", "room"):
        capture = synthetic.generate(
            tmp_path / normalisation, size=12, frames=4, val=1, normalisation=normalisation
        )
        exp = experiment.Experiment.create(
            tmp_path / f"exp_{normalisation}", [tiny_gin], bindings, data_dir=str(capture)
        )
        state = exp.init_state()
        frame_id = exp.capture.val_ids[0]
        batch = rays.frame_rays(exp.capture, frame_id, jaw=True)
        shape = exp.capture.cameras[frame_id].image_shape
        out = exp.renderer.render_image(state.params, batch, 1.0, shape, exp.extras()["guide"])
        images.append(np.asarray(out["rgb"]))
        exp.close()
    assert np.abs(images[0] - images[1]).max() < 1e-4
