# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training: the loss falls, 4 devices equal 1, bad configurations fail clearly."""

import itertools
from pathlib import Path

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from capture_util import write_capture

from flamenerf import sharding, train
from flamenerf.datasets import rays
from flamenerf.training import experiment
from flamenerf.training import step as training

TINY = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory):
    return write_capture(
        tmp_path_factory.mktemp("train") / "cap",
        num_train=6,
        num_val=2,
        width=16,
        height=12,
        masks=True,
    )


def take(exp, count):
    """The first `count` training batches, with the prefetch thread stopped afterwards."""
    with exp.ray_batches() as batches:
        return list(itertools.islice(batches, count))


def make_experiment(tmp_path, capture_dir, bindings=()):
    return experiment.Experiment.create(
        tmp_path / "exp", [TINY], list(bindings), data_dir=str(capture_dir)
    )


def test_loss_falls(tmp_path, capture_dir):
    exp = make_experiment(tmp_path, capture_dir)
    state, _ = exp.restore_or_init_state()
    step = exp.train_step()
    key = jax.random.PRNGKey(0)
    losses = []
    for batch in take(exp, 40):
        state, stats = step(state, exp.shard(batch), key, exp.extras())
        losses.append(float(stats["loss"]))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert int(state.step) == 40


@pytest.mark.parametrize(
    "bindings",
    [
        [],
        # With the warp confined to the head: its MLP on each device's samples in the region.
        [
            "GuideConfig.enabled = True",
            "ExpressionConfig.spatial_prior = 'mesh'",
            "WarpConfig.region = 'head'",
        ],
    ],
    ids=["paper", "flame_guided_head_region"],
)
def test_four_devices_equal_one(tmp_path, capture_dir, bindings):
    assert len(jax.devices()) == 4
    exp = make_experiment(tmp_path, capture_dir, bindings)
    batches = take(exp, 3)
    extras = exp.extras()
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = sharding.make_mesh(devices)
        state = jax.device_put(exp.init_state(), sharding.replicated(mesh))
        step = training.make_train_step(
            mesh,
            exp.model,
            training.make_optimizer(exp.train_config),
            exp.loss_config,
            exp.train_config,
        )
        for batch in batches:
            state, stats = step(
                state,
                sharding.shard_batch(batch, mesh),
                jax.random.PRNGKey(1),
                jax.device_put(extras, sharding.replicated(mesh)),
            )
        results.append((jax.device_get(state.params), float(stats["loss"])))
    (p1, l1), (p4, l4) = results
    assert l1 == pytest.approx(l4, rel=1e-5)
    # Adam's first updates are about lr * sign(g): a near-zero gradient summed in another
    # order across devices can move a parameter by a fraction of lr (1e-2 here). Bound every
    # difference by 2% of one step, and nearly all by float noise.
    diffs = np.concatenate(
        [
            np.abs(a - b).ravel()
            for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4), strict=True)
        ]
    )
    assert diffs.max() < 2e-4
    assert np.mean(diffs < 1e-5) > 0.99


def test_schedules_reach_the_step(tmp_path, capture_dir):
    exp = make_experiment(tmp_path, capture_dir)
    state, _ = exp.restore_or_init_state()
    step = exp.train_step()
    batch = exp.shard(take(exp, 1)[0])
    _, stats = step(state, batch, jax.random.PRNGKey(0), exp.extras())
    # tiny.gin: lr 1e-2 -> 1e-3 exponential, alpha 0 -> 2 linear; both at step 0.
    assert float(stats["lr"]) == pytest.approx(1e-2)
    assert float(stats["warp_alpha"]) == 0.0


@pytest.mark.parametrize(
    "bindings, message",
    [
        (["TrainConfig.no_such_field = 3"], "bad gin configuration"),
        (["NoSuchConfig.x = 3"], "bad gin configuration"),
        (["TrainConfig.batch_size = 30"], "batch_size = 30 does not divide evenly over 4 dev"),
        (["ExpressionConfig.where = 'skip'"], "needs FieldConfig.skips"),
    ],
)
def test_bad_configs_error_clearly(tmp_path, capture_dir, bindings, message):
    with pytest.raises(experiment.UserError, match=message):
        make_experiment(tmp_path, capture_dir, bindings)


