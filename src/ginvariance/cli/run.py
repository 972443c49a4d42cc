"""`ginv run` (the whole study) and `ginv report` (draw its report again)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import (
    DATASET_HELP,
    DEFAULT_OUT,
    GROUP_HELP,
    RichProgress,
    app,
    console,
    parse_seed_list,
    shown,
    usable_cores,
)


def claims_table(results: dict[str, Any]) -> Table:
    """Every claim with its deciding quantity over seeds and its verdict."""
    from ginvariance.experiments.claims import CLAIM_KEYS
    from ginvariance.report.html import claim_verdict, deciding_text

    table = Table(
        title=f"Claims: {results['dataset']}, {results['group']}, "
        f"seeds {', '.join(map(str, results['seeds']))}"
    )
    table.add_column("claim")
    table.add_column("deciding quantity")
    table.add_column("verdict")
    colours = {"holds": "green", "fails": "red", "unclear": "yellow"}
    claims = results["claims"]
    for key in [k for k in CLAIM_KEYS if k in claims] + [k for k in claims if k not in CLAIM_KEYS]:
        claim = claims[key]
        verdict = claim_verdict(claim)
        text = deciding_text(claim) or "  ".join(
            f"{k}={_short(v)}" for k, v in claim["numbers"].items()
        )
        table.add_row(key, text, f"[{colours[verdict]}]{verdict}[/{colours[verdict]}]")
    return table


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@app.command("run", short_help="The study: train, measure, judge the claims.")
def run_command(
    out: Annotated[
        Path, typer.Option(help="Study folder: checkpoints, results, report.")
    ] = DEFAULT_OUT,
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer epochs and test samples, one seed.")
    ] = False,
    seeds: Annotated[
        Any,
        typer.Option(
            "--seeds",
            "--seed",
            parser=parse_seed_list,
            metavar="INT,...",
            help="Comma-separated seeds (default 0,1,2; with --quick 0): each claim is judged "
            "on the 95% interval over seeds.",
        ),
    ] = None,
    group: Annotated[str, typer.Option(help=GROUP_HELP)] = "c4",
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)] = "digits",
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            "--data-dir",
            help="Folder of the four MNIST IDX files (mnist without it: 5,000 built-in digits).",
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs (default 40, quick 10).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force/--no-force",
            help="Replace results and checkpoints of another configuration, and train "
            "unreadable checkpoints again (only files ginv wrote are ever replaced).",
        ),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Trainings run at a time, one CPU thread each (default: the number of "
            "cores this process may use); the results do not depend on it.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results.json.")] = False,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:N or mps (auto: CUDA when available).")
    ] = "auto",
) -> None:
    """Train the study's models on 3 seeds, measure them, and judge the claims with intervals."""
    from ginvariance.experiments import REPORT_FILE, StudyConfig, load_saliency, run_study
    from ginvariance.folder import output_folder
    from ginvariance.io import to_json
    from ginvariance.report import render_report

    config = StudyConfig(
        dataset=dataset,
        group=group,
        root=None if root is None else str(root),
        seeds=seeds if seeds is not None else ((0,) if quick else (0, 1, 2)),
        quick=quick,
        epochs=epochs,
    )
    config.resolved()
    from ginvariance.devices import resolve_device

    where = resolve_device(device)  # an unknown or absent device fails before any file
    with output_folder(out):  # one lock for the study and its report
        results = run_study(
            config,
            out,
            force=force,
            progress=RichProgress(enabled=not json_out),
            jobs=jobs or usable_cores(),
            device=where,
        )
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


@app.command("report", short_help="Draw the report of a finished study again.")
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
