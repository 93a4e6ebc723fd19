"""The annotation jobs behind ``spira annotate`` and the API: push, pull, agreement."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from annotation.labelstudio import LabelStudioClient
from annotation.store import (
    build_tasks,
    choose_photos,
    remove_missing_annotations,
    store_annotations,
)
from core.config import LABEL_STUDIO_PROJECT
from core.security import signed_image_path
from training.model_files import load_model
from vision.embed import create_embedder

DEFAULT_PROJECT = LABEL_STUDIO_PROJECT


@dataclass
class PushSummary:
    project_id: int
    selected: int
    created: int
    updated: int
    unchanged: int
    predictions_added: int


def push(
    session: Session,
    client: LabelStudioClient,
    *,
    n: int,
    strategy: str = "hybrid",
    project: str = DEFAULT_PROJECT,
    public_url: str,
    webhook_secret: str = "",
    seed: int = 0,
) -> PushSummary:
    """Create/update the project, choose ``n`` photos and import them with the model's suggestions.

    Image URLs are signed and expire; pushing again refreshes them and creates no duplicate task.
    With a ``webhook_secret``, Label Studio is told to report new labels to Spira's webhook.
    """
    model = load_model()
    backbone_version = create_embedder(model.backbone).version
    project_id = client.ensure_project(project)
    photo_ids = choose_photos(
        session,
        n=n,
        strategy=strategy,
        stage_version=model.version,
        backbone_version=backbone_version,
        seed=seed,
    )
    base = public_url.rstrip("/")
    tasks = build_tasks(
        session,
        photo_ids,
        stage_version=model.version,
        image_url=lambda pid: base + signed_image_path(pid),
    )
    result = client.push_tasks(project_id, tasks)
    if webhook_secret:
        client.ensure_webhook(
            project_id,
            f"{base}/api/annotations/webhook",
            headers={"X-Spira-Webhook-Secret": webhook_secret},
        )
    return PushSummary(
        project_id,
        len(photo_ids),
        len(result.created),
        len(result.updated),
        len(result.unchanged),
        len(result.predictions_added),
    )


def pull(
    session: Session, client: LabelStudioClient, *, project: str = DEFAULT_PROJECT
) -> tuple[int, int, int]:
    """Bring the project's labels into Spira's database, idempotently: new ones added, changed
    ones updated, and the ones deleted in Label Studio deleted here too. Returns (added, updated,
    removed)."""
    project_id = client.find_project(project)
    if project_id is None:
        raise LookupError(
            f"Label Studio has no project titled {project!r}; run `spira annotate push` first"
        )
    rows = client.pull_annotations(project_id)
    added, updated = store_annotations(session, rows)
    task_ids = [str(t["id"]) for t in client.list_tasks(project_id)]
    removed = remove_missing_annotations(session, task_ids, [str(r["annotation_id"]) for r in rows])
    return added, updated, removed
