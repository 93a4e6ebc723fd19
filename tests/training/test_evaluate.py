"""``spira evaluate``: grouped metrics with intervals, the reliability PNG, validation on the card."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from cli.main import app


def _write_csv(folder, n: int, seed: int) -> None:
    from vision.synthetic import make_labelled_photo

    lines = ["path,group,stage,age"]
    for i in range(n):
        photo = make_labelled_photo(i % 5, seed * 1_000_003 + i, megapixels=0.3, medium="mixed")
        name = f"d{i}.jpg"
        (folder / name).write_bytes(photo.data)
        lines.append(f"{name},child-{i // 3},{i % 5},{photo.age:.2f}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def test_evaluate_csv_metrics_intervals_png_and_recorded_validation(
    spira_env, trained_model, tmp_path
):
    from training.evaluate import model_validation
    from training.model_files import models_dir

    _write_csv(tmp_path, 30, seed=4242)
    out = tmp_path / "out"
    runner = CliRunner()
    # before: the model was trained on synthetic drawings only
    meta_path = models_dir() / trained_model / "model.json"
    assert model_validation(json.loads(meta_path.read_text()))["status"] == "synthetic_only"
    result = runner.invoke(
        app,
        ["evaluate", "--csv", str(tmp_path / "labels.csv"), "--out", str(out), "--n-boot", "60"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["n"] == 30 and data["n_groups"] == 10 and data["model"] == trained_model
    qwk = data["stage"]["qwk"]
    assert qwk["value"] > 0.5 and qwk["ci95"][0] <= qwk["value"] <= qwk["ci95"][1]
    assert qwk["ci95"][1] > qwk["ci95"][0]  # groups resampled: a real interval
    sp = data["age"]["spearman"]
    assert -1 <= sp["ci95"][0] <= sp["value"] <= sp["ci95"][1] <= 1
    assert data["age"]["mae_years"]["value"] >= 0
    assert 0 <= data["calibration"]["ece"]["value"] <= 1
    assert sum(b["n"] for b in data["calibration"]["reliability"]) == 30
    assert data["by_age_band"] and all("age" in v for v in data["by_age_band"].values())
    assert sum(v["age"]["n"] for v in data["by_age_band"].values()) == 30
    png = out / "reliability.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "evaluation.json").read_text())["n"] == 30
    # no --record and no --model: nothing written onto the card
    assert model_validation(json.loads(meta_path.read_text()))["status"] == "synthetic_only"

    recorded = runner.invoke(
        app,
        [
            "evaluate",
            "--csv",
            str(tmp_path / "labels.csv"),
            "--model",
            trained_model,
            "--n-boot",
            "30",
        ],
    )
    assert recorded.exit_code == 0, recorded.output
    v = model_validation(json.loads(meta_path.read_text()))
    assert v["status"] == "validated" and v["n_drawings"] == 30 and v["n_children"] == 10
    assert v["text"].startswith("30 real drawings from 10 children: QWK")
    card = (models_dir() / trained_model / "card.md").read_text()
    assert "Validated on: 30 real drawings from 10 children" in card
    # put the shared model back as trained (synthetic only) for the other tests
    meta = json.loads(meta_path.read_text())
    meta.pop("validation")
    meta_path.write_text(json.dumps(meta, indent=2))


def test_evaluate_bad_csv_is_a_clear_error(spira_env, trained_model, tmp_path):
    (tmp_path / "labels.csv").write_text("path,stage\nmissing.jpg,2\n")
    result = CliRunner().invoke(app, ["evaluate", "--csv", str(tmp_path / "labels.csv")])
    assert result.exit_code == 2 and "does not exist" in " ".join(result.output.split())


def test_model_validation_field_and_text():
    from training.evaluate import model_validation, validation_text

    assert model_validation(None) == {"status": "synthetic_only", "text": "synthetic drawings only"}
    assert (
        model_validation({"validation": {"status": "synthetic_only"}})["status"] == "synthetic_only"
    )
    v = {
        "status": "validated",
        "n_drawings": 120,
        "n_children": 40,
        "qwk": {"value": 0.61, "ci95": [0.5, 0.7]},
        "spearman_age": {"value": 0.42, "ci95": None},
    }
    assert validation_text(v) == (
        "120 real drawings from 40 children: QWK 0.61 [0.50, 0.70], Spearman with age 0.42"
    )
    assert model_validation({"validation": v})["status"] == "validated"


def test_group_bootstrap_interval_widens_with_fewer_groups():
    from training.evaluate import _age_point, _with_intervals

    rng = np.random.default_rng(0)
    age = rng.uniform(3, 6, 200)
    pred = age + rng.normal(0, 0.5, 200)
    many = _with_intervals(lambda r: _age_point(pred[r], age[r]), np.arange(200), 200, 1)
    few = _with_intervals(lambda r: _age_point(pred[r], age[r]), np.arange(200) // 20, 200, 1)
    width = lambda m: m["mae_years"]["ci95"][1] - m["mae_years"]["ci95"][0]  # noqa: E731
    assert many["mae_years"]["value"] == few["mae_years"]["value"]
    assert width(few) > width(many) > 0


def test_profile_schema_carries_model_validation(spira_env):
    from api.schemas import UnitProfileOut
    from training.evaluate import model_validation_of

    body = {"unit_id": 1, "unit": "U", "model_version": "stage-x", "min_group_size": 5}
    body |= {"terms": [], "term": None, "profile": None}
    out = UnitProfileOut.model_validate(
        {**body, "model_validation": model_validation_of("stage-x")}
    )
    assert out.model_validation["status"] == "synthetic_only"
    assert out.model_validation["model_version"] == "stage-x"
    assert UnitProfileOut.model_validate(body).model_validation["status"] == "synthetic_only"
