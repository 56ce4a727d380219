# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/accelerator.py (the GPU/TPU one-shot benchmark) and gin/gpu.gin.

No accelerator here: the benchmark's `--quick` path runs end to end on the CPU (the figures
mean nothing), its MFU arithmetic is checked with known numbers, and gpu.gin is checked to be
the demo plus exactly the overrides it documents.
"""

import dataclasses
import math
import subprocess
import sys

import pytest
from benchmark_util import BENCHMARKS, ROOT, clean_gin, load  # noqa: F401 (autouse fixture)

from flamenerf import configs
from flamenerf.training import experiment

accelerator = load("accelerator")


def test_mfu_is_achieved_over_peak_flops():
    # 3 TFLOP a step, 0.25 s a step: 12 TFLOP/s achieved; a 48 TFLOP/s peak: 25%.
    assert accelerator.mfu(3e12, 0.25, 48e12) == pytest.approx(0.25)
    # Per device or for all devices alike: 4 devices, each a quarter of the FLOPs and peak.
    assert accelerator.mfu(3e12 / 4, 0.25, 12e12) == pytest.approx(0.25)
    assert accelerator.mfu(1e9, 1.0, 1e9) == 1.0
    for unknown in [(0.0, 1.0, 1e9), (1e9, 0.0, 1e9), (1e9, 1.0, 0.0)]:
        assert math.isnan(accelerator.mfu(*unknown))


def test_peak_memory_reads_the_devices_statistics():
    class Device:
        def __init__(self, stats):
            self.stats = stats

        def memory_stats(self):
            return self.stats

    devices = [Device({"peak_bytes_in_use": 3 * 2**30}), Device({"peak_bytes_in_use": 2**30})]
    assert accelerator.peak_memory_bytes(devices) == 3 * 2**30
    assert accelerator.peak_memory_bytes([Device(None), Device({})]) is None
    assert accelerator.format_memory(None) == "n/a"
    assert accelerator.format_memory(3 * 2**30) == "3.00 GiB"


def test_table_has_one_row_per_config_and_keeps_failures():
    row = {
        "config": "demo.gin",
        "batch": 2048,
        "step_s": 0.5,
        "rays_per_s": 4096.0,
        "gflop_per_step": 100.0,
        "peak_gflops": 400.0,
        "mfu": 0.5,
        "render_s": 1.25,
        "peak_memory": None,
    }
    lines = accelerator.table([row, {"config": "gpu.gin", "error": "timed out"}], 512).split("\n")
    assert len(lines) == 4 and "render 512x512 s/frame" in lines[0]
    assert lines[2] == "| demo.gin | 2048 | 0.500 | 4096 | 100.0 | 400 | 50.0% | 1.25 | n/a |"
    assert lines[3].startswith("| gpu.gin | timed out |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    # A tiny frame on a fast device renders in milliseconds: three significant digits, never 0.
    fast = accelerator.table([{**row, "render_s": 0.0041234}], 16).split("\n")[2]
    assert "| 0.00412 |" in fast


def _built(files):
    experiment.parse_gin(files, [])
    return configs.build_all()


def test_gpu_gin_is_the_demo_with_its_documented_overrides():
    demo, gpu = _built(["demo.gin"]), _built(["gpu.gin"])
    # The demo's mechanism is untouched.
    for name in ("WarpConfig", "ExpressionConfig", "GuideConfig", "LossConfig"):
        assert gpu[name] == demo[name], name
    assert gpu["DataConfig"].scale == 1 and gpu["DataConfig"] == demo["DataConfig"]
    model, demo_model = gpu["ModelConfig"], demo["ModelConfig"]
    assert model.coarse == demo_model.coarse
    assert (
        dataclasses.replace(
            model.fine,
            triplane_resolutions=demo_model.fine.triplane_resolutions,
            triplane_features=demo_model.fine.triplane_features,
            width=demo_model.fine.width,
            rgb_width=demo_model.fine.rgb_width,
        )
        == demo_model.fine
    )
    assert model.fine.triplane_resolutions == (64, 128, 256, 512, 1024)
    assert (model.fine.triplane_features, model.fine.width, model.fine.rgb_width) == (16, 128, 128)
    assert (model.num_coarse_samples, model.num_fine_samples) == (128, 128)
    assert (
        dataclasses.replace(model, fine=demo_model.fine, num_coarse_samples=24, num_fine_samples=8)
        == demo_model
    )
    train = gpu["TrainConfig"]
    assert (train.batch_size, train.max_steps, train.max_minutes) == (6144, 250_000, 0.0)
    assert train.lr_schedule.num_steps == 250_000
    assert train.warp_alpha_schedule.num_steps == 80_000
    assert train.warp_alpha_schedule.final_value == gpu["WarpConfig"].num_freqs


def test_quick_run_end_to_end_on_cpu(tmp_path):
    # The demo with the guide's cheaper rigid part (the neck weight's flow compiles ~20 s
    # longer); the benchmark's machinery is what is tested.
    config = tmp_path / "demo_ball.gin"
    config.write_text("include 'demo.gin'\ninclude 'ablations/ball_rigid.gin'\n")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "accelerator.py"), "--quick", "--configs", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # the packaged config is found by name from any folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("devices: ") and "cpu" in lines[0]
    assert lines[1].startswith("capture: synthetic, 16x16 px, 4 training frames")
    assert lines[2].startswith("| config | batch | s/step | rays/s |")
    assert len(lines) == 5
    cells = [c.strip() for c in lines[4].strip("|").split("|")]
    assert cells[0] == str(config) and cells[1] == "64"
    assert float(cells[3]) > 0 and float(cells[4]) > 0  # rays/s, GFLOP/step
    assert cells[6].endswith("%") and float(cells[7]) > 0
    assert cells[8] == "n/a"  # the CPU keeps no memory statistics
