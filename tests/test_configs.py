# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Configs: a misspelt or out-of-range value fails when the config is built, by name."""

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import gin
import numpy as np
import pytest

from flamenerf import configs, schedules
from flamenerf.training import experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    configs.FieldConfig,
    configs.ModelConfig,
    configs.WarpConfig,
    configs.ExpressionConfig,
    configs.GuideConfig,
    configs.LossConfig,
    configs.DataConfig,
    configs.TrainConfig,
]


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _literal_fields():
    """(config class, field, allowed values) of every Literal field of every config."""
    found = []
    for cls in CONFIGS:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if typing.get_origin(hints[field.name]) is typing.Literal:
                found.append((cls, field.name, typing.get_args(hints[field.name])))
    return found


def _misspelt(allowed):
    """A value near the allowed ones but not among them."""
    if isinstance(allowed[0], str):
        return allowed[0].upper()
    return max(allowed) + 1


LITERALS = _literal_fields()


def test_the_enums_the_issue_names_are_checked():
    names = {f"{cls.__name__}.{name}" for cls, name, _ in LITERALS}
    assert {
        "FieldConfig.field_type",
        "WarpConfig.warp_type",
        "ExpressionConfig.where",
        "ExpressionConfig.spatial_prior",
        "ModelConfig.density_activation",
        "DataConfig.scale",
    } <= names


@pytest.mark.parametrize(
    "cls, name, allowed", LITERALS, ids=[f"{c.__name__}.{n}" for c, n, _ in LITERALS]
)
def test_every_enum_rejects_a_misspelling_and_accepts_its_values(cls, name, allowed):
    bad = _misspelt(allowed)
    with pytest.raises(ValueError) as info:
        cls(**{name: bad})
    message = str(info.value).splitlines()[0]
    assert message.startswith(f"{cls.__name__}.{name}: expected one of ")
    assert message.endswith(f"got {bad!r}")
    for value in allowed:
        assert repr(value) in message
        assert getattr(cls(**{name: value}), name) == value


@pytest.mark.parametrize(
    "cls, name, bad",
    [
        (configs.ExpressionConfig, "where", "trunc"),
        (configs.ExpressionConfig, "spatial_prior", "silhoutte"),
        (configs.FieldConfig, "field_type", "MLP"),
        (configs.DataConfig, "scale", True),  # a bool is not the integer 1
        (configs.DataConfig, "scale", 2.0),
    ],
)
def test_the_issue_misspellings(cls, name, bad):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name}: expected one of .*got "):
        cls(**{name: bad})


def test_misspelling_through_gin_names_the_binding():
    gin.parse_config('ExpressionConfig.where = "trunc"')
    with pytest.raises(ValueError, match=r"ExpressionConfig\.where: .*'trunk'.*got 'trunc'"):
        configs.ExpressionConfig()
    with pytest.raises(ValueError, match=r"ExpressionConfig\.where"):
        configs.build_all()


def test_spacing_offers_the_samplers_spacings():
    from flamenerf.nerf import volume

    hint = typing.get_type_hints(configs.ModelConfig)["spacing"]
    assert typing.get_args(hint) == volume.SPACINGS
    assert configs.ModelConfig().spacing == "linear"  # today's sampling, unchanged
    experiment.parse_gin([str(ROOT / "gin" / "demo.gin")], ['ModelConfig.spacing = "contracted"'])
    assert configs.build_all()["ModelConfig"].spacing == "contracted"
    with pytest.raises(experiment.UserError, match="ModelConfig.spacing"):
        experiment.parse_gin([str(ROOT / "gin" / "demo.gin")], ['ModelConfig.spacing = "log"'])
        configs.build_all()


def test_parse_gin_reports_one_line_with_the_scope():
    with pytest.raises(experiment.UserError) as info:
        experiment.parse_gin([str(ROOT / "gin" / "demo.gin")], ["coarse/FieldConfig.depth = -1"])
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        "bad gin configuration: FieldConfig.depth: expected an integer >= 0, got -1 "
        "(gin scope 'coarse')"
    )


