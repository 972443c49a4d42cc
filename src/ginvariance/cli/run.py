"""`ginv run` (the whole study) and `ginv report` (draw its report again)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import RichProgress, app, console, shown
from ginvariance.errors import ConfigError


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` → ``(0, 1, 2)``; anything else is a :class:`ConfigError`."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise ConfigError(
            f"--seeds {text!r} is not a comma-separated list of non-negative integers; "
            "e.g. --seeds 0,1,2"
        )
    seeds = tuple(int(p) for p in parts)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} repeats a seed; give each seed once")
    return seeds


def claims_table(results: dict[str, Any]) -> Table:
    """The claims C1–C5 with their key numbers and verdicts."""
    from ginvariance.report.html import CLAIM_KEYS

    table = Table(
        title=f"Claims: {results['dataset']}, {results['group']}, "
        f"seeds {', '.join(map(str, results['seeds']))}"
    )
    table.add_column("claim")
    table.add_column("measured")
    table.add_column("verdict")
    for key in CLAIM_KEYS:
        claim = results["claims"][key]
        numbers = claim["numbers"]
        text = "  ".join(f"{k}={_short(v)}" for k, v in numbers.items())
        verdict = "[green]holds[/green]" if claim["holds"] else "[red]fails[/red]"
        table.add_row(key, text, verdict)
    return table


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@app.command("run")
def run_command(
    out: Annotated[Path, typer.Option(help="Study folder: checkpoints, results, report.")] = Path(
        "ginv-out"
    ),
    quick: Annotated[
        bool, typer.Option(help="Fewer epochs and test samples: under a minute.")
    ] = False,
    seeds: Annotated[
        str, typer.Option(help="Comma-separated seeds; several give mean ± std.")
    ] = "0",
    group: Annotated[str, typer.Option(help="c4, d4, flip, shift, cyclic1d, ...")] = "c4",
    dataset: Annotated[str, typer.Option(help="digits, mnist1d, mnist, ...")] = "digits",
    root: Annotated[
        Path | None, typer.Option(help="Folder of IDX files for mnist-style data sets.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs (default 60, quick 20).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace results and checkpoints of another configuration, and train "
            "unreadable checkpoints again (only files ginv wrote are ever replaced)."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print results.json.")] = False,
) -> None:
    """Train plain, augmented, regularized and weight-tied models; measure; check C1–C5."""
    from ginvariance.experiments import REPORT_FILE, StudyConfig, load_saliency, run_study
    from ginvariance.folder import output_folder
    from ginvariance.io import to_json
    from ginvariance.report import render_report

    config = StudyConfig(
        dataset=dataset,
        group=group,
        root=None if root is None else str(root),
        seeds=parse_seeds(seeds),
        quick=quick,
        epochs=epochs,
    )
    config.resolved()
    with output_folder(out):  # one lock for the study and its report
        results = run_study(config, out, force=force, progress=RichProgress(enabled=not json_out))
        render_report(results, out, load_saliency(out))
    if json_out:
        typer.echo(to_json(results), nl=False)
        return
    console.print(claims_table(results))
    total = results["timings"]["total"]
    console.print(
        f"results: {shown(out / 'results.json')}   report: {shown(out / REPORT_FILE)}   "
        f"({total:.1f} s)",
        markup=False,
    )


@app.command("report")
def report_command(
    folder: Annotated[Path, typer.Argument(help="A folder written by 'ginv run'.")],
) -> None:
    """Draw the report of a finished study again (no training)."""
    from ginvariance.experiments import load_results, load_saliency
    from ginvariance.report import render_report

    results = load_results(folder)
    path = render_report(results, folder, load_saliency(folder))
    console.print(claims_table(results))
    console.print(f"report: {shown(path)}", markup=False)
