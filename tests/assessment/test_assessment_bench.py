"""bench/assessment.py keeps the other sections of BENCHMARKS.md when it writes its own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "assessment.py"


def test_write_section_replaces_only_assessment(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_assessment", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## Vision\nfast\n\n## Assessment\nold\n\n## Profiles\nok\n")
    bench.write_section(target, "## Assessment\n\nnew\n")
    text = target.read_text()
    assert "## Vision\nfast" in text and "## Profiles\nok" in text
    assert "new" in text and "old" not in text
    fresh = tmp_path / "NEW.md"
    bench.write_section(fresh, "## Assessment\n\nnew\n")
    assert fresh.read_text().startswith("# Benchmarks\n\n## Assessment")
