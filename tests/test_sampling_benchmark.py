# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/sampling.py (sample spacing and counts, issue 19): its arguments, variants and
table, and a 2-step run of one variant on a tiny capture end to end (the figures mean
nothing; timings are never asserted)."""

import dataclasses
import json
import math
import subprocess
import sys

import pytest
from benchmark_util import BENCHMARKS, ROOT, clean_gin, load  # noqa: F401 (autouse fixture)

from flamenerf import configs
from flamenerf.training import experiment

sampling = load("sampling")


def test_arguments_and_their_defaults():
    args = sampling.parse_args([])
    assert args.steps == 1000 and args.seeds == [0, 1] and args.out == "bench_out/sampling"
    assert args.variants == [
        "linear_32_24",
        "contracted_32_24",
        "contracted_16_16",
        "contracted_24_16",
        "proposal_32_24",
        "proposal_contracted_32_24",
        "proposal_contracted_24_16",
        "proposal_contracted_24_8",
    ]
    assert (args.size, args.frames, args.val, args.bindings, args.no_mfu) == (
        None,
        None,
        None,
        [],
        False,
    )
    args = sampling.parse_args(
        ["--steps", "5", "--seeds", "3", "--variants", "contracted_16_16", "--size", "16"]
        + ["--bindings", "TrainConfig.batch_size = 64", "--no_mfu", "--out", "x"]
    )
    assert (args.steps, args.seeds, args.variants, args.size) == (5, [3], ["contracted_16_16"], 16)
    assert args.bindings == ["TrainConfig.batch_size = 64"] and args.no_mfu and args.out == "x"
    for bad in (["--variants", "linear_64_64"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as info:
            sampling.parse_args(bad)
        assert info.value.code == 2


@pytest.mark.parametrize("variant", list(sampling.VARIANTS))
def test_each_variant_is_the_demo_with_its_sampler_spacing_and_counts(variant):
    experiment.parse_gin(["demo.gin"], [])
    demo = configs.build_all()
    bindings = sampling.variant_bindings(variant) + sampling.run_bindings(7, 1)
    experiment.parse_gin(sampling.variant_configs(variant), bindings)
    built = configs.build_all()
    spacing, coarse, fine, sampler = sampling.VARIANTS[variant]
    model = built["ModelConfig"]
    assert (model.sampler, model.spacing, model.num_coarse_samples, model.num_fine_samples) == (
        sampler,
        spacing,
        coarse,
        fine,
    )
    assert model == dataclasses.replace(
        demo["ModelConfig"],
        sampler=sampler,
        spacing=spacing,
        num_coarse_samples=coarse,
        num_fine_samples=fine,
        # a coarse radiance field renders colour from the warped points (coarse_sampler.gin)
        proposal_warp=demo["ModelConfig"].proposal_warp or sampler == "coarse",
    )
    for name in ("WarpConfig", "ExpressionConfig", "GuideConfig", "DataConfig"):
        assert built[name] == demo[name], name
    weights = (1.0, 0.0) if sampler == "coarse" else (0.0, 1.0)  # the sampler's gin file
    loss = built["LossConfig"]
    assert (loss.coarse_weight, loss.interlevel_weight) == weights
    assert loss == dataclasses.replace(
        demo["LossConfig"], coarse_weight=weights[0], interlevel_weight=weights[1]
    )
    train = built["TrainConfig"]
    assert (train.max_steps, train.seed, train.val_every, train.val_frames) == (7, 1, 0, 0)
    assert train.lr_schedule.num_steps == 7
    assert sampling.VARIANTS["linear_32_24"] == ("linear", 32, 24, "coarse")  # the previous demo
    assert sampling.VARIANTS["proposal_32_24"] == ("linear", 32, 24, "proposal")  # same budget
    assert sampling.VARIANTS["contracted_24_16"] == ("contracted", 24, 16, "coarse")  # demo before
    assert sampling.VARIANTS["proposal_contracted_24_8"] == ("contracted", 24, 8, "proposal")
    model = demo["ModelConfig"]  # the demo is proposal_contracted_24_8
    counts = (model.spacing, model.num_coarse_samples, model.num_fine_samples)
    assert counts == ("contracted", 24, 8)
    assert model.sampler == "proposal"


def test_table_rows_means_and_failures():
    row = {"psnr": 30.0, "psnr_face": 28.0, "rays_per_s": 5000.0, "wall_s": 300.0, "mfu": 0.1}
    other = dict(row, psnr=31.0, mfu=math.nan)
    lines = sampling.table(
        {
            "linear_32_24": {0: row, 1: other},
            "contracted_16_16": {0: {"error": "failed: boom"}},
            "proposal_32_24": {0: row},
        }
    ).split("\n")
    assert lines[0].startswith(
        "| variant | sampler | spacing | samples | seed | PSNR whole | PSNR face |"
    )
    head = "| linear_32_24 | coarse | linear | 32 + 24"
    assert lines[2] == f"{head} | 0 | 30.00 | 28.00 | 5000 | 300 | 10.0% |"
    assert lines[3] == f"{head} | 1 | 31.00 | 28.00 | 5000 | 300 | n/a |"
    assert lines[4].startswith(f"{head} | mean of 2 | 30.50 | 28.00 |")
    assert lines[5].startswith(
        "| contracted_16_16 | coarse | contracted | 16 + 16 | 0 | failed: boom |"
    )
    proposal = "| proposal_32_24 | proposal | linear | 32 + 24"
    assert lines[6] == f"{proposal} | 0 | 30.00 | 28.00 | 5000 | 300 | 10.0% |"
    assert len(lines) == 7 and all(line.count("|") == lines[0].count("|") for line in lines)


def test_logged_rays_per_second_is_the_median_of_the_training_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [
        {"step": 1, "split": "train", "rays_per_s": 10.0},
        {"step": 2, "split": "val", "psnr": 20.0},
        {"step": 3, "split": "train", "rays_per_s": 30.0},
        {"step": 4, "split": "train", "rays_per_s": 20.0},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert sampling.logged_rays_per_second(path) == 20.0
    assert math.isnan(sampling.logged_rays_per_second(tmp_path / "missing.jsonl"))


def test_two_step_tiny_run_end_to_end(tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(BENCHMARKS / "sampling.py"),
        "--steps",
        "2",
        "--seeds",
        "0",
        "--variants",  # one variant (the proposal's path): the table's rows are tested above
        "proposal_32_24",
        "--size",
        "16",
        "--frames",
        "4",
        "--val",
        "1",
        "--out",
        str(out),
        "--bindings",
        "TrainConfig.batch_size = 64",
        "TrainConfig.render_chunk = 256",
        "GuideConfig.resolution = 16",
        'GuideConfig.rigid_weight = "ball"',  # the neck's flow compiles ~20 s longer
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # the packaged config is found by name from any folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("devices: ") and "matmul peak" in lines[0]
    assert lines[1].startswith("capture: synthetic-16px-4train-1val-")
    assert lines[2].startswith("| variant | sampler | spacing | samples | seed |")
    assert len(lines) == 5
    for line, variant in zip(lines[4:], ["proposal_32_24"], strict=True):
        spacing, coarse, fine, sampler = sampling.VARIANTS[variant]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:5] == [variant, sampler, spacing, f"{coarse} + {fine}", "0"]
        assert math.isfinite(float(cells[5])) and math.isfinite(float(cells[6]))  # PSNRs
        folder = out / f"{variant}-seed0"
        assert (folder / "checkpoints" / "2").is_dir()
        metrics = json.loads((folder / "eval" / "step_2" / "metrics.json").read_text())
        assert metrics["step"] == 2 and float(cells[5]) == pytest.approx(
            metrics["mean"]["psnr"], abs=0.006
        )
        saved = (folder / "config.gin").read_text()
        assert f"ModelConfig.spacing = '{spacing}'" in saved
        assert ("ModelConfig.sampler = 'proposal'" in saved) == (sampler == "proposal")
    # A second run into the same folders refuses before doing anything.
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 2 and "exist already" in again.stderr
