import pandas as pd
import pytest

from profiles.export import EXPORT_COLUMNS, export_profiles, read_profiles_export


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_export_round_trip(tmp_path, profiles, fmt):
    subset = profiles[:24]
    path = tmp_path / f"profiles.{fmt}"
    written = export_profiles(subset, path, format=fmt)
    assert len(written) == 24 * 6  # one row per unit x term x outcome
    back = read_profiles_export(path)
    assert list(back.columns) == list(EXPORT_COLUMNS)
    pd.testing.assert_frame_equal(back, written, check_dtype=False, atol=1e-9)
    assert not list(tmp_path.glob(".*partial"))


def test_export_columns_are_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "profile_columns.md").read_text()
    for column in EXPORT_COLUMNS:
        assert f"`{column}`" in doc or column.startswith("ctx_"), column
    assert "`ctx_<column>`" in doc and "`ctx_<column>_municipality_mean`" in doc


def test_export_keeps_suppressed_rows_with_n_and_rejects_unknown_format(
    tmp_path, synthetic, profiles
):
    table = export_profiles(profiles, tmp_path / "all.parquet", format="parquet")
    suppressed = table[table["suppressed"]]
    assert len(suppressed) > 0 and suppressed["observed"].isna().all()
    assert (suppressed["n"] < 5).all()
    weak = table[(table["unit"] == synthetic.weak_unit) & (table["term"] == synthetic.terms[-1])]
    flagged = weak[weak["development_rank"] == 1]
    assert list(flagged["outcome"]) == [synthetic.weak_area]
    with pytest.raises(ValueError, match="unknown export format"):
        export_profiles(profiles, tmp_path / "x.json", format="json")
    assert not (tmp_path / "x.json").exists()
