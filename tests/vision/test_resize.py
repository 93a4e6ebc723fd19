"""Fast shrinking (vision.resize), reduced JPEG decoding sizes, one thread per operation."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from vision.ingest import reduced_size
from vision.resize import area, fit_long_side, shrink


def _photo_like(width: int, height: int) -> np.ndarray:
    """Smooth tones with a few strokes: what shrinking meets in a photographed drawing."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 200 + 30 * np.sin(xs / 97) * np.cos(ys / 131)
    rgb = np.repeat(base[..., None], 3, axis=2).astype(np.uint8)
    for k in range(12):
        cv2.line(rgb, (40 * k, 10), (width - 30 * k, height - 20), (20, 30, 160), 1)
    return rgb


@pytest.mark.parametrize(
    ("source", "size"),
    [((1333, 1000), (320, 240)), ((1600, 1131), (320, 226)), ((2000, 1500), (512, 384))],
)
def test_shrink_gives_the_size_asked_for_and_what_area_averaging_gives(source, size):
    rgb = _photo_like(*source)
    fast = shrink(rgb, size)
    exact = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert fast.shape == exact.shape and fast.dtype == np.uint8
    # No aliasing: within a few grey levels of exact area averaging, on average and nearly
    # everywhere (a pure bilinear shrink by 4 misses thin strokes and differs far more).
    diff = np.abs(fast.astype(int) - exact.astype(int))
    assert diff.mean() < 3 and np.percentile(diff, 99) < 40
    bilinear = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    assert diff.mean() < np.abs(bilinear.astype(int) - exact.astype(int)).mean()


@pytest.mark.parametrize(
    ("source", "size"),
    [((1003, 703), (320, 224)), ((1600, 1131), (256, 181)), ((1300, 866), (600, 400))],
)
def test_area_is_area_averaging_in_two_steps(source, size):
    rgb = _photo_like(*source)
    fast = area(rgb, size)
    exact = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert fast.shape == exact.shape and fast.dtype == np.uint8
    diff = np.abs(fast.astype(int) - exact.astype(int))
    # Within a grey level of exact area averaging on average, and on the strokes (the largest
    # differences) far closer than a bilinear shrink, which misses parts of thin lines.
    bilinear = np.abs(cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR) - exact.astype(int))
    assert diff.mean() < 1
    assert np.percentile(diff, 99.9) < np.percentile(bilinear, 99.9) / 2
    # A one-pixel stroke is never lost, however it falls on the grid.
    for column in range(source[0] // 2, source[0] // 2 + 8):
        line = np.full((source[1], source[0]), 255, np.uint8)
        line[:, column] = 0
        assert area(line, size).min() <= 255 - 255 / (source[0] / size[0]) / 2 + 1


def test_shrink_works_on_grey_images_and_small_steps():
    grey = _photo_like(900, 600)[..., 0]
    assert shrink(grey, (300, 200)).shape == (200, 300)
    assert shrink(grey, (800, 533)).shape == (533, 800)  # by less than half: bilinear only


def test_fit_long_side_never_enlarges():
    rgb = _photo_like(300, 200)
    assert fit_long_side(rgb, 1600) is rgb
    assert fit_long_side(_photo_like(2000, 1500), 1600).shape == (1200, 1600, 3)
    assert fit_long_side(_photo_like(1500, 2000), 320).shape == (320, 240, 3)


@pytest.mark.parametrize(
    ("size", "reduced"),
    [
        ((4000, 3000), (2000, 1500)),  # 12 MP: half
        ((4032, 3024), (2016, 1512)),  # iPad/iPhone 12 MP
        ((3200, 2400), (1600, 1200)),  # exactly twice the working size: half
        ((3199, 2400), (3199, 2400)),  # half would fall below 1600: decoded whole
        ((8000, 6000), (2000, 1500)),  # 48 MP: a quarter
        ((20000, 15000), (2500, 1875)),  # libjpeg stops at an eighth
        ((1024, 768), (1024, 768)),  # small: whole
    ],
)
def test_reduced_size_is_the_largest_dct_step_that_keeps_the_working_size(size, reduced):
    assert reduced_size(*size, 1600) == reduced


def test_one_thread_per_operation_sets_opencv_and_blas():
    # In a child process: the setting is process-wide and would slow the rest of the tests.
    probe = (
        "import cv2; from threadpoolctl import threadpool_info\n"
        "from vision.threads import one_thread_per_operation\n"
        "import numpy\n"
        "one_thread_per_operation()\n"
        "blas = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "print(cv2.getNumThreads(), sorted(set(blas)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=1)
    assert out[0] == "1"
    assert out[1].strip() in ("[1]", "[]")  # [] only if numpy had no BLAS library loaded


def test_map_per_core_keeps_order_spreads_over_threads_and_raises():
    import threading
    import time

    from vision import threads

    seen: set[str] = set()
    two_cores = threads.usable_cpus() >= 2
    # The first two items wait for each other: they finish only if two threads run them.
    meet = threading.Barrier(2, timeout=30)

    def square(n: int) -> int:
        return n * n

    def square_meeting(n: int) -> int:
        seen.add(threading.current_thread().name)
        if two_cores and n < 2:
            meet.wait()
        time.sleep(0.001)
        return n * n

    assert threads.map_per_core(square_meeting, list(range(12))) == [n * n for n in range(12)]
    if two_cores:
        assert len(seen) >= 2 and all(name.startswith("spira-analyse") for name in seen)

    def fail_on_three(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    with pytest.raises(ValueError, match="three"):
        threads.map_per_core(fail_on_three, [1, 2, 3, 4])
    assert threads.map_per_core(square, []) == []
    # Used inside itself (features of a batch computed per item of another batch): no deadlock.
    nested = threads.map_per_core(
        lambda n: threads.map_per_core(square, [n, n + 1]), list(range(6))
    )
    assert nested == [[n * n, (n + 1) ** 2] for n in range(6)]


def test_imap_per_core_yields_in_order_starts_at_once_and_bounds_work_in_flight():
    import threading
    import time

    from vision import threads

    started: list[int] = []
    lock = threading.Lock()
    first_two = threading.Barrier(2, timeout=30) if threads.usable_cpus() >= 2 else None

    def record(n: int) -> int:
        with lock:
            started.append(n)
        if first_two is not None and n < 2:
            first_two.wait()  # finishes only when two threads run the first two items
        return n * 10

    results = threads.imap_per_core(record, list(range(20)), ahead=4)
    if threads.usable_cpus() >= 2:
        # The first items run before any result is asked for (the caller compiles a model
        # meanwhile), but no more than `ahead` of them.
        deadline = time.monotonic() + 30
        while len(started) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(started) == [0, 1, 2, 3]
    taken = []
    for value in results:
        taken.append(value)
        # At most `ahead` items started and not yet taken.
        assert len(started) - len(taken) <= 4
    assert taken == [n * 10 for n in range(20)]

    def fail_on_three(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    failing = threads.imap_per_core(fail_on_three, [1, 2, 3, 4])
    assert [next(failing), next(failing)] == [1, 2]
    with pytest.raises(ValueError, match="three"):
        next(failing)
    assert list(threads.imap_per_core(record, [])) == []
