"""The municipality's own quality indicators (issue 19): the indicator dictionary, validation of the
declared columns of a context file, the cross-validated use in the contextual model, the profile's
comparison with the municipality mean, and the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiles.context import (
    CONTEXT_COLUMNS,
    ContextFileError,
    Indicator,
    indicator_column,
    read_context_file,
    validate_context,
)
from profiles.export import EXPORT_COLUMNS, export_profiles, read_profiles_export
from profiles.indicators import (
    IndicatorDictionaryError,
    read_indicator_dictionary,
    validate_indicator_dictionary,
)
from profiles.profile import build_profiles, fit_context_models

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
DICT_HEADER = "key,label_sv,label_en,unit,direction,reference"
ROW = "Olympia,2026-HT,60,4,15,5.2,0.41,0.12,0.55,0.2"
HEADER = "unit,term," + ",".join(CONTEXT_COLUMNS)


def _write(tmp_path, lines, name):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dictionary(tmp_path, *rows):
    return read_indicator_dictionary(_write(tmp_path, [DICT_HEADER + ",min,max", *rows], "d.csv"))


def test_the_shipped_example_dictionary_and_context_file_are_valid():
    indicators = read_indicator_dictionary(EXAMPLES / "indicators.example.csv")
    keys = [i.key for i in indicators]
    assert keys == [
        "staff_competence_development",
        "documented_quality_work",
        "parent_satisfaction",
        "staff_sick_leave",
    ]
    assert {i.direction for i in indicators} == {"higher_better", "lower_better"}
    assert all(i.reference.startswith("EXAMPLE") for i in indicators)  # marked as an example
    table = read_context_file(EXAMPLES / "context.example.csv", indicators)
    assert len(table) == 8
    for key in keys:
        assert table[indicator_column(key)].notna().all()
    # the same file without the dictionary: each indicator column is an error naming it
    with pytest.raises(ContextFileError) as info:
        read_context_file(EXAMPLES / "context.example.csv")
    assert {p.column for p in info.value.problems} == set(keys)


def test_an_undeclared_column_is_an_error_naming_it_and_declared_ones_are_read(tmp_path):
    ind = _dictionary(tmp_path, "parent_satisfaction,Nöjda,Satisfied,percent,higher_better,,0,100")
    path = _write(
        tmp_path, [HEADER + ",Parent Satisfaction,Outdoor Hours", ROW + ",85 %,12"], "c.csv"
    )
    with pytest.raises(ContextFileError) as info:
        read_context_file(path, ind)
    assert [(p.row, p.column) for p in info.value.problems] == [(None, "outdoor_hours")]
    message = str(info.value)
    assert "'outdoor_hours'" in message and "nor a declared indicator" in message
    assert "--indicators" in message and "nothing was imported" in message
    # declared, with an empty cell (not measured) on another row; "85 %" is stored as 85
    path = _write(
        tmp_path,
        [HEADER + ",parent_satisfaction", ROW + ",85 %", ROW.replace("Olympia", "Dalhem") + ","],
        "c.csv",
    )
    table = read_context_file(path, ind)
    values = dict(zip(table["unit"], table[indicator_column("parent_satisfaction")], strict=True))
    assert values["Olympia"] == 85 and np.isnan(values["Dalhem"])


def test_bad_indicator_values_are_reported_with_row_and_column_and_nothing_is_returned(tmp_path):
    ind = _dictionary(
        tmp_path,
        "parent_satisfaction,Nöjda,Satisfied,percent,higher_better,,0,100",
        "quality_work,Kvalitetsarbete,Quality work,score 0-3,higher_better,,0,3",
    )
    path = _write(
        tmp_path,
        [
            HEADER + ",parent_satisfaction,quality_work",
            ROW + ",85,2",
            ROW.replace("Olympia", "Dalhem") + ",many,2",
            ROW.replace("Olympia", "Laröd") + ",120,2",
            ROW.replace("Olympia", "Öknen") + ",80,-1",
        ],
        "c.csv",
    )
    with pytest.raises(ContextFileError) as info:
        read_context_file(path, ind)
    reasons = {(p.row, p.column): p.reason for p in info.value.problems}
    assert set(reasons) == {
        (3, "parent_satisfaction"),
        (4, "parent_satisfaction"),
        (5, "quality_work"),
    }
    assert "'many' is not a number" in reasons[(3, "parent_satisfaction")]
    assert "120 is outside the indicator's range 0 to 100" in reasons[(4, "parent_satisfaction")]
    assert "-1 is outside" in reasons[(5, "quality_work")]
    # built-in and indicator problems are reported together
    raw = pd.read_csv(path, dtype=str)
    raw.loc[0, "children_per_fte"] = "55"
    with pytest.raises(ContextFileError) as info:
        validate_context(raw, ind)
    assert (2, "children_per_fte") in {(p.row, p.column) for p in info.value.problems}


def test_dictionary_errors_name_row_column_and_reason(tmp_path):
    path = _write(
        tmp_path,
        [
            DICT_HEADER,
            "parent_satisfaction,Nöjda,Satisfied,percent,higher_better,survey",
            "parent_satisfaction,Nöjda igen,Satisfied again,percent,higher_better,",
            "share_trained_staff,Behörighet,Trained staff,share,higher_better,",
            "quality_work,Kvalitet,Quality,score,better,",
            "Bad Key!,X,X,score,neutral,",
            "sick_leave,,Sick leave,share,lower_better,",
            "outdoor,Ute,Out\x07door,hours,neutral,",
        ],
        "d.csv",
    )
    with pytest.raises(IndicatorDictionaryError) as info:
        read_indicator_dictionary(path)
    reasons = {(p.row, p.column): p.reason for p in info.value.problems}
    assert "already declared on row 2" in reasons[(3, "key")]
    assert "clashes with the built-in context column" in reasons[(4, "key")]
    assert "higher_better, lower_better, neutral" in reasons[(5, "direction")]
    assert "not a key" in reasons[(6, "key")]
    assert "missing label_sv" in reasons[(7, "label_sv")]
    assert "U+0007" in reasons[(8, "label_en")]
    assert str(info.value).startswith("indicator dictionary has 6 problem(s); nothing was imported")
    with pytest.raises(IndicatorDictionaryError, match="'direction': required column is missing"):
        validate_indicator_dictionary(pd.DataFrame({"key": ["a"], "label_sv": ["A"]}))
    with pytest.raises(IndicatorDictionaryError, match="'weight': is not a dictionary column"):
        validate_indicator_dictionary(
            pd.DataFrame(
                [["a", "A", "A", "u", "neutral", "", "2"]],
                columns=[*DICT_HEADER.split(","), "weight"],
            )
        )


def _with_indicators(synthetic, seed: int = 0) -> pd.DataFrame:
    """The synthetic context with an indicator that tracks the units' true progression deviation
    (a planted signal) and one of pure noise."""
    rng = np.random.default_rng(seed)
    truth = synthetic.truth[synthetic.truth["outcome"] == "progression"]
    ctx = synthetic.context.merge(
        truth[["unit", "term", "true_deviation"]], on=["unit", "term"], how="left"
    )
    signal = ctx["true_deviation"]
    ctx[indicator_column("quality_work")] = 2 + signal + rng.normal(0, 0.5 * signal.std(), len(ctx))
    ctx[indicator_column("noise")] = rng.normal(0, 1, len(ctx))
    return ctx.drop(columns="true_deviation")


INDICATORS = [
    Indicator("quality_work", "Kvalitetsarbete", "Quality work", "score", "higher_better"),
    Indicator("noise", "Brus", "Noise", "score", "lower_better"),
]


@pytest.fixture(scope="module")
def with_indicators(synthetic):
    ctx = _with_indicators(synthetic)
    models = fit_context_models(synthetic.progression, synthetic.ability, ctx)
    profiles = build_profiles(
        synthetic.progression, synthetic.ability, ctx, models=models, indicators=INDICATORS
    )
    return ctx, models, profiles


def test_the_model_uses_an_indicator_only_when_it_helps_in_cross_validation(with_indicators):
    ctx, models, profiles = with_indicators
    progression = models["progression"]
    assert progression.features_[-1] == indicator_column("quality_work")
    assert indicator_column("noise") not in progression.features_
    report = {r.feature: r for r in progression.selection_}
    assert report[indicator_column("quality_work")].used
    assert report[indicator_column("quality_work")].cv_gain > 0.2
    assert not report[indicator_column("noise")].used
    assert report[indicator_column("noise")].cv_gain < 0.02
    # the profile reports the selection per outcome, and each indicator which models use it
    selection = {s.outcome: s for s in profiles[0].indicator_selection}
    assert selection["progression"].used == ["quality_work"]
    tried = {t["key"]: t for t in selection["progression"].tried}
    assert tried["noise"]["used"] is False and "cross-validation" in tried["noise"]["reason"]
    values = {i.key: i for i in profiles[0].indicators}
    assert "progression" in values["quality_work"].used_by_model
    assert "progression" not in values["noise"].used_by_model


def test_indicators_are_compared_with_the_municipality_mean(with_indicators):
    ctx, _, profiles = with_indicators
    p = profiles[-1]
    term_rows = ctx[ctx["term"] == p.term]
    own = term_rows[term_rows["unit"] == p.unit].iloc[0]
    values = {i.key: i for i in p.indicators}
    q = values["quality_work"]
    assert (q.label_sv, q.label_en, q.measure_unit, q.direction) == (
        "Kvalitetsarbete",
        "Quality work",
        "score",
        "higher_better",
    )
    col = indicator_column("quality_work")
    assert q.value == pytest.approx(own[col])
    assert q.municipality_mean == pytest.approx(term_rows[col].mean())
    assert q.municipality_sd == pytest.approx(term_rows[col].std())
    assert q.municipality_n_units == len(term_rows)
    assert q.difference == pytest.approx(own[col] - term_rows[col].mean())
    assert q.favourable == (q.difference > 0)  # higher is better
    noise = values["noise"]
    assert noise.favourable == (noise.difference < 0)  # lower is better


def test_the_export_carries_indicators_and_the_indicators_each_model_used(
    tmp_path, with_indicators
):
    _, _, profiles = with_indicators
    subset = [p for p in profiles if p.unit in {profiles[0].unit, profiles[-1].unit}]
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"p.{fmt}"
        written = export_profiles(subset, path, format=fmt)
        back = read_profiles_export(path)
        indicator_cols = [
            f"indicator_{k}{s}"
            for k in ("noise", "quality_work")
            for s in ("", "_municipality_mean", "_municipality_n_units")
        ]
        assert list(back.columns) == [*EXPORT_COLUMNS, *indicator_cols]
        pd.testing.assert_frame_equal(back, written, check_dtype=False, atol=1e-9)
    first = written[(written["unit"] == subset[0].unit) & (written["term"] == subset[0].term)]
    row = first[first["outcome"] == "progression"].iloc[0]
    value = next(i for i in subset[0].indicators if i.key == "quality_work")
    assert row["indicator_quality_work"] == pytest.approx(value.value)
    assert row["indicator_quality_work_municipality_n_units"] == value.municipality_n_units
    assert row["model_indicators"] == "quality_work"


def test_export_indicator_and_measure_columns_are_documented():
    doc = (EXAMPLES.parent / "profile_columns.md").read_text(encoding="utf-8")
    for column in EXPORT_COLUMNS:
        assert f"`{column}`" in doc or column.startswith("ctx_"), column
    for pattern in ("indicator_<key>", "indicator_<key>_municipality_mean"):
        assert f"`{pattern}`" in doc
    assert "indicators.example.csv" in doc and "higher_better" in doc


def test_what_if_skips_a_model_whose_indicator_the_unit_has_not_measured(with_indicators):
    from profiles.profile import what_if

    ctx, models, _ = with_indicators
    row = ctx.iloc[0].to_dict()
    answered = {r.outcome for r in what_if(models, row, {"children_per_fte": -0.5})}
    assert "progression" in answered
    row[indicator_column("quality_work")] = float("nan")  # not measured for this unit and term
    uses_it = {o for o, m in models.items() if indicator_column("quality_work") in m.features_}
    answered = {r.outcome for r in what_if(models, row, {"children_per_fte": -0.5})}
    assert "progression" in uses_it and answered == set(models) - uses_it


def test_in_a_small_municipality_noise_indicators_are_rarely_used():
    """Eight base columns and ten units: noise lowers the CV error by 2 % or more by chance often;
    the shuffle check keeps such indicators out (what the pilot's eight units need)."""
    from profiles.synthetic import make_synthetic

    used = tried = shuffled_out = 0
    for seed in range(5):
        small = make_synthetic(n_units=10, n_terms=2, n_boot=50, seed=seed)
        rng = np.random.default_rng(seed)
        ctx = small.context.copy()
        for key in ("a", "b", "c"):
            ctx[indicator_column(key)] = rng.normal(0, 1, len(ctx))
        for model in fit_context_models(small.progression, small.ability, ctx).values():
            for r in model.selection_:
                tried += 1
                used += r.used
                shuffled_out += "random shuffles" in r.reason
    assert tried >= 60
    assert used <= 0.05 * tried, (used, tried)
    assert shuffled_out >= 3  # noise that passed the 2 % rule, caught by the shuffles
