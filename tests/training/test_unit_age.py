"""Cross-fitted unit drawing-age gap: unit-folds, no unit scored by a head that saw it, the
``spira train --from-uploads`` job and the figure per term in the profile API's domain code."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from typer.testing import CliRunner

from training.unit_age import (
    CrossFit,
    age_band_midpoint,
    fit_crossfit,
    unit_folds,
)
from vision.features import FEATURE_NAMES

BANDS = ("2-3", "4-5")
TERMS = ("2026-VT", "2026-HT")
DIM = 24


def _simulated_units(n_units: int, per_cell: int, seed: int, effects=None, signature=2.0):
    """Photos of units whose drawings look ``effect`` years older than the children's ages; the
    embedding also carries a unit-specific signature a model could memorise (a unit id)."""
    rng = np.random.default_rng(seed)
    effects = rng.uniform(-0.8, 0.8, n_units) if effects is None else np.asarray(effects)
    direction = np.random.default_rng(99).normal(0, 1, DIM)
    signatures = rng.normal(0, 1, (n_units, DIM))
    emb, feats, ages, units, terms, bands = [], [], [], [], [], []
    for u in range(n_units):
        for term in TERMS:
            for band in BANDS:
                lo = float(band.split("-")[0])
                for _ in range(per_cell):
                    latent = lo + rng.uniform(0, 1) + effects[u] + rng.normal(0, 0.4)
                    emb.append(
                        rng.normal(0, 1, DIM) + 0.6 * latent * direction + signature * signatures[u]
                    )
                    f = rng.normal(0, 0.5, len(FEATURE_NAMES))
                    f[0] += latent
                    feats.append(f)
                    ages.append(age_band_midpoint(band))
                    units.append(f"U{u:02d}")
                    terms.append(term)
                    bands.append(band)
    return (
        np.array(emb),
        np.array(feats),
        np.array(ages),
        np.array(units),
        np.array(terms),
        np.array(bands),
        effects,
    )


def _X(emb, feats):
    from vision.model import stage_inputs

    return stage_inputs(emb, feats)


def test_age_band_midpoints_and_unknown_band():
    assert age_band_midpoint("3-4") == 3.5
    with pytest.raises(ValueError, match="not one of"):
        age_band_midpoint("9-10")


def test_units_are_dealt_evenly_into_folds_and_reproducibly():
    units = np.array([f"U{i}" for i in range(11)] * 3)
    folds = unit_folds(units, 5, seed=3)
    assert sorted(folds) == sorted(set(units.tolist()))
    counts = np.bincount(list(folds.values()))
    assert len(counts) == 5 and counts.max() - counts.min() <= 1
    assert unit_folds(units, 5, seed=3) == folds


def test_no_unit_is_scored_by_a_head_that_saw_its_photos(tmp_path):
    emb, feats, ages, units, _, _, effects = _simulated_units(10, 5, seed=0)
    cf = fit_crossfit(
        _X(emb, feats), ages, units, n_features=feats.shape[1], k=5, candidates=("ridge",)
    )
    assert cf.k == 5
    for unit, fold in cf.fold_of_unit.items():
        assert unit not in cf.train_units[fold]
        assert set(cf.train_units[fold]) == {u for u, f in cf.fold_of_unit.items() if f != fold}
    # Behaviour: each unit's photos get exactly the gaps of the head that did not see it.
    X = _X(emb, feats)
    gaps = cf.gaps(X, ages, units)
    for unit, fold in cf.fold_of_unit.items():
        rows = units == unit
        head = cf.heads[fold]
        expected = head.corrected(head.predict(X[rows]), ages[rows]) - ages[rows]
        assert np.allclose(gaps[rows], expected)
    # saved and loaded, it gives the same gaps
    cf.save(tmp_path)
    again = CrossFit.load(tmp_path)
    assert again is not None and again.fold_of_unit == cf.fold_of_unit
    assert np.allclose(again.gaps(X, ages, units), gaps)
    assert CrossFit.load(tmp_path / "nothing") is None


def test_cross_fitted_unit_gaps_recover_unit_effects_that_an_in_sample_model_absorbs():
    effects = np.linspace(-0.9, 0.9, 12)
    emb, feats, ages, units, _, _, _ = _simulated_units(12, 6, seed=1, effects=effects)
    X = _X(emb, feats)
    cf = fit_crossfit(X, ages, units, n_features=feats.shape[1], k=4, candidates=("ridge",))
    gaps = cf.gaps(X, ages, units)
    names = [f"U{u:02d}" for u in range(12)]
    crossfit_unit = np.array([gaps[units == n].mean() for n in names])
    # the same head fitted on every unit (not cross-fitted) learns each unit's signature
    from training.age import fit_age_head

    in_sample = fit_age_head(X, ages, units, n_features=feats.shape[1], candidates=("ridge",))
    raw = in_sample.head.predict(X)
    in_gap = in_sample.head.corrected(raw, ages) - ages
    in_unit = np.array([in_gap[units == n].mean() for n in names])
    r = np.corrcoef(crossfit_unit, effects)[0, 1]
    assert r > 0.6  # (0.72 at this seed: 24 photos per unit, a noisy embedding)
    slope_cross = np.polyfit(effects, crossfit_unit, 1)[0]
    slope_in = np.polyfit(effects, in_unit, 1)[0]
    # the in-sample model learns each unit's signature and shrinks its gap (0.53 vs 0.17 here)
    assert slope_cross > 2 * slope_in and slope_cross > slope_in + 0.2
    # the cross-fitted gap does not depend on the band (bias corrected on held-out units)
    assert abs(cf.metrics["gap_age_r_corrected"]) < 0.2
    assert cf.metrics["n_units"] == 12 and cf.metrics["k"] == 4


def test_every_age_head_fits_on_age_band_midpoints_taking_few_values():
    # ordinal bins at quantiles of two distinct ages used to leave empty bins (NaN centres)
    from training.age import fit_age_head

    emb, feats, ages, units, *_ = _simulated_units(6, 3, seed=5)
    assert len(set(ages)) == 2
    fit = fit_age_head(
        _X(emb, feats), ages, units, n_features=feats.shape[1], candidates=("ordinal", "ridge")
    )
    assert np.isfinite(fit.comparison["ordinal"]["mae"]) and fit.metrics["spearman"] > 0.3


def test_cross_fitting_refuses_too_few_units():
    emb, feats, ages, units, *_ = _simulated_units(2, 4, seed=2)
    with pytest.raises(ValueError, match="at least 3 units"):
        fit_crossfit(_X(emb, feats), ages, units, n_features=feats.shape[1])


# ---- stored uploads: spira train --from-uploads and the unit figure ---------------------------


def _store(session, backbone_version: str, *, dim: int = DIM, n_units: int = 8, per_cell=4):
    """Processed photos of the demo's units with simulated stored embeddings (no images)."""
    from sqlalchemy import select

    from cli.demo import seed_structure
    from core.models import Embedding, Group, Photo

    units = seed_structure(session)[:n_units]
    emb, feats, ages, _, terms, bands, effects = _simulated_units(
        len(units), per_cell, seed=4, effects=np.linspace(-0.8, 0.8, len(units)), signature=0.3
    )
    if dim != DIM:
        emb = np.concatenate([emb, np.zeros((len(emb), dim - DIM))], axis=1)
    per_unit = len(emb) // len(units)
    for i in range(len(emb)):
        unit = units[i // per_unit]
        group = session.scalar(
            select(Group).where(Group.unit_id == unit.id, Group.age_band == bands[i])
        )
        photo = Photo(
            sha256=f"{i:064d}",
            content_key=f"c{i}",
            thumb_key=f"t{i}",
            unit_id=unit.id,
            group_id=group.id,
            activity="teckning",
            age_band=bands[i],
            term=terms[i],
            captured_on=date(2026, 3 if terms[i].endswith("VT") else 10, 1),
            status="done",
            source_format="jpeg",
            width=100,
            height=100,
        )
        session.add(photo)
        session.flush()
        session.add(
            Embedding(
                photo_id=photo.id,
                model_version=backbone_version,
                dim=dim,
                vector=emb[i].astype("<f4").tobytes(),
                features={n: float(v) for n, v in zip(FEATURE_NAMES, feats[i], strict=True)},
            )
        )
    session.flush()
    return units, effects


def test_train_from_uploads_registers_a_cross_fitted_model_and_units_get_gaps_per_term(
    spira_env, tmp_path, monkeypatch
):
    from core.db import migrate, session_factory
    from profiles.drawing_age import unit_drawing_age_gap
    from training.unit_age import latest_crossfit_model, train_from_uploads

    # a models folder of its own: the session's shared one holds other tests' models
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(tmp_path / "models"))
    from core.config import get_settings

    get_settings.cache_clear()
    migrate()
    factory = session_factory()
    with factory() as session:
        units, effects = _store(session, "simnet@00000000")
        session.commit()
        # nothing trained yet: a clear "unavailable" with what to run
        before = unit_drawing_age_gap(session, units[0].id, min_n=5)
        assert before.status == "unavailable" and "--from-uploads" in (before.reason or "")
        version = train_from_uploads(session, k=4, candidates=("ridge",))
        session.commit()
        meta = latest_crossfit_model("simnet@00000000")
        assert meta is not None and meta["version"] == version
        assert meta["data"]["source"] == "uploads" and meta["metrics"]["crossfit"]["k"] == 4
        gaps = [unit_drawing_age_gap(session, u.id, min_n=5, resamples=200) for u in units]
        # a unit with one photo per term: suppressed, n kept
        few = unit_drawing_age_gap(session, units[0].id, min_n=100, resamples=50)
    for g in gaps:
        assert g.status == "cross_fitted" and g.model_version == version
        assert not g.validated_on_real_drawings
        assert g.validation_label == "not validated on real drawings"
        assert "never on this unit's photos" in (g.scored_by or "")
        assert [t.term for t in g.terms] == list(TERMS)
        for t in g.terms:
            assert t.n_photos == 8 and not t.suppressed and t.gap is not None
            assert t.gap.lo <= t.gap.value <= t.gap.hi
    means = [np.mean([t.gap.value for t in g.terms]) for g in gaps]  # type: ignore[union-attr]
    assert np.corrcoef(means, effects)[0, 1] > 0.6  # 0.83 in the same simulation without a database
    assert all(t.suppressed and t.gap is None and t.n_photos == 8 for t in few.terms)


def test_spira_train_from_uploads_refuses_without_stored_photos(spira_env):
    from cli.main import app

    result = CliRunner().invoke(app, ["train", "--from-uploads"])
    assert result.exit_code == 2
    assert "no processed photo" in result.output


def test_the_promoted_synthetic_model_scores_units_when_no_cross_fit_exists(
    spira_env, trained_model
):
    from core.db import migrate, session_factory
    from profiles.drawing_age import unit_drawing_age_gap
    from training.model_files import load_model

    model = load_model(trained_model)
    assert model.age_head is not None
    dim = int(model.age_head.n_features_in_) - len(FEATURE_NAMES)
    migrate()
    with session_factory()() as session:
        units, _ = _store(session, model.backbone_version, dim=dim, n_units=3, per_cell=3)
        session.commit()
        g = unit_drawing_age_gap(session, units[1].id, min_n=5, resamples=100)
    assert g.status == "not_trained_on_units" and g.model_version == trained_model
    assert g.validation_label == "not validated on real drawings"
    assert [t.n_photos for t in g.terms] == [6, 6] and all(t.gap is not None for t in g.terms)
