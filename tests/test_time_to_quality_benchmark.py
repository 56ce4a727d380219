# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/time_to_quality.py (issue 19): its arguments, the reading of a hand-written
metrics.jsonl (validation time left out exactly, the first crossing at the right step), the
report, and a 4-step run of the train command on a tiny capture end to end (the figures mean
nothing; timings are never asserted)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_util import BENCHMARKS, clean_gin, load  # noqa: F401 (autouse fixture)
from capture_util import write_capture

from flamenerf.evaluation import figures

ttq = load("time_to_quality")
TINY = str(Path(__file__).parent / "gin" / "tiny.gin")


def test_arguments_and_their_defaults():
    args = ttq.parse_args([])
    assert args.variants == [ttq.Variant("demo", ["demo.gin"], [])]
    assert (args.seeds, args.val_every, args.whole, args.face, args.budget) == (
        [0, 1],
        100,
        30.0,
        28.0,
        300.0,
    )
    assert (args.bindings, args.data_dir, args.timeout, args.out) == (
        [],
        None,
        None,
        "bench_out/time_to_quality",
    )
    args = ttq.parse_args(
        ["--variant", "demo=demo.gin", "--variant", "small=demo.gin,extra.gin"]
        + ["coarse/FieldConfig.triplane_resolutions = (32, 64)", "ModelConfig.spacing = 'x'"]
        + ["--seeds", "3", "--val_every", "50", "--out", "o", "--bindings", "A.b = 1"]
    )
    assert args.variants == [
        ttq.Variant("demo", ["demo.gin"], []),
        ttq.Variant(
            "small",
            ["demo.gin", "extra.gin"],
            ["coarse/FieldConfig.triplane_resolutions = (32, 64)", "ModelConfig.spacing = 'x'"],
        ),
    ]
    assert (args.seeds, args.val_every, args.out, args.bindings) == ([3], 50, "o", ["A.b = 1"])
    for bad in (
        ["--variant", "demo.gin"],
        ["--variant", "=demo.gin"],
        ["--variant", "demo="],
        ["--variant", "a/b=demo.gin"],
        ["--variant", "a=demo.gin", "--variant", "a=other.gin"],
        ["--val_every", "0"],
        ["--seeds", "1", "1"],
    ):
        with pytest.raises(SystemExit) as info:
            ttq.parse_args(bad)
        assert info.value.code == 2, bad


def test_each_run_is_the_train_command_with_empty_caches_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
    args = ttq.parse_args(
        ["--variant", "v=a.gin,b.gin", "X.y = (1, 2)", "--val_every", "7", "--bindings", "Z = 3"]
    )
    folder = ttq.run_folder(tmp_path, "v", 5)
    assert folder == tmp_path / "v-seed5"
    command = ttq.train_command(args.variants[0], 5, folder, args)
    assert command == [
        sys.executable,
        "-m",
        "flamenerf.train",
        "--gin_configs",
        "a.gin",
        "b.gin",
        "--gin_bindings",
        "X.y = (1, 2)",
        "TrainConfig.val_every = 7",
        "TrainConfig.max_minutes = 0",
        "TrainConfig.seed = 5",
        "Z = 3",
        "--base_folder",
        str(folder / "exp"),
    ]
    args.data_dir = "cap"
    assert ttq.train_command(args.variants[0], 5, folder, args)[-2:] == ["--data_dir", "cap"]
    env = ttq.run_environment(folder)
    assert env["FLAMENERF_CACHE"] == str((folder / "cache").resolve())
    assert env["FLAMENERF_COMPILATION_CACHE"] == str((folder / "compilation_cache").resolve())
    assert "JAX_COMPILATION_CACHE_DIR" not in env


STARTUP = {
    "step": 0,
    "wall_s": 30.0,
    "split": "startup",
    "imports_s": 2.0,
    "capture_s": 7.5,
    "setup_s": 2.5,
    "data_s": 3.0,
    "grids_s": 12.0,
    "compile_s": 8.0,
    "first_step_s": 1.0,
    "startup_s": 40.5,
    "process_s": 10.5,
}


