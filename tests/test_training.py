"""The invariance regularizer against a per-sample float64 reference; the trainer's determinism,
resumption and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from ginvariance.errors import CheckpointError, ConfigError, ModelError, OutputError
from ginvariance.groups import get_group
from ginvariance.training import (
    InvarianceRegularizer,
    TrainConfig,
    evaluate,
    load_checkpoint,
    regularized_loss,
    train,
)

# -- references ---------------------------------------------------------------------------


def reference_penalty(logits: torch.Tensor, penalty: str) -> float:
    """One sample and one group element at a time, in float64 Python numbers."""
    m, batch, k = logits.shape
    values = logits.double().tolist()
    total = 0.0
    if penalty == "logit-normalized":
        within = spread = 0.0
        mu = [
            sum(values[g][b][c] for g in range(m) for b in range(batch)) / (m * batch)
            for c in range(k)
        ]
        for b in range(batch):
            mean = [sum(values[g][b][c] for g in range(m)) / m for c in range(k)]
            for g in range(m):
                within += sum((values[g][b][c] - mean[c]) ** 2 for c in range(k))
                spread += sum((values[g][b][c] - mu[c]) ** 2 for c in range(k))
        return within / spread
    for b in range(batch):
        zs = [values[g][b] for g in range(m)]
        if penalty == "logit":
            mean = [sum(z[c] for z in zs) / m for c in range(k)]
            total += sum(sum((z[c] - mean[c]) ** 2 for c in range(k)) for z in zs) / m
        else:
            ps = []
            for z in zs:
                top = max(z)
                e = [math.exp(v - top) for v in z]
                s = sum(e)
                ps.append([v / s for v in e])
            p_mean = [sum(p[c] for p in ps) / m for c in range(k)]

            def entropy(p: list[float]) -> float:
                return -sum(v * math.log(v) for v in p if v > 0)

            total += entropy(p_mean) - sum(entropy(p) for p in ps) / m
    return total / batch


class TinyNet(nn.Module):
    """A small MLP on 8×8 images: not invariant to anything."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GroupAveraged(nn.Module):
    """``f(x) = (1/n) Σ_g base(g·x)``: invariant by construction."""

    def __init__(self, base: nn.Module, group_name: str) -> None:
        super().__init__()
        self.base = base
        self.group = get_group(group_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.group.order
        return self.base(self.group.orbit(x)).reshape(n, x.shape[0], -1).mean(dim=0)


# -- the regularizer ----------------------------------------------------------------------


@pytest.mark.parametrize("penalty", ["logit", "js", "logit-normalized"])
@pytest.mark.parametrize("m", [2, 4, 8])
def test_penalty_matches_reference(penalty: str, m: int, dtype: torch.dtype) -> None:
    logits = (3 * torch.randn(m, 7, 5)).to(dtype)
    reg = InvarianceRegularizer("c4", penalty=penalty)
    got = reg(logits)
    assert got.dtype == dtype and got.shape == ()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert float(got) == pytest.approx(reference_penalty(logits, penalty), rel=tol, abs=tol)


def test_js_penalty_is_stable_for_confident_logits(dtype: torch.dtype) -> None:
    logits = (200 * torch.randn(4, 6, 10)).to(dtype)  # softmax saturates to one-hot
    got = InvarianceRegularizer("c4", penalty="js")(logits)
    assert torch.isfinite(got)
    assert float(got) == pytest.approx(reference_penalty(logits, "js"), rel=1e-4, abs=1e-6)
    assert 0 <= float(got) <= math.log(4) + 1e-6


@pytest.mark.parametrize("penalty", ["logit", "js", "logit-normalized"])
def test_penalty_is_zero_for_group_averaged_model(penalty: str, dtype: torch.dtype) -> None:
    x = torch.randn(6, 1, 8, 8, dtype=dtype)
    base = TinyNet().to(dtype)
    reg = InvarianceRegularizer("c4", penalty=penalty)
    invariant = GroupAveraged(base, "c4")
    with torch.no_grad():
        zero = reg(invariant(reg.orbit_inputs(x)).reshape(4, 6, -1))
        not_zero = reg(base(reg.orbit_inputs(x)).reshape(4, 6, -1))
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert abs(float(zero)) < tol
    assert float(not_zero) > 1e3 * tol  # the check can fail


@pytest.mark.parametrize("alpha", [1e-3, 0.1, 0.5, 2.0, 37.0, -3.0])
def test_normalized_penalty_cannot_be_lowered_by_the_logit_scale(
    alpha: float, dtype: torch.dtype
) -> None:
    """f → α·f + c leaves the normalized penalty as it is; the plain logit penalty scales by α²."""
    gen = torch.Generator().manual_seed(1)
    logits = (2 * torch.randn(4, 9, 6, generator=gen)).to(dtype)
    shift = torch.randn(6, generator=gen).to(dtype)
    normalized = InvarianceRegularizer("c4", penalty="logit-normalized")
    plain = InvarianceRegularizer("c4", penalty="logit")
    base = float(normalized(logits))
    assert 0.05 < base < 1.0
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert float(normalized(alpha * logits + shift)) == pytest.approx(base, rel=tol)
    scaled = float(plain(alpha * logits + shift))
    assert scaled == pytest.approx(alpha**2 * float(plain(logits)), rel=10 * tol)


def test_normalized_penalty_gradient_matches_float64_reference(dtype: torch.dtype) -> None:
    """∂(W/S)/∂z_g(b) = 2 (z_g(b) − z̄(b)) / S − 2 (W/S) (z_g(b) − μ) / S, none along z − μ."""
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    logits = base.to(dtype, copy=True).requires_grad_(True)
    InvarianceRegularizer("c4", penalty="logit-normalized")(logits).backward()
    m, batch, k = base.shape
    z = base.tolist()
    mu = [sum(z[g][b][c] for g in range(m) for b in range(batch)) / (m * batch) for c in range(k)]
    spread = sum(
        (z[g][b][c] - mu[c]) ** 2 for g in range(m) for b in range(batch) for c in range(k)
    )
    within = sum(
        (z[g][b][c] - sum(z[h][b][c] for h in range(m)) / m) ** 2
        for g in range(m)
        for b in range(batch)
        for c in range(k)
    )
    expected = torch.zeros(m, batch, k, dtype=torch.float64)
    for b in range(batch):
        for c in range(k):
            mean = sum(z[g][b][c] for g in range(m)) / m
            for g in range(m):
                expected[g, b, c] = (
                    2 * (z[g][b][c] - mean) / spread - 2 * within * (z[g][b][c] - mu[c]) / spread**2
                )
    assert logits.grad is not None and logits.grad.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(logits.grad.double(), expected, rtol=tol * 10, atol=tol)
    # shrinking the logits is not rewarded: the derivative along z (and along z − μ) is 0
    radial = float((logits.grad.double() * base).sum())
    assert abs(radial) < tol * float(base.abs().sum())
    # a constant batch: no division by zero, penalty 0
    flat = torch.ones(4, 3, 5, dtype=dtype, requires_grad=True)
    value = InvarianceRegularizer("c4", penalty="logit-normalized")(flat)
    value.backward()
    assert float(value.detach()) == 0.0
    assert flat.grad is not None and torch.isfinite(flat.grad).all()


def test_orbit_inputs_full_and_sampled(dtype: torch.dtype) -> None:
    group = get_group("d4")
    x = torch.randn(5, 1, 8, 8, dtype=dtype)
    full = InvarianceRegularizer(group, orbit="full")
    assert torch.equal(full.orbit_inputs(x), group.orbit(x))
    assert full.orbit_size == 8
    sampled = InvarianceRegularizer(group, orbit="sample")
    gen = torch.Generator().manual_seed(3)
    out = sampled.orbit_inputs(x, gen)
    assert sampled.orbit_size == 2 and out.shape == (10, 1, 8, 8)
    assert torch.equal(out[:5], x)
    images = group.orbit(x).reshape(8, 5, 1, 8, 8)
    for b in range(5):  # one non-identity element of the orbit per sample
        matches = [i for i in range(8) if torch.equal(out[5 + b], images[i, b])]
        assert matches and 0 not in matches
    again = sampled.orbit_inputs(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)


def test_regularized_loss_is_one_forward(dtype: torch.dtype) -> None:
    model = TinyNet().to(dtype)
    calls = []
    model.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    x = torch.randn(6, 1, 8, 8, dtype=dtype)
    y = torch.randint(0, 3, (6,))
    reg = InvarianceRegularizer("c4")
    total, ce, penalty = regularized_loss(model, x, y, reg, lam=2.5)
    assert calls == [24]
    total.backward()
    assert all(p.grad is not None for p in model.parameters())
    total, ce, penalty = total.detach(), ce.detach(), penalty.detach()
    with torch.no_grad():
        expected_ce = F.cross_entropy(model(x), y)
        expected_pen = reg(model(get_group("c4").orbit(x)).reshape(4, 6, -1))
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    assert float(ce) == pytest.approx(float(expected_ce), rel=tol)
    assert float(penalty) == pytest.approx(float(expected_pen), rel=tol)
    assert float(total) == pytest.approx(float(ce) + 2.5 * float(penalty), rel=tol)


def test_regularizer_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="penalty"):
        InvarianceRegularizer("c4", penalty="kl")
    with pytest.raises(ConfigError, match="orbit"):
        InvarianceRegularizer("c4", orbit="half")
    with pytest.raises(ModelError, match="m, B, K"):
        InvarianceRegularizer("c4")(torch.zeros(4, 3))


