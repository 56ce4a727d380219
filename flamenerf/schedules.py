# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Gin-configurable schedules: step -> value, for learning rates, warp alpha and loss weights.

Every schedule is a small frozen dataclass with

* ``__call__(step)``: the value at ``step`` (a python int or a jnp integer, traced or not,
  so it works inside ``jax.jit``); returns a float32 scalar ``jax.Array`` (shape ``()``, or
  the shape of ``step`` when ``step`` is an array);
* ``to_optax()``: the equivalent ``optax`` schedule function, e.g. for
  ``optax.adam(learning_rate=schedule.to_optax())``.

The schedules are built on ``optax`` schedule functions. Schedules that move from
``initial_value`` to ``final_value`` over ``num_steps`` reach ``final_value`` at
``step == num_steps`` and hold it afterwards.

Schedules compose: ``WarmupSchedule`` and ``PiecewiseSchedule`` take other schedules, which
may also be plain numbers (meaning a constant).

Gin
---
Each class is ``@gin.configurable`` under its class name, e.g.::

    ExperimentConfig.lr_schedule = @ExponentialSchedule()
    ExponentialSchedule.initial_value = 1e-3
    ExponentialSchedule.final_value = 1e-4
    ExponentialSchedule.num_steps = 250000

When one class is used for two things (say an exponential learning rate *and* an exponential
loss weight), unscoped bindings would apply to both. Give each use its own gin *scope*:
``@scope/Class()`` references the class under ``scope``, and ``scope/Class.param = value``
binds a parameter in that scope only (unscoped bindings still apply as defaults)::

    ExperimentConfig.lr_schedule = @lr/ExponentialSchedule()
    lr/ExponentialSchedule.initial_value = 1e-3
    lr/ExponentialSchedule.final_value = 1e-4
    lr/ExponentialSchedule.num_steps = 250000

    ExperimentConfig.warp_alpha_schedule = @alpha/LinearSchedule()
    alpha/LinearSchedule.initial_value = 0.0
    alpha/LinearSchedule.final_value = 8.0
    alpha/LinearSchedule.num_steps = 80000

    ExperimentConfig.elastic_loss_weight_schedule = @elastic/PiecewiseSchedule()
    elastic/PiecewiseSchedule.boundaries = [50000]
    elastic/PiecewiseSchedule.schedules = [0.01, @elastic/ExponentialSchedule()]
    elastic/ExponentialSchedule.initial_value = 0.01
    elastic/ExponentialSchedule.final_value = 0.001
    elastic/ExponentialSchedule.num_steps = 100000
"""

# gin 0.5 calls importlib.util when parsing files with `include`/`import` statements but does
# not import the submodule itself; importing it here makes sure it is loaded.
import importlib.util  # noqa: F401
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import gin
import jax
import jax.numpy as jnp
import optax

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "PiecewiseSchedule",
    "Schedule",
    "WarmupSchedule",
    "as_schedule",
]


class Schedule:
    """Base class: a callable ``step -> value`` backed by an optax schedule."""

    def to_optax(self) -> optax.Schedule:
        """Returns the optax schedule function ``step -> value`` equivalent to this one."""
        raise NotImplementedError

    def __call__(self, step: int | jax.Array) -> jax.Array:
        """Value at ``step``.

        Args:
          step: python int or integer array (any shape, may be traced under jit).

        Returns:
          float32 array with the shape of ``step`` (``()`` for a python int).
        """
        return jnp.asarray(self.to_optax()(step), dtype=jnp.float32)


def _check_finite(cls: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{cls}.{field}: expected a finite number, got {value!r}")
    return float(value)


def _check_steps(cls: str, field: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{cls}.{field}: expected an integer >= {minimum}, got {value!r}")
    return value


def as_schedule(value: Schedule | float) -> Schedule:
    """Returns ``value`` if it is a Schedule, ``ConstantSchedule(value)`` if it is a number.

    Raises:
      ValueError: for anything else.
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, Real) and not isinstance(value, bool):
        return ConstantSchedule(float(value))
    raise ValueError(f"as_schedule: expected a Schedule or a number, got {value!r}")


