# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf: FLAME-in-NeRF in JAX/Flax, in the style of Nerfies.

The public API is the names below (`flamenerf.NAME`, imported on first use so that
`import flamenerf` stays cheap) and the command lines (`python -m flamenerf COMMAND`).
Everything else may change between versions; docs/architecture.md maps the packages.

    Experiment, Restored   an experiment folder; `Experiment.restore(folder)` for trained ones
    configs                the gin-configurable dataclasses, one per concern
    flame                  the FLAME model: load_model, FlameParams, forward
    Capture, load_capture  a capture folder in the capture format, read strictly
    RayBatch               the typed batch of rays the model takes
    FlameNerf              the model (flax.linen)
    UserError              raised for bad user input (a ValueError)
    METRICS, LOSS_TERMS,   the registries where users extend: evaluation metrics, loss terms,
    WARP_FIELDS, TRACKERS  warp fields, tracker importers
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Experiment": "flamenerf.training.experiment",
    "Restored": "flamenerf.training.experiment",
    "configs": None,
    "flame": None,
    "Capture": "flamenerf.datasets.capture",
    "load_capture": "flamenerf.datasets.capture",
    "RayBatch": "flamenerf.datasets.rays",
    "FlameNerf": "flamenerf.nerf.model",
    "UserError": "flamenerf.errors",
    "METRICS": "flamenerf.evaluation.metrics",
    "LOSS_TERMS": "flamenerf.training.losses",
    "WARP_FIELDS": "flamenerf.nerf.warping",
    "TRACKERS": "flamenerf.capture.trackers.registry",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'flamenerf' has no attribute '{name}'")
    module = _PUBLIC[name]
    if module is None:  # a public submodule
        return importlib.import_module(f"flamenerf.{name}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
