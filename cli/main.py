"""``spira``: one command-line program for every job. Run ``spira --help`` or ``spira JOB --help``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from cli.admin import mount as mount_admin
from cli.annotate import app as annotate_app
from cli.assess import app as assess_app
from cli.profiles import app as profiles_app
from core.config import get_settings

app = typer.Typer(
    help=(
        "Spira: unit-level profiles of preschool children's knowledge development from photos of their "
        "work, educators' assessments and organisational data. No child is identified. Every command "
        "honours SPIRA_DATABASE_URL, SPIRA_STORAGE_DIR and SPIRA_VAR_DIR."
    ),
    no_args_is_help=True,
    add_completion=False,
)
users_app = typer.Typer(help="Manage users and the units they may act on.", no_args_is_help=True)
models_app = typer.Typer(help="The stage-model registry: list, promote.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(models_app, name="models")


app.add_typer(annotate_app, name="annotate")
app.add_typer(assess_app, name="assess")
app.add_typer(profiles_app, name="profiles")
mount_admin(app)

console = Console(stderr=True)


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _migrated():
    from core.db import migrate, session_factory

    url = get_settings().db_url
    migrate(url)
    return session_factory(url)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic)."""
    _migrated()
    console.print(f"database at {get_settings().db_url} is up to date")


#: Set by ``spira demo`` before it serves (see core.config.check_serving_secret).
_demo_serving: list[bool] = []


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(
        1,
        min=1,
        help="server processes (one per CPU core serves the most reads; they share one queue "
        "worker at a time)",
    ),
) -> None:
    """Serve the API and the web pages on an existing database (the worker scores queued photos).

    On any address but loopback a secret must be configured (``SPIRA_SECRET_KEY``)."""
    import uvicorn

    from api.main import create_app
    from core.config import SecretMissing, check_serving_secret

    try:
        check_serving_secret(host, demo=bool(_demo_serving))
    except SecretMissing as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None
    _migrated()
    console.print(f"Spira serves on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    if workers == 1:
        uvicorn.run(create_app(), host=host, port=port, log_level="info")
    else:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )


@users_app.command("add")
def users_add(
    username: str = typer.Option(..., help="sign-in name (no personal data about children)"),
    role: str = typer.Option(..., help="educator, principal, researcher or admin"),
    unit: list[str] = typer.Option(
        [], "--unit", help="unit name the user may act on; repeat for several"
    ),
    password: str | None = typer.Option(
        None,
        help="at least 8 characters; better omitted (asked for, hidden) or --password-stdin, "
        "since a password on the command line stays in the shell's history",
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of standard input"
    ),
) -> None:
    """Create a user (or update role, password and units of an existing one).

    The password is asked for (hidden, twice) unless given with --password-stdin or --password."""
    from core.users import UserError, upsert_user

    if password is not None and password_stdin:
        console.print("[red]error:[/red] give --password or --password-stdin, not both")
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    factory = _migrated()
    with factory() as session:
        try:
            user = upsert_user(
                session, username=username, password=password, role=role, unit_names=unit
            )
        except UserError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        session.commit()
        names = ", ".join(u.name for u in user.units)
        if user.role in ("researcher", "admin"):
            names = "all units (read)" + (f"; {names}" if names else "")
        console.print(f"user {user.username} ({user.role}) may act on: {names or 'no units'}")


@users_app.command("list")
def users_list() -> None:
    """List users with their role and units."""
    from sqlalchemy import select

    from core.models import User

    factory = _migrated()
    with factory() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            print(f"{user.username}\t{user.role}\t{', '.join(u.name for u in user.units)}")


