# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Where flamenerf keeps generated files: one cache root for every reader.

cache_root()/head/       the procedural FLAME-format head (flamenerf.synthetic.head)
cache_root()/captures/   synthetic captures (flamenerf.synthetic.generator)
cache_root()/packed/     TFDS array_record packs of captures (flamenerf.datasets.packing)
cache_root()/guides/     FLAME-guide grids (flamenerf.training.experiment)
cache_root()/jax/        JAX's persistent compilation cache (flamenerf.compilation_cache)
cache_root()/notebooks/  the Colab notebooks' outputs (colab/)
cache_root()/lpips/      the user's LPIPS weight files, unless --lpips_weights or
                         FLAMENERF_LPIPS says otherwise (flamenerf.evaluation.lpips)
cache_root()/mediapipe/  face_landmarker.task, put there by the user (flamenerf.capture.landmarks)
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "FLAMENERF_CACHE"
DEFAULT = "~/.cache/flamenerf"


def cache_root() -> Path:
    """`$FLAMENERF_CACHE` (unset or empty: `~/.cache/flamenerf`), with `~` expanded.

    Read on every call, so a changed environment (tests, notebooks) takes effect at once.
    A relative value stays relative to the working directory.
    """
    return Path(os.environ.get(ENV) or DEFAULT).expanduser()
