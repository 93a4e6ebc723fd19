"""``spira evaluate``: metrics of a model on a labelled CSV, with grouped bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.common import console, migrated, progress_bar


def evaluate(
    csv: Path = typer.Option(
        ..., "--csv", help="CSV with columns path and stage (0–4) and/or age (years), and group"
    ),
    model: str | None = typer.Option(
        None, "--model", help="model version (default: the promoted one)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="folder for evaluation.json and reliability.png"
    ),
    record: bool = typer.Option(
        False,
        "--record",
        help="write the result onto the model card as its validation on real drawings",
    ),
    synthetic: bool = typer.Option(
        False, "--synthetic-data", help="the CSV holds synthetic drawings (recorded as such)"
    ),
    n_boot: int = typer.Option(500, min=0, help="bootstrap resamples of groups"),
    seed: int = typer.Option(0, help="bootstrap seed"),
) -> None:
    """Evaluate a model on labelled drawings: QWK, MAE, accuracy, calibration (ECE, reliability
    diagram) against stages; Spearman and MAE against ages; overall and per age band, each with
    a 95 % interval resampling groups. JSON on stdout. With --record (or --model on real data)
    the validation is written onto the model card."""
    # lazy: model, image and database code load only when the command runs (fast --help)
    from training.evaluate import (
        evaluate_described,
        record_validation,
        reliability_png,
        validation_summary,
    )
    from training.model_files import load_model
    from training.train import describe_images, labelled_from_csv

    try:
        stage_model = load_model(model)
    except FileNotFoundError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    try:
        with progress_bar() as progress:
            labelled = labelled_from_csv(csv, progress=None)
            task = progress.add_task("embedding", total=None)
            emb, feats, _ = describe_images(
                labelled.images,
                backbone=stage_model.backbone,
                weights=stage_model.backbone_weights(),
                progress=lambda d, t: progress.update(task, completed=d, total=t),
            )
        result = evaluate_described(
            stage_model,
            emb,
            feats,
            stages=labelled.stages,
            ages=labelled.ages,
            groups=labelled.groups,
            n_boot=n_boot,
            seed=seed,
        )
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if "calibration" in result:
            png = reliability_png(result["calibration"]["reliability"], out / "reliability.png")
            result["calibration"]["png"] = str(png)
        (out / "evaluation.json").write_text(json.dumps(result, indent=2))
    if record or (model is not None and not synthetic):
        summary = validation_summary(result, source=str(csv), synthetic=synthetic)
        factory = migrated()
        with factory() as session:
            record_validation(stage_model, summary, session=session)
            session.commit()
        result["validation"] = summary
        console.print(f"recorded on {stage_model.version}'s card: {summary['text']}")
    print(json.dumps(result, indent=2))