def _to_optax(owner: str, value: Any) -> optax.Schedule:
    """Sub-schedule (Schedule, number or optax schedule function) -> optax schedule."""
    if isinstance(value, Schedule):
        return value.to_optax()
    if isinstance(value, Real) and not isinstance(value, bool):
        return optax.constant_schedule(float(value))
    if callable(value):
        return value
    raise ValueError(
        f"{owner}: expected a Schedule, a number or an optax schedule function, got {value!r}"
    )


@gin.configurable
@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """``value`` at every step."""

    value: float  # The constant value.

    def __post_init__(self):
        _check_finite("ConstantSchedule", "value", self.value)

    def to_optax(self) -> optax.Schedule:
        return optax.constant_schedule(float(self.value))


@gin.configurable
@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """Linear from ``initial_value`` (step 0) to ``final_value`` (step ``num_steps`` on).

    ``value(t) = initial + (final - initial) * min(t, num_steps) / num_steps``.
    Nerfies' warp alpha, for example, is ``LinearSchedule(0.0, 8.0, 80000)``.
    """

    initial_value: float  # Value at step 0.
    final_value: float  # Value at step num_steps and after.
    num_steps: int  # Steps over which the value moves (>= 1).

    def __post_init__(self):
        _check_finite("LinearSchedule", "initial_value", self.initial_value)
        _check_finite("LinearSchedule", "final_value", self.final_value)
        _check_steps("LinearSchedule", "num_steps", self.num_steps)

    def to_optax(self) -> optax.Schedule:
        return optax.linear_schedule(
            init_value=float(self.initial_value),
            end_value=float(self.final_value),
            transition_steps=self.num_steps,
        )


@gin.configurable
@dataclass(frozen=True)
class ExponentialSchedule(Schedule):
    """Log-linear interpolation from ``initial_value`` to ``final_value`` (Nerfies' schedule).

    ``value(t) = initial * (final / initial) ** (min(t, num_steps) / num_steps)``, i.e.
    ``exp(lerp(log initial, log final, t / num_steps))``; at half way it is
    ``sqrt(initial * final)``. Both values must be > 0.
    """

    initial_value: float  # Value at step 0 (> 0).
    final_value: float  # Value at step num_steps and after (> 0).
    num_steps: int  # Steps over which the value moves (>= 1).

    def __post_init__(self):
        for field in ("initial_value", "final_value"):
            value = _check_finite("ExponentialSchedule", field, getattr(self, field))
            if value <= 0:
                raise ValueError(
                    f"ExponentialSchedule.{field}: expected a value > 0 (log-linear "
                    f"interpolation), got {value!r}"
                )
        _check_steps("ExponentialSchedule", "num_steps", self.num_steps)

    def to_optax(self) -> optax.Schedule:
        initial, final = float(self.initial_value), float(self.final_value)
        # end_value clamps past num_steps (a lower bound when decaying, an upper bound when
        # growing).
        return optax.exponential_decay(
            init_value=initial,
            transition_steps=self.num_steps,
            decay_rate=final / initial,
            end_value=final,
        )


@gin.configurable
@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """Half-cosine from ``initial_value`` to ``final_value`` over ``num_steps``.

    ``value(t) = final + (initial - final) * 0.5 * (1 + cos(pi * min(t, num_steps) /
    num_steps))``. Either value may be larger (or zero).
    """

    initial_value: float  # Value at step 0.
    final_value: float  # Value at step num_steps and after.
    num_steps: int  # Steps over which the value moves (>= 1).

    def __post_init__(self):
        _check_finite("CosineSchedule", "initial_value", self.initial_value)
        _check_finite("CosineSchedule", "final_value", self.final_value)
        _check_steps("CosineSchedule", "num_steps", self.num_steps)

    def to_optax(self) -> optax.Schedule:
        initial, final = float(self.initial_value), float(self.final_value)
        # optax's cosine goes from init_value to alpha * init_value, which cannot express
        # initial == 0; decay the difference to 0 instead and add the final value.
        decay = optax.cosine_decay_schedule(
            init_value=initial - final, decay_steps=self.num_steps, alpha=0.0
        )
        return lambda step: decay(step) + final


