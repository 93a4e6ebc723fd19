"""Annotation on Spira's side: choosing photos, building tasks, storing labels, agreement.

Label Studio holds the labelling work; Spira's database holds the result (photo, annotator, stage,
time, task) so training and agreement never depend on Label Studio being up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation.labelstudio import AnnotationRow, Prediction, TaskSpec
from annotation.selection import select_for_labelling
from core.models import Annotation, Embedding, Photo, StageEstimate
from training.agreement import AgreementReport, compute_agreement
from training.labels import label_table


def candidate_table(session: Session, stage_version: str, backbone_version: str) -> pd.DataFrame:
    """Processed photos with the promoted model's probabilities and their embeddings."""
    rows = session.execute(
        select(
            Photo.id,
            StageEstimate.p0,
            StageEstimate.p1,
            StageEstimate.p2,
            StageEstimate.p3,
            StageEstimate.p4,
            Embedding.vector,
        )
        .join(
            StageEstimate,
            (StageEstimate.photo_id == Photo.id) & (StageEstimate.model_version == stage_version),
        )
        .join(
            Embedding,
            (Embedding.photo_id == Photo.id) & (Embedding.model_version == backbone_version),
        )
        .where(Photo.status == "done")
        .order_by(Photo.created_at, Photo.id)
    ).all()
    return pd.DataFrame(rows, columns=["photo_id", "p0", "p1", "p2", "p3", "p4", "vector"])


def choose_photos(
    session: Session,
    *,
    n: int,
    strategy: str,
    stage_version: str,
    backbone_version: str,
    seed: int = 0,
) -> list[str]:
    """The ``n`` photos to label next (not yet labelled), by uncertainty, diversity, hybrid or random."""
    table = candidate_table(session, stage_version, backbone_version)
    if table.empty:
        return []
    labelled = set(session.scalars(select(Annotation.photo_id).distinct()))
    probs = table[["p0", "p1", "p2", "p3", "p4"]].to_numpy(dtype=float)
    emb = np.stack([np.frombuffer(v, dtype="<f4") for v in table["vector"]])
    return select_for_labelling(
        list(table["photo_id"]),
        probs,
        emb,
        n,
        strategy,  # type: ignore[arg-type]
        already_labelled=labelled,
        seed=seed,
    )


def build_tasks(
    session: Session,
    photo_ids: Iterable[str],
    *,
    stage_version: str | None,
    image_url: Callable[[str], str],
) -> list[TaskSpec]:
    """Task specs with a signed image URL and the current model's suggestion (when one exists)."""
    ids = list(photo_ids)
    estimates: dict[str, StageEstimate] = {}
    if stage_version:
        for row in session.scalars(
            select(StageEstimate).where(
                StageEstimate.photo_id.in_(ids), StageEstimate.model_version == stage_version
            )
        ):
            estimates[row.photo_id] = row
    tasks: list[TaskSpec] = []
    for pid in ids:
        est: StageEstimate | None = estimates.get(pid)
        prediction: Prediction | None = None
        if est is not None:
            probs = est.probs
            top = int(np.argmax(probs))
            prediction = {
                "stage": top,
                "score": float(probs[top]),
                "model_version": est.model_version,
            }
        tasks.append({"photo_id": pid, "image_url": image_url(pid), "prediction": prediction})
    return tasks


def store_annotations(session: Session, rows: Iterable[AnnotationRow]) -> tuple[int, int]:
    """Insert new labels and update changed ones, idempotently by Label Studio's annotation id.

    Labels for photos Spira does not know (deleted since) are skipped. Returns (added, updated).
    """
    added = updated = 0
    known_photos: dict[str, bool] = {}
    for row in rows:
        pid = str(row["photo_id"])
        if pid not in known_photos:
            known_photos[pid] = session.get(Photo, pid) is not None
        if not known_photos[pid]:
            continue
        external = str(row["annotation_id"])
        existing = session.scalar(
            select(Annotation).where(
                Annotation.source == "label_studio", Annotation.external_id == external
            )
        )
        # Label Studio's user id, not the e-mail: webhook payloads carry only the id, and the same
        # researcher must be the same annotator however the label arrived
        annotator = f"label-studio-user-{row['annotator']}"
        when = row["annotated_at"]
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if existing is None:
            session.add(
                Annotation(
                    photo_id=pid,
                    source="label_studio",
                    external_id=external,
                    task_id=str(row["task_id"]),
                    annotator=annotator,
                    stage=int(row["stage"]),
                    annotated_at=when,
                )
            )
            added += 1
        elif existing.stage != int(row["stage"]) or existing.annotator != annotator:
            existing.stage = int(row["stage"])
            existing.annotator = annotator
            existing.annotated_at = when
            updated += 1
    session.flush()
    return added, updated


def remove_annotations(session: Session, external_ids: Iterable[str]) -> int:
    """Delete the labels with these Label Studio annotation ids (deleted there); returns how many
    Spira had. Unknown ids are ignored, so a repeated delivery changes nothing."""
    ids = [str(i) for i in external_ids]
    if not ids:
        return 0
    rows = list(
        session.scalars(
            select(Annotation).where(
                Annotation.source == "label_studio", Annotation.external_id.in_(ids)
            )
        )
    )
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


def remove_missing_annotations(
    session: Session, task_ids: Iterable[str], present: Iterable[str]
) -> int:
    """Delete the labels of these Label Studio tasks whose annotation ids are not in ``present``
    (what a full pull of the project saw): annotations deleted while no webhook was listening.
    Labels of other projects' tasks are left alone. Returns how many were deleted."""
    tasks, keep = {str(t) for t in task_ids}, {str(a) for a in present}
    if not tasks:
        return 0
    stale = [
        a.external_id
        for a in session.scalars(
            select(Annotation).where(
                Annotation.source == "label_studio", Annotation.task_id.in_(tasks)
            )
        )
        if a.external_id not in keep
    ]
    return remove_annotations(session, stale)


def agreement_report(
    session: Session, *, min_items: int = 5, n_bootstrap: int = 1000
) -> AgreementReport | None:
    """Agreement among the stored labels (pairwise QWK, Krippendorff's alpha, each vs consensus),
    or None when no label is stored yet."""
    labels = label_table(session)
    if labels.empty:
        return None
    return compute_agreement(labels, item="photo_id", min_items=min_items, n_bootstrap=n_bootstrap)
