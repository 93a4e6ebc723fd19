"""Command line for the researchers' labelling loop (mounted as ``spira annotate``)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from core.config import LABEL_STUDIO_PROJECT as DEFAULT_PROJECT

app = typer.Typer(
    help="Label photos in Label Studio: push tasks with the model's suggestions, pull labels, agreement.",
    no_args_is_help=True,
)
err = Console(stderr=True)


def _client(url: str | None, token: str | None):
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from annotation.labelstudio import LabelStudioClient
    from core.config import get_settings

    settings = get_settings()
    url = url or settings.label_studio_url
    token = token or settings.label_studio_token
    if not url or not token:
        err.print(
            "error: set SPIRA_LABEL_STUDIO_URL and SPIRA_LABEL_STUDIO_TOKEN (or --url/--token)"
        )
        raise typer.Exit(2)
    return LabelStudioClient(url, token)


def _session():
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.config import get_settings
    from core.db import migrate, session_factory

    migrate(get_settings().db_url)
    return session_factory()()


@app.command("push")
def push_command(
    select: int = typer.Option(50, "--select", help="how many photos to send for labelling"),
    strategy: str = typer.Option("hybrid", help="uncertainty, diverse, hybrid or random"),
    project: str = typer.Option(DEFAULT_PROJECT, help="Label Studio project title"),
    url: str | None = typer.Option(None, help="Label Studio URL (default SPIRA_LABEL_STUDIO_URL)"),
    token: str | None = typer.Option(
        None, help="Label Studio token (default SPIRA_LABEL_STUDIO_TOKEN)"
    ),
    seed: int = typer.Option(0),
) -> None:
    """Choose photos to label and import them as tasks with pre-annotations (idempotent)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from annotation.jobs import push
    from core.config import get_settings

    if strategy not in ("uncertainty", "diverse", "hybrid", "random"):
        err.print(
            f"error: strategy {strategy!r} is not one of uncertainty, diverse, hybrid, random"
        )
        raise typer.Exit(2)
    settings = get_settings()
    with _session() as session:
        try:
            summary = push(
                session,
                _client(url, token),
                n=select,
                strategy=strategy,
                project=project,
                public_url=settings.public_url,
                webhook_secret=settings.webhook_secret,
                seed=seed,
            )
        except FileNotFoundError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(2) from None
    err.print(
        f"project {summary.project_id}: {summary.selected} chosen, {summary.created} new task(s), "
        f"{summary.updated} refreshed, {summary.unchanged} unchanged, {summary.predictions_added} suggestion(s) added"
    )


@app.command("pull")
def pull_command(
    project: str = typer.Option(DEFAULT_PROJECT, help="Label Studio project title"),
    url: str | None = typer.Option(None),
    token: str | None = typer.Option(None),
) -> None:
    """Import the project's labels into Spira's database (safe to repeat)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from annotation.jobs import pull

    with _session() as session:
        try:
            added, updated, removed = pull(session, _client(url, token), project=project)
        except LookupError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(2) from None
        session.commit()
    err.print(f"{added} new label(s), {updated} updated, {removed} deleted in Label Studio removed")


@app.command("agreement")
def agreement_command(
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """How well researchers agree: pairwise QWK, Krippendorff's alpha, each against the consensus."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from annotation.store import agreement_report

    with _session() as session:
        result = agreement_report(session)
    report: dict[str, Any] = result.to_dict() if result is not None else {"n_labels": 0}
    if as_json:
        print(json.dumps(report, ensure_ascii=False, default=str))
        return
    if not report.get("n_labels"):
        err.print("no labels stored yet")
        return
    alpha = report["krippendorff_alpha"]
    print(
        f"labels {report['n_labels']}, items {report['n_items']}, annotators {report['n_annotators']}"
    )
    print(f"Krippendorff's alpha (ordinal): {_fig(alpha)}")
    for pair in report["pairs"]:
        print(
            f"  {pair['annotator_a']} vs {pair['annotator_b']}: QWK {_fig(pair['quadratic_weighted_kappa'])}"
        )
    for row in report["versus_consensus"]:
        print(f"  {row['annotator']} vs consensus: QWK {_fig(row['quadratic_weighted_kappa'])}")


def _fig(fig: dict) -> str:
    if fig["value"] is None:
        return f"{fig['status']} (n={fig['n_items']})"
    ci = f" [{fig['low']:.2f}, {fig['high']:.2f}]" if fig.get("low") is not None else ""
    return f"{fig['value']:.3f}{ci} (n={fig['n_items']})"
