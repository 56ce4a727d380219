# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Host work spread over the machine's cores on a pool of threads.

For per-frame numpy and scipy work (the FLAME guide's grids, the synthetic capture's frames):
their large array operations release the GIL, so one thread per core keeps every core busy
without the start-up and copying of processes. Each item's work is unchanged, so the results
are those of a serial loop.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Iterable

from tqdm.auto import tqdm


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def map_threads(
    fn: Callable[[int], None],
    items: Iterable[int],
    desc: str = "",
    show_progress: bool = False,
    unit: str = "it",
) -> None:
    """Runs `fn(i)` for every item on a pool of one thread per core.

    `fn` must write its result itself (e.g. to its own slice of an array or its own file). A
    progress bar over the finished items with `show_progress`; the first error is raised once
    all have stopped.
    """
    items = list(items)
    workers = max(1, min(cores(), len(items)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(fn, i) for i in items]
        done = concurrent.futures.as_completed(futures)
        bar = tqdm(done, total=len(futures), desc=desc, unit=unit, disable=not show_progress)
        for future in bar:
            future.result()
