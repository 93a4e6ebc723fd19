"""Label Studio as Spira's labelling tool: config, tasks with pre-annotations, labels back.

One Label Studio task per photo. A task's data is ``{"image": <signed URL>, "photo_id": <id>}``;
``photo_id`` is how Spira recognises its tasks, so pushing the same photos twice creates no
duplicates (the image URL is refreshed instead, because signed URLs expire). A researcher's label
is a single choice named ``stage`` whose value is the stage number ("0".."4").

Annotators are identified by their Label Studio user id, as text (``annotator="2"``): that is what
both the API and the webhook payloads carry. :meth:`LabelStudioClient.pull_annotations` adds the
user's e-mail as ``annotator_email``; a webhook payload has no e-mail, so it is ``None`` there.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from core.domain import N_STAGES, STAGE_DESCRIPTIONS

#: Name of the Choices control holding the stage, and of the Image object it labels.
STAGE_CONTROL = "stage"
IMAGE_OBJECT = "image"

#: Optional rubric for drawings: item name -> what the researcher rates (levels 0–3).
DRAWING_RUBRIC: dict[str, str] = {
    "detail": "Detail: how much detail the drawing shows",
    "use_of_space": "Use of space: placement on the page, ground and sky line",
    "human_figure": "Human figure: how complete any person drawn is",
}
RUBRIC_LEVELS = 4  # 0..3, the same ordered-level scale educators' rubric items use
RUBRIC_PREFIX = "rubric_"

#: Webhook actions that carry a new or changed label.
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
#: Label Studio's action when annotations are deleted (payload: ``annotations``, each with ``id``).
DELETED_ACTION = "ANNOTATIONS_DELETED"


class Prediction(TypedDict):
    """The current model's suggestion for a photo: stage 0–4, its probability, the model."""

    stage: int
    score: float
    model_version: str


class TaskSpec(TypedDict):
    """One photo to label: its id, an image URL Label Studio's browser can load, a suggestion."""

    photo_id: str
    image_url: str
    prediction: NotRequired[Prediction | None]


class AnnotationRow(TypedDict):
    """One label from Label Studio, ready to store.

    ``annotator`` is the Label Studio user id as text; ``annotated_at`` is when the label was
    last saved (timezone-aware); ``rubric`` maps rubric item -> level for labels made with the
    rubric config (empty otherwise).
    """

    photo_id: str
    annotator: str
    annotator_email: str | None
    stage: int
    rubric: dict[str, int]
    annotated_at: datetime
    task_id: int
    annotation_id: int
    project_id: int | None


@dataclass
class PushResult:
    """What :meth:`LabelStudioClient.push_tasks` did, photo by photo.

    ``task_ids`` maps every pushed photo_id to its Label Studio task id.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    predictions_added: list[str] = field(default_factory=list)
    task_ids: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Labelling config and result parsing (pure)
# --------------------------------------------------------------------------------------------


def label_config(with_rubric: bool = False, rubric: Mapping[str, str] | None = None) -> str:
    """Label Studio labelling config (XML) for progression stages, optionally with a rubric.

    One ``<Choice>`` per stage: ``value`` is the stage number (what comes back in results),
    ``html`` shows the stage's description from STAGE_DESCRIPTIONS, ``hint`` repeats it as a
    tooltip, and the digit keys are hotkeys. With ``with_rubric`` each rubric item (default
    :data:`DRAWING_RUBRIC`) adds a Choices control ``rubric_<item>`` with levels 0–3.
    """
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=IMAGE_OBJECT, value="$image", zoom="true")
    ET.SubElement(view, "Header", value="Drawing progression stage")
    choices = ET.SubElement(
        view,
        "Choices",
        name=STAGE_CONTROL,
        toName=IMAGE_OBJECT,
        choice="single-radio",
        required="true",
        showInline="false",
    )
    for stage_number, description in enumerate(STAGE_DESCRIPTIONS):
        ET.SubElement(
            choices,
            "Choice",
            value=str(stage_number),
            html=description,
            hint=description,
            hotkey=str(stage_number),
        )
    if with_rubric:
        for item, description in (rubric or DRAWING_RUBRIC).items():
            ET.SubElement(view, "Header", value=f"{description} (0–{RUBRIC_LEVELS - 1})")
            control = ET.SubElement(
                view,
                "Choices",
                name=f"{RUBRIC_PREFIX}{item}",
                toName=IMAGE_OBJECT,
                choice="single-radio",
                showInline="true",
            )
            for level in range(RUBRIC_LEVELS):
                ET.SubElement(control, "Choice", value=str(level))
    return ET.tostring(view, encoding="unicode")


def stage_result(stage: int, rubric: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Label Studio ``result`` list for a stage (and rubric levels), as an annotator would send.

    Raises ValueError for a stage outside 0..N_STAGES-1 or a rubric level outside 0..3.
    """
    if not 0 <= int(stage) < N_STAGES or int(stage) != stage:
        raise ValueError(f"stage {stage!r} is not a whole number 0–{N_STAGES - 1}")
    result = [_choice(STAGE_CONTROL, str(int(stage)))]
    for item, level in (rubric or {}).items():
        if not 0 <= int(level) < RUBRIC_LEVELS:
            raise ValueError(f"rubric level {level!r} for {item!r} is not 0–{RUBRIC_LEVELS - 1}")
        result.append(_choice(f"{RUBRIC_PREFIX}{item}", str(int(level))))
    return result


