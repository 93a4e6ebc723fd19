"""bench/assessment.py: its section summarises every design, and writing keeps other sections."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "assessment.py"


def _load(name: str, path: Path):  # noqa: ANN202 - a module object
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_design_scores_fit_and_baselines_and_section_lists_all() -> None:
    bench = _load("bench_assessment", BENCH)
    result = bench.one("nested", 3, n_units=8, sheets_per_unit=20)
    assert result["confounded_raters"] == result["n_raters"] > 0
    assert 0 <= result["covered"] <= result["n_units"] == 8
    assert -1 <= result["rater_r_base"] <= 1 and -1 <= result["unit_rho_base"] <= 1
    rows = pd.DataFrame(
        [{"design": d, "seed": 1, **result} for d in bench.LABELS],
    )
    sizes = bench.unequal("shared", 3, n_units=12, sheets_per_unit=30)
    assert {"unit_rho_random", "unit_rho_fixed", "unit_rho_raw", "covered_random"} <= set(sizes)
    assert all(-1 <= sizes[k] <= 1 for k in ("unit_rho_random", "unit_rho_fixed", "rater_r_random"))
    timing = {"design": "shared", **result, "fixed_s": 2 * result["fit_s"], "fixed_nodes": 15}
    text = bench.section(rows, [timing], pd.DataFrame([sizes]))
    for label in bench.LABELS.values():
        assert label in text
    assert "100 000-rating fit" in text and "units of 5-50 sheets" in text
    assert "fixed 15 nodes (`adaptive=False`)" in text and "2.0x" in text


def test_write_section_replaces_only_assessment(tmp_path: Path) -> None:
    common = _load("bench_common", ROOT / "bench" / "common.py")
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## Vision\nfast\n\n## Assessment\nold\n\n## Profiles\nok\n")
    common.write_section("Assessment", "new\n", target)
    text = target.read_text()
    assert "## Vision\nfast" in text and "## Profiles\nok" in text
    assert "new" in text and "old" not in text


def test_write_subsection_replaces_itself_and_survives_the_section_rewrite(tmp_path: Path) -> None:
    common = _load("bench_common", ROOT / "bench" / "common.py")
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## Assessment\nmain\n\n## Profiles\nok\n")
    common.write_subsection("Assessment", "Oracle bounds", "first\n", target)
    common.write_subsection("Assessment", "Oracle bounds", "second\n", target)
    text = target.read_text()
    assert text.count("### Oracle bounds") == 1 and "first" not in text
    assert text.index("main") < text.index("second") < text.index("## Profiles\nok")
    common.write_section("Assessment", "rewritten\n", target, keep=("Oracle bounds",))
    text = target.read_text()
    assert "main" not in text and text.count("### Oracle bounds") == 1
    assert text.index("rewritten") < text.index("second") < text.index("## Profiles\nok")
    common.write_section("Assessment", "plain\n", target)
    assert "### Oracle bounds" not in target.read_text()