def test_cli_reports_bad_binding_without_traceback(tmp_path, capture_dir, capsys):
    code = train.main(
        [
            "--gin_configs",
            TINY,
            "--gin_bindings",
            "TrainConfig.nope = 1",
            "--base_folder",
            str(tmp_path / "exp"),
            "--data_dir",
            str(capture_dir),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: bad gin configuration")
    assert "Traceback" not in err


def test_broken_capture_reported_by_cli(tmp_path, capsys):
    code = train.main(
        [
            "--gin_configs",
            TINY,
            "--base_folder",
            str(tmp_path / "exp"),
            "--data_dir",
            str(tmp_path / "missing"),
        ]
    )
    assert code == 2
    assert "capture folder not found" in capsys.readouterr().err


def test_nan_stops_training_and_keeps_last_checkpoint(tmp_path, capture_dir, monkeypatch, capsys):
    exp = make_experiment(tmp_path, capture_dir, ["TrainConfig.max_steps = 30"])
    real_step = exp.train_step()

    def poisoned():
        def step(state, batch, key, extras):
            state, stats = real_step(state, batch, key, extras)
            if int(state.step) > 20:
                stats = dict(stats, loss=stats["loss"] * np.nan)
            return state, stats

        return step

    monkeypatch.setattr(exp, "train_step", poisoned)
    assert train.train(exp) == 3
    assert "non-finite training values at step 30" in capsys.readouterr().err
    assert exp.checkpoints.latest_step() == 20


@pytest.mark.parametrize(
    "checkpoint_every, poison_from, interrupt_at, refused, kept",
    [(10, 16, None, 20, 10), (10, 16, 18, 17, 10), (20, 30, None, 30, 20)],
    ids=["periodic_save", "ctrl_c_save", "final_save"],
)
def test_nonfinite_state_is_never_checkpointed(
    tmp_path,
    capture_dir,
    monkeypatch,
    capsys,
    checkpoint_every,
    poison_from,
    interrupt_at,
    refused,
    kept,
):
    # Parameters turn NaN between logged steps (log_every > max_steps): only the check in
    # Experiment.save stands between them and the checkpoint.
    exp = make_experiment(
        tmp_path,
        capture_dir,
        [
            "TrainConfig.max_steps = 30",
            "TrainConfig.log_every = 100",
            f"TrainConfig.checkpoint_every = {checkpoint_every}",
        ],
    )
    real_step = exp.train_step()

    def poisoned():
        def step(state, batch, key, extras):
            if interrupt_at is not None and int(state.step) + 1 == interrupt_at:
                raise KeyboardInterrupt
            state, stats = real_step(state, batch, key, extras)
            if int(state.step) >= poison_from:
                state = state.replace(params=jax.tree.map(lambda x: x * jnp.nan, state.params))
            return state, stats

        return step

    monkeypatch.setattr(exp, "train_step", poisoned)
    assert train.train(exp) == 3
    err = capsys.readouterr().err
    assert f"error: step {refused}: not saving a checkpoint: NaN or infinite values in " in err
    assert f"the last good checkpoint (step {kept}) is kept" in err
    assert "Traceback" not in err
    assert exp.checkpoints.all_steps() == list(range(checkpoint_every, kept + 1, checkpoint_every))


def test_validation_rays_cover_the_frame(tmp_path, capture_dir):
    exp = make_experiment(tmp_path, capture_dir)
    batch = rays.frame_rays(exp.capture, exp.capture.val_ids[0], True)
    assert batch.num_rays == 16 * 12


def test_regularisers_enter_the_loss(tmp_path, capture_dir):
    exp = make_experiment(
        tmp_path,
        capture_dir,
        ["LossConfig.elastic_weight = 0.1", "LossConfig.background_weight = 0.1"],
    )
    state, _ = exp.restore_or_init_state()
    _, stats = exp.train_step()(
        state, exp.shard(take(exp, 1)[0]), jax.random.PRNGKey(0), exp.extras()
    )
    assert np.isfinite(float(stats["elastic"])) and np.isfinite(float(stats["background"]))
    expected = (
        float(stats["mse_coarse"])
        + float(stats["mse_fine"])
        + 0.01 * float(stats["flame_warp"])
        + 0.1 * float(stats["elastic"])
        + 0.1 * float(stats["background"])
    )
    assert float(stats["loss"]) == pytest.approx(expected, rel=1e-5)


@pytest.fixture
def clean_gin():
    """Clears the bindings a test parsed (the proposal's loss weights would reach later tests'
    `LossConfig()`)."""
    yield
    gin.clear_config()


def test_proposal_sampler_trains_with_a_finite_loss(tmp_path, capture_dir, clean_gin):
    exp = experiment.Experiment.create(
        tmp_path / "exp", [TINY, "ablations/proposal.gin"], [], data_dir=str(capture_dir)
    )
    assert exp.model_config.sampler == "proposal"
    state, _ = exp.restore_or_init_state()
    assert "rgb" not in state.params["coarse_field"] and "rgb" in state.params["fine_field"]
    step = exp.train_step()
    for i, batch in enumerate(take(exp, 5)):
        state, stats = step(state, exp.shard(batch), jax.random.PRNGKey(i), exp.extras())
        assert np.isfinite(float(stats["loss"])) and np.isfinite(float(stats["interlevel"]))
    assert "mse_coarse" not in stats and int(state.step) == 5
    expected = (
        float(stats["mse_fine"]) + 0.01 * float(stats["flame_warp"]) + float(stats["interlevel"])
    )
    assert float(stats["loss"]) == pytest.approx(expected, rel=1e-5)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))
