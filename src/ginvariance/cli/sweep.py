"""`ginv sweep`: seeds × λ × group × model × data set on Ray Tune, aggregated with 95 % CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import (
    DATASET_HELP,
    DEFAULT_OUT,
    GROUP_HELP,
    SHIFT_HELP,
    EpochsOption,
    RichProgress,
    TrainLimitOption,
    app,
    console,
    emit_json,
    names_option,
    parse_lam_list,
    root_option,
    seeds_option,
)


def sweep_table(summary: dict[str, Any]) -> Table:
    """Mean ± half-width of the CI of pdi/li/sis (id and each shift) and accuracy per cell."""
    entries = summary["entries"]
    conditions = ("id", *sorted({s for e in entries for s in e["shift"]}))
    pct = f"{float(summary.get('confidence', 0.95)):.0%}"
    table = Table(title=f"Sweep: mean ± {pct} CI half-width over seeds")
    for col in ("group", "data", "model", "λ", "n"):
        table.add_column(col)
    table.add_column("accuracy", justify="right")
    for cond in conditions:
        for key in ("pdi", "li", "sis"):
            table.add_column(f"{key} {cond}", justify="right")

    def cell(s: dict[str, Any] | None) -> str:
        if not s or s.get("mean") is None:
            return "—"
        half = s.get("half")
        return f"{s['mean']:.3g}" + ("" if half is None else f" ± {half:.2g}")

    for e in entries:
        lam = "—" if e["lam"] is None else f"{e['lam']:g}"
        row = [e["group"], e["dataset"], e["model"], lam, str(len(e["seeds"]))]
        row.append(cell(e["id"].get("accuracy")))
        for cond in conditions:
            block = e["id"] if cond == "id" else e["shift"][cond]
            row.extend(cell(block.get(k)) for k in ("pdi", "li", "sis"))
        table.add_row(*row)
    return table


@app.command("sweep", short_help="Sweep λ, seeds, groups, models on Ray Tune.")
def sweep_command(
    out: Annotated[
        Path, typer.Option(help="Sweep folder: trials, Tune state, sweep.json/png.")
    ] = DEFAULT_OUT,
    seeds: Annotated[Any, seeds_option("Seeds.")] = "0,1",
    lams: Annotated[
        Any,
        typer.Option(
            parser=parse_lam_list,
            metavar="FLOAT,...",
            help="Comma-separated λ ≥ 0; 0 is the augmented model.",
        ),
    ] = "0,0.1,1,10",
    groups: Annotated[
        Any, names_option("--groups", "--group", example="c4,d4", help=GROUP_HELP)
    ] = "c4",
    datasets: Annotated[
        Any, names_option("--datasets", "--dataset", example="digits,mnist1d", help=DATASET_HELP)
    ] = "digits",
    models: Annotated[
        Any, names_option("--models", "--model", example="cnn,mlp", help="Networks: cnn, mlp.")
    ] = "cnn",
    shifts: Annotated[
        Any, names_option("--shifts", "--shift", example="uniform,blur", help=SHIFT_HELP)
    ] = "uniform",
    quick: Annotated[
        bool, typer.Option("--quick", help="10 epochs and 200 test samples per trial.")
    ] = False,
    epochs: EpochsOption = None,
    limit: TrainLimitOption = None,
    n_measure: Annotated[
        int | None, typer.Option(min=1, help="Test samples measured (default all, quick 200).")
    ] = None,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference/--no-reference",
            help="Also train the weight-tied reference per group/data/seed.",
        ),
    ] = True,
    root: Annotated[Path | None, root_option()] = None,
    address: Annotated[
        str | None,
        typer.Option(help="A running Ray cluster (e.g. auto); default: a local Ray instance."),
    ] = None,
    num_cpus: Annotated[
        int | None,
        typer.Option(min=1, help="CPUs of the local Ray instance (default: all cores)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Resume the interrupted sweep in --out (it is resumed anyway if there).",
        ),
    ] = False,
    gpus_per_trial: Annotated[
        float,
        typer.Option(help="GPUs per trial (Tune's resources_per_trial; 0.25 shares one by four)."),
    ] = 0.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print sweep.json.")] = False,
) -> None:
    """Sweep λ (and seeds, groups, models, data sets) on Ray Tune; aggregate with 95 % CIs."""
    from ginvariance.experiments.sweep import SWEEP_FIGURE, SWEEP_FILE, SweepConfig, run_sweep
    from ginvariance.report.sweep_page import render_sweep

    config = SweepConfig(
        seeds=seeds,
        lams=lams,
        groups=groups,
        datasets=datasets,
        models=models,
        shifts=shifts,
        reference=reference,
        quick=quick,
        epochs=epochs,
        limit=limit,
        n_measure=n_measure,
        root=None if root is None else str(root),
    )
    summary = run_sweep(
        config,
        out,
        address=address,
        num_cpus=num_cpus,
        resume=resume,
        progress=RichProgress(enabled=not json_out),
        gpus_per_trial=gpus_per_trial,
    )
    render_sweep(summary, out)
    if emit_json(summary, json_out):
        return
    console.print(sweep_table(summary))
    console.print(
        f"sweep: {out / SWEEP_FILE}   figure: {out / SWEEP_FIGURE}   "
        f"trials: {out / 'trials'}   ({summary['timings']['total']:.1f} s)"
    )
