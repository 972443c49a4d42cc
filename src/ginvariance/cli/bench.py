"""`ginv bench`: what measuring invariance costs, next to the model itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import (
    RichProgress,
    app,
    console,
    merge_alias,
    parse_rss_n,
    parse_threads,
)
from ginvariance.errors import ConfigError


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


#: ``(time key, label, ratio key)`` of each row, in order (``benchmarks/bench.py`` adds its own).
ROWS: list[tuple[str, str, str | None]] = [
    ("suite", "suite (pdi, li, sis, accuracies)", "suite/forward_backward"),
    ("suite_logit", "logit-only suite", "suite_logit/forward"),
    ("forward", "bare forward over the orbit", None),
    ("forward_backward", "bare forward + backward to input", None),
    ("forward_backward_params", "bare forward + loss.backward()", None),
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


def bench_table(result: dict[str, Any], rows: list[tuple[str, str, str | None]] = ROWS) -> Table:
    """The rows of ``result`` (from :func:`ginvariance.bench.run_bench`) that it holds."""
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
        for key, note in run["notes"].items():
            if isinstance(note, str):  # a comparison that could not run says why
                table.add_row(str(run["threads"]), key, "—", "", note[:60])
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


@app.command("bench", short_help="What measuring costs, next to the bare model.")
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
        typer.Option(min=1, help="The model's width (resnet: first-stage channels, default 16)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:N or mps (auto: CUDA when available).")
    ] = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 / fp16 for the forward under autocast.")
    ] = "fp32",
    n: Annotated[
        int, typer.Option("--n", min=1, help="Number of samples N (the orbit has 4·N).")
    ] = 1000,
    threads: Annotated[
        Any,
        typer.Option(
            parser=parse_threads,
            metavar="INT,...",
            help="Thread counts, comma-separated (at most 256).",
        ),
    ] = "1,2",
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds per variant.")] = 7,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    output: Annotated[
        Path | None, typer.Option(help="Also write the JSON result to this file (atomically).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", hidden=True, help="Deprecated: --output.")
    ] = None,
    skip_train: Annotated[bool, typer.Option(help="Do not time training steps.")] = False,
    skip_rss: Annotated[bool, typer.Option(help="Do not measure peak memory.")] = False,
    rss_n: Annotated[
        Any,
        typer.Option(parser=parse_rss_n, metavar="INT,...", help="Sample counts for peak memory."),
    ] = "10000,100000",
    skip_tmeasures: Annotated[bool, typer.Option(hidden=True)] = False,
    skip_naive: Annotated[bool, typer.Option(hidden=True)] = False,
    naive_samples: Annotated[int | None, typer.Option(hidden=True)] = None,
    tmeasures_venv: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Time the suite against the bare model and training steps; check the numbers first.

    The naive loop and tmeasures run beside it: python benchmarks/bench.py (same options).
    """
    from ginvariance.bench import BenchConfig, run_bench
    from ginvariance.io import atomic_write_json, to_json

    # --skip-naive / --skip-tmeasures skip what ginv bench no longer runs: accepted as they are
    for given, option in ((naive_samples, "--naive-samples"), (tmeasures_venv, "--tmeasures-venv")):
        if given is not None:
            raise ConfigError(
                f"{option} belongs to the comparison with a naive loop and tmeasures, which "
                f"runs beside the package: python benchmarks/bench.py {option} ... "
                "(from a source checkout)"
            )
    output = merge_alias(output, None, out, "--out", "--output")
    cfg = BenchConfig(
        size=size,
        model=model,
        width=width,
        device=device,
        precision=precision,
        n=n,
        threads=threads,
        rounds=rounds,
        train=not skip_train,
        rss_n=() if skip_rss else rss_n,
    )
    result = run_bench(cfg, progress=RichProgress())
    if output is not None:
        atomic_write_json(output, result)
    if json_out:
        typer.echo(to_json(result), nl=False)
    else:
        console.print(bench_table(result))
