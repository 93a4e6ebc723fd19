"""``spira report method``: the figures (split-half reliability, stability, convergent validity)
from seeded data, and a self-contained HTML page carrying them."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from core.domain import CURRICULUM_AREAS
from profiles.method_report import (
    MethodData,
    method_figures,
    render_html,
    spearman_brown,
    split_half_reliability,
)
from profiles.synthetic import make_synthetic

VOID = {"meta", "br", "hr", "img", "input", "link", "circle", "line"}


class _Checker(HTMLParser):
    """Collects tags, checks nesting, and every attribute that could fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.fetching: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "data") and value:
                self.fetching.append(f"{tag} {name}={value}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _seeded(seed: int = 3) -> tuple[MethodData, pd.Series]:
    syn = make_synthetic(n_units=14, n_terms=2, photos_per_term=25, n_boot=10, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for unit, effect in syn.unit_effect.items():
        for term in syn.terms:
            for area in CURRICULUM_AREAS[:2]:
                for _ in range(10):
                    rows.append((unit, term, area, 2.0 * effect + rng.normal(0, 1.0)))
    sheets = pd.DataFrame(rows, columns=["unit", "term", "area", "ability"])
    raters = pd.DataFrame(
        {
            "rater": ["a", "b", "c"],
            "severity": [-0.4, 0.1, 0.3],
            "infit": [0.9, 1.1, 1.8],
            "outfit": [1.0, 1.2, 1.9],
            "n": [40, 40, 40],
        }
    )
    stage_model = {
        "version": "stage-test",
        "validation": {"status": "synthetic_only", "text": "synthetic drawings only"},
        "out_of_fold": {"qwk": 0.81, "mae": 0.4, "n": 150},
    }
    data = MethodData(photos=syn.photos, sheets=sheets, raters=raters, stage_model=stage_model)
    return data, syn.unit_effect


def test_split_half_reliability_recovers_the_reliability_of_unit_means():
    # 40 units, 20 observations each, true spread 0.5, noise 1: reliability 0.25/(0.25+1/20)
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.5, 40)
    units = np.repeat(np.arange(40), 20)
    values = true[units] + rng.normal(0, 1, len(units))
    rel = split_half_reliability(values, units, min_n=5, seed=1)
    assert rel["n"] == 40
    assert rel["value"] == pytest.approx(0.25 / 0.30, abs=0.08)
    assert rel["lo"] < rel["value"] < rel["hi"]
    # pure noise: no reliability; too few units: none computed
    noise = split_half_reliability(rng.normal(0, 1, len(units)), units, min_n=5, seed=1)
    assert noise["lo"] < 0.3 and noise["value"] < 0.3
    few = split_half_reliability(values[:80], units[:80], min_n=5)
    assert few == {"value": None, "lo": None, "hi": None, "n": 4}
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(-0.6) == -1.0  # 2r/(1+r) = -3 is no correlation
    assert math.isnan(spearman_brown(float("nan")))  # an incomputable resample is no -1


def test_method_figures_from_seeded_data_and_the_page_that_carries_them():
    data, _ = _seeded()
    fig = method_figures(data, seed=0)
    assert fig["terms"] == sorted(set(data.photos["term"]))
    prog = [r for r in fig["reliability"] if r["outcome"] == "progression"]
    assert len(prog) == 2 and all(r["value"] is not None and r["n"] >= 5 for r in prog)
    # both kinds of evidence follow the same unit effects: they converge
    assert all(c["value"] is not None and c["value"] > 0.3 for c in fig["convergent"])
    assert {s["outcome"] for s in fig["samples"]} == {"progression", *CURRICULUM_AREAS[:2]}
    total = sum(s["n_observations"] for s in fig["samples"] if s["outcome"] == "progression")
    assert total == len(data.photos)
    assert fig["assessment_model"]["raters"]["n_misfit"] == 1
    assert any("not been validated on real drawings" in s for s in fig["statements"]["cannot"])

    page = render_html(fig)
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert page.startswith("<!DOCTYPE html>") and not checker.errors and not checker.stack
    assert checker.fetching == []  # no external asset: nothing is fetched
    assert "<script" not in page and "url(" not in page and "@import" not in page
    assert "svg" in checker.tags
    # the figures computed are the figures shown
    for r in prog:
        assert f"{r['value']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] (n = {r['n']})" in page
    for c in fig["convergent"]:
        assert f"{c['value']:.2f} [{c['lo']:.2f}, {c['hi']:.2f}] (n = {c['n']})" in page
    assert "Stage model not validated on real drawings" in page


def _seed_database(session, version: str) -> None:
    """Units, a promoted (registered) stage model, simulated photo estimates and the demo's
    ratings: what the report reads, without images."""
    from cli.demo import PILOT_UNITS, seed_context_and_ratings, seed_structure
    from core.models import Group, ModelVersion, Photo, StageEstimate

    units = seed_structure(session)
    session.add(
        ModelVersion(
            version=version,
            backbone="b",
            path="/nowhere",
            data={},
            params={},
            metrics={},
            code_version="test",
            promoted=True,
        )
    )
    rng = np.random.default_rng(0)
    for unit in units:
        groups = session.query(Group).filter(Group.unit_id == unit.id).all()
        for term, day in (("2026-VT", date(2026, 3, 2)), ("2026-HT", date(2026, 10, 5))):
            for g in groups:
                for k in range(6):
                    p = Photo(
                        sha256=f"{unit.id}-{term}-{g.id}-{k}",
                        content_key="c",
                        thumb_key="t",
                        unit_id=unit.id,
                        group_id=g.id,
                        activity="teckning",
                        age_band=g.age_band,
                        term=term,
                        captured_on=day,
                        status="done",
                        source_format="jpeg",
                        width=10,
                        height=10,
                    )
                    session.add(p)
                    session.flush()
                    probs = rng.dirichlet(np.ones(5) * 2)
                    e = float(probs @ np.arange(5)) + PILOT_UNITS[unit.name]
                    session.add(
                        StageEstimate(
                            photo_id=p.id,
                            model_version=version,
                            p0=probs[0],
                            p1=probs[1],
                            p2=probs[2],
                            p3=probs[3],
                            p4=probs[4],
                            expected_stage=min(max(e, 0.0), 4.0),
                        )
                    )
    seed_context_and_ratings(session, units, seed=7)


def test_spira_report_method_writes_a_self_contained_page_from_the_database(spira_env, tmp_path):
    from cli.main import app
    from core.db import migrate, session_factory

    migrate()
    with session_factory()() as session:
        _seed_database(session, "stage-report-test")
        session.commit()
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "method", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "method.html").read_text()
    fig = json.loads((out / "method.json").read_text())
    assert fig["stage_model"]["version"] == "stage-report-test"
    assert sum(s["n_observations"] for s in fig["samples"] if s["outcome"] == "progression") == 192
    assert fig["assessment_model"]["raters"]["n"] > 0
    rel = [r for r in fig["reliability"] if r["outcome"] == "progression"]
    assert rel and all(r["n"] == 8 for r in rel)
    for r in rel:
        assert f"{r['value']:.2f}" in page
    checker = _Checker()
    checker.feed(page)
    assert checker.fetching == [] and not checker.errors
    assert "not validated on real drawings" in page
    assert re.search(r"No stored ratings|rubric items", page)


def test_the_report_adds_the_cross_fitted_drawing_age_gap_when_a_model_exists(
    spira_env, tmp_path, monkeypatch
):
    from core.config import get_settings
    from core.db import migrate, session_factory
    from profiles.method_report import method_data
    from tests.training.test_unit_age import _store
    from training.unit_age import train_from_uploads

    monkeypatch.setenv("SPIRA_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    migrate()
    with session_factory()() as session:
        _store(session, "simnet@00000000")
        version = train_from_uploads(session, k=4, candidates=("ridge",))
        session.commit()
        data = method_data(session, min_n=5)
    assert len(data.gaps) == 8 * 16 and data.drawing_age["version"] == version
    fig = method_figures(data, seed=0)
    rel = [r for r in fig["reliability"] if r["outcome"] == "drawing_age_gap"]
    assert [r["n"] for r in rel] == [8, 8] and all(r["value"] is not None for r in rel)
    page = render_html(fig)
    assert "Drawing-age gap (cross-fitted, years)" in page and version in page
    assert "no: not validated on real drawings" in page
