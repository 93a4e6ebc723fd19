"""Threads inside one image operation, for a process that already runs one task per core.

The API serves uploads concurrently (one request per core) while its queue worker embeds a
batch; OpenCV's and OpenBLAS's own thread pools on top of that only oversubscribe the cores.
Measured with ``bench/vision.py`` on 2 cores: with their defaults (one thread per core each,
OpenBLAS spinning between calls) a 12-MP photo cost about 150 ms of CPU from upload to stored
estimate; with one thread each, about 117 ms; the drawing features alone went from 27–32 ms to
14 ms. OpenVINO keeps its own setting (its threads serve one batch at a time).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
from threadpoolctl import threadpool_limits

T = TypeVar("T")
R = TypeVar("R")

_limits: list = []  # keeps the BLAS limit object alive for the life of the process


def one_thread_per_operation() -> None:
    """Run OpenCV and BLAS (numpy's, scipy's) operations on the calling thread only, for the
    rest of the process (a second call changes nothing)."""
    cv2.setNumThreads(1)
    if not _limits:
        _limits.append(threadpool_limits(limits=1, user_api="blas"))


_POOL_NAME = "spira-analyse"
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def map_per_core(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[function(item) for item in items]``, spread over one thread per core.

    For a batch of independent images (decoding, drawing features): OpenCV, libjpeg and most of
    numpy release the GIL, so a batch the queue worker analyses alone (a backlog after a class's
    photos arrive) uses every core instead of one, while each operation itself stays on one
    thread (:func:`one_thread_per_operation`). Exceptions propagate as from the loop; results
    keep the order of ``items``.
    """
    pool = _shared_pool(len(items))
    if pool is None:
        return [function(item) for item in items]
    return list(pool.map(function, items))


def imap_per_core(
    function: Callable[[T], R], items: Sequence[T], *, ahead: int | None = None
) -> Iterator[R]:
    """``function(item)`` for each item, in order, spread over one thread per core as
    :func:`map_per_core`, but yielded as they finish, with at most ``ahead`` items (default
    four per core) started and not yet taken.

    The first ``ahead`` items are started before this returns, so the caller can prepare
    something else (compile a model) while they run, and work through each result (embed a
    batch) while the next ones are decoded. The bound keeps memory flat on a folder of any size.
    Exceptions propagate when their item's result is taken.
    """
    pool = _shared_pool(len(items))
    if pool is None:
        return (function(item) for item in items)
    ahead = max(1, ahead or 4 * usable_cpus())
    running = deque(pool.submit(function, item) for item in items[:ahead])

    def results() -> Iterator[R]:
        following = len(running)
        while running:
            done = running.popleft()
            if following < len(items):
                running.append(pool.submit(function, items[following]))
                following += 1
            yield done.result()

    return results()


def _shared_pool(n_items: int) -> ThreadPoolExecutor | None:
    """The process's pool of one thread per core, or None where items should run in the
    calling thread (fewer than two items, one core, or called from one of the pool's own
    threads, where waiting on the pool could deadlock)."""
    global _pool
    nested = threading.current_thread().name.startswith(_POOL_NAME)
    if n_items < 2 or usable_cpus() < 2 or nested:
        return None
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(usable_cpus(), thread_name_prefix=_POOL_NAME)
    return _pool


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the system tells it, else all)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return os.cpu_count() or 1
