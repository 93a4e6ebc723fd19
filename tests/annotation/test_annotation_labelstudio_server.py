"""The Label Studio client against a real Label Studio server (see conftest.py)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from annotation.devserver import LabelStudioServer
from annotation.labelstudio import LabelStudioClient, TaskSpec, label_config, parse_webhook
from training.agreement import compute_agreement

pytestmark = pytest.mark.labelstudio


class _WebhookSink(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], dict]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_sink() -> Iterator[tuple[str, list[tuple[dict[str, str], dict]]]]:
    """A local HTTP endpoint recording what Label Studio POSTs to it: (url, received)."""
    received: list[tuple[dict[str, str], dict]] = []
    handler = type("Sink", (_WebhookSink,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhook", received
    server.shutdown()
    server.server_close()


def _tasks(model_version: str, url_suffix: str = "") -> list[TaskSpec]:
    return [
        {
            "photo_id": f"photo-{i}",
            "image_url": f"http://127.0.0.1:9/photos/{i}.png{url_suffix}",
            "prediction": {"stage": i % 5, "score": 0.55, "model_version": model_version},
        }
        for i in range(6)
    ]


def test_label_studio_round_trip(
    label_studio: tuple[str, str],
    label_studio_server: LabelStudioServer,
    webhook_sink: tuple[str, list],
) -> None:
    base_url, token = label_studio
    assert label_studio_server.startup_seconds < 150
    client = LabelStudioClient(base_url, token)

    project_id = client.ensure_project("Spira stages (test)")
    assert client.ensure_project("Spira stages (test)") == project_id
    project = client.sdk.projects.get(id=project_id)
    assert project.label_config == label_config()
    assert project.maximum_annotations == 2
    # Switching the rubric on updates the same project, not a new one.
    assert client.ensure_project("Spira stages (test)", with_rubric=True) == project_id
    assert "rubric_detail" in client.sdk.projects.get(id=project_id).label_config

    first = client.push_tasks(project_id, _tasks("v1"))
    assert sorted(first.created) == [f"photo-{i}" for i in range(6)]
    assert len(first.predictions_added) == 6
    again = client.push_tasks(project_id, _tasks("v1"))
    assert again.created == [] and again.updated == []
    assert again.task_ids == first.task_ids
    # New signed URLs and a new model: tasks are updated in place, predictions added.
    refreshed = client.push_tasks(project_id, _tasks("v2", url_suffix="?sig=2"))
    assert refreshed.created == [] and sorted(refreshed.updated) == sorted(first.created)
    tasks = client.list_tasks(project_id, with_annotations=True)
    assert len(tasks) == 6
    by_photo = {t["data"]["photo_id"]: t for t in tasks}
    assert by_photo["photo-2"]["data"]["image"].endswith("2.png?sig=2")
    versions = sorted(p["model_version"] for p in by_photo["photo-2"]["predictions"])
    assert versions == ["v1", "v2"]
    assert by_photo["photo-2"]["predictions"][0]["result"][0]["value"]["choices"] == ["2"]

    hook_url, received = webhook_sink
    hook_id = client.ensure_webhook(project_id, hook_url, headers={"X-Spira-Secret": "s3cret"})
    assert client.ensure_webhook(project_id, hook_url, headers={"X-Spira-Secret": "s3cret"}) == (
        hook_id
    )
    assert len(client.sdk.webhooks.list(project=str(project_id))) == 1

    # Two distinct annotators: the admin (token owner) and a second user created through the
    # API, whose labels the admin token files with completed_by.
    admin_id = int(client.sdk.users.whoami().id)
    second_id = client.ensure_user("rater2@spira.local")
    assert client.ensure_user("rater2@spira.local") == second_id != admin_id
    stages_admin = {"photo-0": 0, "photo-1": 1, "photo-2": 2, "photo-3": 3}
    stages_second = {"photo-0": 0, "photo-1": 2, "photo-2": 2, "photo-4": 4}
    ids = first.task_ids
    made = {}
    for photo, stage in stages_admin.items():
        made[(photo, "admin")] = client.annotate(project_id, ids[photo], stage, lead_time=3.5)
    for photo, stage in stages_second.items():
        made[(photo, "second")] = client.annotate(
            project_id, ids[photo], stage, completed_by=second_id
        )
    client.update_annotation(made[("photo-4", "second")], 3)

    rows = client.pull_annotations(project_id)
    assert len(rows) == 8
    got = {(r["photo_id"], r["annotator"]): r["stage"] for r in rows}
    expected = {(p, str(admin_id)): s for p, s in stages_admin.items()}
    expected |= {(p, str(second_id)): s for p, s in stages_second.items()}
    expected[("photo-4", str(second_id))] = 3
    assert got == expected
    row = next(r for r in rows if r["annotation_id"] == made[("photo-1", "second")])
    assert row["task_id"] == ids["photo-1"] and row["annotator_email"] == "rater2@spira.local"
    assert row["project_id"] == project_id and row["annotated_at"].tzinfo is not None
    assert client.push_tasks(project_id, _tasks("v2", "?sig=2")).created == []  # still 6 tasks

    # Webhooks: LS sends them from the request that made the annotation; allow a moment.
    deadline = time.monotonic() + 10
    while len(received) < 9 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(received) == 9  # 8 created + 1 updated
    assert all(headers.get("X-Spira-Secret") == "s3cret" for headers, _ in received)
    from_hooks = [r for _, payload in received for r in parse_webhook(payload)]
    latest = {r["annotation_id"]: r for r in from_hooks}  # the update supersedes the create
    assert {k: (v["photo_id"], v["annotator"], v["stage"]) for k, v in latest.items()} == {
        r["annotation_id"]: (r["photo_id"], r["annotator"], r["stage"]) for r in rows
    }

    report = compute_agreement(
        [{"item": r["photo_id"], "annotator": r["annotator"], "stage": r["stage"]} for r in rows],
        min_items=1,
        n_bootstrap=0,
    )
    [pair] = report.pairs
    assert pair.n_items == 3  # photo-0, photo-1, photo-2 have both annotators
    assert pair.exact_agreement.value == pytest.approx(2 / 3)
