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
    RichProgress,
    app,
    console,
    name_list,
    parse_lam_list,
    parse_seed_list,
)


def sweep_table(summary: dict[str, Any]) -> Table:
    """Mean ± half-width of the CI of pdi/li/sis (id and each shift) and accuracy per cell."""
    entries = summary["entries"]
    shifts = sorted({s for e in entries for s in e["shift"]})
    pct = f"{float(summary.get('confidence', 0.95)):.0%}"
    table = Table(title=f"Sweep: mean ± {pct} CI half-width over seeds")
    for col in ("group", "data", "model", "λ", "n"):
        table.add_column(col)
    table.add_column("accuracy", justify="right")
    for cond in ("id", *shifts):
        for key in ("pdi", "li", "sis"):
            table.add_column(f"{key} {cond}", justify="right")

    def cell(s: dict[str, Any] | None) -> str:
        if not s or s.get("mean") is None:
            return "—"
        half = s.get("half")
        return f"{s['mean']:.3g}" + ("" if half is None else f" ± {half:.2g}")

    for e in entries:
        row = [
            e["group"],
            e["dataset"],
            e["model"],
            "—" if e["lam"] is None else f"{e['lam']:g}",
            str(len(e["seeds"])),
            cell(e["id"].get("accuracy")),
        ]
        for cond in ("id", *shifts):
            block = e["id"] if cond == "id" else e["shift"][cond]
            row.extend(cell(block.get(k)) for k in ("pdi", "li", "sis"))
        table.add_row(*row)
    return table


def _list_option(names: tuple[str, str], parser: Any, metavar: str, help: str) -> Any:
    return typer.Option(*names, parser=parser, metavar=metavar, help=help)


@app.command("sweep", short_help="Sweep λ, seeds, groups, models on Ray Tune.")
def sweep_command(
    out: Annotated[
        Path, typer.Option(help="Sweep folder: trials, Tune state, sweep.json/png.")
    ] = DEFAULT_OUT,
    seeds: Annotated[
        Any, _list_option(("--seeds", "--seed"), parse_seed_list, "INT,...", "Seeds.")
    ] = "0,1",
    lams: Annotated[
        Any,
        typer.Option(
            parser=parse_lam_list,
            metavar="FLOAT,...",
            help="Comma-separated λ ≥ 0; 0 is the augmented model.",
        ),
    ] = "0,0.1,1,10",
    groups: Annotated[
        Any,
        _list_option(
            ("--groups", "--group"), name_list("--groups", "c4,d4"), "NAME,...", GROUP_HELP
        ),
    ] = "c4",
    datasets: Annotated[
        Any,
        _list_option(
            ("--datasets", "--dataset"),
            name_list("--datasets", "digits,mnist1d"),
            "NAME,...",
            DATASET_HELP,
        ),
    ] = "digits",
    models: Annotated[
        Any,
        _list_option(
            ("--models", "--model"),
            name_list("--models", "cnn,mlp"),
            "NAME,...",
            "Networks: cnn, mlp.",
        ),
    ] = "cnn",
    shifts: Annotated[
        Any,
        _list_option(
            ("--shifts", "--shift"), name_list("--shifts", "uniform,blur"), "NAME,...", SHIFT_HELP
        ),
    ] = "uniform",
    quick: Annotated[
        bool, typer.Option("--quick", help="10 epochs and 200 test samples per trial.")
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs (default 40, quick 10).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Train on the first N training samples only.")
    ] = None,
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
    root: Annotated[
        Path | None,
        typer.Option("--root", "--data-dir", help="Folder of IDX files for mnist-style data sets."),
    ] = None,
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
    from ginvariance.io import to_json
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
    if json_out:
        typer.echo(to_json(summary), nl=False)
        return
    console.print(sweep_table(summary))
    total = summary["timings"]["total"]
    console.print(
        f"sweep: {out / SWEEP_FILE}   figure: {out / SWEEP_FIGURE}   "
        f"trials: {out / 'trials'}   ({total:.1f} s)"
    )
