"""The profile API's ``drawing_age_gap``: cross-fitted per term, labelled until validated."""

from __future__ import annotations

import shutil

from tests.api.conftest import token
from tests.training.test_unit_age import TERMS, _store


def test_profile_answer_carries_the_cross_fitted_drawing_age_gap_labelled_not_validated(
    api, tmp_path, monkeypatch
):
    from core.config import get_settings
    from profiles.service import profile_service
    from training.unit_age import train_from_uploads

    # the cross-fit goes to a models folder of its own (the session's is shared with other tests)
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    with api.factory() as session:  # type: ignore[attr-defined]
        units, _ = _store(session, "simnet@00000000")
        session.commit()
    # the profile cache is process-wide and keyed by the data's counts, which the SQLite and
    # PostgreSQL runs of this test share: start from no cached build
    profile_service.forget()
    olympia = next(u for u in units if u.name == "Olympia")
    url = f"/api/units/{olympia.id}/profile"
    before = api.get(url, headers=token(api, "boss")).json()["drawing_age_gap"]
    assert before["status"] == "unavailable" and "--from-uploads" in before["reason"]
    with api.factory() as session:  # type: ignore[attr-defined]
        version = train_from_uploads(session, k=4, candidates=("ridge",))
        session.commit()
    # registering the model changes what the cached answer rests on: it is rebuilt
    r = api.get(url, headers=token(api, "boss"))
    assert r.status_code == 200, r.text
    gap = r.json()["drawing_age_gap"]
    assert gap["status"] == "cross_fitted" and gap["model_version"] == version
    assert gap["validated_on_real_drawings"] is False
    assert gap["validation_label"] == "not validated on real drawings"
    assert gap["measure_unit"] == "years" and gap["min_n"] == get_settings().min_group_size
    assert [t["term"] for t in gap["terms"]] == list(TERMS)
    for t in gap["terms"]:
        assert t["n_photos"] == 8 and t["suppressed"] is False
        assert t["gap"]["lo"] <= t["gap"]["value"] <= t["gap"]["hi"]
    # a fold head's files lost: the profile still answers, saying what to do, and names no
    # server path (the error with the model folder goes to the log only)
    (fold_dir,) = [p for p in (tmp_path / "models").rglob("fold-0") if p.is_dir()]
    shutil.rmtree(fold_dir)
    profile_service.forget()
    broken = api.get(url, headers=token(api, "boss"))
    assert broken.status_code == 200, broken.text
    lost = broken.json()["drawing_age_gap"]
    assert lost["status"] == "unavailable" and "--from-uploads" in lost["reason"]
    assert str(tmp_path) not in lost["reason"] and "/" not in lost["reason"]
