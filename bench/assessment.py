"""Benchmark: fit the many-facet partial credit model to 100 000 simulated ratings.

Design: 5 000 sheets in 40 units, 10 cases x 4 rubric items (40 items, levels 0-3), 60 raters,
5 raters per sheet (home rater + moderators). Prints the fit time and how well the known
parameters are recovered. ``--write`` puts the result in the "## Assessment" section of
BENCHMARKS.md (other sections are kept). Target: <= 10 s on 2 CPU cores.

    python bench/assessment.py [--write] [--benchmarks PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assessment.model import ManyFacetPCM  # noqa: E402
from assessment.synthetic import simulate_ratings  # noqa: E402
from assessment.units import unit_abilities  # noqa: E402

DEFAULT_BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run() -> dict[str, float | int | str | bool]:
    """Simulate, fit and measure; returns the figures reported."""
    t0 = time.perf_counter()
    ratings, truth = simulate_ratings(
        n_units=40,
        n_sheets=5000,
        n_cases=10,
        items_per_case=4,
        n_raters=60,
        raters_per_sheet=5,
        missing_rate=0.0,
        seed=2026,
    )
    simulate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = ManyFacetPCM().fit(ratings)
    fit_s = time.perf_counter() - t0

    est = np.concatenate(
        [model.thresholds_[i, : len(lv) - 1] for i, lv in enumerate(model.item_levels_)]
    )
    true = np.concatenate([truth.thresholds[key] for key in model.item_keys_])
    severity_true = np.array([truth.severity[r] for r in model.raters_])
    units = [u for u in unit_abilities(model.sheet_table()) if u.ability is not None]
    unit_rho = spearmanr([u.ability for u in units], [truth.unit_effect[u.unit] for u in units])[0]
    return {
        "ratings": len(ratings),
        "sheets": len(model.sheets_),
        "items": len(model.item_keys_),
        "raters": len(model.raters_),
        "simulate_s": simulate_s,
        "fit_s": fit_s,
        "iterations": model.n_iter_,
        "converged": bool(model.converged_),
        "threshold_r": float(np.corrcoef(est, true)[0, 1]),
        "severity_r": float(np.corrcoef(model.severity_, severity_true)[0, 1]),
        "unit_spearman": float(unit_rho),
    }


def section(result: dict[str, float | int | str | bool]) -> str:
    """The "## Assessment" Markdown section for BENCHMARKS.md."""
    cores = os.cpu_count()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return (
        "## Assessment\n\n"
        f"Many-facet partial credit model (`assessment.ManyFacetPCM`, penalised JML), "
        f"`python bench/assessment.py`, {date.today().isoformat()}.\n\n"
        f"- Machine: {platform.platform()}, Python {platform.python_version()}, {_cpu_model()}, "
        f"{cores} CPUs ({affinity} usable by this process), numpy {np.__version__}\n"
        f"- Design: {result['ratings']:,} ratings, {result['sheets']:,} sheets in 40 units, "
        f"{result['items']} items (10 cases x 4, levels 0-3), {result['raters']} raters, "
        "5 raters per sheet\n"
        f"- Fit time: **{result['fit_s']:.2f} s** ({result['iterations']} sweeps, "
        f"converged: {result['converged']}); simulation {result['simulate_s']:.2f} s; "
        "target <= 10 s on 2 CPU cores\n"
        f"- Recovery: thresholds r = {result['threshold_r']:.4f}, rater severities "
        f"r = {result['severity_r']:.4f}, unit abilities Spearman = {result['unit_spearman']:.3f}\n"
    )


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the "## Assessment" section of ``path``, keeping every other section."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Assessment\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--benchmarks", type=Path, default=DEFAULT_BENCHMARKS)
    args = parser.parse_args(argv)
    result = run()
    text = section(result)
    print(text)
    if args.write:
        write_section(args.benchmarks, text)
        print(f"wrote {args.benchmarks}")
    return 0 if float(result["fit_s"]) <= 10.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
