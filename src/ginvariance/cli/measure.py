"""`ginv measure`: how genuinely invariant is any model, in distribution and shifted."""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ginvariance.cli.common import (
    DATASET_HELP,
    SHIFT_HELP,
    DeviceOption,
    Dtype,
    GroupOption,
    RichProgress,
    Split,
    app,
    console,
    emit_json,
    names_option,
    note,
    root_option,
    seed_option,
    value,
)
from ginvariance.errors import CheckpointError, ConfigError, DataError, ModelError
from ginvariance.keys import MEASURE_KEYS


def load_data(
    dataset: str | None,
    data: Path | None,
    root: Path | None,
    split: str,
    limit: int | None,
    max_data_gib: float = 4.0,
) -> Any:
    """The data set named on the command line: exactly one of ``--dataset`` / ``--data``."""
    from ginvariance.data import load_dataset, load_npz

    if (dataset is None) == (data is None):
        raise ConfigError("give exactly one of --dataset NAME (e.g. digits) or --data FILE.npz")
    if not math.isfinite(max_data_gib) or max_data_gib <= 0:
        raise ConfigError(f"--max-data-gib must be a positive number, got {max_data_gib}")
    if data is not None and data.is_dir():  # a folder of class folders of images
        from ginvariance.data.images import load_image_folder

        ds = load_image_folder(data)
    elif data is not None:
        ds = load_npz(data, max_bytes=max(1, int(max_data_gib * 2**30)))
    else:
        ds = load_dataset(dataset or "", split, root=root)
    if limit is not None:  # at least 1: typer checks it
        ds.x, ds.y = ds.x[:limit], ds.y[:limit]
    return ds


def resolve_num_classes(given: int | None, ds: Any, from_labels: bool) -> tuple[int, str]:
    """``K`` of the model to build and where it came from (for messages): ``--num-classes``
    (at least the largest label + 1), else the data set's (``from_labels``: the largest + 1)."""
    largest = int(ds.y.max()) if ds.y.numel() else -1
    if given is None:
        where = f"counted from the labels (the largest is {largest})" if from_labels else ""
        return int(ds.num_classes), where or f"those of data set {getattr(ds, 'name', '')!r}"
    if largest >= given:
        raise ConfigError(
            f"--num-classes {given} but the data have label {largest}; pass at least "
            f"--num-classes {largest + 1}"
        )
    return given, "from --num-classes"


def check_output(output: Path, inputs: dict[str, Path | None]) -> None:
    """Refuse, before any work, an ``--output`` that cannot be written or is an input file."""
    from ginvariance.io import check_destination, check_file_name, same_file

    check_file_name(output, "--output")  # before is_dir: a name too long makes that fail
    if output.is_dir():
        raise ConfigError(f"--output {str(output)!r} is a folder; give a file name")
    check_destination(output, "--output")
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
    classes_from: str = "",
) -> Any:
    """Build the model from a built-in name or MODULE:CALLABLE, and load a checkpoint.

    ``classes_from`` says where ``num_classes`` came from; when the checkpoint does not fit
    a model built with it, the message says so and how to pass the right number.
    """
    if model_spec is None and checkpoint is None:
        raise ModelError(
            "give --model MODULE:CALLABLE (or a built-in name: mlp, cnn, weight-tied, resnet), "
            "or --checkpoint FILE.safetensors written by 'ginv train'"
        )
    if model_spec is None:
        from ginvariance.training import load_checkpoint

        assert checkpoint is not None
        model, meta = load_checkpoint(checkpoint)
        # data of another sample shape than the model was trained on are refused here (without
        # a model description, the model's own check runs on the first batch)
        trained = (meta.get("model") or {}).get("sample_shape")
        if trained is not None and tuple(trained) != tuple(sample_shape):
            from ginvariance.models.cnn import shape_fix

            raise DataError(
                f"the model of checkpoint {str(checkpoint)!r} was built for samples of shape "
                f"{tuple(trained)}, the data hold {tuple(sample_shape)}; "
                f"{shape_fix(trained, sample_shape, rebuild=False)}"
            )
        return model
    if ":" in model_spec:
        from ginvariance.usercode import import_model

        model = import_model(model_spec, sample_shape=sample_shape, num_classes=num_classes)
    else:
        from ginvariance.models import build_model

        model = build_model(model_spec, sample_shape, num_classes, group=group)
    if checkpoint is not None:
        from ginvariance.training import load_weights

        try:
            model = load_weights(checkpoint, model)
        except CheckpointError as exc:
            if "does not match the model" not in str(exc):
                raise
            reason = str(exc).partition("; load it into")[0]
            raise CheckpointError(
                f"{reason}; the model was built for samples of shape {tuple(sample_shape)} "
                f"and {num_classes} classes, {classes_from or 'as given'}: if the checkpoint "
                "was trained with more classes, pass --num-classes K, and if on samples of "
                "another shape, give data of that shape"
            ) from None
    return model