def test_evaluate_matches_loop(dtype: torch.dtype) -> None:
    group = get_group("c4")
    model = TinyNet(k=3).to(dtype).eval()
    x = torch.randn(11, 1, 8, 8, dtype=dtype)
    y = torch.randint(0, 3, (11,))
    got = evaluate(model, x, y, group, batch_size=4)
    correct = orbit_correct = consistent = 0
    with torch.no_grad():
        for b in range(11):
            preds = [int(model(group.act(x[b : b + 1], i)).argmax()) for i in range(4)]
            correct += preds[0] == int(y[b])
            orbit_correct += sum(p == int(y[b]) for p in preds)
            consistent += len(set(preds)) == 1
    assert got["accuracy"] == correct / 11
    assert got["orbit_accuracy"] == orbit_correct / 44
    assert got["orbit_consistency"] == consistent / 11
    # without the orbit: the same accuracy and cross-entropy, from the inputs alone
    plain = evaluate(model, x, y, group, batch_size=4, orbit=False)
    assert sorted(plain) == ["accuracy", "loss"]
    assert plain["accuracy"] == got["accuracy"]
    assert plain["loss"] == pytest.approx(got["loss"], rel=1e-6)


# -- the configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"mode": "dropout"},
        {"penalty": "kl"},
        {"orbit": "half"},
        {"dtype": "float16"},
        {"lam": -1.0},
        {"lam": float("nan")},
        {"lam": float("inf")},
        {"epochs": 0},
        {"batch_size": -4},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"weight_decay": -0.1},
        {"limit": 0},
        {"seed": -1},
        {"mode": "weight-tied", "model": "cnn"},
    ],
)
def test_config_refuses_bad_values(changes: dict) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(**changes).validate()


