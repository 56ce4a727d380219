# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/nerfies_step.py: Nerfies' train step against flamenerf's at Nerfies' size.

flamenerf's side, the arguments, the report and the patching run here at a tiny size, without
Nerfies. Nerfies' side runs (in a subprocess: its gin configurables would otherwise stay
registered next to flamenerf's for the rest of the session) only where a copy of
google/nerfies is on the machine (`$FLAMENERF_NERFIES_SOURCE`: a git directory or checkout of
it) with its dependencies. Timings are never checked.
"""

import importlib.util
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_util import BENCHMARKS, ROOT, clean_gin, load  # noqa: F401 (autouse fixture)

from flamenerf.nerf import warping

nerfies_step = load("nerfies_step")
NERFIES_SOURCE = os.environ.get("FLAMENERF_NERFIES_SOURCE", "")
NERFIES = Path(NERFIES_SOURCE)
TINY = nerfies_step.Size(batch_size=8, width=16, depth=2, coarse=4, fine=4, background_points=16)
TINY_ARGS = ["--batch_size", "8", "--width", "16", "--depth", "2", "--coarse", "4", "--fine", "4"]


def nerfies_missing() -> str | None:
    """Why Nerfies' side cannot run here (None: it can)."""
    if not NERFIES_SOURCE or not NERFIES.exists():
        return (
            f"no google/nerfies at {NERFIES_SOURCE!r} (set FLAMENERF_NERFIES_SOURCE to a git "
            "directory or checkout of it)"
        )
    if not (NERFIES / "nerfies").is_dir() and shutil.which("git") is None:
        return "git is needed to export Nerfies from a git directory"
    for name in ("immutabledict", "absl", "tqdm", "scipy"):
        if importlib.util.find_spec(name) is None:
            return f"Nerfies needs the Python module {name}, not installed"
    return None


needs_nerfies = pytest.mark.skipif(
    nerfies_missing() is not None, reason=f"Nerfies' side skipped: {nerfies_missing()}"
)


# --------------------------------------------------------------------------------------------
# flamenerf's side and the arguments.


def test_flamenerf_side_has_nerfies_test_vrig_model_size():
    # google/nerfies configs/test_vrig.gin with its defaults: 8x128 NeRF (skip at 4, 8 point
    # and 4 view frequencies, 1x128 colour branch), 64 + 64 samples (the fine MLP sees all),
    # SE(3) warp 6x128 (skip at 4, 8 frequencies, 8-d codes), 1,024 rays, elastic weight
    # 0.001 (scale 0.03) and background weight 1.
    cfg = nerfies_step.flamenerf_configs(nerfies_step.Size(), "all")
    model = cfg["ModelConfig"]
    for field in (model.coarse, model.fine):
        assert (field.field_type, field.depth, field.width, field.skips) == ("mlp", 8, 128, (4,))
        assert (field.point_freqs, field.viewdir_freqs) == (8, 4)
        assert (field.rgb_depth, field.rgb_width) == (1, 128)
    assert (model.num_coarse_samples, model.num_fine_samples) == (64, 64)
    assert model.fine_includes_coarse
    warp = cfg["WarpConfig"]
    assert warp.warp_type == "se3" and "se3" in warping.WARP_FIELDS
    assert (warp.depth, warp.width, warp.skips, warp.num_freqs, warp.code_dim) == (
        6,
        128,
        (4,),
        8,
        8,
    )
    assert warp.region == "everywhere"
    losses = cfg["LossConfig"]
    assert (losses.elastic_weight, losses.elastic_scale, losses.background_weight) == (
        0.001,
        0.03,
        1.0,
    )
    assert losses.flame_warp_weight == 0.0 and losses.triplane_tv_weight == 0.0
    assert cfg["TrainConfig"].batch_size == 1024
    assert cfg["ExpressionConfig"].where == "none" and not cfg["GuideConfig"].enabled


def test_rgb_only_turns_the_regularisers_off_on_both_sides():
    cfg = nerfies_step.flamenerf_configs(TINY, "rgb")
    assert cfg["LossConfig"].elastic_weight == 0.0 == cfg["LossConfig"].background_weight
    assert cfg["ModelConfig"].coarse.width == 16 and cfg["ModelConfig"].fine.depth == 2
    bindings = nerfies_step.nerfies_bindings(TINY, "rgb")
    assert "nerfies.configs.TrainConfig.use_elastic_loss = False" in bindings
    assert "nerfies.configs.TrainConfig.use_background_loss = False" in bindings
    assert "nerfies.configs.ModelConfig.nerf_trunk_width = 16" in bindings


def test_flamenerf_side_runs_at_a_tiny_size():
    side = nerfies_step.flamenerf_side(TINY, "all")
    assert side.name == "flamenerf" and side.batch_size == 8
    assert side.flops > 0
    side.run(2)  # compiles, then steps on fresh batches


def test_arguments_and_their_errors(capsys):
    args = nerfies_step.parse_args(["--steps", "2", "--warmup", "1", *TINY_ARGS])
    assert nerfies_step.size_of(args) == nerfies_step.Size(8, 16, 2, 4, 4, 16384)
    assert args.nerfies is None and args.losses == "all"
    defaults = nerfies_step.size_of(nerfies_step.parse_args([]))
    assert defaults == nerfies_step.Size(1024, 128, 8, 64, 64, 16384)
    for bad in (["--warmup", "0"], ["--steps", "0"], ["--coarse", "1"], ["--losses", "x"]):
        with pytest.raises(SystemExit):
            nerfies_step.parse_args(bad)
        assert "error:" in capsys.readouterr().err


