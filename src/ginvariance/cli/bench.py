"""`ginv bench`: what measuring invariance costs, next to the model itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import (
    DeviceOption,
    RichProgress,
    app,
    console,
    emit_json,
    merge_alias,
    parse_rss_n,
    parse_threads,
)
from ginvariance.errors import ConfigError

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


def _mark(target: dict[str, Any]) -> str:
    """``op bound ✓`` (green) or ``✗`` (red) for a target of the bench's result."""
    ok = "[green]✓[/]" if target["met"] else "[red]✗[/]"
    return f"{target['op']} {target['bound']:g} {ok}"


def bench_table(result: dict[str, Any], rows: list[tuple[str, str, str | None]] = ROWS) -> Table:
    """The rows of ``result`` (from :func:`ginvariance.bench.run_bench`) that it holds."""
    cfg = result["config"]
    table = Table(
        title=f"ginv bench: {cfg['model']} on {cfg['size']}×{cfg['size']}, N = {cfg['n']}, "
        f"{cfg['group']}, chunk {cfg['chunk_size']}"
    )
    table.add_column("threads", justify="right")
    table.add_column("what")
    for column in ("time", "ratio", "target"):
        table.add_column(column, justify="right")
    for run in result["runs"]:
        threads = str(run["threads"])
        for key, label, ratio_key in rows:
            if key not in run["seconds"]:
                continue
            secs = run["seconds"][key]
            ratio = run["ratios"].get(ratio_key)
            target = run["targets"].get(ratio_key)
            table.add_row(
                threads,
                label,
                f"{secs * 1e3:.1f} ms" if secs < 1 else f"{secs:.2f} s",
                "" if ratio is None else f"{ratio:.2f}×",
                "" if target is None else _mark(target),
            )
        for key, note in run["notes"].items():
            if isinstance(note, str):  # a comparison that could not run says why
                table.add_row(threads, key, "—", "", note[:60])
        table.add_section()
    memory = result.get("memory")
    if memory:
        for probe in memory["probes"]:
            mib = f"{probe['peak_rss_bytes'] / 2**20:.0f} MiB"
            table.add_row(str(memory["threads"]), f"peak RSS, N = {probe['n']:,}", mib, "", "")
        if "ratio" in memory:
            ratio = f"{memory['ratio']:.3f}×"
            table.add_row("", "peak RSS ratio", "", ratio, _mark(memory["target"]))
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
    device: DeviceOption = "cpu",
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
    if not emit_json(result, json_out, output):
        console.print(bench_table(result))
