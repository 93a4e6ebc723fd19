"""Command line for the assessment jobs (mounted as ``spira assess``): ``cases`` and ``fit``."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.domain import AREA_LABELS

if TYPE_CHECKING:
    from assessment.model import ManyFacetPCM

#: The shipped case library (``assessment.cases.DEFAULT_CASE_DIR``), located without importing the
#: assessment package, whose model pulls in SciPy: `spira --help` must not pay for it.
_spec = importlib.util.find_spec("assessment")
assert _spec is not None and _spec.origin is not None
SHIPPED_CASE_DIR = Path(_spec.origin).with_name("cases")

app = typer.Typer(
    help="Educators' assessments: the case library and the many-facet partial credit model.",
    no_args_is_help=True,
)


def _finite(value: float) -> float | None:
    """JSON has no NaN: undefined statistics (e.g. fit of an item without variance) become null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


@app.command("cases")
def cases_command(
    directory: Path = typer.Option(
        SHIPPED_CASE_DIR, "--dir", help="Folder of case YAML files (default: the shipped library)."
    ),
) -> None:
    """List the cases and validate every file; exit 1 naming file, field and reason if any is broken."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from assessment.cases import validate_case_library

    console = Console()
    library, errors = validate_case_library(directory)
    table = Table(title=f"Cases in {directory}")
    table.add_column("id", no_wrap=True)
    for column in ("title", "area", "age bands", "items"):
        table.add_column(column)
    for case in library:
        table.add_row(
            case.id,
            case.title_en,
            AREA_LABELS[case.area]["en"],
            ", ".join(case.age_bands),
            ", ".join(f"{i.id} (0-{i.max_level})" for i in case.rubric),
        )
    console.print(table)
    console.print(f"{len(library)} valid case(s), {len(errors)} problem(s).")
    if errors:
        err = Console(stderr=True, soft_wrap=True)
        for e in errors:
            err.print(f"{e.file}: field {e.field or '(file)'}: {e.reason}", markup=False)
        raise typer.Exit(code=1)


@app.command("fit")
def fit_command(
    ratings_path: Path = typer.Argument(
        ..., help="Ratings file (.csv or .xlsx).", metavar="RATINGS"
    ),
    cases: Path | None = typer.Option(
        None, "--cases", help="Case library folder: checks cases/items/levels and gives areas."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object only."),
    adjust_age: bool = typer.Option(
        False, "--adjust-age", help="Report unit abilities adjusted for age band (mean residual)."
    ),
) -> None:
    """Fit the many-facet partial credit model and report items, raters and unit abilities."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from assessment.cases import CaseLibraryError, load_case_library
    from assessment.model import ManyFacetPCM, ModelFitWarning, calibration_agreement
    from assessment.ratings import RatingsFileError, read_ratings
    from assessment.units import unit_abilities

    err = Console(stderr=True)
    try:
        library = load_case_library(cases) if cases is not None else None
        ratings = read_ratings(ratings_path, library)
    except (CaseLibraryError, RatingsFileError) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(code=1) from None

    model = ManyFacetPCM()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)  # collected in model.warnings_ instead
        if as_json:
            model.fit(ratings)
        else:
            with err.status("Fitting the many-facet partial credit model…") as status:
                model.fit(
                    ratings,
                    on_iteration=lambda n, change: status.update(
                        f"Fitting: sweep {n}, largest change {change:.2g} logits"
                    ),
                )
    units = unit_abilities(model.sheet_table(), adjust_for_age_band=adjust_age)
    try:  # reference levels of the calibration responses: the given library, else the shipped one
        references = (library or load_case_library()).calibration_references()
    except CaseLibraryError:
        references = {}
    agreement = calibration_agreement(ratings, references)
    result = _result(model, units, agreement)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    _print_result(Console(), result)


