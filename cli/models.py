"""``spira models``: the stage-model registry (list, promote)."""

from __future__ import annotations

import json

import typer

from cli.common import console, migrated, progress_bar

app = typer.Typer(help="The stage-model registry: list, promote.", no_args_is_help=True)


@app.command("list")
def models_list(
    as_json: bool = typer.Option(False, "--json", help="JSON array instead of a table"),
) -> None:
    """Registered stage models, newest first, with their metrics and which one is promoted."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from training.model_files import list_models

    models = list_models()
    if as_json:
        print(json.dumps(models, default=str, indent=2))
        return
    for m in models:
        met = m.get("metrics", {})
        flag = "*" if m["promoted"] else " "
        print(
            f"{flag} {m['version']}\tqwk={met.get('qwk', float('nan')):.3f}\tmae={met.get('mae', float('nan')):.3f}"
            f"\tn={met.get('n', '?')}\t{m.get('data', {}).get('description', '')}"
        )


@app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="a version from `spira models list`"),
) -> None:
    """Put a model into service; stored photos are re-scored from their stored embeddings.

    A fine-tuned model is first checked on the CPU runtime (parity with PyTorch), and each stored
    photo is embedded once with its backbone."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from training.model_files import load_model
    from training.registry import promote

    factory = migrated()
    with factory() as session:
        try:
            fine_tuned = load_model(version).fine_tuned
            with progress_bar() as progress:
                task = progress.add_task(
                    "embedding stored photos (fine-tuned backbone)", total=None
                )
                n = promote(
                    version,
                    session=session,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        except (FileNotFoundError, RuntimeError) as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        session.commit()
    how = "with its own backbone" if fine_tuned else "without decoding them"
    console.print(f"promoted {version}; re-scored {n} stored photo(s) {how}")
