"""`ginv measure`: how genuinely invariant is any model, in distribution and shifted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ginvariance.cli.common import RichProgress, app, console
from ginvariance.errors import ConfigError, DataError
from ginvariance.keys import MEASURE_KEYS

DTYPES = ("float32", "float64")


def load_data(
    dataset: str | None, data: Path | None, root: Path | None, split: str, limit: int | None
) -> Any:
    """The data set named on the command line: exactly one of ``--dataset`` / ``--data``."""
    from ginvariance.data import load_dataset, load_npz

    if (dataset is None) == (data is None):
        raise ConfigError("give exactly one of --dataset NAME (e.g. digits) or --data FILE.npz")
    ds = load_npz(data) if data is not None else load_dataset(dataset or "", split, root=root)
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be a positive number of samples, got {limit}")
        ds.x, ds.y = ds.x[:limit], ds.y[:limit]
    return ds


def check_output(output: Path, inputs: dict[str, Path | None]) -> None:
    """Refuse, before any work, an ``--output`` that cannot be written or is an input file."""
    from ginvariance.io import check_file_name, same_file

    check_file_name(output, "--output")
    if output.is_dir():
        raise ConfigError(f"--output {str(output)!r} is a folder; give a file name")
    for flag, path in inputs.items():
        if path is not None and same_file(output, path):
            raise ConfigError(
                f"--output {str(output)!r} is the file given to {flag}; writing the result "
                "there would replace it: give another --output"
            )


def build_measured_model(
    model_spec: str | None,
    checkpoint: Path | None,
    sample_shape: tuple[int, ...],
    num_classes: int,
    group: str,
) -> Any:
    """Build the model from a built-in name or MODULE:CALLABLE, and load a checkpoint."""
    from ginvariance.errors import ModelError

    if model_spec is None and checkpoint is None:
        raise ModelError(
            "give --model MODULE:CALLABLE (or a built-in name: mlp, cnn, weight-tied), "
            "or --checkpoint FILE.safetensors written by 'ginv train'"
        )
    if model_spec is None:
        from ginvariance.training import load_checkpoint

        assert checkpoint is not None
        model, _ = load_checkpoint(checkpoint)
        return model
    if ":" in model_spec:
        from ginvariance.usercode import import_model

        model = import_model(model_spec, sample_shape=sample_shape, num_classes=num_classes)
    else:
        from ginvariance.models import build_model

        model = build_model(model_spec, sample_shape, num_classes, group=group)
    if checkpoint is not None:
        from ginvariance.training import load_weights

        model = load_weights(checkpoint, model)
    return model


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def results_table(result: dict[str, Any], title: str) -> Table:
    """A table with one row per condition (in distribution, then each shift)."""
    table = Table(title=title)
    table.add_column("inputs")
    for key in MEASURE_KEYS:
        table.add_column(key, justify="right")
    rows = [("in-dist", result["id"]), *list(result["shift"].items())]
    for name, values in rows:
        table.add_row(name, *[_fmt(values.get(k)) for k in MEASURE_KEYS])
    return table


@app.command("measure")
def measure_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="MODULE:CALLABLE returning an nn.Module (runs your own code: trusted modules "
            "only), or a built-in name: mlp, cnn, weight-tied.",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Weights: .safetensors (or .pt/.pth, loaded with weights_only=True)."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A named data set: digits, mnist1d, mnist, ...")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="An .npz file with arrays x (N, *S) and y (N,).")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Folder of IDX files for mnist-style data sets.")
    ] = None,
    split: Annotated[str, typer.Option(help="Split of a named data set.")] = "test",
    group: Annotated[
        str, typer.Option(help="c4, d4, flip, shift, cyclic1d, rotation-N, ...")
    ] = "c4",
    shift: Annotated[
        list[str] | None,
        typer.Option(help="A distribution shift to measure too (repeatable); 'all' for every one."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option(help="Also write the JSON result to this file (atomically).")
    ] = None,
    saliency: Annotated[bool, typer.Option(help="Compute sis (one backward pass).")] = True,
    chunk_size: Annotated[
        int | None, typer.Option(help="Samples per orbit chunk (default: from a memory budget).")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float32",
    limit: Annotated[int | None, typer.Option(help="Measure only the first N samples.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the shifts and of initial weights.")] = 0,
) -> None:
    """Measure how genuinely invariant a model is: pdi, li, sis and orbit accuracy."""
    import torch

    from ginvariance.data.shifts import DEFAULT_SHIFTS, get_shift
    from ginvariance.groups import get_group
    from ginvariance.io import atomic_write_json, to_json
    from ginvariance.metrics import measure
    from ginvariance.seeds import check_seed

    check_seed(seed, "--seed", "--seed 0")
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be float32 or float64, got {dtype!r}")
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {chunk_size}")
    if output is not None:
        check_output(output, {"--data": data, "--checkpoint": checkpoint})
    shifts = list(shift or [])
    if "all" in shifts:
        shifts = list(DEFAULT_SHIFTS)
    shift_fns = {name: get_shift(name) for name in shifts}  # unknown names fail here
    ds = load_data(dataset, data, root, split, limit)
    sample_shape = tuple(ds.x.shape[1:])
    resolved = get_group(group, sample_shape)
    with torch.random.fork_rng(devices=[]):  # weights not from a checkpoint: seeded too
        torch.manual_seed(seed)
        net = build_measured_model(model, checkpoint, sample_shape, ds.num_classes, group)
    torch_dtype = getattr(torch, dtype)
    net = net.to(torch_dtype)
    x = ds.x.to(torch_dtype)
    if x.shape[0] == 0:
        raise DataError("the data set is empty; pass at least one sample")
    report = measure(
        net,
        (x, ds.y),
        resolved,
        shifts=shift_fns,
        saliency=saliency,
        chunk_size=chunk_size,
        seed=seed,
        progress=RichProgress(enabled=not json_out),
    )
    result = report.to_dict()
    if output is not None:
        atomic_write_json(output, result)
    if json_out:
        console.file.write(to_json(result))
    else:
        title = f"{getattr(ds, 'name', 'data')} · {resolved.name} (order {resolved.order})"
        console.print(results_table(result, title))