def _fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isfinite(value):
        if key == "pdi" and value < 0:
            # a mean of divergences is ≥ 0; a negative one is float rounding of a zero
            value = 0.0
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


#: Column headers other than the key itself, two lines each so that the table fits 80
#: columns; the JSON keys are the names in :data:`~ginvariance.keys.MEASURE_KEYS`.
HEADERS = {
    "accuracy": "\naccuracy",
    "orbit_accuracy": "orbit\naccuracy",
    "orbit_consistency": "orbit\nconsist.",
    "li_within": "li\nwithin",
}


def results_table(result: dict[str, Any], title: str) -> Table:
    """A table with one row per condition (in distribution, then each shift)."""
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        caption="invariant model: pdi 0, li 0, li_within 0, sis 1, orbit consist. 1",
    )
    table.add_column("inputs", no_wrap=True)
    for key in MEASURE_KEYS:
        table.add_column(HEADERS.get(key, key), justify="right", no_wrap=True)
    rows = [("in-dist", result["id"]), *list(result["shift"].items())]
    for name, values in rows:
        table.add_row(name, *[_fmt(values.get(k), k) for k in MEASURE_KEYS])
    return table


@app.command("measure", short_help="Measure how invariant a model is: pdi, li, sis.")
def measure_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="MODULE:CALLABLE or path/to/file.py:CALLABLE returning an nn.Module (runs "
            "your own code: trusted modules only), or a built-in name: mlp, cnn, weight-tied, "
            "resnet.",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Weights: .safetensors (or .pt/.pth, loaded with weights_only=True)."),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help=DATASET_HELP)] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="An .npz file with arrays x (N, *S) and y (N,), or a folder of PNG/JPEG "
            "images arranged by class (DIR/CLASS/IMAGE.png)."
        ),
    ] = None,
    root: Annotated[Path | None, root_option()] = None,
    split: Annotated[Split, typer.Option(help="Split of a named data set.")] = Split.test,
    group: GroupOption = "c4",
    shift: Annotated[
        list[Any] | None,
        names_option("--shift", "--shifts", example="uniform,blur", help=SHIFT_HELP),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option(help="Also write the JSON result to this file (atomically).")
    ] = None,
    saliency: Annotated[
        bool, typer.Option("--saliency/--no-saliency", help="Compute sis (one backward pass).")
    ] = True,
    chunk_size: Annotated[
        int | None,
        typer.Option(min=1, help="Samples per orbit chunk (default: from a memory budget)."),
    ] = None,
    dtype: Annotated[Dtype, typer.Option(help="Floating-point type.")] = Dtype.float32,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Measure only the first N samples.")
    ] = None,
    seed: Annotated[int, seed_option("Seed of the shifts and of initial weights.")] = 0,
    num_classes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Classes K of the model (default: the largest label + 1); pass it when the "
            "data lack the last classes of a trained model.",
        ),
    ] = None,
    shift_reference: Annotated[
        str | None,
        typer.Option(
            help="Reference set that fixes the shifts' parameters (noise scale, intensity "
            "range): train, val or test (a split of --dataset), or an .npz file; default: "
            "the measured data.",
        ),
    ] = None,
    max_data_gib: Annotated[
        float,
        typer.Option(
            help="Refuse an .npz whose arrays pass this many GiB once decompressed "
            "(checked from its headers first)."
        ),
    ] = 4.0,
    device: DeviceOption = "auto",
    precision: Annotated[
        str,
        typer.Option(help="fp32, or bf16 / fp16: the forward under autocast (sums stay float64)."),
    ] = "fp32",
) -> None:
    """Measure how genuinely invariant a model is: pdi, li, sis and orbit accuracy."""
    import torch

    from ginvariance.data.shifts import DEFAULT_SHIFTS, get_shift
    from ginvariance.devices import check_precision, resolve_device
    from ginvariance.groups import get_group
    from ginvariance.metrics import measure
    from ginvariance.seeds import seeded
    from ginvariance.usercode import user_code

    where = resolve_device(device)
    check_precision(precision, where)
    if output is not None:
        check_output(output, {"--data": data, "--checkpoint": checkpoint})
    shifts = list(dict.fromkeys(name for names in shift or [] for name in names))
    if "all" in shifts:
        shifts = list(DEFAULT_SHIFTS)
    shift_fns = {name: get_shift(name) for name in shifts}  # unknown names fail here
    ds = load_data(dataset, data, root, value(split), limit, max_data_gib)
    sample_shape = tuple(ds.x.shape[1:])
    resolved = get_group(group, sample_shape)
    k, classes_from = resolve_num_classes(num_classes, ds, from_labels=data is not None)
    reference_x = None
    if shift_reference is not None and shifts:
        if shift_reference in ("train", "val", "test") and dataset is not None:
            reference_x = load_data(dataset, None, root, shift_reference, None).x
        elif shift_reference in ("train", "val", "test"):
            raise ConfigError(
                f"--shift-reference {shift_reference} names a split of --dataset; with --data "
                "pass an .npz file of the reference set"
            )
        else:
            reference_x = load_data(None, Path(shift_reference), None, "test", None, max_data_gib).x
        if tuple(reference_x.shape[1:]) != sample_shape:
            raise DataError(
                f"--shift-reference holds samples of shape {tuple(reference_x.shape[1:])}, the "
                f"measured data {sample_shape}; take the reference from data of the same shape"
            )
    # the user's own code runs isolated: prints to stderr (stdout stays valid JSON), exits
    # and exceptions become one ModelError
    isolated = user_code(model) if model is not None and ":" in model else nullcontext()
    with isolated:
        with seeded(seed):  # weights not from a checkpoint: seeded too
            net = build_measured_model(
                model, checkpoint, sample_shape, k, group, classes_from=classes_from
            )
        torch_dtype = getattr(torch, value(dtype))
        net = net.to(torch_dtype).to(where)
        x = ds.x.to(torch_dtype)
        if x.shape[0] == 0:
            raise DataError("the data set is empty; pass at least one sample")
        if where.type == "cuda":  # chunks are copied to the GPU without blocking
            x = x.pin_memory()
        report = measure(
            net,
            (x, ds.y),
            resolved,
            shifts=shift_fns,
            shift_reference=None if reference_x is None else reference_x.to(torch_dtype),
            saliency=saliency,
            chunk_size=chunk_size,
            seed=seed,
            progress=RichProgress(enabled=not json_out),
            precision=precision,
        )
    result = report.to_dict()
    if not emit_json(result, json_out, output):
        title = f"{getattr(ds, 'name', 'data')} · {resolved.name} (order {resolved.order})"
        console.print(results_table(result, title))
    if not getattr(resolved, "exact", True):
        note(
            f"{resolved.name} interpolates, so it is approximate: even a model invariant by "
            "construction scores above 0 (read pdi below "
            f"{getattr(resolved, 'tolerance', 0):g} nats as invariant up to interpolation); "
            "c4 and d4 are exact"
        )
    if model is not None and ":" not in model and checkpoint is None:
        note(
            f"--model {model} without --checkpoint measured randomly initialised weights "
            "(seeded by --seed); pass --checkpoint FILE for a trained model"
        )