def _choice(from_name: str, value: str) -> dict[str, Any]:
    return {
        "from_name": from_name,
        "to_name": IMAGE_OBJECT,
        "type": "choices",
        "value": {"choices": [value]},
    }


def parse_result(result: Iterable[Mapping[str, Any]]) -> tuple[int | None, dict[str, int]]:
    """Stage and rubric levels from an annotation's ``result``; stage None when none was chosen."""
    stage: int | None = None
    rubric: dict[str, int] = {}
    for region in result:
        chosen = (region.get("value") or {}).get("choices") or []
        if region.get("type") != "choices" or len(chosen) != 1:
            continue
        name = str(region.get("from_name", ""))
        try:
            value = int(chosen[0])
        except (TypeError, ValueError):
            continue
        if name == STAGE_CONTROL and 0 <= value < N_STAGES:
            stage = value
        elif name.startswith(RUBRIC_PREFIX):
            rubric[name.removeprefix(RUBRIC_PREFIX)] = value
    return stage, rubric


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def annotation_row(
    annotation: Mapping[str, Any],
    task: Mapping[str, Any],
    *,
    emails: Mapping[int, str] | None = None,
) -> AnnotationRow | None:
    """One :class:`AnnotationRow` from a Label Studio annotation and its task, or None.

    None for labels Spira cannot use: skipped (cancelled) annotations, annotations without a
    stage, and tasks that Spira did not create (no ``photo_id`` in the task data).
    """
    if annotation.get("was_cancelled"):
        return None
    photo_id = (task.get("data") or {}).get("photo_id")
    if photo_id is None:
        return None
    stage, rubric = parse_result(annotation.get("result") or [])
    if stage is None:
        return None
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, Mapping):  # some endpoints expand the user
        completed_by = completed_by.get("id")
    user_id = int(completed_by) if completed_by is not None else -1
    project = annotation.get("project", task.get("project"))
    return AnnotationRow(
        photo_id=str(photo_id),
        annotator=str(user_id),
        annotator_email=(emails or {}).get(user_id),
        stage=stage,
        rubric=rubric,
        annotated_at=_parse_time(annotation.get("updated_at") or annotation["created_at"]),
        task_id=int(annotation.get("task") or task["id"]),
        annotation_id=int(annotation["id"]),
        project_id=int(project) if project is not None else None,
    )