@pytest.mark.parametrize(
    "cls, name, bad, good",
    [
        (configs.FieldConfig, "width", 0, 1),
        (configs.FieldConfig, "depth", -1, 0),
        (configs.FieldConfig, "viewdir_freqs", -1, 0),  # 0: no view dependence
        (configs.FieldConfig, "skips", (0,), (1,)),
        (configs.FieldConfig, "triplane_resolutions", (1, 8), (2, 8)),
        (configs.FieldConfig, "triplane_features", 0, 1),
        (configs.ModelConfig, "num_coarse_samples", 1, 2),
        (configs.ModelConfig, "num_fine_samples", 0, 1),
        (configs.ModelConfig, "appearance_dim", -1, 0),  # 0: no appearance codes
        (configs.ModelConfig, "noise_std", -0.1, 0.0),
        (configs.ModelConfig, "density_bias", float("nan"), -3.0),
        (configs.WarpConfig, "code_dim", 0, 1),
        (configs.WarpConfig, "num_freqs", -1, 0),
        (configs.ExpressionConfig, "dropout", 1.5, 1.0),
        (configs.ExpressionConfig, "dropout", -0.1, 0.0),
        (configs.ExpressionConfig, "projection_dim", -1, 0),  # 0: no projection
        (configs.ExpressionConfig, "mesh_radius_m", 0.0, 0.001),
        (configs.ExpressionConfig, "noise_std", -1.0, 0.0),
        (configs.GuideConfig, "sigma_m", 0.0, 0.001),
        (configs.GuideConfig, "resolution", 1, 2),
        (configs.GuideConfig, "move_threshold_m", -0.001, 0.0),
        (configs.LossConfig, "coarse_weight", -1.0, 0.0),
        (configs.LossConfig, "flame_warp_weight", -0.01, 0),  # 0: off
        (configs.LossConfig, "elastic_weight", "0.1", schedules.LinearSchedule(0.0, 0.1, 10)),
        (configs.LossConfig, "flame_warp_vertices", 0, 1),
        (configs.LossConfig, "elastic_scale", 0.0, 0.01),
        (configs.DataConfig, "frames_per_group", -1, 0),  # 0: all frames
        (configs.DataConfig, "prefetch", 0, 1),
        (configs.DataConfig, "capture", None, ""),
        (configs.TrainConfig, "max_steps", 0, 1),
        (configs.TrainConfig, "max_steps", 10.5, 10),
        (configs.TrainConfig, "batch_size", True, 1),
        (configs.TrainConfig, "lr_schedule", 0.0, 1e-3),
        (configs.TrainConfig, "warp_alpha_schedule", -1.0, 0.0),
        (configs.TrainConfig, "grad_clip", float("inf"), 0.0),  # 0: off
        (configs.TrainConfig, "adam_eps", 0.0, 1e-8),
        (configs.TrainConfig, "checkpoint_every", 0, 1),
        (configs.TrainConfig, "keep_checkpoints", 0, 1),
        (configs.TrainConfig, "log_every", 0, 1),
        (configs.TrainConfig, "val_every", -1, 0),  # 0: never
        (configs.TrainConfig, "val_frames", -1, 0),
        (configs.TrainConfig, "render_chunk", 0, 1),
        (configs.TrainConfig, "max_minutes", -1.0, 0.0),  # 0: no limit
    ],
)
def test_numbers_outside_their_domain_fail_and_the_edge_builds(cls, name, bad, good):
    with pytest.raises(ValueError) as info:
        cls(**{name: bad})
    message = str(info.value).splitlines()[0]
    assert message.startswith(f"{cls.__name__}.{name}: expected ")
    assert message.endswith(f"got {bad!r}")
    assert getattr(cls(**{name: good}), name) == good


def test_checks_across_fields():
    with pytest.raises(ValueError, match=r"WarpConfig\.skips: .*\[1, depth = 3\).*got \(4,\)"):
        configs.WarpConfig(depth=3)  # the default skip at 4 would not exist
    assert configs.WarpConfig(depth=3, skips=(2,)).skips == (2,)
    with pytest.raises(ValueError, match=r"FieldConfig\.triplane_resolutions: .*distinct"):
        configs.FieldConfig(triplane_resolutions=(8, 8))
    with pytest.raises(ValueError, match=r"FieldConfig\.triplane_resolutions: .*got \(\)"):
        configs.FieldConfig(triplane_resolutions=())


def test_only_a_proposal_level_may_skip_the_warp():
    assert configs.ModelConfig(sampler="proposal", proposal_warp=False).proposal_warp is False
    with pytest.raises(
        ValueError, match=r"^ModelConfig\.proposal_warp: expected True unless sampler = 'proposal'"
    ):
        configs.ModelConfig(proposal_warp=False)


