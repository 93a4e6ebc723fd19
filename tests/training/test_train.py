"""Training, the registry and promotion."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from cli.main import app
from tests.photos import queue_photos


def test_synthetic_model_generalises_to_held_out_drawings(spira_env, trained_model):
    from training.model_files import load_model
    from training.train import synthetic_images

    model = load_model(trained_model)
    images, stages, _ = synthetic_images(60, seed=999)  # seeds never seen in training
    scores = model.score(images)
    qwk = cohen_kappa_score(stages, scores.top, weights="quadratic")
    assert qwk >= 0.8, qwk
    assert np.allclose(scores.probs.sum(1), 1)


def test_model_card_report_and_listing(spira_env, trained_model):
    from training.model_files import models_dir

    folder = models_dir() / trained_model
    card = (folder / "card.md").read_text()
    assert "quadratic weighted kappa" in card and "n = 150" in card
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "confusion" in html
    listed = json.loads(CliRunner().invoke(app, ["models", "list", "--json"]).stdout)
    mine = next(m for m in listed if m["version"] == trained_model)
    assert mine["promoted"] and mine["metrics"]["qwk"] > 0.8


def test_train_cli_prints_version_last_and_promotion_rescores_stored_photos(
    spira_env, trained_model
):
    from sqlalchemy import select

    from core.models import Photo, StageEstimate
    from core.storage import get_store
    from training.model_files import load_model
    from vision.worker import drain

    factory = queue_photos("Laröd", [(k, 70 + k) for k in range(4)], megapixels=0.4, age_band="3-4")
    drain(factory, get_store(), load_model(trained_model))

    result = CliRunner().invoke(app, ["train", "--synthetic", "--n", "40", "--seed", "5"])
    assert result.exit_code == 0, result.output
    version = result.stdout.strip().splitlines()[-1]
    assert version.startswith("stage-") and version != trained_model
    promoted = CliRunner().invoke(app, ["models", "promote", version])
    assert promoted.exit_code == 0 and "re-scored 4" in promoted.output
    with factory() as s:
        photos = s.scalars(select(Photo)).all()
        for photo in photos:
            versions = set(
                s.scalars(
                    select(StageEstimate.model_version).where(StageEstimate.photo_id == photo.id)
                )
            )
            assert versions == {trained_model, version}
    # put the session's model back for the other tests
    assert CliRunner().invoke(app, ["models", "promote", trained_model]).exit_code == 0
    bad = CliRunner().invoke(app, ["models", "promote", "stage-nonexistent"])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_train_from_csv_reports_bad_rows(spira_env, tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "labels.csv").write_text("path,stage\na.jpg,2\nmissing.jpg,1\nb.jpg,9\n")
    result = CliRunner().invoke(app, ["train", "--csv", str(tmp_path / "labels.csv")])
    assert result.exit_code == 2
    out = result.output
    assert (
        "line 2" in out
        and "line 3" in out
        and "missing.jpg" in out
        and "line 4" in out
        and "stage" in out
    )