@gin.configurable
@dataclass(frozen=True)
class WarmupSchedule(Schedule):
    """Linear warm-up, then ``schedule`` shifted to start at ``warmup_steps``.

    For ``t < warmup_steps``: linear from ``initial_value`` to ``schedule(0)``; for
    ``t >= warmup_steps``: ``schedule(t - warmup_steps)``. The wrapped schedule's own
    ``num_steps`` therefore count from the end of the warm-up (unlike
    ``optax.warmup_cosine_decay_schedule``, whose decay steps include the warm-up).
    """

    warmup_steps: int  # Length of the linear warm-up (>= 1).
    schedule: Any  # The schedule after warm-up: Schedule, number or optax schedule.
    initial_value: float = 0.0  # Value at step 0.

    def __post_init__(self):
        _check_steps("WarmupSchedule", "warmup_steps", self.warmup_steps)
        _check_finite("WarmupSchedule", "initial_value", self.initial_value)
        _to_optax("WarmupSchedule.schedule", self.schedule)

    def to_optax(self) -> optax.Schedule:
        after = _to_optax("WarmupSchedule.schedule", self.schedule)
        # The value the warm-up climbs to; evaluated eagerly even when called under jit.
        with jax.ensure_compile_time_eval():
            peak = after(0)
        warmup = optax.linear_schedule(
            init_value=float(self.initial_value),
            end_value=peak,
            transition_steps=self.warmup_steps,
        )
        return optax.join_schedules([warmup, after], [self.warmup_steps])


@gin.configurable
@dataclass(frozen=True)
class PiecewiseSchedule(Schedule):
    """``schedules[i]`` on ``[boundaries[i-1], boundaries[i])``, each restarted at its start.

    With ``boundaries = (b_1, ..., b_n)`` (absolute, strictly increasing, > 0) and
    ``n + 1`` schedules: ``schedules[0](t)`` for ``t < b_1``, ``schedules[i](t - b_i)`` for
    ``b_i <= t < b_{i+1}`` and ``schedules[n](t - b_n)`` for ``t >= b_n`` (as
    ``optax.join_schedules``). Sub-schedules may be numbers (constants).
    """

    boundaries: Sequence[int]  # Absolute steps where the next piece starts.
    schedules: Sequence[Any]  # len(boundaries) + 1 schedules (Schedule/number/optax).

    def __post_init__(self):
        boundaries = tuple(self.boundaries)
        schedules = tuple(self.schedules)
        # Tuples, so that the dataclass stays hashable (usable as a static jit argument).
        object.__setattr__(self, "boundaries", boundaries)
        object.__setattr__(self, "schedules", schedules)
        for boundary in boundaries:
            _check_steps("PiecewiseSchedule", "boundaries", boundary)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:], strict=False)):
            raise ValueError(
                f"PiecewiseSchedule.boundaries: expected strictly increasing steps, "
                f"got {boundaries!r}"
            )
        if len(schedules) != len(boundaries) + 1:
            raise ValueError(
                f"PiecewiseSchedule.schedules: expected len(boundaries) + 1 = "
                f"{len(boundaries) + 1} schedules, got {len(schedules)}"
            )
        for schedule in schedules:
            _to_optax("PiecewiseSchedule.schedules", schedule)

    def to_optax(self) -> optax.Schedule:
        pieces = [_to_optax("PiecewiseSchedule.schedules", s) for s in self.schedules]
        if not self.boundaries:
            return pieces[0]
        return optax.join_schedules(pieces, list(self.boundaries))
