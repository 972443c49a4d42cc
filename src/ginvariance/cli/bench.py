"""`ginv bench`: what measuring invariance costs, next to the model itself and the alternatives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import RichProgress, app, console
from ginvariance.errors import ConfigError


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"{what} must be comma-separated integers, e.g. 1,2; got {text!r}"
        ) from None
    if not values:
        raise ConfigError(f"{what} must list at least one integer, e.g. 1,2")
    return values


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _table(result: dict[str, Any]) -> Table:
    cfg = result["config"]
    title = (
        f"ginv bench: {cfg['model']} on {cfg['size']}×{cfg['size']}, N = {cfg['n']}, "
        f"{cfg['group']}, chunk {cfg['chunk_size']}"
    )
    table = Table(title=title)
    table.add_column("threads", justify="right")
    table.add_column("what")
    table.add_column("time", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    for run in result["runs"]:
        secs = run["seconds"]
        targets = run["targets"]
        rows: list[tuple[str, str, str | None]] = [
            ("suite", "suite (pdi, li, sis, accuracies)", "suite/forward_backward"),
            ("suite_logit", "logit-only suite", "suite_logit/forward"),
            ("forward", "bare forward over the orbit", None),
            ("forward_backward", "bare forward + backward to input", None),
            ("forward_backward_params", "bare forward + loss.backward()", None),
            ("naive", "naive loop (per sample, element)", "naive/suite"),
            ("tmeasures", "tmeasures NormalizedVariance", "tmeasures/suite_logit"),
            (
                "tmeasures_default_batch",
                "tmeasures, its default batch 32",
                "tmeasures_default_batch/suite_logit",
            ),
            ("train_plain", "train step: plain", None),
            ("train_augmented", "train step: augmented", "train_augmented/train_plain"),
            (
                "train_regularized_sample",
                "train step: regularized, 1 element",
                "train_regularized_sample/train_plain",
            ),
            (
                "train_regularized_full",
                "train step: regularized, full orbit",
                "train_regularized_full/train_plain",
            ),
        ]
        for key, label, ratio_key in rows:
            if key not in secs:
                continue
            ratio = run["ratios"].get(ratio_key) if ratio_key else None
            target = targets.get(ratio_key) if ratio_key else None
            mark = ""
            if target is not None:
                ok = "[green]✓[/]" if target["met"] else "[red]✗[/]"
                mark = f"{target['op']} {target['bound']:g} {ok}"
            table.add_row(
                str(run["threads"]),
                label,
                _fmt_seconds(secs[key]),
                f"{ratio:.2f}×" if ratio is not None else "",
                mark,
            )
        note = run["notes"].get("tmeasures")
        if isinstance(note, str):
            table.add_row(str(run["threads"]), "tmeasures", "—", "", note[:60])
        table.add_section()
    memory = result.get("memory")
    if memory:
        for probe in memory["probes"]:
            table.add_row(
                str(memory["threads"]),
                f"peak RSS, N = {probe['n']:,}",
                f"{probe['peak_rss_bytes'] / 2**20:.0f} MiB",
                "",
                "",
            )
        if "ratio" in memory:
            ok = "[green]✓[/]" if memory["target"]["met"] else "[red]✗[/]"
            table.add_row(
                "",
                "peak RSS ratio",
                "",
                f"{memory['ratio']:.3f}×",
                f"<= {memory['target']['bound']:g} {ok}",
            )
    return table


@app.command("bench")
def bench(
    size: Annotated[
        int,
        typer.Option(
            help="Image side: 8 (digits-sized), 28 (MNIST-sized) or 32 (CIFAR-sized, RGB)."
        ),
    ] = 8,
    model: Annotated[
        str,
        typer.Option(
            help="Model to time: cnn (the study's), mlp (overhead-bound) or resnet "
            "(ResNet-18 layout)."
        ),
    ] = "cnn",
    width: Annotated[
        int | None,
        typer.Option(help="The model's width (resnet: first-stage channels, default 16)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:N or mps (auto: CUDA when available).")
    ] = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 / fp16 for the forward under autocast.")
    ] = "fp32",
    n: Annotated[int, typer.Option("--n", help="Number of samples N (the orbit has 4·N).")] = 1000,
    threads: Annotated[
        str, typer.Option(help="Thread counts, comma-separated (at most 256).")
    ] = "1,2",
    rounds: Annotated[int, typer.Option(help="Timed rounds per variant.")] = 7,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file.")] = None,
    skip_tmeasures: Annotated[bool, typer.Option(help="Do not run tmeasures.")] = False,
    skip_naive: Annotated[bool, typer.Option(help="Do not run the naive loop.")] = False,
    skip_train: Annotated[bool, typer.Option(help="Do not time training steps.")] = False,
    skip_rss: Annotated[bool, typer.Option(help="Do not measure peak memory.")] = False,
    rss_n: Annotated[str, typer.Option(help="Sample counts for peak memory.")] = "10000,100000",
    naive_samples: Annotated[
        int, typer.Option(help="Samples the naive loop runs on (scaled to N).")
    ] = 100,
    tmeasures_venv: Annotated[
        Path | None, typer.Option(help="tmeasures' virtual environment (made on demand).")
    ] = None,
) -> None:
    """Time the suite against the bare model, a naive loop and tmeasures; check numbers first."""
    from ginvariance.bench import DEFAULT_TMEASURES_VENV, BenchConfig, run_bench
    from ginvariance.io import atomic_write_json, to_json

    cfg = BenchConfig(
        size=size,
        model=model,
        width=width,
        device=device,
        precision=precision,
        n=n,
        threads=_ints(threads, "--threads"),
        rounds=rounds,
        naive=not skip_naive,
        naive_samples=naive_samples,
        tmeasures=not skip_tmeasures,
        tmeasures_venv=str(tmeasures_venv or DEFAULT_TMEASURES_VENV),
        train=not skip_train,
        rss_n=() if skip_rss else _ints(rss_n, "--rss-n"),
    )
    result = run_bench(cfg, progress=RichProgress())
    if out is not None:
        atomic_write_json(out, result)
    if json_out:
        typer.echo(to_json(result), nl=False)
    else:
        console.print(_table(result))