def hand_written_records():
    """A run: start-up 40.5 s of which 36 in phases; validations at 100, 200, 300 and 300
    again (as older versions did at the last step), the last two over the thresholds."""
    return [
        STARTUP,
        {"step": 50, "wall_s": 45.0, "split": "train", "psnr": 20.0, "loss": 0.1},
        {
            "step": 100,
            "wall_s": 65.0,
            "split": "val",
            "psnr": 25.0,
            "psnr_face": 24.0,
            "psnr_outside": 25.5,
            "val_s": 5.0,
        },  # fmt: skip
        {
            "step": 200,
            "wall_s": 100.0,
            "split": "val",
            "psnr": 30.5,
            "psnr_face": 27.9,
            "val_s": 4.0,
        },  # fmt: skip
        {
            "step": 300,
            "wall_s": 140.0,
            "split": "val",
            "psnr": 31.0,
            "psnr_face": 28.0,
            "val_s": 6.0,
        },  # fmt: skip
        {
            "step": 300,
            "wall_s": 143.0,
            "split": "val",
            "psnr": 31.0,
            "psnr_face": 28.0,
            "val_s": 3.0,
        },  # fmt: skip
        {"step": 350, "wall_s": 150.0, "split": "train", "psnr": 33.0, "loss": 0.01},
        {
            "step": 400,
            "wall_s": 170.0,
            "split": "val",
            "psnr": 32.0,
            "psnr_face": 29.0,
            "val_s": 2.0,
        },  # fmt: skip
    ]


def test_timeline_leaves_every_validation_out_and_finds_the_first_crossing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in hand_written_records()) + "\n")
    result = ttq.timeline(figures.read_records(path))
    startup = result["startup"]
    assert startup["other_s"] == pytest.approx(40.5 - 36.0)
    assert {k: startup[k] for k in ttq.PHASES} == {k: STARTUP[k] for k in ttq.PHASES}
    assert (startup["startup_s"], startup["process_s"]) == (40.5, 10.5)
    rows = result["validations"]
    assert [r["step"] for r in rows] == [100, 200, 300, 400]  # the repeated 300 kept once
    # Seconds since the process started (wall_s + process_s) minus every validation so far,
    # this one included; the repeated validation's 3 s are left out too.
    expected = [10.5 + 65 - 5, 10.5 + 100 - 9, 10.5 + 140 - 15, 10.5 + 170 - 20]
    assert [r["wall_s"] for r in rows] == pytest.approx(expected, abs=1e-9)
    assert [r["val_s"] for r in rows] == [5.0, 4.0, 6.0, 2.0]
    assert result["validation_s"] == 20.0
    assert [(r["psnr"], r["psnr_face"]) for r in rows][:2] == [(25.0, 24.0), (30.5, 27.9)]
    crossing = ttq.first_crossing(rows, 30.0, 28.0)
    assert crossing["step"] == 300 and crossing["wall_s"] == pytest.approx(135.5)
    assert ttq.first_crossing(rows, 30.0, 27.0)["step"] == 200  # face met earlier
    assert ttq.first_crossing(rows, 25.0, 24.0)["step"] == 100  # exactly on the lines
    assert ttq.first_crossing(rows, 32.5, 20.0) is None


def test_metrics_without_the_timing_records_are_refused(tmp_path):
    records = hand_written_records()
    with pytest.raises(ValueError, match="m.jsonl: no 'startup' record"):
        ttq.timeline(records[1:], "m.jsonl")
    without = [dict(records[0]), *records[1:]]
    del without[0]["process_s"]
    with pytest.raises(ValueError, match="has no process_s"):
        ttq.timeline(without, "m.jsonl")
    old = [r for r in records if r.get("split") != "val"] + [
        {"step": 100, "wall_s": 1.0, "split": "val", "psnr": 1.0, "psnr_face": 1.0}
    ]
    with pytest.raises(ValueError, match="step 100: a validation without val_s"):
        ttq.timeline(old, "m.jsonl")
    path = tmp_path / "bad.jsonl"
    path.write_text('{"step": 1}\n[1]\n')
    with pytest.raises(ValueError, match="bad.jsonl: line 2: expected an object"):
        figures.read_records(path)


