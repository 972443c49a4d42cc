"""`ginv train`: train one model (plain, augmented, regularized or weight-tied)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ginvariance.cli.common import (
    DEFAULT_OUT,
    DatasetOption,
    DeviceOption,
    Dtype,
    GroupOption,
    Method,
    Orbit,
    Penalty,
    RichProgress,
    TrainLimitOption,
    app,
    console,
    emit_json,
    merge_alias,
    root_option,
    seed_option,
    shown,
    value,
)
from ginvariance.training.config import DEFAULT_EPOCHS


@app.command("train", short_help="Train one model, checkpointed every epoch.")
def train_command(
    method: Annotated[
        Method,
        typer.Option(
            "--method",
            help="How the model learns invariance: plain (no help), augmented (random group "
            "element per sample), regularized (plus λ times an invariance penalty), "
            "weight-tied (invariant by construction).",
        ),
    ] = Method.plain,
    mode: Annotated[
        Method | None, typer.Option("--mode", hidden=True, help="Deprecated: --method.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Network: cnn, mlp (default cnn; weight-tied for --method weight-tied)."),
    ] = None,
    dataset: DatasetOption = "digits",
    root: Annotated[
        Path | None, root_option("Folder of the data set's files (MNIST IDX files).")
    ] = None,
    group: GroupOption = "c4",
    epochs: Annotated[
        int, typer.Option(min=1, help="Passes over the training data.")
    ] = DEFAULT_EPOCHS,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 0.0,
    lam: Annotated[float, typer.Option(help="Weight λ of the invariance penalty.")] = 1.0,
    penalty: Annotated[Penalty, typer.Option(help="Invariance penalty.")] = Penalty.logit,
    orbit: Annotated[
        Orbit, typer.Option(help="Penalty over the full orbit or one sampled element.")
    ] = Orbit.full,
    seed: Annotated[int, seed_option("Random seed (init, data order, augmentation).")] = 0,
    dtype: Annotated[Dtype, typer.Option(help="Floating-point type.")] = Dtype.float32,
    limit: TrainLimitOption = None,
    out: Annotated[
        Path, typer.Option(help="Folder for NAME.safetensors and NAME.json.")
    ] = DEFAULT_OUT,
    name: Annotated[
        str | None, typer.Option(help="Checkpoint file stem (default: the method).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue the checkpoint in --out.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force/--no-force", help="Replace an existing checkpoint.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the final metrics as JSON.")
    ] = False,
    device: DeviceOption = "auto",
) -> None:
    """Train one model and checkpoint it after every epoch (safetensors + JSON sidecar)."""
    from ginvariance.devices import resolve_device
    from ginvariance.training import TrainConfig, train

    chosen = merge_alias(method, Method.plain, mode, "--mode", "--method")
    where = resolve_device(device)  # an unknown or absent device fails before any file
    config = TrainConfig(
        mode=value(chosen),
        model=model,
        dataset=dataset,
        root=None if root is None else str(root),
        group=group,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        lam=lam,
        penalty=value(penalty),
        orbit=value(orbit),
        seed=seed,
        dtype=value(dtype),
        limit=limit,
    )
    config.validate()
    result = train(
        config,
        out,
        resume=resume,
        progress=RichProgress(enabled=not json_out),
        name=name,
        overwrite=force,
        device=where,
    )
    metrics: dict[str, Any] = dict(result.metrics)
    payload = {
        "metrics": metrics,
        "config": config.to_dict(),
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "seconds": result.seconds,
    }
    if emit_json(payload, json_out):
        return
    console.print(
        f"[bold]{config.mode}[/] {config.model_name} on {config.dataset} ({config.group}), "
        f"{int(metrics.get('epoch', config.epochs))} epochs, {result.seconds:.1f} s"
    )
    console.print(
        f"  val accuracy {metrics['accuracy']:.4f}   orbit accuracy "
        f"{metrics['orbit_accuracy']:.4f}   orbit consistency {metrics['orbit_consistency']:.4f}"
    )
    console.print(f"  checkpoint {shown(result.checkpoint)}", markup=False)
