# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Test set-up: four simulated CPU devices (for the data-parallel tests) and a private cache."""

import os

# Must precede the first `import jax` anywhere in the test session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keeps every test's cached files (head model, synthetic captures) out of ~/.cache."""
    cache = tmp_path_factory.mktemp("flamenerf_cache")
    previous = os.environ.get("FLAMENERF_CACHE")
    os.environ["FLAMENERF_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("FLAMENERF_CACHE", None)
    else:
        os.environ["FLAMENERF_CACHE"] = previous


@pytest.fixture(scope="session")
def head_model(_private_cache):
    """The procedural head as a FlameModel (built once per session, in the private cache)."""
    from flamenerf import flame, head

    return flame.load_model(head.default_head_path())