def parse_webhook(payload: Mapping[str, Any]) -> list[AnnotationRow]:
    """Annotation rows from a Label Studio webhook payload.

    Handles ``ANNOTATION_CREATED``/``ANNOTATION_UPDATED`` (one ``annotation``) and
    ``ANNOTATIONS_CREATED`` (a list ``annotation``/``annotations``); any other action returns an
    empty list. Raises ValueError naming the missing part when a payload with an annotation
    action lacks its ``annotation`` or ``task``.
    """
    if not isinstance(payload, Mapping):
        raise ValueError("webhook payload is not a JSON object")
    action = payload.get("action")
    if action not in ANNOTATION_ACTIONS:
        return []
    raw = payload.get("annotation", payload.get("annotations"))
    if raw is None:
        raise ValueError(f"webhook payload for {action} has no 'annotation'")
    annotations = raw if isinstance(raw, list) else [raw]
    task = payload.get("task")
    tasks = payload.get("tasks")
    rows: list[AnnotationRow] = []
    for annotation in annotations:
        this_task = task
        if this_task is None and isinstance(tasks, list):
            this_task = next((t for t in tasks if t.get("id") == annotation.get("task")), None)
        if not isinstance(this_task, Mapping):
            raise ValueError(f"webhook payload for {action} has no 'task' for the annotation")
        row = annotation_row(annotation, this_task)
        if row is not None:
            rows.append(row)
    return rows


def parse_deleted(payload: Mapping[str, Any]) -> list[str]:
    """Label Studio's ids of the annotations an ``ANNOTATIONS_DELETED`` payload reports, as
    strings; an empty list for any other action. Raises ValueError when such a payload lists no
    annotation ids."""
    if not isinstance(payload, Mapping):
        raise ValueError("webhook payload is not a JSON object")
    if payload.get("action") != DELETED_ACTION:
        return []
    raw = payload.get("annotations")
    if not isinstance(raw, list):
        raise ValueError(f"webhook payload for {DELETED_ACTION} has no 'annotations' list")
    ids = [str(a["id"]) for a in raw if isinstance(a, Mapping) and a.get("id") is not None]
    if len(ids) != len(raw):
        raise ValueError(f"webhook payload for {DELETED_ACTION} lists an annotation without 'id'")
    return ids


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


