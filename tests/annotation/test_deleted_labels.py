"""Labels deleted in Label Studio leave Spira too: by webhook (ANNOTATIONS_DELETED) and by pull."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from annotation.labelstudio import parse_deleted
from tests.api.conftest import api  # noqa: F401  (the API client fixture)


def test_parse_deleted_reads_the_ids_and_ignores_other_actions():
    payload = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 17}, {"id": 18}]}
    assert parse_deleted(payload) == ["17", "18"]
    assert parse_deleted({"action": "ANNOTATION_CREATED", "annotation": {}}) == []
    with pytest.raises(ValueError, match="'annotations' list"):
        parse_deleted({"action": "ANNOTATIONS_DELETED"})
    with pytest.raises(ValueError, match="without 'id'"):
        parse_deleted({"action": "ANNOTATIONS_DELETED", "annotations": [{"task": 1}]})


def _labelled(client, n_tasks: int = 3) -> list[str]:
    """Store ``n_tasks`` photos with two labels each (annotation ids 1..2n, tasks 100..)."""
    from annotation.store import store_annotations
    from core.models import Group, Unit
    from tests.security.conftest import distinct_jpeg
    from vision.photos import accept_photo

    with client.factory() as s:
        unit = s.scalar(select(Unit).where(Unit.name == "Olympia"))
        group = s.scalar(select(Group).where(Group.unit_id == unit.id))
        ids = [
            accept_photo(
                session=s,
                store=client.app.state.store,
                data=distinct_jpeg(700 + i),
                unit=unit,
                group=group,
                activity="teckning",
                age_band=group.age_band,
            ).photo.id
            for i in range(n_tasks)
        ]
        rows = [
            {
                "photo_id": pid,
                "annotator": str(who),
                "stage": 2,
                "annotated_at": datetime(2026, 12, 1, tzinfo=UTC),
                "task_id": 100 + i,
                "annotation_id": 2 * i + who,
            }
            for i, pid in enumerate(ids)
            for who in (1, 2)
        ]
        assert store_annotations(s, rows) == (2 * n_tasks, 0)
        s.commit()
    return ids


def _count(client) -> int:
    from core.models import Annotation

    with client.factory() as s:
        return s.scalar(select(func.count()).select_from(Annotation))


def test_webhook_removes_labels_deleted_in_label_studio(api, monkeypatch):  # noqa: F811
    from core.config import get_settings

    monkeypatch.setenv("SPIRA_WEBHOOK_SECRET", "a-long-shared-secret")
    get_settings.cache_clear()
    _labelled(api)
    assert _count(api) == 6
    hook = {"X-Spira-Webhook-Secret": "a-long-shared-secret"}
    payload = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": 2}]}
    r = api.post("/api/annotations/webhook", json=payload, headers=hook)
    assert r.status_code == 200, r.text
    assert r.json() == {"added": 0, "updated": 0, "removed": 2}
    assert _count(api) == 4
    again = api.post("/api/annotations/webhook", json=payload, headers=hook)
    assert again.json()["removed"] == 0 and _count(api) == 4  # a repeated delivery is harmless
    bad = api.post("/api/annotations/webhook", json={"action": "ANNOTATIONS_DELETED"}, headers=hook)
    assert bad.status_code == 422 and _count(api) == 4


class FakeLabelStudio:
    """What ``annotation.jobs.pull`` asks of the client, for one project."""

    def __init__(self, rows: list[dict], task_ids: list[int]) -> None:
        self.rows, self.task_ids = rows, task_ids

    def find_project(self, title: str) -> int:
        return 7

    def pull_annotations(self, project_id: int) -> list[dict]:
        return self.rows

    def list_tasks(self, project_id: int, *, with_annotations: bool = False) -> list[dict]:
        return [{"id": t} for t in self.task_ids]


def test_pull_removes_labels_label_studio_no_longer_has_and_keeps_other_projects(api):  # noqa: F811
    from annotation.jobs import pull
    from annotation.store import store_annotations

    ids = _labelled(api)
    # a label from another project's task (task 999) must survive a pull of this project
    with api.factory() as s:
        other = {
            "photo_id": ids[0],
            "annotator": "9",
            "stage": 1,
            "annotated_at": datetime(2026, 12, 1, tzinfo=UTC),
            "task_id": 999,
            "annotation_id": 999,
        }
        store_annotations(s, [other])
        s.commit()
    # Label Studio still has tasks 100-102 but only the annotations 1, 2 and 3 (4, 5, 6 deleted)
    kept = [
        {
            "photo_id": ids[(a - 1) // 2],
            "annotator": str(2 - a % 2),
            "stage": 2,
            "annotated_at": datetime(2026, 12, 1, tzinfo=UTC),
            "task_id": 100 + (a - 1) // 2,
            "annotation_id": a,
        }
        for a in (1, 2, 3)
    ]
    with api.factory() as s:
        assert pull(s, FakeLabelStudio(kept, [100, 101, 102])) == (0, 0, 3)
        s.commit()
    assert _count(api) == 4  # 3 kept here + the other project's
    with api.factory() as s:
        assert pull(s, FakeLabelStudio(kept, [100, 101, 102])) == (0, 0, 0)  # idempotent
