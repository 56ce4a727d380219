# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The public API: every name `flamenerf.__all__` lists resolves, lazily, to what it says."""

import subprocess
import sys

import pytest

import flamenerf


@pytest.mark.parametrize("name", flamenerf.__all__)
def test_every_public_name_resolves(name):
    value = getattr(flamenerf, name)
    assert value is not None
    assert name in dir(flamenerf)


def test_public_names_are_the_implementations():
    from flamenerf.geometry import flame as flame_impl
    from flamenerf.training.experiment import Experiment

    assert flamenerf.Experiment is Experiment
    assert flamenerf.flame.load_model is flame_impl.load_model
    assert issubclass(flamenerf.UserError, ValueError)
    assert {"psnr", "ssim"} <= set(flamenerf.METRICS)
    assert "translation" in flamenerf.WARP_FIELDS


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        flamenerf.nope  # noqa: B018


def test_import_is_cheap():
    """`import flamenerf` loads no JAX: the names are imported on first use."""
    code = "import sys, flamenerf; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
