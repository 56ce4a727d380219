# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.training.progress: the bar counts completed steps, never dispatched ones."""

import io
import threading

import jax
import jax.numpy as jnp
import pytest
from tqdm import tqdm

from flamenerf.training import progress


class Step:
    """A fake step's outputs whose completion the test controls (a JAX-like leaf)."""

    def __init__(self, done=False):
        self.done = threading.Event()
        self.waited = False
        if done:
            self.done.set()

    def is_ready(self):
        return self.done.is_set()

    def block_until_ready(self):
        self.waited = True
        assert self.done.wait(10), "blocked on a step that never completes"
        return self


def bar(initial=0):
    return tqdm(total=100, initial=initial, file=io.StringIO(), mininterval=0)


def test_the_bar_counts_steps_whose_outputs_are_ready():
    shown = bar()
    tracker = progress.CompletedSteps(0, shown, lag=2)
    steps = [Step() for _ in range(6)]
    tracker.dispatched(1, {"loss": steps[0]})
    tracker.dispatched(2, {"loss": steps[1]})
    assert shown.n == tracker.completed == 0 and tracker.pending == 2  # queued, not done
    steps[0].done.set()
    tracker.dispatched(3, {"loss": steps[2]})  # step 1 is seen ready without blocking
    assert shown.n == tracker.completed == 1 and tracker.pending == 2
    assert not steps[1].waited
    # Step 3 ready but step 2 not: steps complete in order, the bar stops at step 2.
    steps[2].done.set()
    threading.Timer(0.2, steps[1].done.set).start()
    tracker.dispatched(4, {"loss": steps[3]})  # 3 pending > lag: blocks on step 2
    assert steps[1].waited and steps[1].done.is_set()
    assert shown.n == tracker.completed == 3 and tracker.pending == 1
    for step in steps[3:]:
        step.done.set()
    assert tracker.wait() == 4 and shown.n == 4 and tracker.pending == 0


def test_a_resumed_run_starts_at_its_step_and_lag_zero_blocks_every_step():
    shown = bar(initial=40)
    tracker = progress.CompletedSteps(40, shown, lag=0)
    outputs = Step()
    threading.Timer(0.1, outputs.done.set).start()
    tracker.dispatched(41, outputs)
    assert outputs.waited and shown.n == 41 and tracker.completed == 41
    with pytest.raises(ValueError, match="lag -1"):
        progress.CompletedSteps(0, lag=-1)


def test_real_jax_steps_are_counted_when_their_outputs_are_ready():
    """A chain of slow jitted steps: whenever the bar shows n steps, the n-th's outputs are
    ready, and the host never runs more than `lag` steps ahead of the bar."""

    @jax.jit
    def step(x):
        y = jax.lax.fori_loop(0, 30, lambda i, x: jnp.tanh(x @ x), x)
        return y, {"loss": jnp.mean(y)}

    x = jnp.eye(128) * 0.5
    step(x)[1]["loss"].block_until_ready()  # compiled
    shown = bar()
    tracker = progress.CompletedSteps(0, shown, lag=2)
    history = []
    for number in range(1, 9):
        x, stats = step(x)
        history.append(stats)
        tracker.dispatched(number, stats)
        assert shown.n == tracker.completed >= number - 2
        assert all(s["loss"].is_ready() for s in history[: shown.n])
    assert tracker.wait() == 8 and shown.n == 8
    assert all(s["loss"].is_ready() for s in history)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_window_leaves_out_the_first_step_and_the_pauses():
    clock = Clock()
    tracker = progress.CompletedSteps(10, lag=0, clock=clock)
    clock.now = 130.0  # compilation: the first step takes 30 s
    tracker.dispatched(11, Step(done=True))
    for number in range(12, 15):  # then 2 s a step
        clock.now += 2.0
        tracker.dispatched(number, Step(done=True))
    assert tracker.window() == (3, 6.0)  # steps 12-14, without step 11
    clock.now += 2.0
    tracker.dispatched(15, Step(done=True))
    with tracker.paused():  # validation, checkpoints: 50 s not counted
        clock.now += 50.0
    clock.now += 2.0
    tracker.dispatched(16, Step(done=True))
    assert tracker.window() == (2, 4.0)
    assert tracker.rays_per_second(8) == 0.0  # nothing completed since
    clock.now += 4.0
    tracker.dispatched(17, Step(done=True))
    assert tracker.rays_per_second(8) == pytest.approx(2.0)


def test_a_first_window_of_one_step_counts_it_from_the_start():
    clock = Clock()
    tracker = progress.CompletedSteps(0, lag=0, clock=clock)
    clock.now = 105.0
    tracker.dispatched(1, Step(done=True))
    assert tracker.window() == (1, 5.0)


def test_is_ready_reads_every_leaf():
    assert progress.is_ready({"a": 1.0, "b": jnp.ones(2)})
    assert not progress.is_ready({"a": Step(done=True), "b": Step()})


def test_startup_clock_times_each_phase_from_the_end_of_the_last():
    now = [100.0]
    clock = progress.StartupClock(process_started=97.5, clock=lambda: now[0])
    assert clock.phases == {"imports_s": 2.5}
    now[0] = 101.0
    clock.mark("setup_s")
    now[0] = 104.0
    clock.restart()  # 3 s in no phase
    now[0] = 104.25
    clock.mark("grids_s")
    now[0] = 105.0
    clock.mark("grids_s")  # a phase marked twice adds up
    clock.split("setup_s", "capture_s", 0.75)  # part of a phase, timed apart
    assert clock.record(experiment_started=100.5) == {
        "imports_s": 2.5,
        "setup_s": 0.25,
        "grids_s": 1.0,
        "capture_s": 0.75,
        "startup_s": 7.5,
        "process_s": 3.0,
    }
    unknown = progress.StartupClock(clock=lambda: now[0])
    now[0] = 105.0004
    unknown.mark("data_s")
    assert unknown.record(experiment_started=0.0) == {"data_s": 0.0}  # rounded to ms


def test_process_started_is_this_process_start():
    import os
    import subprocess
    import sys
    import time

    started = progress.process_started()
    if not os.path.exists("/proc/self/stat"):
        assert started is None
        return
    assert started is not None and started <= time.time()
    # A new process: started between just before it was launched and when it answers.
    before = time.time()
    code = "import time; from flamenerf.training import progress; " + (
        "print(progress.process_started(), time.time())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    child, answered = map(float, out.stdout.split())
    assert before - 0.05 <= child <= answered  # /proc's resolution is 1/100 s