def test_the_proposal_sampler_needs_its_loss_weights():
    proposal = configs.ModelConfig(sampler="proposal")
    assert configs.ModelConfig().sampler == "coarse"  # today's coarse field, unchanged
    configs.check_losses(proposal, configs.LossConfig(coarse_weight=0.0, interlevel_weight=0.5))
    configs.check_losses(configs.ModelConfig(), configs.LossConfig(interlevel_weight=0.5))
    why = r"with ModelConfig\.sampler = 'proposal'"
    with pytest.raises(
        ValueError, match=rf"^LossConfig\.coarse_weight: expected 0 {why} .*colour\), got 1\.0$"
    ):
        configs.check_losses(proposal, configs.LossConfig(interlevel_weight=1.0))
    with pytest.raises(
        ValueError, match=rf"^LossConfig\.interlevel_weight: expected > 0 {why} .*, got 0\.0$"
    ):
        configs.check_losses(proposal, configs.LossConfig(coarse_weight=0.0))
    # Through gin: one line, when the configuration is parsed.
    paper, demo = str(ROOT / "gin" / "paper.gin"), str(ROOT / "gin" / "demo.gin")
    with pytest.raises(experiment.UserError) as info:
        experiment.parse_gin([paper], ['ModelConfig.sampler = "proposal"'])
    assert str(info.value) == (
        "bad gin configuration: LossConfig.coarse_weight: expected 0 with ModelConfig.sampler = "
        "'proposal' (the proposal field renders no colour), got 1.0"
    )
    ablations = ROOT / "gin" / "ablations"
    for files, sampler, weights in (
        ([paper], "coarse", (1, 0)),
        ([paper, ablations / "proposal.gin"], "proposal", (0, 1)),
        ([demo], "proposal", (0, 1)),  # the demo's sampler
        ([demo, ablations / "coarse_sampler.gin"], "coarse", (1, 0)),
    ):
        experiment.parse_gin([str(f) for f in files], [])
        built = configs.build_all()
        assert built["ModelConfig"].sampler == sampler
        assert (built["LossConfig"].coarse_weight, built["LossConfig"].interlevel_weight) == weights
    assert built["ModelConfig"].num_fine_samples == 16  # the demo's before the proposal sampler
    with pytest.raises(experiment.UserError, match=r"ModelConfig\.sampler: .*got 'nerf'"):
        experiment.parse_gin([demo], ['ModelConfig.sampler = "nerf"'])


def test_values_are_normalised_and_configs_stay_hashable():
    field = configs.FieldConfig(skips=[2], width=np.int64(8), triplane_resolutions=[4, 8])
    assert field.skips == (2,) and field.triplane_resolutions == (4, 8)
    assert type(field.width) is int
    loss = configs.LossConfig(coarse_weight=np.float32(0.5), flame_warp_weight=1)
    assert type(loss.coarse_weight) is float and loss.flame_warp_weight == 1.0
    hash(configs.ModelConfig(coarse=field, fine=field))


def _gin_files():
    """Every gin file; the ablations alone and on top of each full configuration."""
    full = sorted((ROOT / "gin").glob("*.gin")) + sorted((ROOT / "tests" / "gin").glob("*.gin"))
    ablations = sorted((ROOT / "gin" / "ablations").glob("*.gin"))
    assert full and ablations
    full.remove(ROOT / "gin" / "defaults.gin")  # included by the others; not complete alone
    runs = [[f] for f in full + ablations]
    runs += [[base, a] for base in full for a in ablations]
    return runs


@pytest.mark.parametrize("files", _gin_files(), ids=lambda files: "+".join(f.stem for f in files))
def test_every_gin_file_builds_every_config(files):
    experiment.parse_gin([str(f) for f in files], [])  # builds every config (configs.build_all)
    built = configs.build_all()
    assert set(built) == {cls.__name__ for cls in CONFIGS} - {"FieldConfig"}
    model = built["ModelConfig"]
    assert isinstance(model.coarse, configs.FieldConfig)
    assert isinstance(model.fine, configs.FieldConfig)
    guide = built["GuideConfig"]
    # What Experiment.create would refuse: the colour reads the head's rotation from the
    # guide's rigid part.
    assert not model.pose_shading or (guide.enabled and guide.undo_rigid)


def test_incomplete_gin_file_is_reported_in_one_line():
    with pytest.raises(experiment.UserError) as info:
        experiment.parse_gin([str(ROOT / "gin" / "defaults.gin")], [])
    message = str(info.value)
    assert "\n" not in message and "ExponentialSchedule" in message
    assert "initial_value" in message and message.endswith("(gin scope 'lr')")


def test_training_cli_reports_a_misspelt_binding_in_one_line(tmp_path):
    folder = tmp_path / "exp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flamenerf.train",
            "--gin_configs",
            str(ROOT / "gin" / "demo.gin"),
            "--gin_bindings",
            'ExpressionConfig.where="trunc"',
            "--base_folder",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr == (
        "error: bad gin configuration: ExpressionConfig.where: expected one of 'none', "
        "'trunk', 'skip', 'color', got 'trunc'\n"
    )
    assert not folder.exists()


@pytest.mark.parametrize(
    "base, ablation, before, after",
    [("demo", "view_dependence", 0, 4), ("paper", "no_view_dependence", 4, 0)],
)
def test_view_dependence_ablations_change_both_levels_and_nothing_else(
    base, ablation, before, after
):
    base_file = str(ROOT / "gin" / f"{base}.gin")
    experiment.parse_gin([base_file], [])
    built = configs.build_all()["ModelConfig"]
    experiment.parse_gin([base_file, str(ROOT / "gin" / "ablations" / f"{ablation}.gin")], [])
    model = configs.build_all()["ModelConfig"]
    assert built.fine.viewdir_freqs == built.coarse.viewdir_freqs == before
    assert model.fine.viewdir_freqs == model.coarse.viewdir_freqs == after
    assert model.fine == dataclasses.replace(built.fine, viewdir_freqs=after)
    assert model.coarse == dataclasses.replace(built.coarse, viewdir_freqs=after)
