"""Many processes: 2 real gloo processes measuring shards equal one process measuring all.

The streaming classes keep float64 sums that ``torch.distributed`` all-reduces; with a
float64 model every measure of 2 processes equals the one-process value to 1e-12. The
Lightning ``InvarianceMonitor`` under ``strategy="ddp"`` on 2 CPU processes logs the numbers
of one process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ginvariance.data.shifts import ShiftReference
from ginvariance.metrics import (
    InvarianceMetrics,
    LogitInvariance,
    OrbitAccuracy,
    OrbitConsistency,
    PredictiveDistributionInvariance,
    SaliencyInvarianceSimilarity,
    UntransformedAccuracy,
    WithinOrbitLogitVariance,
)

N, WORLD, SHIFT = 24, 2, "noise-0.1"
SINGLE = {
    "pdi": PredictiveDistributionInvariance,
    "li": LogitInvariance,
    "li_within": WithinOrbitLogitVariance,
    "sis": SaliencyInvarianceSimilarity,
    "accuracy": UntransformedAccuracy,
    "orbit_accuracy": OrbitAccuracy,
    "orbit_consistency": OrbitConsistency,
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    return net.double().eval()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(N, 1, 6, 6, generator=gen, dtype=torch.float64)
    # a large common offset: li's sums are centred per process and re-centred on syncing
    x = x + 0.5
    return x, torch.randint(0, 5, (N,), generator=gen)


def _measure(rows: torch.Tensor, batch: int) -> dict[str, Any]:
    """Every streaming class over the samples ``rows``, ``batch`` at a time; computed
    (and, under torch.distributed, synced) at the end."""
    model, (x, y) = _model(), _data()
    reference = ShiftReference.from_batches([x], "all")
    metrics: dict[str, Any] = {
        "all": InvarianceMetrics(model, "c4"),
        "shifted": InvarianceMetrics(model, "c4", shift=SHIFT, shift_reference=reference),
        **{key: cls(model, "c4") for key, cls in SINGLE.items()},
    }
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        for name, metric in metrics.items():
            if name == "shifted":
                metric.update(x[part], y[part], indices=part)
            else:
                metric.update(x[part], y[part])
    out = {
        name: {k: float(v) for k, v in metrics[name].compute().items()}
        for name in ("all", "shifted")
    }
    out.update({key: float(metrics[key].compute()) for key in SINGLE})
    return out


def _worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        rows = torch.arange(N)[rank::world]  # interleaved shards, as a DistributedSampler
        result = _measure(rows, batch=5)
        Path(out, f"rank-{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _close(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in a:
        if a[key] is None or b[key] is None:
            assert a[key] is b[key] is None, key
            continue
        scale = max(1.0, abs(b[key])) if key == "li_within" else 1.0
        assert abs(a[key] - b[key]) <= 1e-12 * scale, (key, a[key], b[key])


def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    # forked from this process (no second import of torch): the processes are real all the
    # same, each with its own gloo rank, talking through the file store
    mp.start_processes(
        _worker,
        args=(WORLD, str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD,
        join=True,
        start_method="fork",
    )
    one = _measure(torch.arange(N), batch=7)
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0] == ranks[1]  # every process holds the synced result
    two = ranks[0]
    assert set(one["all"]) >= {"pdi", "li", "li_within", "sis", "accuracy", "orbit_accuracy"}
    for name in ("all", "shifted"):
        assert two[name]["n_samples" if "n_samples" in two[name] else "pdi"] is not None
        _close(two[name], one[name])
    _close({k: two[k] for k in SINGLE}, {k: one[k] for k in SINGLE})
    for key in SINGLE:  # the single-measure classes agree with the all-measure one
        assert two[key] == pytest.approx(two["all"][key], abs=1e-12)
    assert two["all"]["pdi"] > 1e-6  # an unconstrained model: the sums are not all zero


def test_lightning_monitor_under_ddp_logs_one_process_numbers(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    try:
        import ddp_monitor_script as script
    finally:
        sys.path.remove(str(here))
    # DDP on 2 CPU processes (gloo, DistributedSampler), forked from this process; the same
    # script runs with strategy="ddp" as `python tests/ddp_monitor_script.py OUT 2`
    script.run(tmp_path / "ddp", 2, strategy="ddp_fork")
    script.run(tmp_path / "one", 1)
    one = json.loads((tmp_path / "one" / "rank-0.json").read_text())["logged"]
    ranks = [json.loads((tmp_path / "ddp" / f"rank-{r}.json").read_text()) for r in range(2)]
    assert {r["rank"] for r in ranks} == {0, 1}
    assert "ginv/pdi" in one and "ginv/noise-0.1/pdi" in one and one["ginv/pdi"] > 0
    for rank in ranks:
        assert rank["history"]["id"]["n_samples"] == script.N_VAL
        assert rank["logged"].keys() == one.keys()
        for key, value in one.items():
            assert rank["logged"][key] == pytest.approx(value, abs=1e-12), key
