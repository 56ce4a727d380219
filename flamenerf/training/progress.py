# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training progress counted in completed steps, not dispatched ones.

JAX dispatches a jitted step asynchronously: the call returns as soon as the work is queued,
long before the device has done it. A progress bar advanced at each call runs ahead of the
device, then stalls at the next value the host reads, so its rate and ETA swing.
`CompletedSteps` advances the bar only when a step's outputs (its metrics) are ready:

* after each dispatch it counts, without blocking, every oldest pending step whose outputs
  are ready (`jax.Array.is_ready`);
* it lets at most `lag` steps be pending: dispatching one more blocks on the oldest
  (`jax.block_until_ready`), so the device always has work queued while the host waits,
  and the host never runs more than `lag` steps ahead of what is shown;
* `wait` blocks on every pending step (log points, checkpoints, the end of training).

Steps complete in order (each step reads the state the previous one wrote), so the bar
stops at the first pending step that is not ready. `window` gives the throughput of the
completed work between two log points, without the first step's compilation and without
the time spent inside `paused` blocks (validation, checkpoints).

`StartupClock` times what a run does before its first step is done (the "startup" record of
metrics.jsonl, docs/architecture.md#metrics), from when the process started
(`process_started`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax

LAG = 2  # steps the host may dispatch ahead of the last completed one


def is_ready(outputs: Any) -> bool:
    """True when every leaf of `outputs` is computed (leaves without `is_ready`: always)."""
    for leaf in jax.tree.leaves(outputs):
        check = getattr(leaf, "is_ready", None)
        if check is not None and not check():
            return False
    return True


class CompletedSteps:
    """Counts training steps whose outputs are ready and advances a progress bar with them.

    Args:
      start_step: the step training starts from (the bar's initial value).
      bar: anything with `update(n)` (a tqdm bar), advanced by each completed step; or None.
      lag: steps allowed to be pending before `dispatched` blocks on the oldest (>= 0).
      clock: seconds (`time.perf_counter`; tests pass a fake).

    Attributes:
      completed: the last step whose outputs are ready (`start_step` before any).
    """

    def __init__(
        self,
        start_step: int,
        bar: Any = None,
        lag: int = LAG,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if lag < 0:
            raise ValueError(f"lag {lag}: expected >= 0")
        self.completed = self._start_step = start_step
        self.lag = lag
        self._bar = bar
        self._clock = clock
        self._pending: collections.deque[tuple[int, Any]] = collections.deque()
        self._created = clock()
        self._first_done: tuple[int, float] | None = None  # step and time of the first one
        self._window: tuple[int, float] | None = None  # where the current window starts
        self._last_time = self._created  # when `completed` was observed
        self._paused = 0.0  # seconds inside `paused` since the window started

    @property
    def pending(self) -> int:
        """Steps dispatched whose outputs were not seen ready yet."""
        return len(self._pending)

    def dispatched(self, step: int, outputs: Any) -> None:
        """Records step `step` as queued with its outputs (e.g. its metrics).

        Counts the steps now ready, then blocks on the oldest ones while more than `lag`
        are pending (counting the ready ones after each).
        """
        self._pending.append((step, outputs))
        self._count_ready()
        while len(self._pending) > self.lag:
            self._complete()
            self._count_ready()

    def _count_ready(self) -> None:
        """Counts the oldest pending steps that are ready, without blocking."""
        while self._pending and is_ready(self._pending[0][1]):
            self._complete()

    def wait(self) -> int:
        """Blocks until every dispatched step is complete; returns the last step."""
        while self._pending:
            self._complete()
        return self.completed

    def _complete(self) -> None:
        step, outputs = self._pending.popleft()
        jax.block_until_ready(outputs)
        now = self._clock()
        if self._bar is not None and step > self.completed:
            self._bar.update(step - self.completed)
        if self._first_done is None:
            self._first_done = (step, now)
        self.completed, self._last_time = step, now

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Waits for every pending step, then leaves the block's time out of `window`."""
        self.wait()
        start = self._clock()
        try:
            yield
        finally:
            self._paused += self._clock() - start
            self._last_time = max(self._last_time, self._clock())

    def window(self) -> tuple[int, float]:
        """Steps completed and the seconds they took since the previous call, then starts a
        new window at the last completed step.

        The first window starts when the first step completed, leaving out that step and
        its compilation, unless it holds no other step: then it starts when this object was
        made. The time spent inside `paused` blocks is left out.
        """
        if self._window is not None:
            start = self._window
        elif self._first_done is not None and self._first_done[0] < self.completed:
            start = self._first_done
        else:
            start = (self._start_step, self._created)
        steps = self.completed - start[0]
        seconds = max(self._last_time - start[1] - self._paused, 0.0)
        self._window, self._paused = (self.completed, self._last_time), 0.0
        return steps, seconds

    def rays_per_second(self, batch_size: int) -> float:
        """`window()` as rays per second (0 for a window without steps)."""
        steps, seconds = self.window()
        return steps * batch_size / max(seconds, 1e-9)


def process_started() -> float | None:
    """When this process started, in seconds since the epoch (`time.time()`'s clock), from
    /proc (Linux: the process's start in clock ticks since boot, against the uptime, to
    1/100 s); None where /proc does not tell."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        now = time.time()
        # Fields after the command name (which may hold spaces) start at field 3; the
        # start time is field 22.
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return now - age if age >= 0 else None


class StartupClock:
    """Durations of a run's start-up phases, each from the end of the previous one.

    Args:
      process_started: when the process started (`process_started()`): the first phase,
        `imports_s`, runs from it to this clock's creation; or None when unknown (e.g. a run
        started inside a longer-lived process): then there is no `imports_s` and `record`
        has no process-relative entries.
      clock: seconds since the epoch (`time.time`; tests pass a fake).
    """

    def __init__(
        self, process_started: float | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.process_started = process_started
        self._clock = clock
        self._last = clock()
        self.phases: dict[str, float] = {}
        if process_started is not None:
            self.phases["imports_s"] = self._last - process_started

    def restart(self) -> None:
        """The next phase starts now (the time since the last mark counts in none)."""
        self._last = self._clock()

    def mark(self, name: str) -> None:
        """The phase `name` ends now (its duration is added to what it already had)."""
        now = self._clock()
        self.phases[name] = self.phases.get(name, 0.0) + now - self._last
        self._last = now

    def split(self, phase: str, part: str, seconds: float) -> None:
        """`seconds` of the phase `phase` were `part`, from now on a phase of its own."""
        self.phases[phase] = self.phases.get(phase, 0.0) - seconds
        self.phases[part] = self.phases.get(part, 0.0) + seconds

    def record(self, experiment_started: float) -> dict[str, float]:
        """The "startup" record's values, in seconds rounded to ms: every phase; with the
        process's start known, `startup_s` (from it to now, i.e. to the end of the last
        phase) and `process_s` (from it to `experiment_started`, the zero of every record's
        `wall_s`)."""
        values = dict(self.phases)
        if self.process_started is not None:
            values["startup_s"] = self._clock() - self.process_started
            values["process_s"] = experiment_started - self.process_started
        return {name: round(value, 3) for name, value in values.items()}
