"""The drawing-age head: head comparison, bias correction on held-out data, CSV forms, output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from training.age import fit_age_head
from vision.stages import DrawingAgeHead


def _simulated(n: int, seed: int):
    """Inputs whose signal is age plus noise: any head on them regresses to the mean."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(2, 8, n)
    latent = age + rng.normal(0, 1.5, n)
    direction = np.random.default_rng(99).normal(0, 1, 40)
    emb = rng.normal(0, 1, (n, 40)) + 0.1 * latent[:, None] * direction[None, :]
    feats = latent[:, None] * np.array([1.0, 0.5]) + rng.normal(0, 1, (n, 2))
    return np.concatenate([emb, feats], axis=1), age, np.arange(n) // 3


def test_bias_correction_leaves_the_gap_uncorrelated_with_age_on_held_out_data(tmp_path):
    X, age, groups = _simulated(240, 0)
    fit = fit_age_head(X, age, groups, n_features=2, candidates=("ridge", "ridge_features"))
    assert set(fit.comparison) == {"ridge", "ridge_features"}
    assert fit.metrics["head"] in fit.comparison
    assert fit.metrics["spearman"] > 0.5
    assert fit.head.bias_slope < 0.9  # regression to the mean is there to correct
    # new children, never seen: the raw gap falls with age, the corrected one does not
    Xh, age_h, _ = _simulated(400, 1)
    raw = fit.head.predict(Xh)
    assert np.corrcoef(raw - age_h, age_h)[0, 1] < -0.3
    gap = fit.head.corrected(raw, age_h) - age_h
    assert abs(np.corrcoef(gap, age_h)[0, 1]) < 0.12
    # the cross-fitted check on the model card says the same
    assert fit.metrics["gap_age_r_raw"] < -0.3 and abs(fit.metrics["gap_age_r_corrected"]) < 0.15
    # saved and loaded, it predicts the same
    fit.head.save(tmp_path)
    again = DrawingAgeHead.load(tmp_path)
    assert again is not None and np.allclose(again.predict(Xh), raw)
    assert again.bias_slope == pytest.approx(fit.head.bias_slope)


@pytest.mark.parametrize("kind", ["ordinal", "hgb"])
def test_every_candidate_head_fits_and_round_trips(tmp_path, kind):
    X, age, groups = _simulated(120, 2)
    fit = fit_age_head(X, age, groups, n_features=2, candidates=(kind,))
    assert fit.head.kind == kind and fit.metrics["spearman"] > 0.3
    fit.head.save(tmp_path)
    loaded = DrawingAgeHead.load(tmp_path)
    assert loaded is not None and np.allclose(loaded.predict(X[:10]), fit.head.predict(X[:10]))


def test_a_model_folder_without_an_age_head_loads_as_none(tmp_path):
    assert DrawingAgeHead.load(tmp_path) is None


def _photos(folder, n: int):
    from vision.synthetic import make_labelled_photo

    rows = []
    for i in range(n):
        photo = make_labelled_photo(i % 5, 40 + i, megapixels=0.08, medium="pencil")
        (folder / f"d{i}.jpg").write_bytes(photo.data)
        rows.append((f"d{i}.jpg", photo.stage, round(photo.age, 2), f"child{i // 2}"))
    return rows


@pytest.mark.parametrize("columns", ["stage", "age", "stage,age"])
def test_train_from_csv_with_stage_age_or_both(spira_env, tmp_path, columns):
    from training.model_files import load_model, models_dir

    rows = _photos(tmp_path, 15)
    cols = columns.split(",")
    lines = ["path," + ",".join(cols) + ",group"]
    for path, stage, age, group in rows:
        values = {"stage": str(stage), "age": str(age)}
        lines.append(",".join([path, *(values[c] for c in cols), group]))
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["train", "--csv", str(tmp_path / "labels.csv")])
    assert result.exit_code == 0, result.output
    version = result.stdout.strip().splitlines()[-1]
    model = load_model(version)
    assert (model.head is not None) == ("stage" in cols)
    assert (model.age_head is not None) == ("age" in cols)
    card = (models_dir() / version / "card.md").read_text()
    if "age" in cols:
        assert "heads compared by grouped cross-validation" in card and "ridge" in card
    if cols == ["age"]:
        assert version.startswith("age-") and "Stage head: **absent**" in card
        # `spira stages` gives the drawing age alone; the model cannot be promoted
        out = CliRunner().invoke(app, ["stages", "--model", version, str(tmp_path / "d0.jpg")])
        assert out.exit_code == 0, out.output
        line = json.loads(out.stdout.splitlines()[0])
        assert "drawing_age" in line and "stage" not in line and 1 < line["drawing_age"] < 10
        refused = CliRunner().invoke(app, ["models", "promote", version])
        assert refused.exit_code == 2 and "no stage head" in refused.output
    if cols == ["stage", "age"]:
        card_has = "Stage head given the drawing age" in card
        assert card_has


def test_csv_errors_name_the_line_and_column(spira_env, tmp_path):
    _photos(tmp_path, 2)
    (tmp_path / "bad.csv").write_text(
        "path,stage,age\nd0.jpg,2,four\nd1.jpg,7,3.5\nnope.jpg,1,4\nd0.jpg,1,45\n"
    )
    result = CliRunner().invoke(app, ["train", "--csv", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "line 2, column age" in out and "'four'" in out
    assert "line 3, column stage" in out
    assert "line 4, column path" in out and "nope.jpg" in out
    assert "line 5, column age" in out and "years" in out
    (tmp_path / "none.csv").write_text("path,group\nd0.jpg,a\n")
    result = CliRunner().invoke(app, ["train", "--csv", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "stage or age" in " ".join(result.output.split())
