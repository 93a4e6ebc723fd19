import pandas as pd
import pytest

from profiles.context import (
    CONTEXT_COLUMNS,
    REFERENCES,
    ContextFileError,
    municipality_means,
    read_context_file,
)

HEADER = "unit,term," + ",".join(CONTEXT_COLUMNS)


def _write(tmp_path, lines, name="context.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_valid_csv_with_percentages_is_read_as_fractions(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER,
            "Olympia,2025-HT,60,4,15,5.2,41,12,55,20",
            "Dalhem,2025-HT,45,3,15,4.8,38.5,10,40,35",
            "Olympia,2025-VT,58,4,14.5,5.0,40,11,54,21",
        ],
    )
    table = read_context_file(path)
    assert list(table["unit"]) == ["Dalhem", "Olympia", "Olympia"]
    assert list(table["term"]) == ["2025-HT", "2025-VT", "2025-HT"]
    olympia = table[(table["unit"] == "Olympia") & (table["term"] == "2025-HT")].iloc[0]
    assert olympia["share_trained_staff"] == pytest.approx(0.41)
    assert olympia["children_enrolled"] == 60
    means = municipality_means(table)
    assert means.loc["2025-HT", "children_per_fte"] == pytest.approx(5.0)
    assert means.loc["2025-HT", "n_units"] == 2


def test_semicolon_csv_with_decimal_commas_and_percent_signs(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER.replace(",", ";").upper(),
            "Laröd;2024-HT;30;2;15;5,1;41 %;10 %;50 %;25 %",
        ],
    )
    row = read_context_file(path).iloc[0]
    assert row["children_per_fte"] == pytest.approx(5.1)
    assert row["staff_turnover"] == pytest.approx(0.10)


def test_every_problem_is_reported_with_row_column_reason_and_nothing_imported(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER,
            "Olympia,2025-HT,60,4,15,5.2,0.41,0.12,0.55,0.2",
            "Dalhem,autumn 2025,45,3,15,4.8,0.38,0.1,0.4,0.35",
            "Laröd,2025-HT,-3,2.5,15,55,140,0.1,0.4,",
            "Olympia,2025-HT,60,4,15,5.2,0.41,0.12,0.55,0.2",
            "Öknen,2025-HT,200,2,15,5,0.4,0.1,abc,0.2",
        ],
    )
    with pytest.raises(ContextFileError) as info:
        read_context_file(path)
    found = {(p.row, p.column) for p in info.value.problems}
    assert (3, "term") in found
    assert (4, "children_enrolled") in found  # negative
    assert (4, "n_groups") in found  # not whole
    assert (4, "children_per_fte") in found  # implausible
    assert (4, "share_trained_staff") in found  # 140 % is not a share
    # 140 makes the column percentages, so the fractions on the other rows are ambiguous.
    assert (2, "share_trained_staff") in found
    assert (4, "share_multilingual") in found  # missing
    assert (5, None) in found  # duplicate of row 2
    assert (6, "socioeconomic_index") in found
    assert (6, "mean_group_size") in found  # 200 children in 2 groups is not 15 per group
    reasons = {(p.row, p.column): p.reason for p in info.value.problems}
    assert "already given on row 2" in reasons[(5, None)]
    assert "missing" in reasons[(4, "share_multilingual")]
    assert "looks like a fraction" in reasons[(2, "share_trained_staff")]
    assert "row 3" in str(info.value) and "nothing was imported" in str(info.value)


def test_missing_columns_and_unsupported_files(tmp_path):
    path = _write(tmp_path, ["unit,term,children_enrolled", "Olympia,2025-HT,60"])
    with pytest.raises(ContextFileError) as info:
        read_context_file(path)
    missing = {p.column for p in info.value.problems}
    assert missing == set(CONTEXT_COLUMNS) - {"children_enrolled"}
    with pytest.raises(ContextFileError, match="unsupported"):
        read_context_file(_write(tmp_path, ["x"], name="context.json"))


def test_xlsx_is_read_like_csv(tmp_path):
    frame = pd.DataFrame(
        [["Olympia", "2025-HT", 60, 4, 15, 5.2, 0.41, 0.12, 0.55, 0.2]],
        columns=["unit", "term", *CONTEXT_COLUMNS],
    )
    path = tmp_path / "context.xlsx"
    frame.to_excel(path, index=False)
    table = read_context_file(path)
    assert table.iloc[0]["share_multilingual"] == pytest.approx(0.2)
    frame["children_per_fte"] = frame["children_per_fte"].astype(object)
    frame.loc[0, "children_per_fte"] = "many"
    frame.to_excel(path, index=False)
    with pytest.raises(ContextFileError) as info:
        read_context_file(path)
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "children_per_fte")]


def test_national_references_carry_values_and_sources():
    assert REFERENCES["children_per_fte"].value == 5.1
    assert REFERENCES["share_trained_staff"].value == 0.41
    size = REFERENCES["mean_group_size"]
    assert size.value == 15.3
    assert [(b.low, b.high) for b in size.benchmarks] == [(6, 12), (9, 15)]
    assert all("Skolverket" in r.source for r in REFERENCES.values())
