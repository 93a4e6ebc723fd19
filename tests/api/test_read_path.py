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
    from profiles.service import ProfileService

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
    from profiles.service import ProfileService

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
    from profiles.service import profile_service

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
    from cli.demo import seed_structure
    from core.db import session_factory
    from core.models import Unit, UnitContext
    from profiles.service import ProfileService

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


@pytest.fixture
def api_checked_every_minute(api, monkeypatch):
    """The test app with the production-like freshness window (60 s here; tests default to 0)."""
    from core.config import get_settings
    from core.users import principal_cache
    from profiles.service import profile_service

    monkeypatch.setenv("SPIRA_PROFILE_CHECK_SECONDS", "60")
    get_settings.cache_clear()
    principal_cache.invalidate()
    profile_service.forget()  # no build (and memo) left from another test's database
    yield api
    principal_cache.invalidate()
    profile_service.forget()


def _profile_reads(api, username: str) -> int:
    from core.models import AuditEvent

    with api.factory() as s:
        return s.scalar(
            select(func.count()).where(
                AuditEvent.action == "read",
                AuditEvent.username == username,
                AuditEvent.object_type == "profile",
            )
        )


def test_repeated_reads_answer_from_memory_and_are_still_each_audited(
    api_checked_every_minute, monkeypatch
):
    from api import deps
    from api.routes import units

    api = api_checked_every_minute
    headers = _token(api, "boss")
    unit_id = _olympia(api)
    loads = []
    real_load = deps.load_principal
    monkeypatch.setattr(
        deps, "load_principal", lambda s, uid: loads.append(uid) or real_load(s, uid)
    )
    first = api.get(f"/api/units/{unit_id}/profile", headers=headers)
    assert first.status_code == 200 and len(loads) == 1

    def no_database(*args, **kwargs):
        raise AssertionError("a repeated read went to the database")

    monkeypatch.setattr(units, "_profile_answer", no_database)
    for _ in range(5):
        again = api.get(f"/api/units/{unit_id}/profile", headers=headers)
        assert again.status_code == 200 and again.content == first.content
    assert len(loads) == 1  # the account snapshot was reused
    assert _profile_reads(api, "boss") == 6  # ... and every read has its audit row


def test_the_memoised_answer_is_not_served_to_a_principal_of_another_unit(
    api_checked_every_minute,
):
    api = api_checked_every_minute
    unit_id = _olympia(api)
    assert api.get(f"/api/units/{unit_id}/profile", headers=_token(api, "res")).status_code == 200
    other = api.get(f"/api/units/{unit_id}/profile", headers=_token(api, "other"))
    assert other.status_code == 404
    assert api.get(f"/api/units/{unit_id}/profile", headers=_token(api, "boss")).status_code == 200
    assert _profile_reads(api, "other") == 0  # refused reads are not answered, not audited


def test_a_disabled_account_is_refused_once_a_write_or_the_window_has_passed(
    api_checked_every_minute,
):
    from core.models import User
    from core.users import principal_cache

    api = api_checked_every_minute
    headers = _token(api, "boss")
    url = f"/api/units/{_olympia(api)}/profile"
    assert api.get(url, headers=headers).status_code == 200
    with api.factory() as s:  # what `spira users` in another process would do
        s.scalar(select(User).where(User.username == "boss")).active = False
        s.commit()
    # another process's change: this one's snapshot stands until the window ends ...
    assert api.get(url, headers=headers).status_code == 200
    # ... or until a write request in this process drops every snapshot
    assert api.post("/api/token", data={"username": "res", "password": PASSWORD}).status_code == 200
    refused = api.get(url, headers=headers)
    assert refused.status_code == 401
    assert "disabled" in refused.json()["detail"]
    # an expired snapshot is looked up again
    with api.factory() as s:
        s.scalar(select(User).where(User.username == "boss")).active = True
        s.commit()
    principal_cache._entries = {
        uid: (stamp - 61, p) for uid, (stamp, p) in principal_cache._entries.items()
    }
    assert api.get(url, headers=headers).status_code == 200


def test_a_snapshot_loaded_before_an_invalidation_is_not_kept():
    from core.users import Principal, PrincipalCache

    cache = PrincipalCache()
    snapshot = Principal(1, "boss", "principal", True, 0, frozenset({1}))
    generation = cache.generation
    cache.invalidate()  # a write came in while the snapshot was being loaded
    cache.put(1, snapshot, generation)
    assert cache.get(1, ttl=60) == (False, None)
    cache.put(1, snapshot, cache.generation)
    assert cache.get(1, ttl=60) == (True, snapshot)
    assert cache.get(1, ttl=0) == (False, None)  # 0 keeps nothing


def test_readers_past_the_window_trigger_one_background_check(checked_every_minute, monkeypatch):
    from core.db import session_factory
    from profiles.service import ProfileService

    service = ProfileService()
    assert service.peek() is None  # nothing built yet: the caller builds
    with session_factory()() as session:
        first = service.build(session)
    calls = []
    real = ProfileService.fingerprint

    def slow_fingerprint(s):
        calls.append(1)
        time.sleep(0.2)
        return real(s)

    monkeypatch.setattr(ProfileService, "fingerprint", staticmethod(slow_fingerprint))
    assert service.peek() is first and calls == []  # within the window: nothing asked
    service.invalidate()
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(service.peek())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [first] * 20  # nobody waited for the check
    deadline = time.monotonic() + 30
    while service._checking.locked() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls == [1]  # twenty readers, one check
    assert service.peek() is first  # checked, unchanged


