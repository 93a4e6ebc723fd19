"""Settings from the environment (prefix ``SPIRA_``), one object for the whole program."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The development secret. Refused when ``SPIRA_ENV=production``.
DEV_SECRET = "spira-development-secret-change-me"


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

    secret_key: str = DEV_SECRET
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
