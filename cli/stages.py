"""``spira stages``: estimate drawing-progression stages of image files, without a database."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.common import console


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
    # lazy: loaded only when the command runs, so `spira --help` stays fast
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
        # lazy: loaded only when the command runs, so `spira --help` stays fast
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
