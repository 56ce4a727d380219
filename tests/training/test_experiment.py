# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Experiment.save: a state holding NaN or inf is never written; a finite one is."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flamenerf import configs, sharding
from flamenerf.nerf import guide
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

    tiny_gin = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")
    bindings = [
        "GuideConfig.enabled = True",
        "GuideConfig.resolution = 16",
        "WarpConfig.region = 'head'",
        "ModelConfig.appearance_mode = 'color'",
        "ModelConfig.pose_shading = True",
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
        out = exp.renderer.render_image(state.params, batch, 1.0, shape, exp.extras().guide)
        images.append(np.asarray(out["rgb"]))
        exp.close()
    assert np.abs(images[0] - images[1]).max() < 1e-4


# ---------------------------------------------------------------------------------------------
# Experiment.restore: a trained experiment reopened at a checkpoint (test_eval's tiny one).


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from test_eval import tiny_experiment

    return tiny_experiment(tmp_path_factory)


@pytest.fixture
def closed(monkeypatch):
    """The experiments closed during the test, in order."""
    calls = []
    close = experiment.Experiment.close

    def recording_close(self):
        calls.append(self)
        close(self)

    monkeypatch.setattr(experiment.Experiment, "close", recording_close)
    return calls


def test_restore_yields_the_checkpoint_and_closes_the_experiment(trained, closed):
    from test_eval import STEPS

    with experiment.Experiment.restore(trained) as restored:
        assert restored.checkpoint == STEPS and int(restored.state.step) == STEPS
        assert restored.trained_scale == 1 and restored.exp.capture.scale == 1
        assert restored.eval_folder == trained / "eval" / f"step_{STEPS}"
        assert restored.exp.base_folder == trained and closed == []
        exp, state, step, scale = restored  # unpacks like the old eval.load
        assert (exp, step, scale) == (restored.exp, STEPS, 1)
    assert closed == [restored.exp]


def test_restore_overrides_scale_and_chunk_and_closes_on_errors(trained, closed):
    from test_eval import STEPS

    with pytest.raises(RuntimeError, match="inside the block"):
        with experiment.Experiment.restore(trained, STEPS, scale=2, chunk=8) as restored:
            assert restored.trained_scale == 1 and restored.exp.capture.scale == 2
            assert restored.eval_folder == trained / "eval" / f"step_{STEPS}" / "scale_2"
            assert restored.exp.train_config.render_chunk == 8
            raise RuntimeError("inside the block")
    assert closed == [restored.exp]


def test_restore_applies_bindings_after_the_saved_config(trained, closed):
    """Render-time settings (samples per ray) override the saved config; the checkpoint's
    parameters restore unchanged; nothing is written to the folder."""
    saved = (trained / "config.gin").read_text()
    with experiment.Experiment.restore(trained) as plain:
        params = plain.state.params
        coarse = plain.exp.model.model.num_coarse_samples
    bindings = [f"ModelConfig.num_coarse_samples = {coarse + 3}"]
    with experiment.Experiment.restore(trained, bindings=bindings, chunk=8) as restored:
        assert restored.exp.model.model.num_coarse_samples == coarse + 3
        assert restored.exp.train_config.render_chunk == 8
        chex.assert_trees_all_equal(restored.state.params, params)
    assert (trained / "config.gin").read_text() == saved


def test_restore_errors_name_the_folder_and_close_what_they_opened(trained, tmp_path, closed):
    from test_eval import STEPS

    def restore(folder, *args, **kwargs):
        with experiment.Experiment.restore(folder, *args, **kwargs):
            raise AssertionError("restored")

    with pytest.raises(experiment.UserError) as info:
        restore(tmp_path)
    assert str(info.value) == f"{tmp_path}: not an experiment folder (no config.gin)"
    with pytest.raises(experiment.UserError) as info:
        restore(trained, chunk=0)
    assert str(info.value) == "--chunk 0: expected a positive number of rays"
    assert closed == []
    with pytest.raises(experiment.UserError) as info:
        restore(trained, 7)
    message = f"{trained / 'checkpoints'}: no checkpoint at step 7 (have [{STEPS}])"
    assert str(info.value) == message
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "config.gin").write_text((trained / "config.gin").read_text())
    with pytest.raises(experiment.UserError) as info:
        restore(untrained)
    message = f"{untrained / 'checkpoints'}: no checkpoints (train the experiment first)"
    assert str(info.value) == message
    assert len(closed) == 2


