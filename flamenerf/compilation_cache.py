# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""JAX's persistent compilation cache for the command lines: a repeated or resumed run
reads its compiled programs (the train step, the renderer) from disk instead of compiling
them again.

The command lines (`train`, `eval`, `render`) call `enable()` first thing. Where the cache
lives, in order:

1. `FLAMENERF_COMPILATION_CACHE=DIR`: in DIR; `FLAMENERF_COMPILATION_CACHE=off`: no cache.
2. JAX's own setting, when one is made (`JAX_COMPILATION_CACHE_DIR`, or
   `jax.config.update("jax_compilation_cache_dir", ...)` before `enable()`): kept, e.g. the
   test suite's private cache (tests/conftest.py).
3. Else `default_folder()`: `jax/` in the cache root (`$FLAMENERF_CACHE`, see `io.paths`).

Programs that compile in at least `MIN_COMPILE_SECS` are written (JAX's default, 1 s, would
leave out the many small programs a run starts with), unless
`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` says otherwise. Entries are keyed by the
program, the JAX version and the devices, so a changed model or an upgrade simply misses; the
folder can be deleted at any time. JAX treats the cache as trusted: do not point it at a
folder others can write.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flamenerf.io import paths

ENV = "FLAMENERF_COMPILATION_CACHE"
OFF = "off"
MIN_COMPILE_SECS = 0.1  # programs compiling faster than this are not written
_JAX_DIR_ENV = "JAX_COMPILATION_CACHE_DIR"
_JAX_MIN_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def default_folder() -> Path:
    """`cache_root()/jax` (`$FLAMENERF_CACHE/jax`, by default `~/.cache/flamenerf/jax`)."""
    return paths.cache_root() / "jax"


def enable(min_compile_secs: float | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache (see the module docstring for where).

    Call it before anything is compiled: JAX opens the cache at the first compilation and
    keeps that folder for the rest of the process.

    Args:
      min_compile_secs: programs compiling at least this long are written (default:
        `MIN_COMPILE_SECS`, or `$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` when set).

    Returns:
      The cache folder, or None when the cache is off (`FLAMENERF_COMPILATION_CACHE=off`, or a
      folder that cannot be created: then a warning on stderr, and the run goes on
      uncached).
    """
    import jax

    setting = os.environ.get(ENV, "").strip()
    if setting.lower() == OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    if setting:
        folder = Path(setting).expanduser()
    elif os.environ.get(_JAX_DIR_ENV) or jax.config.jax_compilation_cache_dir:
        folder = Path(os.environ.get(_JAX_DIR_ENV) or jax.config.jax_compilation_cache_dir)
    else:
        folder = default_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        where = f"{ENV}={setting}" if setting else str(folder)
        print(
            f"warning: {where}: cannot create the compilation cache folder "
            f"({error.strerror or error}); compiling without the persistent cache",
            file=sys.stderr,
        )
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if min_compile_secs is None and not os.environ.get(_JAX_MIN_TIME_ENV):
        min_compile_secs = MIN_COMPILE_SECS
    if min_compile_secs is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
    return folder
