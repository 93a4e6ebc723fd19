"""The profile read path under load: cached figures, the freshness check, group-committed audit,
one queue worker across server processes (bench/api_load.py measures the speed)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from tests.api.conftest import PASSWORD


def _token(api, username: str) -> dict:
    r = api.post("/api/token", data={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _olympia(api) -> int:
    from core.models import Unit

    with api.factory() as s:
        return s.scalar(select(Unit.id).where(Unit.name == "Olympia"))


@pytest.fixture
def checked_every_minute(spira_env, monkeypatch):
    """A migrated database whose profile freshness check is reused for 60 s (tests use 0)."""
    from core.config import get_settings
    from core.db import migrate

    monkeypatch.setenv("SPIRA_PROFILE_CHECK_SECONDS", "60")
    get_settings.cache_clear()
    migrate()


def test_profile_freshness_check_is_reused_for_its_seconds_and_dropped_by_a_write(
    checked_every_minute, monkeypatch
):
    from core.config import get_settings
    from core.db import session_factory
    from profiles.store import ProfileService

    service = ProfileService()
    calls = []
    real = ProfileService.fingerprint
    monkeypatch.setattr(
        ProfileService, "fingerprint", staticmethod(lambda s: calls.append(1) or real(s))
    )
    with session_factory()() as session:
        first = service.build(session)
        assert service.build(session) is first and len(calls) == 1  # within the 60 s
        service.invalidate()  # what the worker and every API write do
        assert service.build(session) is first and len(calls) == 2  # checked; data unchanged
    monkeypatch.setenv("SPIRA_PROFILE_CHECK_SECONDS", "0")
    get_settings.cache_clear()
    with session_factory()() as session:
        service.build(session)
        service.build(session)
    assert len(calls) == 4  # 0: every read checks


def test_fingerprint_changes_with_each_thing_profiles_rest_on(api):
    from core.models import ResponseSheet, UnitContext
    from profiles.store import ProfileService

    with api.factory() as s:
        before = ProfileService.fingerprint(s)
        s.add(UnitContext(unit_id=_olympia(api), term="2026-HT", children_enrolled=40))
        s.flush()
        after_context = ProfileService.fingerprint(s)
        assert after_context != before
        assert s.scalar(select(func.count()).select_from(ResponseSheet)) == 0
        s.rollback()
        assert ProfileService.fingerprint(s) == before


def test_concurrent_profile_reads_are_each_audited_before_the_answer(api):
    headers = _token(api, "boss")
    unit_id = _olympia(api)
    statuses: list[int] = []

    def read() -> None:
        statuses.append(api.get(f"/api/units/{unit_id}/profile", headers=headers).status_code)

    threads = [threading.Thread(target=read) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 12
    from core.models import AuditEvent

    with api.factory() as s:
        reads = s.scalar(
            select(func.count()).where(
                AuditEvent.action == "read",
                AuditEvent.username == "boss",
                AuditEvent.object_type == "profile",
            )
        )
    assert reads == 12


def test_cached_profile_answer_is_the_same_document_as_a_fresh_one(api):
    from profiles.store import profile_service

    headers = _token(api, "res")
    unit_id = _olympia(api)
    first = api.get(f"/api/units/{unit_id}/profile", headers=headers)
    again = api.get(f"/api/units/{unit_id}/profile", headers=headers)
    profile_service.invalidate()
    profile_service._key = None  # force a rebuild from the database
    fresh = api.get(f"/api/units/{unit_id}/profile", headers=headers)
    assert first.json() == again.json() == fresh.json()
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-content-type-options"] == "nosniff"  # the headers middleware ran


def test_audit_writer_commits_together_and_reports_failures(spira_env):
    from core.audit import AuditWriter
    from core.db import migrate, session_factory
    from core.models import AuditEvent

    migrate()
    factory = session_factory()
    writer = AuditWriter(factory)
    try:
        threads = [
            threading.Thread(target=writer.record, args=(f"u{i}", "read", "profile", i))
            for i in range(30)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == 30
        with pytest.raises(Exception):  # noqa: B017 - whatever the database raises reaches the caller
            writer.record("x" * 10_000, "read", "profile", detail={"bad": object()})
        writer.record("after", "read", "profile")  # the writer survives a failed batch
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == 31
    finally:
        writer.close()


def test_only_one_process_drains_the_queue_at_a_time(tmp_path):
    from core.storage import file_lock

    lock = tmp_path / ".worker.lock"
    with file_lock(lock, wait=False) as first:
        assert first
        # a second holder (as another server process would be) is told to wait
        import subprocess
        import sys

        probe = (
            "import sys; from pathlib import Path; from core.storage import file_lock\n"
            f"with file_lock(Path({str(lock)!r}), wait=False) as mine: sys.exit(0 if mine else 3)"
        )
        assert subprocess.run([sys.executable, "-c", probe]).returncode == 3
    with file_lock(lock, wait=False) as again:
        assert again


def test_changed_data_are_rebuilt_in_the_background_while_the_last_build_is_served(
    checked_every_minute, monkeypatch
):
    from core.db import session_factory
    from core.demo import seed_structure
    from core.models import Unit, UnitContext
    from profiles.store import ProfileService

    factory = session_factory()
    with factory() as s:
        seed_structure(s)
        s.commit()
    service = ProfileService()
    started = threading.Event()
    release = threading.Event()
    real = ProfileService._compute

    def slow_compute(self, session):
        if self._result is not None:  # the rebuild, not the first build
            started.set()
            assert release.wait(30)
        return real(self, session)

    monkeypatch.setattr(ProfileService, "_compute", slow_compute)
    with factory() as s:
        first = service.build(s)  # built in this thread
        unit = s.scalar(select(Unit).where(Unit.name == "Laröd"))
        s.add(UnitContext(unit_id=unit.id, term="2026-HT", children_enrolled=30))
        s.commit()
        service.invalidate()
        # the data changed: the last build is answered at once, the next one is under way
        assert service.build(s) is first
        assert started.wait(30)
        assert service.build(s) is first  # still building: not waited for, not started twice
        release.set()
        deadline = time.monotonic() + 30
        while service._result is first and time.monotonic() < deadline:
            time.sleep(0.05)
        service.invalidate()
        newer = service.build(s)
    assert newer is not first
    assert len(newer["context"]) == len(first["context"]) + 1
