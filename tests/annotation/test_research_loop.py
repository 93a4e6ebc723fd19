"""The researchers' whole loop against a real Label Studio and a real Spira server.

push with pre-annotations -> two annotators label through Label Studio's API (Label Studio reports
them to Spira's webhook) -> pull -> agreement -> train from the labels -> promote -> the stored
photos' estimates change to the new model's.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from core.models import Annotation, Group, Photo, StageEstimate, Unit

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spira_server(spira_env, trained_model, monkeypatch):
    """Spira's API on a free localhost port (so Label Studio can call its webhook)."""
    import uvicorn

    from api.main import create_app
    from cli.demo import seed_structure
    from core.config import get_settings
    from core.db import migrate, session_factory
    from core.storage import get_store
    from training.model_files import load_model
    from training.registry import promote
    from vision.photos import accept_photo
    from vision.synthetic import make_photo
    from vision.worker import drain

    port = _free_port()
    monkeypatch.setenv("SPIRA_WEBHOOK_SECRET", "loop-secret")
    monkeypatch.setenv("SPIRA_PUBLIC_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    migrate()
    factory = session_factory()
    truth = {}
    with factory() as s:
        seed_structure(s)
        promote(trained_model, session=s)
        s.commit()
        unit = s.scalar(select(Unit).where(Unit.name == "Adolfsberg"))
        groups = list(s.scalars(select(Group).where(Group.unit_id == unit.id)))
        for k in range(20):
            stage = k % 5
            r = accept_photo(
                session=s,
                store=get_store(),
                data=make_photo(stage, 4000 + k, megapixels=0.3),
                unit=unit,
                group=groups[k % 2],
                activity="teckning",
                age_band=groups[k % 2].age_band,
            )
            truth[r.photo.id] = stage
    drain(factory, get_store(), load_model(trained_model))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(start_worker=False), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "Spira did not start"
    yield factory, truth
    server.should_exit = True
    thread.join(timeout=15)


def test_label_agree_train_promote(spira_server, label_studio, trained_model):
    from annotation.jobs import pull, push
    from annotation.labelstudio import LabelStudioClient
    from annotation.store import agreement_report
    from core.config import get_settings
    from training.jobs import run_training
    from training.registry import promote

    factory, truth = spira_server
    base_url, token = label_studio
    client = LabelStudioClient(base_url, token)
    settings = get_settings()
    project = f"loop-{uuid.uuid4().hex[:8]}"
    with factory() as s:
        first = push(
            s,
            client,
            n=20,
            strategy="hybrid",
            project=project,
            public_url=settings.public_url,
            webhook_secret=settings.webhook_secret,
        )
        again = push(
            s,
            client,
            n=20,
            strategy="hybrid",
            project=project,
            public_url=settings.public_url,
            webhook_secret=settings.webhook_secret,
        )
    assert first.selected == 20 and first.created == 20 and first.predictions_added == 20
    assert again.created == 0  # pushing twice creates no duplicate task
    tasks = client.list_tasks(first.project_id, with_annotations=False)
    assert len(tasks) == 20
    task = tasks[0]
    assert "/api/images/" in task["data"]["image"] and "sig=" in task["data"]["image"]

    # two researchers label every task; B disagrees by one stage on a few
    a_id = client.ensure_user("anna@spira.local")
    b_id = client.ensure_user("bertil@spira.local")
    rng = np.random.default_rng(0)
    for t in tasks:
        stage = truth[t["data"]["photo_id"]]
        client.annotate(first.project_id, int(t["id"]), stage, completed_by=a_id)
        other = int(np.clip(stage + (rng.random() < 0.25) * rng.choice([-1, 1]), 0, 4))
        client.annotate(first.project_id, int(t["id"]), other, completed_by=b_id)

    # the webhook delivered labels already (Label Studio called Spira on localhost)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with factory() as s:
            if s.scalar(select(func.count()).select_from(Annotation)) >= 40:
                break
        time.sleep(0.5)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == 40
        added, updated, removed = pull(s, client, project=project)  # idempotent after the webhook
        s.commit()
        assert (added, updated, removed) == (0, 0, 0)
        report = agreement_report(s, n_bootstrap=0)
    assert report is not None and report.n_items == 20 and report.n_annotators == 2
    assert report.krippendorff_alpha.value is not None and report.krippendorff_alpha.value > 0.7
    (pair,) = report.pairs
    assert pair.n_items == 20 and pair.quadratic_weighted_kappa.value > 0.7

    version = run_training(factory, from_label_studio=True, seed=0, log=lambda m: None)
    assert version != trained_model
    with factory() as s:
        rescored = promote(version, session=s)
        s.commit()
        assert rescored == 20
        for photo in s.scalars(select(Photo)):
            versions = set(
                s.scalars(
                    select(StageEstimate.model_version).where(StageEstimate.photo_id == photo.id)
                )
            )
            assert version in versions
    from training.model_files import list_models

    card = next(m for m in list_models() if m["version"] == version)
    assert card["data"]["source"] == "label_studio"
    assert card["metrics"]["human_agreement"]["n_items"] == 20
    # a label deleted in Label Studio leaves Spira too (the webhook reports ANNOTATIONS_DELETED)
    with factory() as s:
        victim = s.scalar(select(Annotation.external_id).order_by(Annotation.id))
    client.sdk.annotations.delete(id=int(victim))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with factory() as s:
            if s.scalar(select(func.count()).select_from(Annotation)) < 40:
                break
        time.sleep(0.5)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == 39
        assert s.scalar(select(Annotation).where(Annotation.external_id == victim)) is None
        assert pull(s, client, project=project) == (0, 0, 0)  # pull agrees with the webhook
    # the session's default model back for the other tests
    with factory() as s:
        promote(trained_model, session=s)
        s.commit()
