"""`ginv sweep`: seeds × λ × group × model × data set on Ray Tune, aggregated with 95 % CIs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import RichProgress, app, console
from ginvariance.errors import ConfigError
from ginvariance.seeds import parse_seeds


def parse_lams(text: str) -> tuple[float, ...]:
    """``"0,0.1,1"`` → ``(0.0, 0.1, 1.0)``; malformed, negative or repeated is a ConfigError."""
    parts = [p.strip() for p in text.split(",")]
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(
                f"--lams {text!r} is not a comma-separated list of numbers; e.g. --lams 0,0.1,1,10"
            ) from None
        if not math.isfinite(v) or v < 0:
            raise ConfigError(
                f"λ {p!r} in --lams must be a finite number ≥ 0 (0 = augmented); "
                "e.g. --lams 0,0.1,1,10"
            )
        values.append(v)
    if len(set(values)) != len(values):
        raise ConfigError(f"--lams {text!r} repeats a value; give each λ once")
    return tuple(values)


def parse_names(option: str, text: str) -> tuple[str, ...]:
    """``"c4,d4"`` → ``("c4", "d4")``; empty items or repeats are a ConfigError."""
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise ConfigError(
            f"{option} {text!r} has an empty item; give comma-separated names, e.g. {option} a,b"
        )
    if len(set(parts)) != len(parts):
        raise ConfigError(f"{option} {text!r} repeats a name; give each once")
    return tuple(parts)


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


@app.command("sweep")
def sweep_command(
    out: Annotated[Path, typer.Option(help="Sweep folder: trials, Tune state, sweep.json/png.")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1",
    lams: Annotated[
        str, typer.Option(help="Comma-separated λ ≥ 0; 0 is the augmented model.")
    ] = "0,0.1,1,10",
    groups: Annotated[str, typer.Option(help="Comma-separated groups: c4, d4, flip, ...")] = "c4",
    datasets: Annotated[
        str, typer.Option(help="Comma-separated data sets: digits, mnist1d, ...")
    ] = "digits",
    models: Annotated[str, typer.Option(help="Comma-separated networks: cnn, mlp.")] = "cnn",
    shifts: Annotated[
        str, typer.Option(help="Comma-separated shifts measured beside the test split.")
    ] = "uniform",
    quick: Annotated[bool, typer.Option(help="20 epochs and 200 test samples per trial.")] = False,
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs (default 60, quick 20).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Train on the first N training samples only.")
    ] = None,
    n_measure: Annotated[
        int | None, typer.Option(help="Test samples measured (default all, quick 200).")
    ] = None,
    reference: Annotated[
        bool, typer.Option(help="Also train the weight-tied reference per group/data/seed.")
    ] = True,
    root: Annotated[
        Path | None, typer.Option(help="Folder of IDX files for mnist-style data sets.")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="A running Ray cluster (e.g. auto); default: a local Ray instance."),
    ] = None,
    num_cpus: Annotated[
        int | None, typer.Option(help="CPUs of the local Ray instance (default: all cores).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Resume the interrupted sweep in --out (it is resumed anyway if there)."),
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

    config = SweepConfig(
        seeds=parse_seeds(seeds),
        lams=parse_lams(lams),
        groups=parse_names("--groups", groups),
        datasets=parse_names("--datasets", datasets),
        models=parse_names("--models", models),
        shifts=parse_names("--shifts", shifts),
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
    if json_out:
        typer.echo(to_json(summary), nl=False)
        return
    console.print(sweep_table(summary))
    total = summary["timings"]["total"]
    console.print(
        f"sweep: {out / SWEEP_FILE}   figure: {out / SWEEP_FIGURE}   "
        f"trials: {out / 'trials'}   ({total:.1f} s)"
    )
