"""Training data from researchers' labels stored in the database (``spira annotate pull``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Annotation, Photo
from core.storage import get_store
from training.agreement import compute_agreement
from vision.stored import decode_stored


def label_table(session: Session) -> pd.DataFrame:
    """Every stored label: photo_id, annotator, stage, group_id (latest label per annotator and photo)."""
    rows = session.execute(
        select(
            Annotation.photo_id,
            Annotation.annotator,
            Annotation.stage,
            Annotation.annotated_at,
            Photo.group_id,
        )
        .join(Photo, Photo.id == Annotation.photo_id)
        .order_by(Annotation.annotated_at)
    ).all()
    table = pd.DataFrame(
        rows, columns=["photo_id", "annotator", "stage", "annotated_at", "group_id"]
    )
    return table.drop_duplicates(["photo_id", "annotator"], keep="last")


def consensus_stages(labels: pd.DataFrame) -> pd.Series:
    """One stage per photo: the median of its annotators' labels (rounded half down), by photo_id."""
    med = labels.groupby("photo_id")["stage"].median()
    return np.floor(med).astype(int)


def images_from_annotations(session: Session):
    """Processed images, consensus stages, groups (the photo's group) and human agreement.

    Raises ValueError when there is nothing to train on.
    """

    labels = label_table(session)
    if labels.empty:
        raise ValueError(
            "no labels stored yet; label photos in Label Studio and run `spira annotate pull`"
        )
    consensus = consensus_stages(labels)
    store = get_store()
    photos = {
        p.id: p for p in session.scalars(select(Photo).where(Photo.id.in_(list(consensus.index))))
    }
    images, stages, groups = [], [], []
    for photo_id, stage in consensus.items():
        photo = photos[str(photo_id)]
        images.append(decode_stored(store.get(photo.content_key)))
        stages.append(int(stage))
        groups.append(f"group-{photo.group_id}")
    human = None
    if labels["annotator"].nunique() >= 2:
        report = compute_agreement(labels, item="photo_id", n_bootstrap=0)
        kappas = [
            p.quadratic_weighted_kappa.value
            for p in report.pairs
            if p.quadratic_weighted_kappa.value is not None
        ]
        human = {
            "alpha": report.krippendorff_alpha.value,
            "mean_qwk": float(np.mean(kappas)) if kappas else None,
            "n_items": report.n_items_multiply_labelled,
        }
    return images, np.array(stages), np.array(groups), human