def test_timing_alternates_the_sides_after_warming_up():
    calls = []
    sides = [
        nerfies_step.Side(name, lambda n, name=name: calls.append((name, n)), 1e9, 8)
        for name in ("flamenerf", "Nerfies")
    ]
    seconds = nerfies_step.time_sides(sides, steps=3, warmup=2, rounds=2)
    assert calls == [("flamenerf", 2), ("Nerfies", 2)] + [("flamenerf", 3), ("Nerfies", 3)] * 2
    assert set(seconds) == {"flamenerf", "Nerfies"}


def test_report_gives_the_ratio_and_each_sides_mfu():
    sides = [
        nerfies_step.Side("flamenerf", None, 2e9, 1024),
        nerfies_step.Side("Nerfies", None, 4e9, 1024),
    ]
    lines = nerfies_step.report(sides, {"flamenerf": 1.0, "Nerfies": 3.0}, peak=10.0)
    # flamenerf: 2 GFLOP in 1 s of a 10 GFLOP/s peak; Nerfies: 4 GFLOP in 3 s.
    assert "| flamenerf | 1024 | 1.000 | 1024 | 2.0 | 2.0 | 20.0% |" in lines
    assert "| Nerfies | 1024 | 3.000 | 341 | 4.0 | 1.3 | 13.3% |" in lines
    assert lines[-1].startswith("flamenerf is 3.00x Nerfies' speed")
    assert math.isnan(nerfies_step.mfu(0.0, 1.0, 10.0))  # unknown FLOPs
    alone = nerfies_step.report(sides[:1], {"flamenerf": 1.0}, peak=10.0)
    assert not any("speed" in line for line in alone)


# --------------------------------------------------------------------------------------------
# Patching Nerfies (a stand-in tree: no Nerfies needed).


def fake_nerfies(root: Path) -> Path:
    """A tree with every file the patches touch, each holding the text they replace."""
    for patch in nerfies_step.PATCHES:
        path = root / patch.path
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text() if path.exists() else ""
        if patch.old not in text:
            path.write_text(text + patch.old * patch.count + "\n")
    for name in nerfies_step.GIN_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("ModelConfig.use_warp = True\nTrainConfig.batch_size = 8\n")
    (root / "nerfies" / "models.py").write_text("")
    return root


def test_patches_apply_and_qualify_the_gin_selectors(tmp_path):
    root = fake_nerfies(tmp_path / "nerfies")
    nerfies_step.apply_patches(root)
    model_utils = (root / "nerfies" / "model_utils.py").read_text()
    assert f"import {nerfies_step.SHIM_MODULE} as optim" in model_utils
    assert "from flax import optim" not in model_utils
    gin_text = (root / nerfies_step.NERFIES_GIN).read_text()
    assert "nerfies.configs.ModelConfig.use_warp = True" in gin_text
    assert "nerfies.configs.TrainConfig.batch_size = 8" in gin_text


def test_a_patch_whose_text_is_missing_fails_loudly(tmp_path):
    root = fake_nerfies(tmp_path / "nerfies")
    schedules = root / "nerfies" / "schedules.py"
    schedules.write_text(schedules.read_text().replace("collections.Mapping)", "Mapping)"))
    with pytest.raises(nerfies_step.NerfiesSourceError, match="nerfies/schedules.py: expected 1"):
        nerfies_step.apply_patches(root)


def test_a_source_that_is_not_nerfies_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(nerfies_step.NerfiesSourceError, match="neither"):
        nerfies_step.export_nerfies(tmp_path / "empty", tmp_path / "scratch")


def test_a_bad_source_is_a_one_line_error_before_anything_compiles(tmp_path, capsys):
    assert nerfies_step.main(["--nerfies", str(tmp_path), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --nerfies {tmp_path}: expected a git directory")


def test_the_optim_shim_is_adam_with_a_per_step_learning_rate():
    import jax.numpy as jnp
    import optax

    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    optimizer = nerfies_step.ShimAdam(0.1).create(params)
    stepped = optimizer.apply_gradient(grads, learning_rate=0.01)
    reference = optax.adam(0.01)
    updates, _ = reference.update(grads, reference.init(params), params)
    expected = optax.apply_updates(params, updates)
    assert jnp.allclose(stepped.target["w"], expected["w"])
    assert float(stepped.state.hyperparams["learning_rate"]) == pytest.approx(0.01)


# --------------------------------------------------------------------------------------------
# Nerfies' side (needs google/nerfies on the machine).


@needs_nerfies
def test_patches_apply_to_google_nerfies(tmp_path):
    root = nerfies_step.export_nerfies(NERFIES, tmp_path)
    nerfies_step.apply_patches(root)  # every text found exactly as often as expected


@needs_nerfies
def test_both_sides_run_end_to_end_at_a_tiny_size():
    command = [
        sys.executable,
        str(BENCHMARKS / "nerfies_step.py"),
        "--nerfies",
        str(NERFIES),
        *TINY_ARGS,
        "--background_points",
        "16",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--rounds",
        "1",
        "--matmul",
        "64",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("| flamenerf | 8 |") for line in lines), result.stdout
    assert any(line.startswith("| Nerfies | 8 |") for line in lines), result.stdout
    assert any(line.startswith("flamenerf is ") for line in lines), result.stdout
