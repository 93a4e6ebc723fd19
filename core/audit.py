"""The audit log: who uploaded, deleted, read or exported what."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from contextlib import nullcontext
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.models import AuditEvent
from core.storage import file_lock


def record(
    session: Session,
    username: str | None,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    detail: dict | None = None,
) -> None:
    """Add an audit event to the session (committed with the caller's transaction)."""
    session.add(
        AuditEvent(
            username=username,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail=detail,
        )
    )


def _event(
    username: str | None,
    action: str,
    object_type: str,
    object_id: str | int | None,
    detail: dict | None,
) -> dict:
    return {
        "username": username,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "detail": detail,
    }


class _FutureSetter:
    """Completes an asyncio future from the writer thread (what ``threading.Event.set`` is for
    callers in threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        self.loop = loop
        self.future = future

    def set(self) -> None:
        def complete() -> None:
            if not self.future.done():
                self.future.set_result(None)

        # RuntimeError: the loop has closed, nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(complete)


class AuditWriter:
    """Group commit for audit events that a request writes on its own (reads of profiles).

    Each caller blocks until its event is committed, so an answer is never sent before its audit
    row is durable; but events arriving together are committed by one thread in one transaction
    (one fsync), instead of every request taking the database's write lock in turn. On SQLite,
    where writers queue with a sleeping busy handler, this is what keeps read latency flat under
    many concurrent readers (bench/api_load.py).
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        max_batch: int = 500,
        lock_path: Path | None = None,
    ) -> None:
        """``lock_path``: a file whose exclusive lock the writers of all server processes take in
        turn around each commit (SQLite: the kernel hands the lock to the next waiter at once,
        where SQLite's own busy handler would poll with sleeps of up to 100 ms)."""
        self.factory = factory
        self.max_batch = max_batch
        self.lock_path = lock_path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spira-audit", daemon=True)
        self._thread.start()

    def record(
        self,
        username: str | None,
        action: str,
        object_type: str,
        object_id: str | int | None = None,
        detail: dict | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        """Commit one event (with others waiting at the same time); raises what the commit raised,
        or TimeoutError when the database did not take it within ``timeout`` seconds."""
        done = threading.Event()
        outcome: list[BaseException] = []
        self._queue.put((_event(username, action, object_type, object_id, detail), done, outcome))
        if not done.wait(timeout):
            raise TimeoutError(f"the audit log did not accept the event in {timeout:.0f} s")
        if outcome:
            raise outcome[0]

    async def record_async(
        self,
        username: str | None,
        action: str,
        object_type: str,
        object_id: str | int | None = None,
        detail: dict | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        """:meth:`record` for a coroutine: waits on the event loop, not in a thread."""
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        outcome: list[BaseException] = []
        self._queue.put(
            (
                _event(username, action, object_type, object_id, detail),
                _FutureSetter(loop, committed),
                outcome,
            )
        )
        try:
            await asyncio.wait_for(committed, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the audit log did not accept the event in {timeout:.0f} s"
            ) from None
        if outcome:
            raise outcome[0]

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                turn = file_lock(self.lock_path) if self.lock_path else nullcontext()
                with turn, self.factory() as session:
                    session.add_all(AuditEvent(**event) for event, _, _ in batch)
                    session.commit()
            except Exception as err:  # noqa: BLE001 - handed to every waiting caller
                for _, _, outcome in batch:
                    outcome.append(err)
            for _, done, _ in batch:
                done.set()
            if stop:
                return
