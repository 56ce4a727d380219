# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests for flamenerf.schedules against hand-computed formulas."""

import dataclasses
import math

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flamenerf import schedules as sch


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@gin.configurable("test_schedules_experiment")
def _experiment(lr_schedule=None, alpha_schedule=None, weight_schedule=None):
    return lr_schedule, alpha_schedule, weight_schedule


def _values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_constant():
    s = sch.ConstantSchedule(0.25)
    np.testing.assert_allclose(_values(s, [0, 7, 10**7]), 0.25)


def test_linear_warp_alpha():
    s = sch.LinearSchedule(initial_value=0.0, final_value=8.0, num_steps=80000)
    np.testing.assert_allclose(
        _values(s, [0, 20000, 40000, 80000, 10**6]), [0.0, 2.0, 4.0, 8.0, 8.0], rtol=1e-6
    )


def test_exponential_decay():
    i, f, n = 1e-3, 1e-4, 250000
    s = sch.ExponentialSchedule(i, f, n)
    expected = [i, i * (f / i) ** 0.25, math.sqrt(i * f), f, f]
    np.testing.assert_allclose(_values(s, [0, n // 4, n // 2, n, 10 * n]), expected, rtol=1e-5)


def test_exponential_growth_clamps_at_final():
    s = sch.ExponentialSchedule(1.0, 100.0, 10)
    np.testing.assert_allclose(_values(s, [0, 5, 10, 11, 1000]), [1, 10, 100, 100, 100], rtol=1e-5)


def test_cosine():
    i, f, n = 2.0, 0.5, 100
    s = sch.CosineSchedule(i, f, n)
    quarter = f + (i - f) * 0.5 * (1 + math.cos(math.pi / 4))
    np.testing.assert_allclose(
        _values(s, [0, 25, 50, 100, 500]), [i, quarter, (i + f) / 2, f, f], rtol=1e-6
    )
    # Increasing from zero, which optax's alpha parameterisation alone cannot express.
    up = sch.CosineSchedule(0.0, 1.0, 10)
    np.testing.assert_allclose(_values(up, [0, 5, 10, 20]), [0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_warmup_then_exponential():
    s = sch.WarmupSchedule(
        warmup_steps=100, schedule=sch.ExponentialSchedule(1.0, 0.01, 1000), initial_value=0.0
    )
    steps = [0, 50, 99, 100, 600, 1100, 5000]
    expected = [0.0, 0.5, 0.99, 1.0, 0.1, 0.01, 0.01]
    np.testing.assert_allclose(_values(s, steps), expected, rtol=1e-5, atol=1e-7)


def test_warmup_of_a_number():
    s = sch.WarmupSchedule(warmup_steps=4, schedule=2.0, initial_value=1.0)
    np.testing.assert_allclose(_values(s, [0, 2, 4, 100]), [1.0, 1.5, 2.0, 2.0])


def test_piecewise_boundaries():
    s = sch.PiecewiseSchedule(
        boundaries=[10, 20],
        schedules=[1.0, sch.LinearSchedule(0.0, 1.0, 10), sch.ConstantSchedule(5.0)],
    )
    steps = [0, 9, 10, 15, 19, 20, 1000]
    np.testing.assert_allclose(_values(s, steps), [1.0, 1.0, 0.0, 0.5, 0.9, 5.0, 5.0], atol=1e-6)
    assert s.boundaries == (10, 20) and isinstance(s.schedules, tuple)
    hash(s)  # Hashable, so it can be a static jit argument.


def test_piecewise_single_piece():
    s = sch.PiecewiseSchedule(boundaries=[], schedules=[sch.LinearSchedule(1.0, 3.0, 2)])
    np.testing.assert_allclose(_values(s, [0, 1, 5]), [1.0, 2.0, 3.0])


JIT_SCHEDULES = [
    sch.ConstantSchedule(3.0),
    sch.LinearSchedule(0.0, 8.0, 80),
    sch.ExponentialSchedule(1e-3, 1e-4, 80),
    sch.CosineSchedule(1.0, 0.0, 80),
    sch.WarmupSchedule(10, sch.CosineSchedule(1.0, 0.1, 50)),
    sch.PiecewiseSchedule([30], [sch.LinearSchedule(0.0, 1.0, 30), 0.5]),
]


@pytest.mark.parametrize("schedule", JIT_SCHEDULES, ids=lambda s: type(s).__name__)
def test_traced_step_under_jit(schedule):
    steps = np.array([0, 1, 15, 29, 30, 40, 79, 80, 200], dtype=np.int32)
    eager = _values(schedule, [int(s) for s in steps])
    traced = jax.jit(lambda step: schedule(step))(jnp.asarray(steps))  # vector of steps
    np.testing.assert_allclose(np.asarray(traced), eager, rtol=1e-6, atol=1e-8)
    scalar = jax.jit(lambda step: schedule(step))(jnp.int32(15))
    assert scalar.shape == () and scalar.dtype == jnp.float32
    np.testing.assert_allclose(float(scalar), eager[2], rtol=1e-6)


def test_to_optax_drives_an_optimizer():
    schedule = sch.ExponentialSchedule(0.5, 0.05, 10)
    opt = optax.sgd(learning_rate=schedule.to_optax())
    params = jnp.zeros(2)
    state = opt.init(params)
    grads = jnp.ones(2)
    updates, state = opt.update(grads, state, params)
    np.testing.assert_allclose(np.asarray(updates), -0.5)
    updates, state = opt.update(grads, state, params)
    np.testing.assert_allclose(np.asarray(updates), -0.5 * 0.1**0.1, rtol=1e-6)


def test_gin_scoped_instances():
    gin.parse_config(
        """
        test_schedules_experiment.lr_schedule = @lr/ExponentialSchedule()
        lr/ExponentialSchedule.initial_value = 1e-3
        lr/ExponentialSchedule.final_value = 1e-4
        lr/ExponentialSchedule.num_steps = 250000

        test_schedules_experiment.alpha_schedule = @alpha/LinearSchedule()
        alpha/LinearSchedule.initial_value = 0.0
        alpha/LinearSchedule.final_value = 8.0
        alpha/LinearSchedule.num_steps = 80000

        test_schedules_experiment.weight_schedule = @elastic/PiecewiseSchedule()
        elastic/PiecewiseSchedule.boundaries = [100]
        elastic/PiecewiseSchedule.schedules = [0.01, @elastic/ExponentialSchedule()]
        elastic/ExponentialSchedule.initial_value = 0.01
        elastic/ExponentialSchedule.final_value = 0.001
        elastic/ExponentialSchedule.num_steps = 1000
        """
    )
    lr, alpha, weight = _experiment()
    assert lr == sch.ExponentialSchedule(1e-3, 1e-4, 250000)
    assert alpha == sch.LinearSchedule(0.0, 8.0, 80000)
    assert weight.schedules[1] == sch.ExponentialSchedule(0.01, 0.001, 1000)
    np.testing.assert_allclose(float(lr(125000)), math.sqrt(1e-7), rtol=1e-5)
    np.testing.assert_allclose(float(alpha(40000)), 4.0)
    np.testing.assert_allclose(_values(weight, [50, 600, 5000]), [0.01, 0.01 * 0.1**0.5, 0.001])


def test_gin_file_with_include(tmp_path):
    (tmp_path / "base.gin").write_text(
        "test_schedules_experiment.lr_schedule = @lr/CosineSchedule()\n"
        "lr/CosineSchedule.initial_value = 1.0\n"
        "lr/CosineSchedule.final_value = 0.0\n"
        "lr/CosineSchedule.num_steps = 10\n"
    )
    (tmp_path / "main.gin").write_text(
        f"include '{tmp_path / 'base.gin'}'\nlr/CosineSchedule.num_steps = 20\n"
    )
    gin.parse_config_file(str(tmp_path / "main.gin"))
    lr, _, _ = _experiment()
    assert lr == sch.CosineSchedule(1.0, 0.0, 20)


def test_clear_config_does_not_leak():
    gin.parse_config("ConstantSchedule.value = 7.0")
    assert sch.ConstantSchedule().value == 7.0
    gin.clear_config()
    with pytest.raises(TypeError):
        sch.ConstantSchedule()


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: sch.ExponentialSchedule(0.0, 1.0, 10), "initial_value"),
        (lambda: sch.ExponentialSchedule(1.0, -1.0, 10), "final_value"),
        (lambda: sch.LinearSchedule(0.0, 1.0, 0), "num_steps"),
        (lambda: sch.CosineSchedule(0.0, float("nan"), 10), "final_value"),
        (lambda: sch.WarmupSchedule(0, 1.0), "warmup_steps"),
        (lambda: sch.WarmupSchedule(5, "fast"), "schedule"),
        (lambda: sch.PiecewiseSchedule([10], [1.0]), "schedules"),
        (lambda: sch.PiecewiseSchedule([10, 10], [1.0, 2.0, 3.0]), "boundaries"),
    ],
)
def test_bad_values_raise(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_frozen_and_as_schedule():
    s = sch.LinearSchedule(0.0, 1.0, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.num_steps = 5
    assert sch.as_schedule(s) is s
    assert sch.as_schedule(0.5) == sch.ConstantSchedule(0.5)
    with pytest.raises(ValueError, match="as_schedule"):
        sch.as_schedule("0.5")
