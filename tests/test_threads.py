# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
import threading

import pytest

from flamenerf import threads


def test_map_threads_runs_every_item_on_a_thread_pool_and_raises_errors():
    seen, idents = [], set()

    def work(i):
        seen.append(i)
        idents.add(threading.get_ident())

    threads.map_threads(work, [3, 1, 2])
    assert sorted(seen) == [1, 2, 3] and threading.get_ident() not in idents

    def fail(i):
        if i == 2:
            raise RuntimeError("item 2 failed")

    with pytest.raises(RuntimeError, match="item 2 failed"):
        threads.map_threads(fail, range(4))
    threads.map_threads(work, [])  # nothing to do


def test_map_threads_uses_one_thread_per_core(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    barrier, idents = threading.Barrier(2, timeout=10), set()

    def work(i):
        idents.add(threading.get_ident())
        barrier.wait()  # both threads must be running at once, or this times out

    threads.map_threads(work, range(4))
    assert len(idents) == 2
