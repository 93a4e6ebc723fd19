"""``spira train``: train a stage model (and a drawing-age head)."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, migrated, progress_bar


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
    from_uploads: bool = typer.Option(
        False,
        "--from-uploads",
        help="fit the drawing-age model on every stored photo with its age band (grouped by "
        "unit) and its unit-fold heads for the units' cross-fitted drawing-age gap; run each term",
    ),
    folds: int = typer.Option(5, min=2, help="unit-folds for cross-fitting (with --from-uploads)"),
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

    With --from-uploads, a drawing-age model from the stored photos' age bands instead, with the
    unit-fold heads behind the units' drawing-age gap (no unit scored by a head that saw it).

    With --fine-tune the backbone itself is adapted to the drawings first (see the README)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from training.jobs import TrainingError, run_training

    if sum([synthetic, csv is not None, from_label_studio, from_uploads]) != 1:
        console.print(
            "[red]error:[/red] choose exactly one of --synthetic, --csv PATH, --from-label-studio, "
            "--from-uploads"
        )
        raise typer.Exit(2)
    factory = migrated()
    if from_uploads:
        # lazy: as above
        from training.unit_age import train_from_uploads

        with factory() as session:
            try:
                version = train_from_uploads(session, k=folds, seed=seed, log=console.print)
            except ValueError as err:
                console.print(f"[red]error:[/red] {err}")
                raise typer.Exit(2) from None
            session.commit()
        print(version)
        return
    try:
        with progress_bar() as progress:
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
