"""Draining the photo queue: two workers at once on PostgreSQL (SKIP LOCKED), one on SQLite.

Each photo must end with exactly one embedding and one stage estimate, no worker may claim a photo
the other holds, and together they must process every photo.
"""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from core.models import Embedding, Photo, StageEstimate

N_PHOTOS = 40
BATCH = 4
DISTINCT_IMAGES = 8


@pytest.fixture(scope="module")
def processed_images() -> list[tuple[bytes, bytes]]:
    """A few processed (ingested) photos: (JPEG, thumbnail) bytes, ingested once per module."""
    from vision.ingest import ingest
    from vision.synthetic import make_photo

    out = []
    for k in range(DISTINCT_IMAGES):
        p = ingest(make_photo(k % 5, 900 + k, megapixels=0.3))
        out.append((p.jpeg, p.thumbnail_jpeg))
    return out


@pytest.fixture
def backend_env(db_backend_url, tmp_path, monkeypatch, shared_models):
    """Settings on a fresh var folder and the given backend (SQLite file or PostgreSQL database)."""
    from core.config import get_settings
    from core.db import dispose_engines

    monkeypatch.setenv("SPIRA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(shared_models))
    if db_backend_url:
        monkeypatch.setenv("SPIRA_DATABASE_URL", db_backend_url)
    else:
        monkeypatch.delenv("SPIRA_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    dispose_engines()
    get_settings.cache_clear()


@pytest.fixture
def queue(backend_env, processed_images):
    """N_PHOTOS pending photo rows whose processed images are in the store; returns the factory."""
    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.models import Group
    from core.storage import get_store

    migrate()
    store = get_store()
    keys = [(store.put(jpeg), store.put(thumb)) for jpeg, thumb in processed_images]
    factory = session_factory()
    with factory() as s:
        unit = seed_structure(s)[0]
        group = s.scalar(select(Group).where(Group.unit_id == unit.id))
        for k in range(N_PHOTOS):
            content_key, thumb_key = keys[k % len(keys)]
            s.add(
                Photo(
                    sha256=f"{k:064x}",  # the upload's hash: distinct per photo
                    content_key=content_key,
                    thumb_key=thumb_key,
                    unit_id=unit.id,
                    group_id=group.id,
                    activity="teckning",
                    age_band=group.age_band,
                    term="2026-HT",
                    captured_on=date(2026, 10, 1),
                    status="pending",
                    source_format="jpeg",
                    width=412,
                    height=302,
                )
            )
        s.commit()
    return factory


def _run_workers(factory, model, n_workers: int, monkeypatch) -> list[list[str]]:
    """Run ``n_workers`` threads, each with its own sessions, calling process_batch until the queue
    looks empty to it. Returns the photo ids each worker claimed.

    With two workers, each waits after its first claim until the other has claimed too (while both
    still hold their row locks): this proves the claims run concurrently and do not block each other.
    Without SKIP LOCKED the second claim would wait on the first's locks and the barrier time out.
    """
    import vision.worker as worker
    from core.storage import get_store

    real_claim = worker.claim_pending
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(n_workers, timeout=60)
    first = threading.local()

    def claim_and_record(session, batch):
        photos = real_claim(session, batch)
        claimed.setdefault(threading.current_thread().name, []).extend(p.id for p in photos)
        if n_workers > 1 and not getattr(first, "done", False):
            first.done = True
            barrier.wait()
        return photos

    monkeypatch.setattr(worker, "claim_pending", claim_and_record)
    errors: list[BaseException] = []
    store = get_store()

    def loop() -> None:
        try:
            while True:
                with factory() as session:
                    if worker.process_batch(session, store, model, batch=BATCH) == 0:
                        return
        except BaseException as err:  # reported by the test, not lost in the thread
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=loop, name=f"worker-{i}") for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == [], errors
    return [claimed.get(t.name, []) for t in threads]


def test_workers_drain_the_queue_each_photo_exactly_once(
    queue, trained_model, db_backend_url, monkeypatch
):
    from training.model_files import load_model

    model = load_model(trained_model)
    n_workers = 2 if db_backend_url else 1  # SQLite has one writer: one worker per database file
    claims = _run_workers(queue, model, n_workers, monkeypatch)

    all_claimed = [pid for ids in claims for pid in ids]
    assert len(all_claimed) == len(set(all_claimed)) == N_PHOTOS  # nobody claimed a photo twice
    assert all(len(ids) > 0 for ids in claims), [len(ids) for ids in claims]
    if n_workers == 2:
        assert not set(claims[0]) & set(claims[1])

    with queue() as s:
        ids = set(s.scalars(select(Photo.id)))
        assert set(all_claimed) == ids
        statuses = dict(
            s.execute(select(Photo.status, func.count()).group_by(Photo.status)).tuples().all()
        )
        assert statuses == {"done": N_PHOTOS}
        for table in (Embedding, StageEstimate):
            per_photo = dict(
                s.execute(select(table.photo_id, func.count()).group_by(table.photo_id))
                .tuples()
                .all()
            )
            assert set(per_photo) == ids and set(per_photo.values()) == {1}, table.__name__
        versions = set(s.scalars(select(StageEstimate.model_version)))
        assert versions == {model.version}


def test_a_second_drain_finds_nothing_left(queue, trained_model, db_backend_url):
    """After the queue is drained, workers started again claim nothing and write nothing."""
    from core.storage import get_store
    from training.model_files import load_model
    from vision.worker import drain

    model = load_model(trained_model)
    assert drain(queue, get_store(), model, batch=16) == N_PHOTOS
    assert drain(queue, get_store(), model, batch=16) == 0
    with queue() as s:
        assert s.scalar(select(func.count()).select_from(Embedding)) == N_PHOTOS
        assert s.scalar(select(func.count()).select_from(StageEstimate)) == N_PHOTOS
