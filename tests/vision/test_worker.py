"""The queue worker: micro-batches, state in the database, resume after a crash, nothing twice."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.models import Embedding, Photo, StageEstimate
from tests.photos import queue_photos


@pytest.fixture
def queued(spira_env, trained_model):

    return queue_photos(
        "Öknen", [(k % 5, 300 + k) for k in range(6)], megapixels=0.3, age_band="2-3"
    )


def _counts(factory):
    with factory() as s:
        done = s.scalar(select(func.count()).select_from(Photo).where(Photo.status == "done"))
        pending = s.scalar(select(func.count()).select_from(Photo).where(Photo.status == "pending"))
        emb = s.scalar(select(func.count()).select_from(Embedding))
        est = s.scalar(select(func.count()).select_from(StageEstimate))
    return done, pending, emb, est


def test_crash_mid_queue_resumes_without_processing_twice(queued, monkeypatch, trained_model):
    import vision.worker as worker
    from core.storage import get_store
    from training.model_files import load_model

    model = load_model(trained_model)
    real = worker.drawing_features_batch
    calls = {"n": 0}

    def crash_on_second_batch(images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real(images)

    monkeypatch.setattr(worker, "drawing_features_batch", crash_on_second_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        worker.drain(queued, get_store(), model, batch=3)
    assert _counts(queued) == (3, 3, 3, 3)  # the crashed batch left no partial rows

    monkeypatch.setattr(worker, "drawing_features_batch", real)
    assert worker.drain(queued, get_store(), model, batch=3) == 3
    assert _counts(queued) == (6, 0, 6, 6)
    assert worker.drain(queued, get_store(), model, batch=3) == 0


def test_unreadable_stored_image_fails_after_retries_and_does_not_block_the_queue(
    queued, trained_model
):
    from core.storage import get_store
    from training.model_files import load_model
    from vision.worker import MAX_ATTEMPTS, drain

    with queued() as s:
        photo = s.scalars(select(Photo).order_by(Photo.created_at)).first()
        get_store().path_for(photo.content_key).write_bytes(b"corrupted on disk")
        bad_id = photo.id
    model = load_model(trained_model)
    for _ in range(MAX_ATTEMPTS):
        drain(queued, get_store(), model, batch=10)
    with queued() as s:
        bad = s.get(Photo, bad_id)
        assert bad.status == "failed" and "unreadable" in bad.error
        assert s.scalar(select(func.count()).select_from(Photo).where(Photo.status == "done")) == 5


@pytest.mark.parametrize(
    "size",
    [
        (400, 300),
        (512, 300),
        (513, 400),
        (973, 600),
        (1003, 703),
        (703, 1003),
        (1600, 1131),
        (2000, 60),
        (60, 2000),
        (1945, 1),
        (1, 1),
    ],
)
def test_the_analysis_copy_has_the_stored_images_shape_at_512_px(size):
    import cv2
    import numpy as np
    import simplejpeg

    from vision.stored import ANALYSIS_LONG_SIDE, decode_stored

    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    grey = (128 + 100 * np.sin(xs / 7.0) * np.cos(ys / 11.0)).astype(np.uint8)
    rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    cv2.line(rgb, (0, 0), (width - 1, height - 1), (200, 30, 20), 3)
    copy = decode_stored(simplejpeg.encode_jpeg(rgb, 90, "RGB", "420"))
    long_side = min(ANALYSIS_LONG_SIDE, max(size))
    short = max(1, round(min(size) * long_side / max(size)))
    expected = (long_side, short) if width >= height else (short, long_side)
    assert copy.dtype == np.uint8 and copy.shape == (expected[1], expected[0], 3)
    # The picture, not just the size: close to the original averaged down to the same size.
    reference = cv2.resize(rgb, expected, interpolation=cv2.INTER_AREA)
    assert np.abs(copy.astype(int) - reference.astype(int)).mean() < 12