def _dump(obj: Any) -> dict[str, Any]:
    """SDK objects are pydantic models; nested parts sometimes plain dicts. Give a dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    return dict(obj.model_dump(mode="json"))


class LabelStudioClient:
    """Spira's operations on a Label Studio server, over the ``label_studio_sdk`` 2.x client.

    ``api_key`` may be a legacy token or a personal access token; the SDK handles both.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0) -> None:
        from label_studio_sdk import LabelStudio  # lazy: heavy SDK, only when talking to LS

        self.base_url = base_url.rstrip("/")
        # Typed as Any: the generated SDK models accept and return extra fields (task_ids on
        # import, plain dicts as tasks) that its type hints do not declare.
        self.sdk: Any = LabelStudio(base_url=self.base_url, api_key=api_key, timeout=timeout)

    # -- projects -----------------------------------------------------------------------------
    def find_project(self, title: str) -> int | None:
        """Id of the project titled exactly ``title`` (the oldest if several), else None."""
        ids = [int(p.id) for p in self.sdk.projects.list(title=title) if p.title == title]
        return min(ids) if ids else None

    def ensure_project(
        self,
        title: str,
        *,
        with_rubric: bool = False,
        annotations_per_task: int = 2,
        description: str = "Spira: label drawing progression stages 0–4",
    ) -> int:
        """Create the project ``title`` or bring its config up to date; return its id.

        ``annotations_per_task`` is how many researchers Label Studio asks to label each task
        (at least 2, so that agreement can be measured).
        """
        if annotations_per_task < 1:
            raise ValueError(f"annotations_per_task must be at least 1, got {annotations_per_task}")
        config = label_config(with_rubric=with_rubric)
        project_id = self.find_project(title)
        if project_id is None:
            created = self.sdk.projects.create(
                title=title,
                description=description,
                label_config=config,
                maximum_annotations=annotations_per_task,
                show_collab_predictions=True,
            )
            return int(created.id)
        current = self.sdk.projects.get(id=project_id)
        if current.label_config != config or current.maximum_annotations != annotations_per_task:
            self.sdk.projects.update(
                id=project_id, label_config=config, maximum_annotations=annotations_per_task
            )
        return project_id

    # -- tasks ----------------------------------------------------------------------------------
    def list_tasks(self, project_id: int, *, with_annotations: bool = False) -> list[dict]:
        """All tasks of a project as dicts (every page); annotations included on request."""
        pager = self.sdk.tasks.list(
            project=project_id, fields="all" if with_annotations else "task_only", page_size=500
        )
        return [_dump(t) for t in pager]

    def tasks_by_photo(self, project_id: int) -> dict[str, dict]:
        """Spira's tasks in a project keyed by ``photo_id`` (tasks without one are left out)."""
        out: dict[str, dict] = {}
        for task in self.list_tasks(project_id, with_annotations=True):
            photo_id = (task.get("data") or {}).get("photo_id")
            if photo_id is not None:
                out.setdefault(str(photo_id), task)  # the oldest task wins if LS holds duplicates
        return out

    def push_tasks(self, project_id: int, tasks: Sequence[TaskSpec]) -> PushResult:
        """Import photos as tasks with the model's suggestion, idempotently by ``photo_id``.

        New photos become tasks (with a pre-annotation when ``prediction`` is given). For photos
        already in the project the image URL is refreshed if it changed (signed URLs expire) and
        a prediction is added only if the task has none from that ``model_version``. Raises
        ValueError for a malformed spec or a photo_id listed twice, before changing anything.
        """
        seen: set[str] = set()
        for spec in tasks:
            if not spec.get("photo_id") or not spec.get("image_url"):
                raise ValueError(f"task spec {spec!r} needs a photo_id and an image_url")
            if str(spec["photo_id"]) in seen:
                raise ValueError(f"photo_id {spec['photo_id']!r} is listed twice")
            seen.add(str(spec["photo_id"]))
            if spec.get("prediction") is not None:
                _check_prediction(spec["prediction"])  # type: ignore[arg-type]

        result = PushResult()
        existing = self.tasks_by_photo(project_id)
        new: list[dict[str, Any]] = []
        new_ids: list[str] = []
        for spec in tasks:
            photo_id = str(spec["photo_id"])
            data = {IMAGE_OBJECT: spec["image_url"], "photo_id": photo_id}
            prediction = spec.get("prediction")
            task = existing.get(photo_id)
            if task is None:
                item: dict[str, Any] = {"data": data}
                if prediction is not None:
                    item["predictions"] = [_prediction_body(prediction)]
                new.append(item)
                new_ids.append(photo_id)
                continue
            task_id = int(task["id"])
            result.task_ids[photo_id] = task_id
            changed = False
            if (task.get("data") or {}) != data:
                self.sdk.tasks.update(id=str(task_id), data=data)
                changed = True
            versions = {p.get("model_version") for p in task.get("predictions") or []}
            if prediction is not None and prediction["model_version"] not in versions:
                body = _prediction_body(prediction)
                self.sdk.predictions.create(
                    task=task_id,
                    result=body["result"],
                    score=body["score"],
                    model_version=body["model_version"],
                )
                result.predictions_added.append(photo_id)
                changed = True
            (result.updated if changed else result.unchanged).append(photo_id)
        if new:
            imported = self.sdk.projects.import_tasks(
                id=project_id, request=new, return_task_ids=True
            )
            task_ids = list(imported.task_ids or [])
            if len(task_ids) != len(new):  # fall back to looking them up
                fresh = self.tasks_by_photo(project_id)
                task_ids = [int(fresh[p]["id"]) for p in new_ids]
            for photo_id, task_id in zip(new_ids, task_ids, strict=True):
                result.task_ids[photo_id] = int(task_id)
                result.created.append(photo_id)
                if "predictions" in new[new_ids.index(photo_id)]:
                    result.predictions_added.append(photo_id)
        return result

    # -- annotations ----------------------------------------------------------------------------
    def annotator_emails(self) -> dict[int, str]:
        """Label Studio user id -> e-mail for every user the token can see."""
        return {int(u.id): str(u.email) for u in self.sdk.users.list() if u.id is not None}

    def pull_annotations(self, project_id: int) -> list[AnnotationRow]:
        """Every usable label in the project, one row per annotation (see :func:`annotation_row`).

        Rows are sorted by task and annotation id; skipped annotations and tasks without
        ``photo_id`` are left out.
        """
        emails = self.annotator_emails()
        rows: list[AnnotationRow] = []
        for task in self.list_tasks(project_id, with_annotations=True):
            task.setdefault("project", project_id)
            for annotation in task.get("annotations") or []:
                row = annotation_row(annotation, task, emails=emails)
                if row is not None:
                    rows.append(row)
        return sorted(rows, key=lambda r: (r["task_id"], r["annotation_id"]))

    def annotate(
        self,
        project_id: int,
        task_id: int,
        stage: int,
        *,
        rubric: Mapping[str, int] | None = None,
        completed_by: int | None = None,
        lead_time: float | None = None,
    ) -> int:
        """Label a task with a stage as a researcher would; return the new annotation's id.

        The annotation belongs to the token's user unless ``completed_by`` names another user
        id (the admin token may do that; see :meth:`ensure_user`). ``lead_time`` is in seconds.
        """
        kwargs: dict[str, Any] = {"result": stage_result(stage, rubric), "project": project_id}
        if completed_by is not None:
            kwargs["completed_by"] = completed_by
        if lead_time is not None:
            kwargs["lead_time"] = lead_time
        created = self.sdk.annotations.create(id=task_id, **kwargs)
        return int(created.id)

    def update_annotation(self, annotation_id: int, stage: int) -> None:
        """Change the stage of an existing annotation."""
        self.sdk.annotations.update(id=annotation_id, result=stage_result(stage))

    def ensure_user(self, email: str, *, password: str | None = None) -> int:
        """Id of the user with this e-mail, creating the user if missing (needs an admin token)."""
        for user in self.sdk.users.list():
            if user.email == email and user.id is not None:
                return int(user.id)
        username = email.split("@", 1)[0]
        kwargs: dict[str, Any] = {"username": username, "email": email}
        if password is not None:
            kwargs["password"] = password
        return int(self.sdk.users.create(**kwargs).id)

    # -- webhooks -------------------------------------------------------------------------------
    def ensure_webhook(
        self,
        project_id: int,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        actions: Sequence[str] = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", DELETED_ACTION),
    ) -> int:
        """Make Label Studio POST new, changed and deleted labels of the project to ``url``;
        return its id.

        ``headers`` are sent with every call (put the shared secret there). A webhook with the
        same URL on the project is updated rather than duplicated.
        """
        body: dict[str, Any] = {
            "url": url,
            "actions": list(actions),
            "send_payload": True,
            "send_for_all_actions": False,
            "is_active": True,
            "headers": dict(headers or {}),
        }
        for hook in self.sdk.webhooks.list(project=str(project_id)):
            if hook.url == url:
                self.sdk.webhooks.update(id=int(hook.id), **body)
                return int(hook.id)
        return int(self.sdk.webhooks.create(project=project_id, **body).id)


def _check_prediction(prediction: Prediction) -> None:
    stage = prediction.get("stage")
    if not isinstance(stage, int) or not 0 <= stage < N_STAGES:
        raise ValueError(f"prediction stage {stage!r} is not a whole number 0–{N_STAGES - 1}")
    score = prediction.get("score")
    if not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
        raise ValueError(f"prediction score {score!r} is not a probability 0–1")
    if not prediction.get("model_version"):
        raise ValueError("prediction needs a model_version")


def _prediction_body(prediction: Prediction) -> dict[str, Any]:
    return {
        "model_version": str(prediction["model_version"]),
        "score": float(prediction["score"]),
        "result": stage_result(prediction["stage"]),
    }
