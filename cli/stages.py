"""``spira stages``: estimate drawing-progression stages of image files, without a database."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, migrated, progress_bar

if TYPE_CHECKING:
    import numpy as np

#: Photos embedded in one batch (OpenVINO's own chunk); the next ones are decoded meanwhile,
#: and the last batch, embedded after the decoding ends, stays short.
BATCH = 8
#: The default model trained when none is promoted: the same seed always gives the same model.
DEFAULT_SYNTHETIC_N = 500
DEFAULT_SEED = 0


def train_default_model() -> str:
    """Train and promote the reproducible synthetic model, saying so (a fresh install)."""
    # lazy: training runs once per install, only when no model is promoted
    from training.jobs import run_training

    console.print(
        f"no stage model is promoted yet: training the default synthetic model "
        f"({DEFAULT_SYNTHETIC_N} generated drawings, seed {DEFAULT_SEED}) and promoting it; "
        "this happens once. Train on real labels with `spira train` later."
    )
    with progress_bar() as progress:
        version = run_training(
            migrated(),
            synthetic=True,
            n=DEFAULT_SYNTHETIC_N,
            seed=DEFAULT_SEED,
            promote=True,
            progress=progress,
            log=console.print,
        )
    console.print(f"promoted {version}")
    return version


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
    import numpy as np

    from training.model_files import load_model, promoted_version_from_files
    from vision.features import drawing_features
    from vision.ingest import IngestError, IngestLimits, ingest
    from vision.stored import decode_stored
    from vision.threads import imap_per_core, one_thread_per_operation, usable_cpus

    one_thread_per_operation()  # one image per core, each operation on its own thread

    if model is None and promoted_version_from_files() is None:
        train_default_model()
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

    # Nothing is stored here, so the scan for faces down to 2 % of the long side (the Haar
    # cascade, most of an upload's CPU), which protects stored images, is left out; the
    # whole-photo BlazeFace pass stays, so a photo with a large face is scored as its blurred
    # stored copy would be (small blurred patches do not move a drawing's stage).
    limits = replace(IngestLimits(), small_face_scan_long_side=0)

    def read(path: Path) -> tuple[np.ndarray, np.ndarray] | IngestError | OSError:
        # Scored as the queue worker scores an upload: from the stored JPEG's analysis copy.
        try:
            image = decode_stored(ingest(path.read_bytes(), limits=limits).jpeg)
        except (IngestError, OSError) as err:
            return err
        return image, drawing_features(image)

    failed = 0
    batch: list[tuple[Path, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        emb = embedder.embed([image for _, image, _ in batch])
        feats = np.stack([row for _, _, row in batch]).astype(np.float32)
        scores = stage_model.score_described(emb, feats) if stage_model.head else None
        ages = stage_model.predict_drawing_age(emb, feats).raw if stage_model.age_head else None
        for i, (path, _, _) in enumerate(batch):
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

    # Decoding, the upload checks and the drawing features run on every core (as in the queue
    # worker) and keep running while the main thread compiles the backbone and embeds each
    # batch on one thread of its own (the cores are busy decoding; on two, an inference on both
    # threads cost a fifth more CPU); results come back in the files' order.
    results = imap_per_core(read, files, ahead=BATCH + usable_cpus())
    try:
        embedder = stage_model.embedder(threads=1)
    except RuntimeError as err:  # the configured backbone is not the one the head was fitted on
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    for path, result in zip(files, results, strict=True):
        if isinstance(result, (IngestError, OSError)):
            failed += 1
            message = result.message if isinstance(result, IngestError) else str(result)
            print(
                json.dumps({"path": str(path), "error": message, "model": stage_model.version}),
                flush=True,
            )
            continue
        batch.append((path, *result))
        if len(batch) == BATCH:
            flush()
    flush()
    if failed:
        console.print(f"{failed} of {len(files)} file(s) could not be read")
        raise typer.Exit(1)
