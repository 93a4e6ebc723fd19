"""Benchmark: build unit profiles for 1,000 units x 4 terms.

Draws a seeded synthetic municipality (``profiles.synthetic.make_synthetic``: about 25 photos
per unit x term, 12 response sheets per unit x term x area), computes the progression table from
the photos (1,000 bootstrap resamples), then times :func:`profiles.build_profiles` (six context
models with CV and a 200-resample unit bootstrap each, development areas, similar units,
triangulation, 4,000 typed profiles) and the CSV export. ``--write`` puts the result in the
"## Profiles" section of BENCHMARKS.md (other sections are kept). Target: <= 10 s on 2 CPU cores.

    python bench/profiles.py [--write] [--benchmarks PATH] [--units N] [--terms N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_section  # noqa: E402
from profiles import build_profiles, export_profiles, progression_from_photos  # noqa: E402
from profiles.synthetic import make_synthetic  # noqa: E402

DEFAULT_BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
TARGET_S = 10.0


def run(n_units: int = 1000, n_terms: int = 4) -> dict[str, float | int | str | bool]:
    """Simulate, build, export and measure; returns the figures reported (times in seconds)."""
    t0 = time.perf_counter()
    data = make_synthetic(n_units=n_units, n_terms=n_terms, n_boot=10, seed=2026)
    simulate_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    progression = progression_from_photos(data.photos, n_boot=1000, seed=2026)
    progression_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    profiles = build_profiles(progression, data.ability, data.context)
    build_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export_profiles(profiles, Path(tmp) / "profiles.csv", format="csv")
        export_s = time.perf_counter() - t0

    last = data.terms[-1]
    pairs = [
        (p.unit, e.shrunk_residual)
        for p in profiles
        if p.term == last
        for e in p.expected
        if e.outcome == "progression" and e.shrunk_residual is not None
    ]
    rho = spearmanr([r for _, r in pairs], [data.unit_effect[u] for u, _ in pairs])[0]
    weak = next(p for p in profiles if p.unit == data.weak_unit and p.term == last)
    return {
        "units": n_units,
        "terms": n_terms,
        "photos": len(data.photos),
        "ability_rows": len(data.ability),
        "profiles": len(profiles),
        "simulate_s": simulate_s,
        "progression_s": progression_s,
        "build_s": build_s,
        "export_s": export_s,
        "unit_spearman": float(rho),
        "weak_area_first": bool(
            weak.development_areas and weak.development_areas[0].outcome == data.weak_area
        ),
    }


def section(result: dict[str, float | int | str | bool]) -> str:
    """The body of the "## Profiles" section of BENCHMARKS.md (bench.common adds the machine)."""
    total = float(result["progression_s"]) + float(result["build_s"])
    return (
        "Unit profiles (`profiles.build_profiles`), `python bench/profiles.py`, "
        f"numpy {np.__version__}.\n\n"
        f"- Data: {result['units']:,} units x {result['terms']} terms, {result['photos']:,} photos, "
        f"{result['ability_rows']:,} unit x term x area ability rows (synthetic, seed 2026)\n"
        f"- Build {result['profiles']:,} profiles: **{float(result['build_s']):.2f} s** "
        "(6 context models with grouped CV and 200-resample unit bootstrap, development areas, "
        "5 similar units, triangulation); target <= 10 s on 2 CPU cores\n"
        f"- Progression table from photos (1,000 bootstrap resamples): "
        f"{float(result['progression_s']):.2f} s; together with the build {total:.2f} s\n"
        f"- CSV export: {float(result['export_s']):.2f} s; simulation "
        f"{float(result['simulate_s']):.2f} s\n"
        f"- Recovery: progression deviation vs true unit effect Spearman = "
        f"{float(result['unit_spearman']):.3f}; planted weak area ranked first in its unit: "
        f"{result['weak_area_first']}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--benchmarks", type=Path, default=DEFAULT_BENCHMARKS)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--terms", type=int, default=4)
    args = parser.parse_args(argv)
    result = run(args.units, args.terms)
    text = section(result)
    print(text)
    if args.write:
        write_section("Profiles", text, args.benchmarks)
        print(f"wrote {args.benchmarks}")
    return 0 if float(result["build_s"]) <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
