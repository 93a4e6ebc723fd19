"""Content-addressed storage of processed images (never the original upload bytes).

A blob lives at ``<root>/<key[:2]>/<key[2:4]>/<key>`` where ``key`` is the sha256 of its bytes, so
the same content is stored once and a key always names exactly the bytes behind it. Writes go to a
temporary file, are fsynced, then renamed into place: a blob is either whole or absent.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.config import get_settings

#: Lock files that the server processes sharing this storage take in turn (``spira serve
#: --workers N``): who drains the queue, who commits the audit log. Not blobs; ``spira doctor``
#: knows them.
WORKER_LOCK = ".worker.lock"
AUDIT_LOCK = ".audit.lock"
LOCK_FILES = frozenset({WORKER_LOCK, AUDIT_LOCK})


@contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) across processes.

    Yields True once held; with ``wait=False`` yields False at once when another process holds
    it. The kernel hands a released lock straight to the next waiter, and the lock goes with the
    process if it dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BlobStore:
    """Local-directory blob store; the interface is small enough to put on object storage later."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a sha256 key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; return its key. Storing the same bytes twice is a no-op."""
        key = hashlib.sha256(data).hexdigest()
        path = self.path_for(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return key

    def get(self, key: str) -> bytes:
        return self.path_for(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path_for(key).exists()

    def delete(self, key: str) -> bool:
        path = self.path_for(key)
        if path.exists():
            path.unlink()
            return True
        return False

    def keys(self) -> Iterator[str]:
        """Every stored key (for consistency checks)."""
        if not self.root.exists():
            return
        for path in self.root.glob("*/*/*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.name


def get_store() -> BlobStore:
    return BlobStore(get_settings().storage_path)
