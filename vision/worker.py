"""The queue worker: embeds and scores pending photos in micro-batches.

State lives in the database: a photo is ``pending`` until one transaction writes its embedding, its
stage estimate and ``status = done`` together, so a restart resumes where it stopped and nothing is
processed twice. On PostgreSQL several workers can drain the queue at once (``FOR UPDATE SKIP
LOCKED``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Embedding, Photo, StageEstimate
from core.storage import WORKER_LOCK, BlobStore, file_lock
from vision.model import StageModel, drawing_features_batch
from vision.stored import decode_stored
from vision.threads import map_per_core

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def estimate_row(photo_id: str, version: str, probs: np.ndarray, expected: float) -> StageEstimate:
    """The stored row of one photo's stage estimate (probabilities of stages 0–4 and the expected
    stage) under model ``version``: one shape for the worker, the Ray engine and re-scoring."""
    p = [float(x) for x in probs]
    return StageEstimate(
        photo_id=photo_id,
        model_version=version,
        p0=p[0],
        p1=p[1],
        p2=p[2],
        p3=p[3],
        p4=p[4],
        expected_stage=expected,
    )


def _read_stored(store: BlobStore) -> Callable[[str], np.ndarray | Exception]:
    """Reads and decodes one stored image by its key; an unreadable one gives its error."""

    def read(key: str) -> np.ndarray | Exception:
        try:
            return decode_stored(store.get(key))
        except (OSError, ValueError) as err:
            return err

    return read


def claim_pending(session: Session, batch: int) -> list[Photo]:
    query = (
        select(Photo)
        .where(Photo.status == "pending")
        .order_by(Photo.created_at, Photo.id)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def process_batch(session: Session, store: BlobStore, model: StageModel, batch: int = 16) -> int:
    """Process up to ``batch`` pending photos in one transaction; returns how many were claimed."""
    photos = claim_pending(session, batch)
    if not photos:
        return 0
    images, ok = [], []
    # The keys are read here: the pool's threads touch no ORM object.
    keys = [photo.content_key for photo in photos]
    for photo, decoded in zip(photos, map_per_core(_read_stored(store), keys), strict=True):
        if isinstance(decoded, np.ndarray):
            images.append(decoded)
            ok.append(photo)
        else:
            photo.attempts += 1
            photo.error = f"stored image unreadable: {decoded}"
            photo.status = "failed" if photo.attempts >= MAX_ATTEMPTS else "pending"
    if ok:
        embedder = model.embedder()
        emb = embedder.embed(images)
        feats = drawing_features_batch(images)
        scores = model.score_described(emb, feats)
        now = datetime.now(UTC)
        for i, photo in enumerate(ok):
            session.add(
                Embedding(
                    photo_id=photo.id,
                    model_version=embedder.version,
                    dim=emb.shape[1],
                    vector=emb[i].astype("<f4").tobytes(),
                    features={
                        n: float(v) for n, v in zip(model.feature_names, feats[i], strict=True)
                    },
                )
            )
            session.add(
                estimate_row(photo.id, model.version, scores.probs[i], float(scores.expected[i]))
            )
            photo.status = "done"
            photo.error = None
            photo.processed_at = now
    session.commit()
    return len(photos)


def drain(
    factory: sessionmaker[Session],
    store: BlobStore,
    model: StageModel,
    *,
    batch: int = 16,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Process pending photos until none is left; returns the number processed."""
    total = 0
    while True:
        with factory() as session:
            n = process_batch(session, store, model, batch)
        if n == 0:
            return total
        total += n
        if progress:
            progress(n)


class BackgroundWorker(threading.Thread):
    """Drains the queue in the API process; wakes on :meth:`notify` or every ``interval`` seconds."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        store: BlobStore,
        model_loader,
        interval: float = 2.0,
        on_change: Callable[[], None] | None = None,
    ):
        super().__init__(name="spira-worker", daemon=True)
        self.lock_path = store.root / WORKER_LOCK
        self.factory = factory
        self.store = store
        self.model_loader = model_loader
        #: Called after each batch it commits (the API forgets its profile-freshness check).
        self.on_change = on_change
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def _changed(self, n: int) -> None:
        if self.on_change is not None:
            self.on_change()

    def notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                # With `spira serve --workers N` the processes share one queue; on SQLite, which
                # has no SKIP LOCKED, only the lock's holder drains, so no photo is embedded twice.
                with file_lock(self.lock_path, wait=False) as mine:
                    # Another server process on the same storage drains now; this one waits.
                    if mine:
                        drain(
                            self.factory,
                            self.store,
                            self.model_loader(),
                            progress=self._changed if self.on_change else None,
                        )
            except FileNotFoundError as err:  # no promoted model yet: keep photos pending
                log.warning("worker idle: %s", err)
            except Exception:  # keep serving; the photo stays pending and is retried
                log.exception("worker batch failed")
            self._wake.wait(self.interval)
            self._wake.clear()
