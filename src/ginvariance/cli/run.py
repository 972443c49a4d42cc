"""`ginv run` (the whole study) and `ginv report` (draw its report again)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import (
    DEFAULT_OUT,
    DatasetOption,
    DeviceOption,
    EpochsOption,
    GroupOption,
    RichProgress,
    app,
    console,
    emit_json,
    root_option,
    seeds_option,
    shown,
    usable_cores,
)


def claims_table(results: dict[str, Any]) -> Table:
    """Every claim with its deciding quantity over seeds and its verdict."""
    from ginvariance.experiments.claims import CLAIM_KEYS
    from ginvariance.report.html import claim_verdict, deciding_text

    seeds = ", ".join(map(str, results["seeds"]))
    table = Table(title=f"Claims: {results['dataset']}, {results['group']}, seeds {seeds}")
    for column in ("claim", "deciding quantity", "verdict"):
        table.add_column(column)
    colours = {"holds": "green", "fails": "red", "unclear": "yellow"}
    claims = results["claims"]
    for key in [k for k in CLAIM_KEYS if k in claims] + [k for k in claims if k not in CLAIM_KEYS]:
        claim = claims[key]
        verdict = claim_verdict(claim)
        text = deciding_text(claim) or "  ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in claim["numbers"].items()
        )
        table.add_row(key, text, f"[{colours[verdict]}]{verdict}[/{colours[verdict]}]")
    return table


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
        seeds_option(
            "Comma-separated seeds (default 0,1,2; with --quick 0): each claim is judged "
            "on the 95% interval over seeds."
        ),
    ] = None,
    group: GroupOption = "c4",
    dataset: DatasetOption = "digits",
    root: Annotated[
        Path | None,
        root_option(
            "Folder of the four MNIST IDX files (mnist without it: 5,000 built-in digits)."
        ),
    ] = None,
    epochs: EpochsOption = None,
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
    device: DeviceOption = "auto",
) -> None:
    """Train the study's models on 3 seeds, measure them, and judge the claims with intervals."""
    from ginvariance.devices import resolve_device
    from ginvariance.experiments import REPORT_FILE, StudyConfig, load_saliency, run_study
    from ginvariance.folder import output_folder
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
    where = resolve_device(device)  # an unknown or absent device fails before any file
    with output_folder(out):  # one lock for the study and its report
        progress = RichProgress(enabled=not json_out)
        jobs = jobs or usable_cores()
        results = run_study(config, out, force=force, progress=progress, jobs=jobs, device=where)
        render_report(results, out, load_saliency(out))
    if emit_json(results, json_out):
        return
    console.print(claims_table(results))
    console.print(
        f"results: {shown(out / 'results.json')}   report: {shown(out / REPORT_FILE)}   "
        f"({results['timings']['total']:.1f} s)",
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
