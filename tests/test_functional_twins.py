"""The tensor twins of the measures: on (n, B, K) logits and saliency maps, differentiable,
in the input's dtype and on its device, and the ones the regularizers and the trainer call."""

from __future__ import annotations

import math

import pytest
import torch

from ginvariance.metrics import functional as F
from ginvariance.metrics.orbit import OrbitOutputs
from ginvariance.training import InvarianceRegularizer


def _logits(seed: int = 0, n: int = 4, b: int = 6, k: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, b, k, generator=g, dtype=torch.float64)


def test_twins_equal_the_data_set_measures_on_one_batch() -> None:
    z = _logits()
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    measures = F.finalize(F.orbit_statistics(OrbitOutputs(z), y))
    assert float(F.pdi_from_logits(z)) == pytest.approx(measures["pdi"], rel=1e-12)
    assert float(F.li_from_logits(z)) == pytest.approx(measures["li"], rel=1e-12)
    assert float(F.li_within_from_logits(z)) == pytest.approx(measures["li_within"], rel=1e-12)
    assert float(F.accuracy_from_logits(z, y)) == measures["accuracy"]
    assert float(F.orbit_accuracy_from_logits(z, y)) == pytest.approx(measures["orbit_accuracy"])
    consistency = float(F.orbit_consistency_from_logits(z))
    assert consistency == measures["orbit_consistency"]


@pytest.mark.parametrize("twin", ["pdi_from_logits", "li_from_logits", "li_within_from_logits"])
def test_logit_twins_are_differentiable_and_keep_dtype(twin: str) -> None:
    z = _logits(1).float().requires_grad_(True)
    value = getattr(F, twin)(z)
    assert value.dtype == torch.float32 and value.device == z.device and value.ndim == 0
    (grad,) = torch.autograd.grad(value, z)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_sis_twin_is_differentiable() -> None:
    s = torch.randn(4, 3, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    value = F.sis_from_saliency(s)
    assert value.ndim == 0 and value.dtype == torch.float64
    (grad,) = torch.autograd.grad(value, s)
    assert float(grad.abs().sum()) > 0


def test_twins_refuse_logits_without_an_orbit_axis() -> None:
    with pytest.raises(Exception, match=r"\(n, B, K\)"):
        F.pdi_from_logits(torch.zeros(3, 4))


@pytest.mark.parametrize("penalty", ["logit", "js", "logit-normalized"])
def test_regularizer_penalties_are_the_metric_twins(penalty: str) -> None:
    z = _logits(2)
    twin = {
        "logit": F.li_within_from_logits,
        "js": F.pdi_from_logits,
        "logit-normalized": F.li_from_logits,
    }[penalty]
    assert torch.equal(InvarianceRegularizer("c4", penalty)(z), twin(z))


def test_js_penalty_keeps_the_zero_log_zero_guard() -> None:
    """A class the model rules out with a logit of -inf has p = 0: 0·log 0 = 0, not NaN."""
    z = _logits(3)
    z[:, :, 0] = -math.inf
    penalty = InvarianceRegularizer("c4", "js")(z)
    assert math.isfinite(float(penalty))
    assert float(penalty) == pytest.approx(float(F.pdi_per_sample(z[:, :, 1:]).mean()))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("PDI", "PredictiveDistributionInvariance"),
        ("LI", "LogitInvariance"),
        ("LIWithin", "WithinOrbitLogitVariance"),
        ("SIS", "SaliencyInvarianceSimilarity"),
        ("Accuracy", "UntransformedAccuracy"),
    ],
)
def test_old_streaming_names_still_work_with_a_deprecation_warning(old: str, new: str) -> None:
    import ginvariance.metrics as metrics
    import ginvariance.metrics.streaming as streaming

    with pytest.warns(DeprecationWarning, match=new):
        cls = getattr(metrics, old)
    assert cls is getattr(metrics, new)
    with pytest.warns(DeprecationWarning, match=new):
        assert getattr(streaming, old) is cls


def test_streaming_compute_returns_tensors_and_typed_statistics() -> None:
    from ginvariance.metrics import (
        InvarianceMetrics,
        OrbitStatistics,
        PredictiveDistributionInvariance,
    )

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.randn(7, 1, 4, 4), torch.randint(0, 3, (7,))
    metric = InvarianceMetrics(model, "c4")
    metric.update(x, y)
    result = metric.compute()
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in result.values())
    whole = F.invariance_suite(model, x, "c4", y)
    assert {k: float(v) for k, v in result.items()} == pytest.approx(whole)
    stats = metric.statistics()
    assert isinstance(stats, OrbitStatistics) and float(stats.count) == 7
    assert stats["count"] is stats.count and "sis_sum" in stats and "nope" not in stats
    one = PredictiveDistributionInvariance(model, "c4")
    one.update(x)
    assert isinstance(one.compute(), torch.Tensor)
    assert float(one.compute()) == pytest.approx(whole["pdi"])


class _Transformed(torch.utils.data.Dataset):
    """A dataset with tensors .x/.y whose items are transformed: measure() must see the items."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rot90(self.x[i], 1, dims=(-2, -1)) * 0 + 1.0, self.y[i]


def test_measure_reads_a_dataset_through_its_getitem() -> None:
    from ginvariance import measure
    from ginvariance.data import ArrayDataset

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.randn(9, 1, 4, 4), torch.randint(0, 3, (9,))
    got = measure(model, _Transformed(x, y), "c4", saliency=False).id
    constant = measure(model, (torch.ones(9, 1, 4, 4), y), "c4", saliency=False).id
    assert got["pdi"] == pytest.approx(constant["pdi"]) and got["pdi"] != pytest.approx(
        measure(model, (x, y), "c4", saliency=False).id["pdi"]
    )
    whole = measure(model, ArrayDataset(x, y, 3), "c4", saliency=False).id
    assert whole == measure(model, (x, y), "c4", saliency=False).id


def test_label_free_shifts_are_decided_in_one_place() -> None:
    from ginvariance.data.shifts import get_shift, preserves_labels

    assert not preserves_labels(get_shift("uniform")) and preserves_labels(get_shift("blur"))
    own = lambda x, seed: x  # noqa: E731
    assert preserves_labels(own, "mine") and not preserves_labels(own, "uniform")