def test_validation_scores_frames_as_eval_does(trained, tmp_path):
    """Training-time validation and eval share the per-frame path: the same frames give the
    same PSNRs, logged to metrics.jsonl."""
    import json
    import shutil

    from test_eval import STEPS

    from flamenerf.evaluation import evaluate

    copy = tmp_path / "exp"
    shutil.copytree(trained, copy)
    with experiment.Experiment.restore(copy) as restored:
        exp = restored.exp
        exp.train_config = dataclasses.replace(exp.train_config, val_frames=2)
        means = exp.validate(restored.state, STEPS)
        report = evaluate.evaluate(
            exp, restored.state, STEPS, show_progress=False, out_dir=tmp_path / "eval"
        )
    assert exp.validation_ids() == list(report["frames"]) == ["v00", "v01"]
    assert list(means) == ["psnr", "psnr_face", "psnr_outside"]
    for name, value in means.items():
        assert value == pytest.approx(report["mean"][name], rel=1e-6)
    record = json.loads((copy / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == STEPS and record["split"] == "val"
    assert {k: record[k] for k in means} == pytest.approx(means)


def test_guide_grids_built_at_render_time_show_progress(trained, tmp_path, capsys):
    import views_util

    folder = views_util.guided_folder(trained, tmp_path)
    with experiment.Experiment.restore(folder) as restored:
        exp = restored.exp
        params = [exp.capture.flame_params[i] for i in exp.capture.train_ids[:2]]
        capsys.readouterr()
        quiet = exp.grids_for(params)
        assert "FLAME guide grids" not in capsys.readouterr().err
        shown = exp.grids_for(params, show_progress=True)
    err = capsys.readouterr().err
    assert "FLAME guide grids" in err and "2/2" in err
    np.testing.assert_array_equal(np.asarray(shown.values), np.asarray(quiet.values))


def test_validation_sends_each_frames_pictures_to_tensorboard(trained, tmp_path, monkeypatch):
    """Prediction, target, error and depth of the first `TENSORBOARD_FRAMES` frames."""
    import shutil

    from test_eval import STEPS

    from flamenerf.evaluation import figures

    class Writer:
        def __init__(self):
            self.images = {}

        def add_scalar(self, *args):
            pass

        def add_image(self, tag, image, step, dataformats):
            assert dataformats == "HWC" and step == STEPS
            self.images[tag] = image

    copy = tmp_path / "exp"
    shutil.copytree(trained, copy)
    monkeypatch.setattr(experiment, "TENSORBOARD_FRAMES", 1)
    writer = Writer()
    with experiment.Experiment.restore(copy) as restored:
        exp = restored.exp
        exp.train_config = dataclasses.replace(exp.train_config, val_frames=2)
        exp.validate(restored.state, STEPS, writer)
        frame = evaluate_v00(exp, restored.state)
    kinds = ("prediction", "target", "error", "depth")
    assert sorted(writer.images) == sorted(f"val/v00/{kind}" for kind in kinds)
    expected = {
        "prediction": np.clip(frame.render["rgb"], 0, 1),
        "target": frame.target,
        "error": figures.error_map(frame.render["rgb"], frame.target),
        "depth": figures.depth_map(frame.render["depth"], frame.render["acc"]),
    }
    for kind, image in expected.items():
        assert writer.images[f"val/v00/{kind}"].shape == (12, 16, 3)
        np.testing.assert_allclose(writer.images[f"val/v00/{kind}"], image, atol=1e-6)


def evaluate_v00(exp, state):
    from test_eval import STEPS

    from flamenerf.evaluation.evaluate import evaluate_frame

    return evaluate_frame(
        exp.renderer,
        exp.capture,
        "v00",
        state.params,
        exp.warp_alpha(STEPS),
        exp.extras().guide,
        use_jaw=exp.expression_config.use_jaw,
        source=exp.frame_source,
    )


def test_pose_shading_without_the_guides_rigid_part_is_a_config_error(tmp_path):
    from pathlib import Path

    from flamenerf.synthetic import generator as synthetic

    tiny_gin = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")
    capture = synthetic.generate(tmp_path / "cap", size=12, frames=4, val=1)
    for guide_bindings in (["GuideConfig.enabled = False"], ["GuideConfig.undo_rigid = False"]):
        with pytest.raises(experiment.UserError, match="pose_shading = True needs"):
            experiment.Experiment.create(
                tmp_path / "exp",
                [tiny_gin],
                ["ModelConfig.pose_shading = True", "GuideConfig.enabled = True", *guide_bindings],
                data_dir=str(capture),
            )


def test_the_mesh_prior_keeps_the_guide_distance_exact_out_to_its_radius(tmp_path):
    from pathlib import Path

    from flamenerf.synthetic import generator as synthetic

    tiny_gin = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")
    capture = synthetic.generate(tmp_path / "cap", size=12, frames=4, val=1)
    reach, far = {}, {}
    for prior in ("mesh", "silhouette"):
        exp = experiment.Experiment.create(
            tmp_path / prior,
            [tiny_gin],
            [f'ExpressionConfig.spatial_prior = "{prior}"', "ExpressionConfig.mesh_radius_m = 0.5"],
            data_dir=str(capture),
        )
        reach[prior] = exp.guide_settings().reach
        far[prior] = np.mean(
            np.asarray(exp.guide_grids(show_progress=False).values[..., 3]) == guide.FAR
        )
    assert reach["mesh"] == 0.5 * experiment.units_per_metre(exp.capture)
    assert reach["silhouette"] == 0.0
    # 0.5 m is beyond the blend's cut (3 fades) from every grid point: none is FAR with it.
    assert far["mesh"] == 0.0 and far["silhouette"] > 0.1


# --------------------------------------------------------------------------------------------
# Guide grids: built only for the frames a run reads, cached frame by frame.


def test_guide_grids_are_built_for_the_frames_needed_and_cached_frame_by_frame(
    tmp_path, monkeypatch
):
    import json
    from pathlib import Path

    from capture_util import write_capture

    from flamenerf.nerf import guide

    capture = write_capture(tmp_path / "cap", num_train=2, num_val=3)
    for k, path in enumerate(sorted((capture / "flame").glob("*.json"))):
        values = json.loads(path.read_text())
        values.update(global_pose=[0.0, 0.1 * k, 0.0], translation=[0.01 * k, 0.0, 0.0])
        path.write_text(json.dumps(values))
    tiny = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")
    bindings = ["GuideConfig.enabled = True", "GuideConfig.resolution = 12"]
    built = []
    build_grids = guide.build_grids

    def recording(*args, frames=None, **kwargs):
        built.append(list(frames))
        return build_grids(*args, frames=frames, **kwargs)

    monkeypatch.setattr(guide, "build_grids", recording)

    def create(cache):
        monkeypatch.setenv("FLAMENERF_CACHE", str(tmp_path / cache))
        return experiment.Experiment.create(
            tmp_path / cache / "exp", [tiny], bindings, data_dir=str(capture), write_config=False
        )

    exp = create("a")
    ids = list(exp.capture.ids)  # t00 t01 v00 v01 v02
    # eval: the frames it renders only; the others are NaN.
    grids = exp.frame_grids(["v01"])
    assert built == [[3]]
    values = np.asarray(grids.values, np.float32)
    assert not np.isnan(values[3]).any() and np.isnan(np.delete(values, 3, axis=0)).all()
    assert np.isnan(exp.guide_stats.folded).sum() == 4
    # training: its frames and its validation frames (TrainConfig.val_frames = 1: v00).
    assert exp.training_frames() == ["t00", "t01", "v00"]
    extras = exp.extras(exp.training_frames())
    assert built == [[3], [0, 1, 2]]  # v01 came from the cache
    assert exp.extras(["t01", "v00"]) is extras  # already there (validation)
    assert exp.frame_grids(["v00"]) is extras.guide
    assert exp.extras(["v02"]) is not extras and built[-1] == [4]  # one more frame
    incremental = np.asarray(exp.guide_grids(show_progress=False).values)
    assert len(built) == 3  # every frame was cached by now: nothing built
    # The same grids as building every frame at once (another cache root).
    fresh = create("b")
    full = fresh.guide_grids(show_progress=False)
    assert built[-1] == list(range(len(ids)))
    np.testing.assert_array_equal(incremental, np.asarray(full.values))
    np.testing.assert_array_equal(exp.guide_stats.folded, fresh.guide_stats.folded)
    with pytest.raises(experiment.UserError, match="no frame 'x99'"):
        exp.frame_grids(["x99"])
    exp.close()
    fresh.close()


# --------------------------------------------------------------------------------------------
# extras_spec: the train step compiled before the guide grids exist (TrainConfig.compile_ahead).


@pytest.mark.parametrize(
    "bindings",
    [
        ["GuideConfig.enabled = True", "GuideConfig.resolution = 8"],
        ["GuideConfig.enabled = False"],
        ["GuideConfig.enabled = False", "ExpressionConfig.spatial_prior = 'mesh'"],
        [
            "GuideConfig.enabled = True",
            "GuideConfig.resolution = 8",
            "WarpConfig.warp_type = 'none'",
        ],
        ["GuideConfig.enabled = True", "LossConfig.flame_warp_weight = 0"],
    ],
    ids=["guide", "no_guide", "mesh_prior", "no_warp", "no_penalty"],
)
def test_extras_spec_is_the_shape_of_the_extras(tmp_path, bindings):
    from pathlib import Path

    from capture_util import write_capture

    capture = write_capture(tmp_path / "cap", num_train=2, num_val=1)
    tiny = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")
    exp = experiment.Experiment.create(
        tmp_path / "exp", [tiny], bindings, data_dir=str(capture), write_config=False
    )
    spec = exp.extras_spec()
    extras = exp.extras(exp.training_frames())
    shapes = lambda tree: jax.tree.map(lambda x: (x.shape, jnp.dtype(x.dtype), x.sharding), tree)
    assert jax.tree.structure(spec) == jax.tree.structure(extras)
    assert shapes(spec) == shapes(extras)
    exp.close()


def test_the_step_compiled_from_the_spec_is_the_one_the_first_call_runs(tmp_path):
    """Lowering and compiling the train step with `extras_spec` ahead (as train does while the
    grids are built) leaves nothing to compile at the first call."""
    from pathlib import Path

    from capture_util import write_capture
    from jax._src import monitoring

    capture = write_capture(tmp_path / "cap", num_train=2, num_val=1)
    tiny = str(Path(__file__).resolve().parents[1] / "gin" / "tiny.gin")
    exp = experiment.Experiment.create(
        tmp_path / "exp",
        [tiny],
        ["GuideConfig.enabled = True", "GuideConfig.resolution = 8"],
        data_dir=str(capture),
        write_config=False,
    )
    state, _ = exp.restore_or_init_state()
    step, key = exp.train_step(), jax.random.PRNGKey(0)
    with exp.ray_batches() as batches:
        batch = exp.shard(next(batches))
    step.lower(state, batch, key, exp.extras_spec()).compile()
    extras = exp.extras(exp.training_frames())
    events = []  # tracing, lowering, compiling or reading the compilation cache

    def listen(name, seconds, **kwargs):
        events.append(name)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        jax.block_until_ready(step(state, batch, key, extras))
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert not [name for name in events if "compil" in name or "trace" in name], events
    exp.close()