def test_report_tables_and_plot(tmp_path):
    run = ttq.timeline(hand_written_records())
    run.update(crossing=ttq.first_crossing(run["validations"], 30, 28), process_wall_s=180.0)
    late = dict(run, crossing=dict(run["crossing"], wall_s=400.0))
    results = {
        "demo": {0: run, 1: late},
        "other": {0: {"error": "exit 2: error: bad (see x)"}},
    }
    args = ttq.parse_args(["--variant", "demo=demo.gin", "--variant", "other=demo.gin"])
    text = ttq.report(results, args)
    lines = ttq.summary_table(results, 300.0).split("\n")
    assert lines[0].startswith("| variant | seed | start-up s | crossed at step |")
    assert lines[2] == (
        "| demo | 0 | 40.5 | 300 | 135.5 | yes | 400 | 32.00 | 29.00 | 20.0 | 180.0 |"
    )
    assert lines[3].startswith("| demo | 1 | 40.5 | 300 | 400.0 | no |")
    assert lines[4].startswith("| demo | mean of 2 crossed |  |  | 267.8 | yes |")
    assert lines[5].startswith("| other | 0 | exit 2: error: bad (see x) |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    startup = ttq.startup_table(results).split("\n")
    assert startup[2] == "| demo | 0 | 2.0 | 7.5 | 2.5 | 3.0 | 12.0 | 8.0 | 1.0 | 4.5 | 40.5 |"
    assert all(line.count("|") == startup[0].count("|") for line in startup)
    validations = ttq.validation_table(results).split("\n")
    assert validations[2] == "| demo | 0 | 100 | 70.5 | 25.00 | 24.00 | 5.0 |"
    assert len(validations) == 2 + 2 * 4
    for table in (lines, startup, validations):
        assert "\n".join(table) in text
    path = ttq.plot(results, args, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tiny_run_end_to_end(tmp_path):
    capture = write_capture(
        tmp_path / "cap", num_train=6, num_val=2, width=16, height=12, masks=True
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(BENCHMARKS / "time_to_quality.py"),
        "--variant",
        f"tiny={TINY}",
        "GuideConfig.enabled = True",
        "GuideConfig.resolution = 8",
        "--seeds",
        "0",
        "--val_every",
        "2",
        "--whole",
        "-100",
        "--face",
        "-100",
        "--data_dir",
        str(capture),
        "--out",
        str(out),
        "--bindings",
        "TrainConfig.max_steps = 4",
        "TrainConfig.val_frames = 2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    folder = out / "tiny-seed0"
    results = json.loads((out / "time_to_quality.json").read_text())
    run = results["runs"]["tiny"]["0"]
    assert run["returncode"] == 0
    # Every phase timed, from the process's start.
    startup = run["startup"]
    assert set(startup) == {*ttq.PHASES, "startup_s", "process_s", "other_s"}
    assert all(startup[k] >= 0 for k in ttq.PHASES) and startup["startup_s"] > 0
    assert sum(startup[k] for k in ttq.PHASES) <= startup["startup_s"] + 1e-3
    # Validations at 2 and 4 (once at the last step), their own time left out.
    records = figures.read_records(folder / "exp" / "metrics.jsonl")
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4]
    rows = run["validations"]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(r["val_s"] > 0 for r in val)
    spent = 0.0
    for row, record in zip(rows, val, strict=True):
        spent += record["val_s"]
        expected = startup["process_s"] + record["wall_s"] - spent
        assert row["wall_s"] == pytest.approx(expected, abs=1e-9)
        assert math.isfinite(row["psnr"]) and row["psnr"] == record["psnr"]
    assert run["crossing"]["step"] == 2
    # The run used caches of its own, empty at its start.
    assert any((folder / "compilation_cache").iterdir())
    assert any((folder / "cache").rglob("*.npz"))  # its guide grids
    assert "--data_dir" in (folder / "train.log").read_text().splitlines()[0]
    text = (out / "time_to_quality.md").read_text()
    assert "| tiny | 0 |" in text and text.strip() in done.stdout
    assert (out / "time_to_quality.png").read_bytes()[:4] == b"\x89PNG"
    # A second run into the same folders refuses before doing anything.
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 2 and "exist already" in again.stderr
