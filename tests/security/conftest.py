"""Fixtures for the security and reliability tests: the API fixture of tests/api and counters of
what is stored (photo rows, files under the storage folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Photo
from tests.api.conftest import PASSWORD, api, token, unit_and_group  # noqa: F401
from tests.vision.hostile import sample_rgb


def stored_files(root: Path) -> list[str]:
    """Every file under the storage folder, temporary ones included, as sorted relative paths."""
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def photo_count(client) -> int:
    """Rows in the photo table."""
    with client.factory() as session:
        return int(session.scalar(select(func.count()).select_from(Photo)) or 0)


def distinct_jpeg(seed: int, width: int = 320, height: int = 240) -> bytes:
    """A small valid JPEG whose bytes differ for every seed (so uploads are not duplicates)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(sample_rgb(width, height, seed=seed)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def upload(client, headers, data: bytes, unit_id: int, group_id: int, age_band: str, **kw):
    """POST one photo; ``filename``, ``content_type`` and ``extra_headers`` may be given."""
    filename = kw.pop("filename", "teckning.jpg")
    content_type = kw.pop("content_type", "image/jpeg")
    extra = kw.pop("extra_headers", {})
    return client.post(
        "/api/photos",
        headers=headers | extra,
        files={"file": (filename, data, content_type)},
        data={
            "unit_id": unit_id,
            "group_id": group_id,
            "activity": "teckning",
            "age_band": age_band,
            **kw,
        },
    )


@pytest.fixture
def storage_root(api) -> Path:  # noqa: F811
    """The storage folder of the ``api`` fixture's app."""
    return Path(api.app.state.store.root)
