"""``spira ingest`` (a folder through the upload checks) and ``spira embed`` (score queued photos)."""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, migrated, progress_bar
from core.config import get_settings

if TYPE_CHECKING:
    from vision.ingest import IngestLimits, ProcessedPhoto


def ingest(
    folder: Path = typer.Argument(..., help="folder of photos (searched recursively)"),
    unit: str = typer.Option(..., "--unit", help="unit name"),
    group: str = typer.Option(..., "--group", help="group name within the unit"),
    activity: str = typer.Option(..., "--activity", help="what the children did, e.g. teckning"),
    age_band: str = typer.Option(..., "--age-band", help="the children's age band, e.g. 3-4"),
    captured_on: str | None = typer.Option(
        None, "--date", help="capture date YYYY-MM-DD (default today)"
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, help="photos prepared at once (0: one per CPU core)"
    ),
) -> None:
    """Import a folder of photos through the same checks as an upload, with a summary.

    Every file is identified from its bytes, checked, stripped of metadata, face-blurred and stored;
    photos already stored for the unit are reported as duplicates; refused files are listed with the
    reason. The checks and the face scan run on every core (``--workers``); photos are stored one
    at a time, in file order. Run `spira embed` (or keep `spira serve` running) to score them.
    """
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date

    from sqlalchemy import select

    from core.models import Group, Unit
    from core.storage import get_store
    from vision.ingest import IngestError
    from vision.photos import PhotoRejected, accept_photo, check_photo_fields, limits_from_settings

    if not folder.is_dir():
        console.print(f"[red]error:[/red] {folder} is not a folder")
        raise typer.Exit(2)
    factory = migrated()
    store = get_store()
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    rejected: list[tuple[str, str]] = []
    limits = limits_from_settings()
    with factory() as session:
        unit_row = session.scalar(select(Unit).where(Unit.name == unit))
        group_row = unit_row and session.scalar(
            select(Group).where(Group.unit_id == unit_row.id, Group.name == group)
        )
        if unit_row is None or group_row is None:
            console.print(f"[red]error:[/red] no unit {unit!r} with a group {group!r}")
            raise typer.Exit(2)
        try:
            day = date.fromisoformat(captured_on) if captured_on else None
            check_photo_fields(unit_row, group_row, activity, age_band, day)
        except ValueError as err:
            console.print(f"[red]error:[/red] --date {captured_on!r}: {err} (use YYYY-MM-DD)")
            raise typer.Exit(2) from None
        except PhotoRejected as err:
            console.print(f"[red]error:[/red] {err.message}")
            raise typer.Exit(2) from None
        n_workers = workers or os.cpu_count() or 1
        with progress_bar() as progress, ThreadPoolExecutor(n_workers) as pool:
            task = progress.add_task(
                f"importing into {unit}/{group} ({n_workers} at once)", total=len(files)
            )
            for f, prepared in prepare_in_order(pool, files, limits, window=2 * n_workers):
                try:
                    data, processed = prepared.result()
                    result = accept_photo(
                        session=session,
                        store=store,
                        data=data,
                        unit=unit_row,
                        group=group_row,
                        activity=activity,
                        age_band=age_band,
                        captured_on=day,
                        processed=processed,
                    )
                    counts["accepted" if result.created else "duplicate"] += 1
                except (IngestError, PhotoRejected) as err:
                    counts["rejected"] += 1
                    rejected.append((str(f.relative_to(folder)), err.message))
                progress.advance(task)
    console.print(
        f"accepted {counts['accepted']}, duplicate {counts['duplicate']}, rejected {counts['rejected']}"
    )
    for name, reason in rejected:
        console.print(f"  rejected {name}: {reason}")
    if counts["rejected"] and not counts["accepted"] and not counts["duplicate"]:
        raise typer.Exit(1)


def _read_and_ingest(path: Path, limits: IngestLimits) -> tuple[bytes, ProcessedPhoto]:
    """One file's bytes and what ingest makes of them (no database: runs on a worker thread)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from vision.ingest import ingest

    data = path.read_bytes()
    return data, ingest(data, limits=limits)


def prepare_in_order(
    pool: Executor, files: list[Path], limits: IngestLimits, *, window: int
) -> Iterator[tuple[Path, Future[tuple[bytes, ProcessedPhoto]]]]:
    """Each file with the future of its ingest, in file order, keeping at most ``window`` files
    read and prepared ahead (so a folder of thousands of 12-MP photos needs the memory of a
    few)."""
    ahead: deque[tuple[Path, Future[tuple[bytes, ProcessedPhoto]]]] = deque()
    queue = iter(files)
    for f in itertools.islice(queue, max(1, window)):
        ahead.append((f, pool.submit(_read_and_ingest, f, limits)))
    while ahead:
        f, future = ahead.popleft()
        following = next(queue, None)
        if following is not None:
            ahead.append((following, pool.submit(_read_and_ingest, following, limits)))
        yield f, future


def embed(
    batch: int = typer.Option(16, help="photos per micro-batch"),
    engine: str = typer.Option("local", help="local (default) or ray"),
    address: str | None = typer.Option(
        None, help="Ray cluster address (default: start a local Ray)"
    ),
) -> None:
    """Embed and score every queued photo (the same work the server's background worker does).

    `--engine ray` runs the same decode, features, embedding and stage functions as a Ray Data
    pipeline (GPU actors when the cluster has GPUs); it is resumable and gives the same results.
    """
    if engine not in ("local", "ray"):
        console.print(f"[red]error:[/red] engine {engine!r} is not one of local, ray")
        raise typer.Exit(2)
    if engine == "ray":
        # lazy: loaded only when the command runs, so `spira --help` stays fast
        from training.model_files import load_model
        from vision.ray_engine import run_ray

        migrated()
        try:
            ray_model = load_model()
        except FileNotFoundError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        done = run_ray(address=address, batch_size=get_settings().batch_size, model=ray_model)
        console.print(f"processed {done} photo(s) on Ray")
        return
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from sqlalchemy import func, select

    from core.models import Photo
    from core.storage import get_store
    from training.model_files import load_model
    from vision.worker import drain

    factory = migrated()
    with factory() as session:
        pending = (
            session.scalar(select(func.count()).select_from(Photo).where(Photo.status == "pending"))
            or 0
        )
    try:
        model = load_model()
    except FileNotFoundError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    with progress_bar() as progress:
        task = progress.add_task("embedding and scoring", total=pending)
        done = drain(
            factory, get_store(), model, batch=batch, progress=lambda k: progress.advance(task, k)
        )
    console.print(f"processed {done} photo(s) with model {model.version}")
