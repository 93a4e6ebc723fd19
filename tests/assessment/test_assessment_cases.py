"""The case library: the shipped cases are valid and complete; broken files name file/field/reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from assessment.cases import (
    DEFAULT_CASE_DIR,
    CaseLibraryError,
    load_case_library,
    validate_case_library,
)
from cli.assess import app
from core.domain import CURRICULUM_AREAS


def _good_case() -> dict:
    return yaml.safe_load((DEFAULT_CASE_DIR / "matte-monster.yaml").read_text(encoding="utf-8"))


def test_shipped_library_is_complete() -> None:
    library = load_case_library()
    assert len(library) >= 10
    assert {case.area for case in library} == set(CURRICULUM_AREAS)
    for case in library:
        assert 2 <= len(case.rubric) <= 4, case.id
        for item in case.rubric:
            assert [lv.level for lv in item.levels] == [0, 1, 2, 3], (case.id, item.id)
        assert case.title_en != case.title_sv
        assert case.materials and all(m.strip() for m in case.materials), case.id
    # Swedish content: the educator's words use Swedish letters somewhere in the library.
    text = " ".join(c.educator_says + c.educator_does for c in library)
    assert any(ch in text for ch in "åäö")
    assert library.max_level("matte-monster", "skapa") == 3


def _write(tmp_path: Path, name: str, content: dict | str) -> Path:
    path = tmp_path / name
    text = content if isinstance(content, str) else yaml.safe_dump(content, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_broken_case_reports_file_field_and_reason(tmp_path: Path) -> None:
    case = _good_case()
    case["area"] = "astrology"
    case["rubric"][1]["levels"][2]["level"] = 5
    broken = _write(tmp_path, "broken.yaml", case)
    with pytest.raises(CaseLibraryError) as info:
        load_case_library(tmp_path)
    by_field = {e.field: e for e in info.value.errors}
    assert set(by_field) == {"area", "rubric.1.levels"}
    assert by_field["area"].file == str(broken)
    assert "astrology" in by_field["area"].reason
    assert "0..3" in by_field["rubric.1.levels"].reason


def test_invalid_yaml_missing_field_and_duplicate_id(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", _good_case())
    _write(tmp_path, "b.yaml", _good_case())  # same id as a.yaml
    missing = _good_case()
    missing["id"] = "other"
    del missing["rubric"][0]["levels"][1]["descriptor"]
    _write(tmp_path, "c.yaml", missing)
    _write(tmp_path, "d.yaml", "id: x\n  title_en: [unclosed\n")
    library, errors = validate_case_library(tmp_path)
    assert len(library) == 1
    found = {(Path(e.file).name, e.field) for e in errors}
    assert ("b.yaml", "id") in found
    assert ("c.yaml", "rubric.0.levels.1.descriptor") in found
    assert ("d.yaml", "") in found
    assert "not valid YAML" in next(e.reason for e in errors if e.file.endswith("d.yaml"))


def test_cli_cases_lists_and_fails_on_broken(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["cases"])
    assert ok.exit_code == 0, ok.output
    assert "matte-rakna-knappar" in ok.output
    assert "valid case(s), 0 problem(s)" in ok.output

    case = _good_case()
    case["age_bands"] = ["7-9"]
    _write(tmp_path, "bad.yaml", case)
    bad = runner.invoke(app, ["cases", "--dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert "bad.yaml" in bad.output and "age_bands" in bad.output and "7-9" in bad.output


def test_calibration_responses_are_shipped_and_checked(tmp_path: Path) -> None:
    library = load_case_library()
    cases = library.calibration_cases()
    assert len(cases) >= 8 and len(set(cases.values())) >= 5
    for cal_id, case_id in cases.items():
        case = library.get(case_id)
        response = next(r for r in case.calibration if r.id == cal_id)
        assert response.text and response.explanation
        assert set(response.reference) == {i.id for i in case.rubric}
    refs = library.calibration_references()
    assert len(refs) == sum(len(library.get(c).rubric) for c in cases.values())

    _write(tmp_path, "a.yaml", _good_case())
    again = _good_case()
    again["id"] = "other"  # a different case reusing a.yaml's calibration ids
    _write(tmp_path, "b.yaml", again)
    broken = _good_case()
    broken["id"] = "third"
    broken["calibration"] = [
        {**broken["calibration"][0], "id": "kal-new", "reference": {"fortsatta": 7}}
    ]
    _write(tmp_path, "c.yaml", broken)
    valid, errors = validate_case_library(tmp_path)
    assert [c.id for c in valid] == ["matte-monster"]
    by_file = {Path(e.file).name: e for e in errors}
    assert set(by_file) == {"b.yaml", "c.yaml"}
    assert by_file["b.yaml"].field == "calibration" and "already used" in by_file["b.yaml"].reason
    assert "outside 0-3" in by_file["c.yaml"].reason


def test_case_without_materials_is_refused(tmp_path: Path) -> None:
    case = _good_case()
    del case["materials"]
    _write(tmp_path, "no-materials.yaml", case)
    with pytest.raises(CaseLibraryError) as info:
        load_case_library(tmp_path)
    assert [e.field for e in info.value.errors] == ["materials"]