def test_audit_writer_commits_for_coroutines_and_reports_failures(spira_env):
    import asyncio

    from core.audit import AuditWriter
    from core.db import migrate, session_factory
    from core.models import AuditEvent

    migrate()
    factory = session_factory()
    writer = AuditWriter(factory)

    async def main() -> None:
        await asyncio.gather(
            *(writer.record_async(f"u{i}", "read", "profile", i) for i in range(25))
        )
        with pytest.raises(Exception):  # noqa: B017 - the database's error reaches the caller
            await writer.record_async("x", "read", "profile", detail={"bad": object()})

    try:
        asyncio.run(main())
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == 25
    finally:
        writer.close()


def test_after_a_rebuild_readers_get_the_last_answer_while_one_refresh_runs(
    api_checked_every_minute, monkeypatch
):
    from api.routes import units
    from core.models import UnitContext
    from profiles.service import profile_service

    api = api_checked_every_minute
    headers = _token(api, "boss")
    unit_id = _olympia(api)
    url = f"/api/units/{unit_id}/profile"
    before = api.get(url, headers=headers)
    assert before.status_code == 200
    first_build = profile_service.peek()
    with api.factory() as s:  # the data change (another process, or the queue worker)
        s.add(UnitContext(unit_id=unit_id, term="2026-HT", children_enrolled=40))
        s.commit()
    profile_service.invalidate()
    with api.factory() as s:
        profile_service.build(s)  # starts the rebuild in the background
    deadline = time.monotonic() + 60
    while profile_service.peek() is first_build and time.monotonic() < deadline:
        time.sleep(0.05)
    assert profile_service.peek() is not first_build
    release = threading.Event()
    calls = []
    real = units._profile_answer

    def slow_answer(*args):
        calls.append(1)
        assert release.wait(30)
        return real(*args)

    monkeypatch.setattr(units, "_profile_answer", slow_answer)
    for _ in range(4):  # answered at once, from the last build, while the refresh waits
        again = api.get(url, headers=headers)
        assert again.status_code == 200 and again.content == before.content
    assert calls == [1]  # four readers, one refresh
    release.set()
    while ("answer", unit_id, None) not in profile_service.peek()["memo"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = api.get(url, headers=headers)
    assert after.status_code == 200 and calls == [1]
    assert _profile_reads(api, "boss") == 6


def test_background_rebuilds_start_at_most_once_per_rebuild_window(
    checked_every_minute, monkeypatch
):
    from cli.demo import seed_structure
    from core.config import get_settings
    from core.db import session_factory
    from core.models import Unit, UnitContext
    from profiles.service import ProfileService

    monkeypatch.setenv("SPIRA_PROFILE_REBUILD_SECONDS", "60")
    get_settings.cache_clear()
    factory = session_factory()
    with factory() as s:
        seed_structure(s)
        s.commit()
    service = ProfileService()
    computed = []
    real = ProfileService._compute
    monkeypatch.setattr(
        ProfileService, "_compute", lambda self, s: computed.append(1) or real(self, s)
    )

    def change_and_check(s, children: int) -> None:
        unit = s.scalar(select(Unit).where(Unit.name == "Laröd"))
        s.add(UnitContext(unit_id=unit.id, term=f"20{children}-HT", children_enrolled=children))
        s.commit()
        service.invalidate()
        service.build(s)
        deadline = time.monotonic() + 60
        while service._lock.locked() and time.monotonic() < deadline:
            time.sleep(0.02)

    with factory() as s:
        service.build(s)  # the first build, in this thread
        change_and_check(s, 30)
        assert len(computed) == 2  # rebuilt in the background
        second = service._result
        change_and_check(s, 31)
        assert len(computed) == 2 and service._result is second  # within the window: later
        service._rebuilt_at -= 61  # the window has passed
        change_and_check(s, 32)
    assert len(computed) == 3 and service._result is not second


def test_a_chosen_term_and_an_unknown_term_on_the_in_memory_path(api_checked_every_minute):
    api = api_checked_every_minute
    headers = _token(api, "res")
    url = f"/api/units/{_olympia(api)}/profile"
    latest = api.get(url, headers=headers)
    assert latest.status_code == 200
    terms = [t["term"] for t in latest.json()["terms"]]
    for _ in range(2):  # computed, then memoised: the same answers
        for term in terms:
            chosen = api.get(url, params={"term": term}, headers=headers)
            assert chosen.status_code == 200 and chosen.json()["term"] == term
        unknown = api.get(url, params={"term": "1999-HT"}, headers=headers)
        assert unknown.status_code == 404 and "1999-HT" in unknown.json()["detail"]
    assert api.get(url, headers=headers).json()["term"] == latest.json()["term"]


def test_a_signed_out_cookie_cannot_read_profiles_even_from_a_kept_snapshot(
    api_checked_every_minute,
):
    # The account's snapshot was fresh when it signed out; the replayed cookie is refused all the
    # same (the sign-out drops this process's snapshots before it answers).
    api = api_checked_every_minute
    url = f"/api/units/{_olympia(api)}/profile"
    login = api.post("/session/login", data={"username": "boss", "password": PASSWORD})
    assert login.status_code == 200
    cookie = api.cookies.get("spira_session")
    assert api.get(url).status_code == 200  # the account's snapshot is now kept
    csrf = login.json()["csrf_token"]
    assert api.post("/session/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    api.cookies.set("spira_session", cookie)
    replayed = api.get(url)
    assert replayed.status_code == 401 and "signed out" in replayed.json()["detail"]
