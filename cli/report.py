"""``spira report``: reports for researchers (``spira report method --out DIR``)."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, migrated

app = typer.Typer(help="Reports for researchers.", no_args_is_help=True)


@app.command()
def method(
    out: Path = typer.Option(..., "--out", help="folder for method.html and method.json"),
    min_n: int | None = typer.Option(
        None, "--min-n", min=2, help="suppress unit figures below this n (default: the setting)"
    ),
    seed: int = typer.Option(0, help="seed of the random splits and bootstraps"),
) -> None:
    """Does the method work in the pilot units? A self-contained HTML page (no external
    assets): reliability of unit figures (split-half, Spearman–Brown), term-to-term stability,
    convergent validity, rater agreement and model fit, stage-model validation, sample sizes
    and suppression, and what the figures can and cannot support."""
    # lazy: database, model and statistics code load only when the command runs (fast --help)
    from core.config import get_settings
    from profiles.method_report import method_data, method_figures, write_report

    factory = migrated()
    with factory() as session:
        data = method_data(session, min_n=min_n or get_settings().min_group_size)
    figures = method_figures(data, seed=seed)
    page, _ = write_report(figures, out)
    console.print(
        f"{len(data.photos)} photos, {len(data.sheets)} sheets, {len(figures['terms'])} term(s)"
    )
    print(page)
