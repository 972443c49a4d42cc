"""`ginv train`: train one model (plain, augmented, regularized or weight-tied)."""

from __future__ import annotations

from pathlib import Path

import typer

from ginvariance.cli.common import RichProgress, app, console, shown
from ginvariance.io import to_json


@app.command("train")
def train_command(
    mode: str = typer.Option(
        "plain", "--mode", help="plain | augmented | regularized | weight-tied"
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model name (default: cnn; weight-tied for --mode weight-tied)."
    ),
    dataset: str = typer.Option("digits", "--dataset", help="Data set name."),
    root: str | None = typer.Option(
        None, "--root", "--data-dir", help="Folder of the data set's files (MNIST IDX files)."
    ),
    group: str = typer.Option("c4", "--group", help="Group: c4, d4, flip, shift, cyclic1d, ..."),
    epochs: int = typer.Option(60, "--epochs", help="Passes over the training data."),
    batch_size: int = typer.Option(64, "--batch-size", help="Samples per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="Adam weight decay."),
    lam: float = typer.Option(1.0, "--lam", help="Weight λ of the invariance penalty."),
    penalty: str = typer.Option(
        "logit", "--penalty", help="Invariance penalty: logit | js | logit-normalized."
    ),
    orbit: str = typer.Option(
        "full", "--orbit", help="Penalty over the full orbit or one sampled element: full | sample."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (init, data order, augmentation)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float64."),
    limit: int | None = typer.Option(
        None, "--limit", help="Train on the first N training samples only."
    ),
    out: Path = typer.Option(
        Path("checkpoints"), "--out", help="Folder for NAME.safetensors and NAME.json."
    ),
    name: str | None = typer.Option(None, "--name", help="Checkpoint file stem (default: mode)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint in --out."),
    force: bool = typer.Option(False, "--force", help="Replace an existing checkpoint."),
    json_out: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
    device: str = typer.Option(
        "auto", "--device", help="auto, cpu, cuda, cuda:N or mps (auto: CUDA when available)."
    ),
) -> None:
    """Train one model and checkpoint it after every epoch (safetensors + JSON sidecar)."""
    from ginvariance.devices import resolve_device
    from ginvariance.training import TrainConfig, train

    where = resolve_device(device)  # an unknown or absent device fails before any file

    config = TrainConfig(
        mode=mode,
        model=model,
        dataset=dataset,
        root=root,
        group=group,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        lam=lam,
        penalty=penalty,
        orbit=orbit,
        seed=seed,
        dtype=dtype,
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
    metrics = {k: v for k, v in result.metrics.items()}
    if json_out:
        payload = {
            "metrics": metrics,
            "config": config.to_dict(),
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "seconds": result.seconds,
        }
        typer.echo(to_json(payload), nl=False)
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