@app.command()
def stages(
    paths: list[Path] = typer.Argument(..., help="image files or folders (searched recursively)"),
    jsonl: bool = typer.Option(True, "--jsonl/--table", help="one JSON line per image (default)"),
    model: str | None = typer.Option(
        None, "--model", help="a registered model version (default: promoted)"
    ),
) -> None:
    """Estimate drawing-progression stages of image files, without a database.

    Prints one JSON line per image: path, stage_probs (stages 0–4), stage (expected stage), top_stage,
    model, and drawing_age (years, the age typical of such a drawing; raw, not bias-corrected) when
    the model has an age head. A model trained on ages alone gives drawing_age only. An unreadable
    file gives a line with "error" and the exit code is 1 at the end.
    """
    from training.registry import load_model
    from vision.ingest import IngestError, ingest
    from vision.worker import decode_stored

    try:
        stage_model = load_model(model)
    except FileNotFoundError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            )
        else:
            files.append(p)
    failed = 0
    batch: list[tuple[Path, object]] = []

    def flush() -> None:
        if not batch:
            return
        from vision.model import drawing_features_batch

        images = [img for _, img in batch]
        emb = stage_model.embedder().embed(images)  # type: ignore[arg-type]
        feats = drawing_features_batch(images)  # type: ignore[arg-type]
        scores = stage_model.score_described(emb, feats) if stage_model.head else None
        ages = stage_model.predict_drawing_age(emb, feats).raw if stage_model.age_head else None
        for i, (path, _) in enumerate(batch):
            line: dict = {"path": str(path)}
            if scores is not None:
                line["stage_probs"] = [round(float(x), 6) for x in scores.probs[i]]
                line["stage"] = round(float(scores.expected[i]), 4)
                line["top_stage"] = int(scores.top[i])
            if ages is not None:
                line["drawing_age"] = round(float(ages[i]), 2)
            line["model"] = stage_model.version
            cells = [
                f"{line[k]:.2f}" if k != "top_stage" else str(line[k])
                for k in ("stage", "top_stage", "drawing_age")
                if k in line
            ]
            print(json.dumps(line) if jsonl else "\t".join([str(path), *cells]), flush=True)
        batch.clear()

    for path in files:
        try:
            # Scored as the queue worker scores an upload: from the stored JPEG's analysis copy.
            batch.append((path, decode_stored(ingest(path.read_bytes()).jpeg)))
        except (IngestError, OSError) as err:
            failed += 1
            message = err.message if isinstance(err, IngestError) else str(err)
            print(
                json.dumps({"path": str(path), "error": message, "model": stage_model.version}),
                flush=True,
            )
        if len(batch) >= 32:
            flush()
    flush()
    if failed:
        console.print(f"{failed} of {len(files)} file(s) could not be read")
        raise typer.Exit(1)