def _result(model: ManyFacetPCM, units: list[Any], agreement: Any = None) -> dict[str, Any]:
    """The fit as one JSON-ready object (logits; null where undefined or suppressed).

    ``warnings`` holds objects with a ``code`` and a ``message``: ``rater_unit_confounded`` (with
    ``rater`` and ``unit``) for every educator whose severity cannot be told from a unit's ability,
    ``model_fit`` for anything else the fit had to work around. A rater with calibration ratings
    has ``calibration`` (exact and adjacent agreement with the reference levels, n)."""
    agree = {} if agreement is None else {row.rater: row for row in agreement.itertuples()}
    confounded_units = {c.unit for c in model.confounded_}
    items = [
        {
            "case": row.case,
            "item": row.item,
            "levels": row.levels,
            "thresholds": [_finite(t) for t in row.thresholds],
            "se": [_finite(t) for t in row.se],
            "infit": _finite(row.infit),
            "outfit": _finite(row.outfit),
            "n": int(row.n),
        }
        for row in model.item_table().itertuples()
    ]
    raters = [
        {
            "rater": row.rater,
            "severity": _finite(row.severity),
            "se": _finite(row.se),
            "infit": _finite(row.infit),
            "outfit": _finite(row.outfit),
            "n": int(row.n),
            **(
                {
                    "calibration": {
                        "exact": _finite(agree[row.rater].exact),
                        "adjacent": _finite(agree[row.rater].adjacent),
                        "n": int(agree[row.rater].n),
                    }
                }
                if row.rater in agree
                else {}
            ),
        }
        for row in model.rater_table().itertuples()
    ]
    unit_rows = [
        {
            "unit": u.unit,
            "area": u.area,
            "term": u.term,
            "ability": None if u.ability is None else _finite(u.ability),
            "se": None if u.se is None else _finite(u.se),
            "n_sheets": u.n_sheets,
            "suppressed": u.suppressed,
            "age_adjusted": u.age_adjusted,
            "confounded": u.unit in confounded_units,
        }
        for u in units
    ]
    return {
        "items": items,
        "raters": raters,
        "units": unit_rows,
        "converged": bool(model.converged_),
        "iterations": int(model.n_iter_),
        "warnings": [c.as_dict() for c in model.confounded_]
        + [{"code": "model_fit", "message": str(w)} for w in model.warnings_],
        # The model's age-band effects (logits, sheet-weighted mean 0); unit abilities are at the
        # data's common age mix. Empty when the sheets carry no age band.
        "age_bands": [
            {"age_band": band, "effect": _finite(effect), "se": _finite(se), "n_sheets": int(n)}
            for band, effect, se, n in zip(
                model.age_bands_,
                model.age_effect_,
                model.age_effect_se_,
                model.age_effect_n_,
                strict=True,
            )
        ],
    }


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _print_result(console: Console, result: dict[str, Any]) -> None:
    state = "converged" if result["converged"] else "[red]did NOT converge[/red]"
    console.print(f"Model {state} after {result['iterations']} sweeps (all values in logits).")
    items = Table(title="Rubric items")
    for column in ("case", "item", "thresholds (se)", "infit", "outfit", "n"):
        items.add_column(column)
    for it in result["items"]:
        steps = ", ".join(
            f"{_fmt(t)} ({_fmt(s)})" for t, s in zip(it["thresholds"], it["se"], strict=True)
        )
        items.add_row(
            it["case"], it["item"], steps, _fmt(it["infit"]), _fmt(it["outfit"]), str(it["n"])
        )
    console.print(items)
    raters = Table(title="Raters (calibration: exact / adjacent agreement with the reference)")
    for column in ("rater", "severity", "se", "infit", "outfit", "n", "calibration"):
        raters.add_column(column)
    for r in result["raters"]:
        cal = r.get("calibration")
        raters.add_row(
            r["rater"],
            _fmt(r["severity"]),
            _fmt(r["se"]),
            _fmt(r["infit"]),
            _fmt(r["outfit"]),
            str(r["n"]),
            f"{_fmt(cal['exact'])} / {_fmt(cal['adjacent'])} (n={cal['n']})" if cal else "–",
        )
    console.print(raters)
    units = Table(title="Units (ability of the unit's sheets; too few sheets are not shown)")
    for column in ("unit", "area", "term", "ability", "se", "sheets"):
        units.add_column(column)
    for u in result["units"]:
        value = "too few to show" if u["suppressed"] else _fmt(u["ability"])
        units.add_row(
            u["unit"], u["area"] or "–", u["term"], value, _fmt(u["se"]), str(u["n_sheets"])
        )
    console.print(units)
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(warning['message'])}")


@app.command("import")
def import_command(
    ratings_path: Path = typer.Argument(
        ..., help="Ratings file (.csv or .xlsx).", metavar="RATINGS"
    ),
) -> None:
    """Store a ratings file in Spira's database (checked against the case library; all or nothing)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from assessment.cases import CaseLibraryError, load_case_library
    from assessment.ratings import RatingsFileError, read_ratings
    from assessment.store import import_ratings
    from core.config import get_settings
    from core.db import migrate, session_factory

    err = Console(stderr=True)
    try:
        table = read_ratings(ratings_path, load_case_library())
        migrate(get_settings().db_url)
        with session_factory()() as session:
            n = import_ratings(session, table)
            session.commit()
    except (CaseLibraryError, RatingsFileError) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(code=1) from None
    err.print(f"imported {n} response sheet(s) from {ratings_path.name}")
