# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Shared by the tests of benchmark scripts: the scripts' folder on the import path (they
import each other as top-level modules) and a gin configuration cleared around every test
(`from benchmark_util import clean_gin` makes the autouse fixture apply to a module)."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

import gin
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


def load(name: str) -> ModuleType:
    """The benchmark script benchmarks/NAME.py as a module."""
    return importlib.import_module(name)


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()