@app.command()
def train(
    synthetic: bool = typer.Option(
        False, "--synthetic", help="train on generated drawings (tests, demos)"
    ),
    csv: Path | None = typer.Option(
        None,
        "--csv",
        help="CSV with columns path and stage (0–4) and/or age (years), optionally group",
    ),
    from_label_studio: bool = typer.Option(
        False,
        "--from-label-studio",
        help="train on researchers' labels stored by `spira annotate pull`",
    ),
    n: int = typer.Option(500, help="number of synthetic drawings"),
    seed: int = typer.Option(0, help="seed: the same seed gives the same model"),
    promote: bool = typer.Option(
        False, "--promote", help="put the new model into service right away"
    ),
    fine_tune: bool = typer.Option(
        False,
        "--fine-tune",
        help="also fine-tune the backbone on the labels (GPU when present, else CPU; slower)",
    ),
    epochs: int = typer.Option(4, min=1, help="fine-tuning epochs (with --fine-tune)"),
    holdout: float = typer.Option(
        0.2,
        min=0.0,
        max=0.5,
        help="share of groups the fine-tuning never sees, scored for the model card (--fine-tune)",
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda (with --fine-tune)"),
) -> None:
    """Train a stage model (and a drawing-age head when the labels have ages: --synthetic, or a
    CSV with an age column); prints the new version alone on the last line.

    With --fine-tune the backbone itself is adapted to the drawings first (see the README)."""
    from training.jobs import TrainingError, run_training

    if sum([synthetic, csv is not None, from_label_studio]) != 1:
        console.print(
            "[red]error:[/red] choose exactly one of --synthetic, --csv PATH, --from-label-studio"
        )
        raise typer.Exit(2)
    factory = _migrated()
    try:
        with _progress() as progress:
            version = run_training(
                factory,
                synthetic=synthetic,
                csv=csv,
                from_label_studio=from_label_studio,
                n=n,
                seed=seed,
                promote=promote,
                fine_tune=fine_tune,
                epochs=epochs,
                holdout=holdout,
                device=device,
                progress=progress,
                log=console.print,
            )
    except TrainingError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    print(version)


@models_app.command("list")
def models_list(
    as_json: bool = typer.Option(False, "--json", help="JSON array instead of a table"),
) -> None:
    """Registered stage models, newest first, with their metrics and which one is promoted."""
    from training.registry import list_models

    models = list_models()
    if as_json:
        print(json.dumps(models, default=str, indent=2))
        return
    for m in models:
        met = m.get("metrics", {})
        flag = "*" if m["promoted"] else " "
        print(
            f"{flag} {m['version']}\tqwk={met.get('qwk', float('nan')):.3f}\tmae={met.get('mae', float('nan')):.3f}"
            f"\tn={met.get('n', '?')}\t{m.get('data', {}).get('description', '')}"
        )


@models_app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="a version from `spira models list`"),
) -> None:
    """Put a model into service; stored photos are re-scored from their stored embeddings.

    A fine-tuned model is first checked on the CPU runtime (parity with PyTorch), and each stored
    photo is embedded once with its backbone."""
    from training.registry import load_model, promote

    factory = _migrated()
    with factory() as session:
        try:
            fine_tuned = load_model(version).fine_tuned
            with _progress() as progress:
                task = progress.add_task(
                    "embedding stored photos (fine-tuned backbone)", total=None
                )
                n = promote(
                    version,
                    session=session,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        except (FileNotFoundError, RuntimeError) as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        session.commit()
    how = "with its own backbone" if fine_tuned else "without decoding them"
    console.print(f"promoted {version}; re-scored {n} stored photo(s) {how}")


@app.command()
def ingest(
    folder: Path = typer.Argument(..., help="folder of photos (searched recursively)"),
    unit: str = typer.Option(..., "--unit", help="unit name"),
    group: str = typer.Option(..., "--group", help="group name within the unit"),
    activity: str = typer.Option(..., "--activity", help="what the children did, e.g. teckning"),
    age_band: str = typer.Option(..., "--age-band", help="the children's age band, e.g. 3-4"),
    captured_on: str | None = typer.Option(
        None, "--date", help="capture date YYYY-MM-DD (default today)"
    ),
) -> None:
    """Import a folder of photos through the same checks as an upload, with a summary.

    Every file is identified from its bytes, checked, stripped of metadata, face-blurred and stored;
    photos already stored for the unit are reported as duplicates; refused files are listed with the
    reason. Run `spira embed` (or keep `spira serve` running) to score them.
    """
    from datetime import date

    from sqlalchemy import select

    from core.models import Group, Unit
    from core.storage import get_store
    from vision.ingest import IngestError
    from vision.photos import PhotoRejected, accept_photo

    if not folder.is_dir():
        console.print(f"[red]error:[/red] {folder} is not a folder")
        raise typer.Exit(2)
    factory = _migrated()
    store = get_store()
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    rejected: list[tuple[str, str]] = []
    with factory() as session:
        unit_row = session.scalar(select(Unit).where(Unit.name == unit))
        group_row = unit_row and session.scalar(
            select(Group).where(Group.unit_id == unit_row.id, Group.name == group)
        )
        if unit_row is None or group_row is None:
            console.print(f"[red]error:[/red] no unit {unit!r} with a group {group!r}")
            raise typer.Exit(2)
        day = date.fromisoformat(captured_on) if captured_on else None
        with _progress() as progress:
            task = progress.add_task(f"importing into {unit}/{group}", total=len(files))
            for f in files:
                try:
                    result = accept_photo(
                        session=session,
                        store=store,
                        data=f.read_bytes(),
                        unit=unit_row,
                        group=group_row,
                        activity=activity,
                        age_band=age_band,
                        captured_on=day,
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


@app.command()
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
        from training.registry import load_model
        from vision.ray_engine import run_ray

        _migrated()
        try:
            ray_model = load_model()
        except FileNotFoundError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        done = run_ray(address=address, batch_size=get_settings().batch_size, model=ray_model)
        console.print(f"processed {done} photo(s) on Ray")
        return
    from sqlalchemy import func, select

    from core.models import Photo
    from core.storage import get_store
    from training.registry import load_model
    from vision.worker import drain

    factory = _migrated()
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
    with _progress() as progress:
        task = progress.add_task("embedding and scoring", total=pending)
        done = drain(
            factory, get_store(), model, batch=batch, progress=lambda k: progress.advance(task, k)
        )
    console.print(f"processed {done} photo(s) with model {model.version}")


@app.command()
def demo(
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="serve after seeding"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    photos_per_term: int = typer.Option(12, help="synthetic photos per unit and term"),
    seed: int = typer.Option(7),
) -> None:
    """Seed the eight pilot units with synthetic photos pushed through the real pipeline, then serve."""
    from cli.demo import seed_demo

    factory = _migrated()
    with _progress() as progress:
        credentials = seed_demo(
            factory,
            photos_per_term=photos_per_term,
            seed=seed,
            progress=progress,
            log=console.print,
        )
    if credentials:
        console.print("\n[bold]Demo users (shown once; passwords are not stored in clear):[/bold]")
        for username, password, role, units in credentials:
            console.print(f"  {username:<22} {password:<16} {role:<11} {units}")
    if serve_after:
        # the demo's own random key (made in its var folder on first run) counts as configured
        _demo_serving.append(True)
        serve(host=host, port=port, workers=1)


def main() -> None:  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