def test_one_default_for_epochs() -> None:
    """`ginv train`, TrainConfig and the study's full run train for the same number of epochs."""
    import typer

    from ginvariance.cli import app
    from ginvariance.experiments.defaults import FULL_EPOCHS

    train_command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    (epochs,) = [p for p in train_command.params if p.name == "epochs"]
    assert epochs.default == TrainConfig().epochs == FULL_EPOCHS == 40


def test_config_round_trip() -> None:
    config = TrainConfig(mode="regularized", lam=3.0, penalty="js", orbit="sample", limit=10)
    config.validate()
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig().model_name == "cnn"
    assert TrainConfig(mode="weight-tied").model_name == "weight-tied"
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({**config.to_dict(), "momentum": 0.9})


# -- the trainer --------------------------------------------------------------------------

QUICK = {"dataset": "digits", "epochs": 3, "limit": 96, "batch_size": 32}


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class StopAfter:
    """A progress reporter that interrupts training after ``k`` epochs."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.seen = 0

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, amount: int = 1, **info: float) -> None:
        self.seen += amount
        if self.seen >= self.k:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["augmented", "regularized"])
def test_same_seed_same_weights(mode: str) -> None:
    config = TrainConfig(mode=mode, orbit="sample", **QUICK)
    first = _params(train(config).model)
    second = _params(train(config).model)
    other = _params(train(TrainConfig(mode=mode, orbit="sample", seed=1, **QUICK)).model)
    assert _equal(first, second)
    assert not _equal(first, other)


@pytest.mark.parametrize("mode", ["plain", "regularized"])
def test_resume_gives_the_uninterrupted_weights(mode: str, tmp_path: Path) -> None:
    config = TrainConfig(mode=mode, orbit="sample", **QUICK)
    whole = train(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=StopAfter(1))
    _, meta = load_checkpoint(tmp_path / "cut" / f"{mode}.safetensors")
    assert meta["epoch"] == 1
    resumed = train(config, tmp_path / "cut", resume=True)
    assert _equal(_params(whole.model), _params(resumed.model))
    assert resumed.history == whole.history
    assert resumed.metrics == whole.metrics
    # a finished run resumes to itself without training
    again = train(config, tmp_path / "cut", resume=True)
    assert _equal(_params(whole.model), _params(again.model)) and again.history == whole.history


def test_resume_refuses_other_configuration(tmp_path: Path) -> None:
    config = TrainConfig(mode="plain", **QUICK)
    train(config, tmp_path)
    other = TrainConfig(mode="plain", **{**QUICK, "lr": 0.01})
    with pytest.raises(CheckpointError, match=r"different configuration \(lr 0.001 ≠ 0.01"):
        train(other, tmp_path, resume=True)


def test_trainer_refuses_to_overwrite_or_resume_nothing(tmp_path: Path) -> None:
    config = TrainConfig(mode="plain", **QUICK)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(config, tmp_path / "empty", resume=True)
    assert not (tmp_path / "empty" / "plain.safetensors").exists()
    train(config, tmp_path)
    with pytest.raises(OutputError, match="--resume"):
        train(config, tmp_path)
    train(config, tmp_path, overwrite=True)


def test_training_learns(tmp_path: Path) -> None:
    result = train(TrainConfig(mode="plain", epochs=4, limit=400), tmp_path, name="quick")
    assert result.checkpoint == tmp_path / "quick.safetensors"
    assert (tmp_path / "quick.json").exists()
    assert len(result.history) == 4
    # the validation orbit is measured once, after the last epoch
    assert [("val_orbit_accuracy" in h) for h in result.history] == [False] * 3 + [True]
    assert result.history[-1]["val_orbit_accuracy"] == result.metrics["orbit_accuracy"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.metrics["accuracy"] > 0.5  # 10 classes: chance is 0.1
    rebuilt, meta = load_checkpoint(result.checkpoint)
    assert _equal(_params(rebuilt), _params(result.model))
    assert meta["metrics"] == result.metrics


def test_normalized_penalty_trains_at_its_calibrated_lambda() -> None:
    from ginvariance.training import CALIBRATED_LAM

    lam = CALIBRATED_LAM["logit-normalized"]
    config = TrainConfig(
        mode="regularized", penalty="logit-normalized", lam=lam, epochs=2, limit=128
    )
    config.validate()
    assert TrainConfig.from_dict(config.to_dict()) == config
    result = train(config)
    for row in result.history:
        assert 0.0 < row["penalty"] < 1.0  # the batch's li
        assert row["loss"] == pytest.approx(row["ce"] + lam * row["penalty"], rel=1e-5)
    assert all(bool(torch.isfinite(q).all()) for q in result.model.parameters())


def test_weight_tied_mode_is_invariant() -> None:
    result = train(TrainConfig(mode="weight-tied", epochs=1, limit=64, batch_size=32))
    assert result.metrics["orbit_consistency"] == 1.0
