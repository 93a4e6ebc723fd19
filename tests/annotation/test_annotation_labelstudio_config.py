"""Label Studio config and payload parsing, without a server."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from annotation.labelstudio import (
    DRAWING_RUBRIC,
    annotation_row,
    label_config,
    parse_result,
    parse_webhook,
    stage_result,
)
from core.domain import N_STAGES, STAGE_DESCRIPTIONS


def webhook_payload(action: str = "ANNOTATION_CREATED", stage: str = "3") -> dict:
    """Trimmed from a payload Label Studio 1.23 actually sent (see the real-server test)."""
    return {
        "action": action,
        "annotation": {
            "id": 17,
            "result": [
                {
                    "from_name": "stage",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [stage]},
                },
                {
                    "from_name": "rubric_detail",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": ["2"]},
                },
            ],
            "was_cancelled": False,
            "created_at": "2026-11-22T09:28:57.796326Z",
            "updated_at": "2026-11-22T09:30:01.000000Z",
            "task": 5,
            "project": 2,
            "completed_by": 2,
        },
        "project": {"id": 2, "title": "spira"},
        "task": {"id": 5, "data": {"image": "http://127.0.0.1/x.png", "photo_id": "ph-5"}},
    }


def test_label_config_has_one_choice_per_stage_with_description() -> None:
    root = ET.fromstring(label_config())
    image = root.find("Image")
    assert image is not None and image.get("value") == "$image"
    stage = root.find("Choices[@name='stage']")
    assert stage is not None and stage.get("toName") == image.get("name")
    choices = stage.findall("Choice")
    assert [c.get("value") for c in choices] == [str(i) for i in range(N_STAGES)]
    assert [c.get("hint") for c in choices] == list(STAGE_DESCRIPTIONS)
    assert [c.get("html") for c in choices] == list(STAGE_DESCRIPTIONS)
    assert len(root.findall("Choices")) == 1  # no rubric unless asked for


def test_label_config_with_rubric_adds_a_control_per_item() -> None:
    root = ET.fromstring(label_config(with_rubric=True))
    names = [c.get("name") for c in root.findall("Choices")]
    assert names == ["stage"] + [f"rubric_{item}" for item in DRAWING_RUBRIC]
    levels = root.find("Choices[@name='rubric_detail']")
    assert levels is not None
    assert [c.get("value") for c in levels.findall("Choice")] == ["0", "1", "2", "3"]


def test_label_config_is_understood_by_the_sdk() -> None:
    from label_studio_sdk.label_interface import LabelInterface

    interface = LabelInterface(label_config(with_rubric=True))
    assert interface.get_control("stage").labels == [str(i) for i in range(N_STAGES)]


def test_stage_result_round_trips_and_refuses_bad_stages() -> None:
    result = stage_result(4, {"detail": 1})
    assert parse_result(result) == (4, {"detail": 1})
    with pytest.raises(ValueError, match="0–4"):
        stage_result(5)
    with pytest.raises(ValueError, match="rubric level"):
        stage_result(1, {"detail": 7})


def test_parse_webhook_created_and_updated() -> None:
    [row] = parse_webhook(webhook_payload())
    assert row == {
        "photo_id": "ph-5",
        "annotator": "2",
        "annotator_email": None,
        "stage": 3,
        "rubric": {"detail": 2},
        "annotated_at": datetime(2026, 11, 22, 9, 30, 1, tzinfo=UTC),
        "task_id": 5,
        "annotation_id": 17,
        "project_id": 2,
    }
    [updated] = parse_webhook(webhook_payload("ANNOTATION_UPDATED", stage="1"))
    assert updated["stage"] == 1 and updated["annotation_id"] == 17


def test_parse_webhook_ignores_other_actions_and_unusable_annotations() -> None:
    assert parse_webhook({"action": "PROJECT_UPDATED", "project": {"id": 1}}) == []
    skipped = webhook_payload()
    skipped["annotation"]["was_cancelled"] = True
    assert parse_webhook(skipped) == []
    foreign = webhook_payload()
    del foreign["task"]["data"]["photo_id"]
    assert parse_webhook(foreign) == []
    no_stage = webhook_payload()
    no_stage["annotation"]["result"] = no_stage["annotation"]["result"][1:]
    assert parse_webhook(no_stage) == []


def test_parse_webhook_refuses_malformed_payloads() -> None:
    with pytest.raises(ValueError, match="no 'annotation'"):
        parse_webhook({"action": "ANNOTATION_CREATED", "task": {"id": 1}})
    missing_task = webhook_payload()
    del missing_task["task"]
    with pytest.raises(ValueError, match="no 'task'"):
        parse_webhook(missing_task)
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_webhook([])  # type: ignore[arg-type]


def test_annotation_row_uses_emails_when_known_and_expanded_users() -> None:
    payload = webhook_payload()
    annotation = dict(payload["annotation"], completed_by={"id": 2, "email": "r2@x"})
    row = annotation_row(annotation, payload["task"], emails={2: "rater2@spira.local"})
    assert row is not None
    assert row["annotator"] == "2" and row["annotator_email"] == "rater2@spira.local"
