"""Settings from the environment (prefix ``SPIRA_``), one object for the whole program."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A well-known secret from earlier versions' defaults: refused in production and on any
#: non-loopback address. There is no default secret any more (see :func:`master_secret`).
DEV_SECRET = "spira-development-secret-change-me"
#: The file in the var folder holding a random key generated on first run when
#: ``SPIRA_SECRET_KEY`` is unset (loopback serving and the demo only).
SECRET_FILE = "secret.key"
#: Shortest secret accepted for serving on a network address.
MIN_SECRET_CHARS = 32
#: Title of the Label Studio project `spira annotate` pushes to and pulls from by default.
LABEL_STUDIO_PROJECT = "Spira – teckningarnas stadier"


class Settings(BaseSettings):
    """Everything configurable about a Spira installation.

    Paths are relative to the working directory unless absolute, so a demo can live in any folder.
    """

    model_config = SettingsConfigDict(env_prefix="SPIRA_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    storage_dir: Path | None = None
    models_dir: Path | None = None

    #: The one secret everything else is derived from (JWTs, page sessions, image links, upload
    #: digests each get their own key, :func:`derived_key`). Unset: a random key in
    #: ``<var_dir>/secret.key``, made on first run; serving on a network address needs it set.
    secret_key: str = ""
    token_minutes: int = 8 * 60
    session_minutes: int = 8 * 60

    #: Figures resting on fewer observations than this are shown as "too few to show".
    min_group_size: int = 5
    bootstrap_resamples: int = 1000
    #: Seconds a server process reuses its check of whether the data behind the profiles changed
    #: (photos, sheets, ratings, context, promoted model). Changes made through this process's own
    #: worker, imports and deletions show at once; others within this many seconds. 0: every read.
    profile_check_seconds: float = 1.0
    #: Least seconds between the starts of two background rebuilds of the profiles: while photos
    #: stream in, every processed batch changes the data, and each rebuild (about a second of
    #: CPU for a few units) slows the reads being served meanwhile. 0: rebuild on every change.
    profile_rebuild_seconds: float = 5.0

    #: Ingest limits (see vision.ingest.IngestLimits).
    max_upload_bytes: int = 40 * 1024 * 1024
    #: Request bodies: JSON and form routes (api.main.BodyLimit); the photo upload may carry
    #: ``max_upload_bytes`` plus this, and spreadsheet imports ``max_import_bytes`` plus this.
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 60_000_000
    min_side: int = 64

    #: Embedding backbone: a name from vision's registry and, optionally, local weights for it.
    backbone: str = "efficientnet_lite0"
    backbone_weights: Path | None = None
    #: "auto" picks CUDA when present, else the CPU runtime (ONNX Runtime).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 32

    #: Origin of the Label Studio instance allowed to fetch images (CORS) and its API.
    label_studio_url: str = ""
    label_studio_token: str = ""
    webhook_secret: str = ""
    #: Public base URL of this API, used in signed image URLs handed to Label Studio.
    public_url: str = "http://127.0.0.1:8000"
    #: Photos older than this many days are deleted by `spira retention run` (aggregates are kept).
    retention_days: int | None = None
    worker_enabled: bool = True
    worker_batch: int = 16

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key in ("", DEV_SECRET):
            raise ValueError(
                "SPIRA_SECRET_KEY is unset or the development default; set a long random secret "
                "(for example `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'spira.db').as_posix()}"

    @property
    def storage_path(self) -> Path:
        return self.storage_dir or self.var_dir / "storage"

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.var_dir / "models"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()


class SecretMissing(RuntimeError):
    """Serving on a network address without a configured secret."""


@lru_cache(maxsize=8)
def _file_secret(path: Path) -> bytes:
    """The random key in ``path``, made (mode 0600, never overwritten) when missing. Two processes
    starting together agree: the file is created exclusively and the loser reads the winner's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
                f.flush()
                os.fsync(f.fileno())
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_CHARS:
        raise SecretMissing(f"{path} holds no usable key; delete it to have a new one made")
    return key.encode()


def master_secret(settings: Settings | None = None) -> bytes:
    """``SPIRA_SECRET_KEY``, or the random key in ``<var_dir>/secret.key`` (made on first use)."""
    s = settings or get_settings()
    if s.secret_key:
        return s.secret_key.encode()
    return _file_secret((s.var_dir / SECRET_FILE).resolve())


def derived_key(purpose: str, settings: Settings | None = None) -> bytes:
    """A key for one use only (``jwt:access``, ``jwt:session``, ``image-link``, ``upload-digest``):
    HMAC-SHA256 of the purpose label under the master secret, so a key that leaks from one use (or
    a token made for one) is worth nothing in another."""
    return _derive(master_secret(settings), purpose)


@lru_cache(maxsize=64)
def _derive(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, f"spira/{purpose}".encode(), hashlib.sha256).digest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_serving_secret(
    host: str, settings: Settings | None = None, *, demo: bool = False
) -> None:
    """Refuse to serve on a non-loopback ``host`` without a configured secret: ``SPIRA_SECRET_KEY``
    of at least :data:`MIN_SECRET_CHARS` characters (not the old development default), or, for
    ``spira demo`` only, the random key the demo made in its var folder. On loopback the key file
    is made when missing. Raises :class:`SecretMissing` with what to do."""
    s = settings or get_settings()
    if is_loopback(host):
        master_secret(s)
        return
    key = s.secret_key
    if key and key != DEV_SECRET and len(key) >= MIN_SECRET_CHARS:
        return
    if demo and not key:
        master_secret(s)
        return
    raise SecretMissing(
        f"refusing to serve on {host}: no secret is configured. Set SPIRA_SECRET_KEY to a long "
        f"random value (at least {MIN_SECRET_CHARS} characters), for example\n"
        "  export SPIRA_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')\n"
        "or serve on 127.0.0.1 only (the default)."
    )
