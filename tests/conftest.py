# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Test set-up: four simulated CPU devices (for the data-parallel tests) and private caches.

Tests mirror the package: tests/<package>/test_<module>.py for flamenerf/<package>/<module>.py,
tests/test_<command>.py for the command lines and what spans packages. The shared helpers
(`*_util.py`), tests/gin/ and tests/golden/ stay here, at the top, importable from every folder.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the *_util helpers

# Must precede the first `import jax` anywhere in the test session (pytest-xdist's workers
# inherit the flag from the controlling process: added once).
_DEVICES = "--xla_force_host_platform_device_count=4"
if _DEVICES not in os.environ.get("XLA_FLAGS", "").split():
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _DEVICES).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# JAX's persistent compilation cache, private to this test run and removed at its end: tests,
# their subprocesses (`python -m ...`) and the notebooks' kernels inherit the variable, build
# the same tiny models many times and compile each program once. Nothing from an earlier run is
# read (a fresh folder each run), so a clean machine runs exactly what CI runs. The controlling
# pytest process makes the folder; pytest-xdist's workers (started by it) share it.
if "FLAMENERF_TEST_COMPILATION_CACHE" not in os.environ:
    os.environ["FLAMENERF_TEST_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="flamenerf_jax_")
    atexit.register(
        shutil.rmtree, os.environ["FLAMENERF_TEST_COMPILATION_CACHE"], ignore_errors=True
    )
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["FLAMENERF_TEST_COMPILATION_CACHE"]


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
    from flamenerf.geometry import flame
    from flamenerf.synthetic import head

    return flame.load_model(head.default_head_path())
