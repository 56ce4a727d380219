# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The training command as a user runs it: SIGKILL and resume, and two processes together."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from capture_util import write_capture

TINY = str(Path(__file__).parent / "gin" / "tiny.gin")
STEPS = 80


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory):
    return write_capture(
        tmp_path_factory.mktemp("cli") / "cap",
        num_train=6,
        num_val=2,
        width=16,
        height=12,
        masks=True,
    )


def command(base_folder, capture_dir, *extra):
    return [
        sys.executable,
        "-m",
        "flamenerf.train",
        "--gin_configs",
        TINY,
        "--gin_bindings",
        f"TrainConfig.max_steps = {STEPS}",
        "TrainConfig.checkpoint_every = 10",
        "TrainConfig.keep_checkpoints = 50",
        "--base_folder",
        str(base_folder),
        "--data_dir",
        str(capture_dir),
        *extra,
    ]


def environment(devices=1):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def run(args):
    """Runs a command to completion; a failure shows the end of its stderr."""
    done = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def final_params(base_folder):
    from flamenerf.training import experiment

    exp = experiment.Experiment.create(Path(base_folder), [], [], write_config=False)
    state, step = exp.restore_or_init_state()
    exp.close()
    import jax

    return step, [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def checkpoint_steps(base_folder):
    folder = Path(base_folder) / "checkpoints"
    return (
        sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.is_dir() else []
    )


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, capture_dir):
    reference = tmp_path / "reference"
    run(command(reference, capture_dir))

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        command(killed, capture_dir),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not checkpoint_steps(killed) and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = checkpoint_steps(killed)
    assert saved and saved[-1] < STEPS, f"the run was not killed mid-way: {saved}"

    resumed = run(command(killed, capture_dir))
    assert f"resuming from step {saved[-1]}" in resumed.stdout
    step_a, params_a = final_params(reference)
    step_b, params_b = final_params(killed)
    assert step_a == step_b == STEPS
    for a, b in zip(params_a, params_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated steps after the restart


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_together(tmp_path, capture_dir):
    port = free_port()
    base = tmp_path / "multi"
    processes = [
        subprocess.Popen(
            command(
                base,
                capture_dir,
                "--gin_bindings",
                "TrainConfig.max_steps = 20",
                "--coordinator_address",
                f"127.0.0.1:{port}",
                "--num_processes",
                "2",
                "--process_id",
                str(i),
            ),
            env=environment(devices=2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (_, err) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert checkpoint_steps(base)[-1] == 20
    # Only process 0 prints the summary and writes metrics.
    assert "multi: step 20" in outputs[0][0] and "multi: step 20" not in outputs[1][0]
    records = [json.loads(line) for line in (base / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [10, 20]


# ---------------------------------------------------------------------------------------------
# In-process: the progress bar counts completed steps; validation images in TensorBoard.


def read_events(folder):
    """Every event of the TensorBoard event files in `folder` (TFRecord framing: length,
    its CRC, the Event protobuf, its CRC), read with tensorboardX's protobuf classes."""
    import struct

    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        data, position = path.read_bytes(), 0
        while position < len(data):
            (length,) = struct.unpack("<Q", data[position : position + 8])
            start = position + 12
            events.append(event_pb2.Event.FromString(data[start : start + length]))
            position = start + length + 4
    return events


def test_progress_counts_completed_steps_and_validation_writes_images(
    tmp_path, capture_dir, monkeypatch
):
    import io

    from PIL import Image

    from flamenerf import train
    from flamenerf.training import experiment, progress

    counted = []  # (step, the bar's n once it counted the step, its outputs ready)

    class Recording(progress.CompletedSteps):
        def _complete(self):
            step, outputs = self._pending[0]
            super()._complete()
            counted.append((step, self._bar.n, progress.is_ready(outputs)))

    monkeypatch.setattr(progress, "CompletedSteps", Recording)
    exp = experiment.Experiment.create(
        tmp_path / "exp",
        [TINY],
        ["TrainConfig.max_steps = 20", "TrainConfig.val_every = 10", "TrainConfig.val_frames = 2"],
        data_dir=str(capture_dir),
    )
    assert train.train(exp) == 0
    assert [c[0] for c in counted] == list(range(1, 21))
    assert all(n == step and ready for step, n, ready in counted)

    images = {}
    for event in read_events(tmp_path / "exp" / "tensorboard"):
        for value in event.summary.value:
            if value.HasField("image"):
                decoded = np.asarray(Image.open(io.BytesIO(value.image.encoded_image_string)))
                images.setdefault(value.tag, []).append((event.step, decoded.shape))
    kinds = ("prediction", "target", "error", "depth")
    assert sorted(images) == sorted(f"val/{i}/{k}" for i in ("v00", "v01") for k in kinds)
    for tag, written in images.items():
        assert {step for step, _ in written} == {10, 20}, tag
        assert {shape for _, shape in written} == {(12, 16, 3)}, tag
    # metrics.jsonl: the start-up record first (no process start: train() was called
    # in-process), one validation per validated step (the last one not repeated), each
    # with its own time (docs/architecture.md#metrics).
    records = [json.loads(line) for line in (tmp_path / "exp" / "metrics.jsonl").open()]
    assert records[0]["split"] == "startup" and records[0]["step"] == 0
    phases = ("data_s", "grids_s", "compile_s", "first_step_s")
    assert set(records[0]) == {"step", "wall_s", "split", *phases}
    assert all(records[0][name] >= 0 for name in phases)
    validations = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in validations] == [10, 20]
    assert all(r["val_s"] > 0 for r in validations)


def test_scale_flag_binds_data_config_scale(tmp_path, capsys):
    from flamenerf import train

    assert train.scale_bindings(["A = 1"], None) == ["A = 1"]
    assert train.scale_bindings(["A = 1"], 2) == ["A = 1", "DataConfig.scale = 2"]
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--base_folder", "x", "--scale", "3"])
    assert exit_info.value.code == 2 and "--scale" in capsys.readouterr().err
    # The binding comes after the user's own, so --scale wins; config.gin records it.
    capture = write_capture(tmp_path / "cap", num_train=2, num_val=1, scaled=(2,))
    from flamenerf.training import experiment

    exp = experiment.Experiment.create(
        tmp_path / "exp",
        [TINY],
        train.scale_bindings(["DataConfig.scale = 1"], 2),
        data_dir=str(capture),
    )
    try:
        assert exp.capture.scale == 2
    finally:
        exp.close()
    assert "DataConfig.scale = 2" in (tmp_path / "exp" / "config.gin").read_text()


def test_compiling_ahead_trains_the_same_parameters(tmp_path, capture_dir):
    """TrainConfig.compile_ahead (the train step compiled while the guide grids are built)
    changes when the step is compiled, not what it computes: the same parameters, bit for
    bit. Run through the command, its start-up record has every phase."""
    base, after = tmp_path / "ahead", tmp_path / "after"
    guided = ["GuideConfig.enabled = True", "GuideConfig.resolution = 8"]
    steps = ["TrainConfig.max_steps = 5", "TrainConfig.val_frames = 0"]
    on = "TrainConfig.compile_ahead = True"
    run([*command(base, capture_dir), "--gin_bindings", *guided, *steps, on])
    run([*command(after, capture_dir), "--gin_bindings", *guided, *steps])  # off: the default
    (step_a, params_a), (step_b, params_b) = final_params(base), final_params(after)
    assert step_a == step_b == 5
    for a, b in zip(params_a, params_b, strict=True):
        np.testing.assert_array_equal(a, b)
    startup = json.loads((base / "metrics.jsonl").read_text().splitlines()[0])
    phases = ("imports_s", "capture_s", "setup_s", "data_s", "grids_s", "compile_s")
    phases += ("first_step_s",)
    assert set(startup) == {"step", "wall_s", "split", *phases, "startup_s", "process_s"}
    assert startup["split"] == "startup" and all(startup[k] >= 0 for k in phases)
    # process_s + wall_s is the time since the process started: startup_s at this record.
    assert startup["process_s"] + startup["wall_s"] == pytest.approx(startup["startup_s"], abs=0.01)
    assert sum(startup[k] for k in phases) <= startup["startup_s"] + 0.01
