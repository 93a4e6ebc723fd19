"""Retained aggregates in unit profiles: terms whose photos retention deleted keep their figures,
from the aggregates' sums (normal-approximation intervals), marked as retained and suppressed below
the minimum group size."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.admin import app as admin_app
from core.domain import EXPECTED_STAGE_BY_AGE_BAND
from profiles.progression import retained_progression, unit_progression
from profiles.service import ProfileService
from tests.api.conftest import api, token  # noqa: F401  (re-exported fixture)
from tests.security.conftest import distinct_jpeg

runner = CliRunner()


def _store_photos(client, unit_name: str, group_index: int, seeds, captured_on: date) -> str:
    """Store processed-to-be photos of one group; returns their term."""
    from core.models import Group, Unit
    from vision.photos import accept_photo

    with client.factory() as s:
        unit = s.scalar(select(Unit).where(Unit.name == unit_name))
        group = s.get(Group, sorted(unit.groups, key=lambda g: g.id)[group_index].id)
        for seed in seeds:
            photo = accept_photo(
                session=s,
                store=client.app.state.store,
                data=distinct_jpeg(seed),
                unit=unit,
                group=group,
                activity="teckning",
                age_band=group.age_band,
                captured_on=captured_on,
            ).photo
        return photo.term


def _unit_id(client, name: str) -> int:
    from core.models import Unit

    with client.factory() as s:
        return s.scalar(select(Unit.id).where(Unit.name == name))


def _term(client, headers, unit_id: int, term: str) -> tuple[dict, dict]:
    r = client.get(f"/api/units/{unit_id}/profile", params={"term": term}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return next(t for t in body["terms"] if t["term"] == term), body["profile"]


def test_retained_terms_stay_in_the_profile_with_n_interval_and_suppression(api):  # noqa: F811
    from training.model_files import load_model
    from vision.worker import drain

    old_day = date.today() - timedelta(days=400)
    old_term = _store_photos(api, "Olympia", 0, range(50, 55), old_day)
    _store_photos(api, "Olympia", 1, [55], old_day)
    _store_photos(api, "Olympia", 0, [56], date.today())
    _store_photos(api, "Dalhem", 0, [60, 61], old_day)
    assert drain(api.factory, api.app.state.store, load_model()) == 9
    res = token(api, "res")
    olympia, dalhem = _unit_id(api, "Olympia"), _unit_id(api, "Dalhem")

    before, profile_before = _term(api, res, olympia, old_term)
    assert (before["source"], before["n_photos"], before["n_retained"]) == ("photos", 6, 0)
    assert not before["suppressed"] and before["mean_stage"] is not None
    with api.factory() as s:
        fingerprint_before = ProfileService.fingerprint(s)

    done = runner.invoke(admin_app, ["retention", "run", "--older-than-days", "365"])
    assert done.exit_code == 0, done.output
    with api.factory() as s:
        assert ProfileService.fingerprint(s) != fingerprint_before

    after, profile_after = _term(api, res, olympia, old_term)
    assert (after["source"], after["n_photos"], after["n_retained"]) == ("retained", 6, 6)
    assert not after["suppressed"]
    # The photo-based mean stage is the mean of the photos' expected stages: the retained sum / n.
    for figure in ("mean_stage", "index"):
        assert after[figure]["value"] == pytest.approx(before[figure]["value"], abs=1e-6)
        assert after[figure]["lo"] <= after[figure]["value"] <= after[figure]["hi"]
    assert after["mean_stage"]["hi"] - after["mean_stage"]["lo"] > 0
    assert sum(after["stage_distribution"]) == pytest.approx(1.0, abs=1e-6)
    assert after["stage_distribution"] == pytest.approx(before["stage_distribution"], abs=1e-6)
    bands = {b["age_band"]: b for b in after["by_age_band"]}
    assert {b["source"] for b in bands.values()} == {"retained"}
    assert sorted(b["n_photos"] for b in bands.values()) == [1, 5]
    small = next(b for b in bands.values() if b["n_photos"] == 1)
    assert small["suppressed"] and small["mean_stage"] is None and small["index"] is None
    # The triangulated profile of the term (ProfileService.build) rests on the same aggregates.
    assert profile_after["progression"]["n_photos"] == 6
    assert profile_after["progression"]["mean_stage"] == pytest.approx(
        profile_before["progression"]["mean_stage"], abs=1e-6
    )
    assert profile_after["progression"]["index"] == pytest.approx(
        profile_before["progression"]["index"], abs=1e-6
    )
    # The recent term still comes from its photo.
    r = api.get(f"/api/units/{olympia}/profile", headers=res).json()
    assert [t["source"] for t in r["terms"]] == ["retained", "photos"]

    # Fewer retained photos than min_group_size: the term stays, with n, but no figures.
    few, few_profile = _term(api, res, dalhem, old_term)
    assert (few["source"], few["n_photos"], few["suppressed"]) == ("retained", 2, True)
    assert few["mean_stage"] is None and few["index"] is None
    assert few["stage_distribution"] is None
    assert few_profile["progression"]["suppressed"] and few_profile["progression"]["index"] is None


def _cells(stages_by_band: dict[str, list[float]], term: str = "2025-VT") -> pd.DataFrame:
    rows = []
    for band, stages in stages_by_band.items():
        s = np.asarray(stages, dtype=float)
        probs = np.zeros(5)
        for v in s:  # a probability split between the two stages around v
            k = min(int(v), 3)
            probs[k] += k + 1 - v
            probs[k + 1] += v - k
        rows.append(
            {
                "unit_id": 1,
                "unit": "Olympia",
                "term": term,
                "age_band": band,
                "n_photos": len(s),
                "sum_stage": s.sum(),
                "sum_sq_stage": (s**2).sum(),
                **{f"p{k}": probs[k] for k in range(5)},
            }
        )
    return pd.DataFrame(rows)


def test_retained_figures_are_normal_approximations_from_the_sums():
    stages = {"3-4": [1.2, 1.9, 2.4, 1.7], "4-5": [2.8, 3.1, 2.2]}
    cells = _cells(stages)
    pooled = retained_progression(cells, min_n=5).iloc[0]
    every = np.concatenate([np.asarray(v) for v in stages.values()])
    deviation = np.concatenate(
        [np.asarray(v) - EXPECTED_STAGE_BY_AGE_BAND[b] for b, v in stages.items()]
    )
    z = 1.6448536269514722
    assert pooled["n_photos"] == 7 and not pooled["suppressed"]
    assert pooled["mean_stage"] == pytest.approx(every.mean())
    assert pooled["mean_hi"] - pooled["mean_stage"] == pytest.approx(z * every.std() / np.sqrt(7))
    assert pooled["index"] == pytest.approx(deviation.mean())
    assert pooled["index_hi"] - pooled["index"] == pytest.approx(z * deviation.std() / np.sqrt(7))
    assert sum(pooled[f"p{k}"] for k in range(5)) == pytest.approx(1.0)
    bands = retained_progression(cells, min_n=4, by_age_band=True).set_index("age_band")
    assert bands.loc["3-4", "index"] == pytest.approx(np.mean(stages["3-4"]) - 1.8)
    assert bands.loc["4-5", "suppressed"] and bands.loc["4-5", "index"] is None


def test_a_term_cut_by_retention_keeps_its_photo_figures_and_counts_the_retained():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=6)
    photos = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(6)],
            "unit_id": 1,
            "unit": "Olympia",
            "term": "2025-VT",
            "age_band": "3-4",
            "expected_stage": probs @ np.arange(5),
            **{f"p{k}": probs[:, k] for k in range(5)},
        }
    )
    retained = pd.concat(
        [_cells({"3-4": [1.0, 2.0, 1.5]}), _cells({"3-4": [1.0] * 5}, term="2024-HT")]
    )
    terms = unit_progression(photos, min_n=5, resamples=200, retained=retained)
    assert [(t["term"], t["source"], t["n_photos"], t["n_retained"]) for t in terms] == [
        ("2024-HT", "retained", 5, 5),
        ("2025-VT", "photos", 6, 3),
    ]
    assert terms[1]["mean_stage"]["value"] == pytest.approx(photos["expected_stage"].mean())
    # no spread among the retained photos: a zero-width interval, never a negative variance
    assert terms[0]["mean_stage"] == {"value": 1.0, "lo": 1.0, "hi": 1.0}
