"""The measures against a slow float64 reference; streaming equals one batch; exact zeros."""

from __future__ import annotations

import itertools

import pytest
import torch
from tests.reference import GroupAveraged, reference_measures
from torch import nn

from ginvariance.errors import (
    ConfigError,
    DataError,
    GroupActionError,
    LabelError,
    ModelError,
    UndefinedMeasureWarning,
)
from ginvariance.groups import CustomGroup, get_group
from ginvariance.metrics import (
    InvarianceMetrics,
    LogitInvariance,
    OrbitAccuracy,
    OrbitConsistency,
    OrbitOutputs,
    PredictiveDistributionInvariance,
    SaliencyInvarianceSimilarity,
    UntransformedAccuracy,
    WithinOrbitLogitVariance,
    functional,
    invariance_suite,
    measure,
    orbit_pass,
)

KEYS = ("pdi", "li", "sis", "accuracy", "orbit_accuracy", "orbit_consistency")


def small_cnn(h: int, w: int, k: int = 10, channels: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * h * w, k),
    )


def small_cnn1d(length: int, k: int = 5) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * length, k)
    )


CASES = [
    ("c4", (1, 6, 6)),
    ("d4", (1, 5, 5)),
    ("flip", (1, 4, 7)),
    ("shift", (1, 4, 4)),
    ("shift-2", (1, 6, 6)),
    ("cyclic1d", (1, 9)),
]


def _model_for(shape: tuple[int, ...], dtype: torch.dtype) -> nn.Module:
    model = small_cnn1d(shape[-1]) if len(shape) == 2 else small_cnn(shape[-2], shape[-1])
    return model.to(dtype).eval()


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_batched_measures_match_the_naive_reference(
    name: str, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    torch.manual_seed(1)
    model = _model_for(shape, dtype)
    x = torch.randn(7, *shape, dtype=dtype)
    group = get_group(name, shape)
    k = model(x).shape[1]
    y = torch.randint(0, k, (7,))
    fast = invariance_suite(model, x, group, y, chunk_size=3)
    slow = reference_measures(model, x, group, y)
    tol = 1e-6 if dtype == torch.float64 else 2e-4
    for key in KEYS:
        assert fast[key] == pytest.approx(slow[key], abs=tol), key
    # unnormalized, in squared logit units: compared relative to its size
    assert fast["li_within"] == pytest.approx(slow["li_within"], rel=tol), "li_within"
    assert fast["li_within"] > 0
    assert 0.0 <= fast["li"] <= 1.0
    assert fast["pdi"] <= torch.log(torch.tensor(float(group.order))).item() + tol


def test_custom_group_matches_reference(dtype: torch.dtype) -> None:
    group = CustomGroup(
        "transpose", [(lambda t: t, lambda t: t), (lambda t: t.transpose(-1, -2),) * 2]
    )
    model = _model_for((1, 5, 5), dtype)
    x = torch.randn(6, 1, 5, 5, dtype=dtype)
    fast = invariance_suite(model, x, group)
    slow = reference_measures(model, x, group)
    tol = 1e-6 if dtype == torch.float64 else 2e-4
    for key in ("pdi", "li", "sis", "orbit_consistency"):
        assert fast[key] == pytest.approx(slow[key], abs=tol)


@pytest.mark.parametrize("name", ["c4", "d4", "flip", "shift"])
def test_functional_twins_agree_with_the_suite(name: str, dtype: torch.dtype) -> None:
    model = _model_for((1, 6, 6), dtype)
    x = torch.randn(9, 1, 6, 6, dtype=dtype)
    y = torch.randint(0, 10, (9,))
    suite = invariance_suite(model, x, name, y)
    tol = {"rel": 1e-9} if dtype == torch.float64 else {"abs": 1e-6}
    assert functional.pdi(model, x, name).item() == pytest.approx(suite["pdi"], **tol)
    assert functional.li(model, x, name).item() == pytest.approx(suite["li"], **tol)
    assert functional.li_within(model, x, name).item() == pytest.approx(
        suite["li_within"], rel=1e-9 if dtype == torch.float64 else 1e-6
    )
    assert functional.sis(model, x, name).item() == pytest.approx(suite["sis"], **tol)
    assert functional.accuracy(model, x, None, y).item() == pytest.approx(suite["accuracy"])
    assert functional.orbit_accuracy(model, x, name, y).item() == pytest.approx(
        suite["orbit_accuracy"]
    )
    assert functional.orbit_consistency(model, x, name).item() == pytest.approx(
        suite["orbit_consistency"]
    )
    assert functional.pdi(model, x, name).dtype == dtype


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_over_random_splits_equals_one_batch(seed: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(seed)
    model = _model_for((1, 6, 6), dtype)
    x = torch.randn(23, 1, 6, 6, dtype=dtype, generator=gen)
    y = torch.randint(0, 10, (23,), generator=gen)
    whole = invariance_suite(model, x, "d4", y)
    cuts = sorted(torch.randperm(22, generator=gen)[:4].add(1).tolist())
    bounds = [0, *cuts, 23]
    metric = InvarianceMetrics(model, "d4")
    singles = [
        cls(model, "d4")
        for cls in (
            PredictiveDistributionInvariance,
            LogitInvariance,
            WithinOrbitLogitVariance,
            SaliencyInvarianceSimilarity,
            UntransformedAccuracy,
            OrbitAccuracy,
            OrbitConsistency,
        )
    ]
    for a, b in itertools.pairwise(bounds):
        metric.update(x[a:b], y[a:b])
        for single in singles:
            single.update(x[a:b], y[a:b])
    streamed = metric.compute()
    # float32 convolutions round differently for different batch sizes
    tol = {"rel": 1e-9, "abs": 1e-12} if dtype == torch.float64 else {"abs": 1e-6}
    for key in KEYS:
        assert streamed[key] == pytest.approx(whole[key], **tol), key
    assert streamed["li_within"] == pytest.approx(whole["li_within"], rel=1e-6)
    for single in singles:
        assert single.compute().item() == pytest.approx(whole[single.key], **tol)
    metric.reset()
    metric.update(x, y)
    assert metric.compute()["li"] == pytest.approx(whole["li"], rel=1e-12)


def test_chunking_does_not_change_the_result(dtype: torch.dtype) -> None:
    model = _model_for((1, 6, 6), dtype)
    x = torch.randn(17, 1, 6, 6, dtype=dtype)
    a = invariance_suite(model, x, "c4", chunk_size=1)
    b = invariance_suite(model, x, "c4", chunk_size=17)
    c = invariance_suite(model, x, "c4", memory_budget=4096)
    tol = {"rel": 1e-9} if dtype == torch.float64 else {"abs": 1e-6}
    for key in ("pdi", "li", "sis", "orbit_consistency"):
        assert a[key] == pytest.approx(b[key], **tol)
        assert c[key] == pytest.approx(b[key], **tol)


def _invariance_bounds(dtype: torch.dtype) -> tuple[float, float]:
    return (1e-6, 1e-5) if dtype == torch.float32 else (1e-12, 1e-10)


@pytest.mark.parametrize("name", ["c4", "d4", "flip", "shift-2"])
@pytest.mark.parametrize("inputs", ["digits", "noise"])
def test_group_averaged_model_is_exactly_invariant(
    name: str, inputs: str, dtype: torch.dtype, digits_images: torch.Tensor
) -> None:
    torch.manual_seed(3)
    x = digits_images[:32].to(dtype) if inputs == "digits" else torch.rand(32, 1, 8, 8, dtype=dtype)
    group = get_group(name, x.shape[1:])
    model = GroupAveraged(small_cnn(8, 8).to(dtype), group).eval()
    result = invariance_suite(model, x, group)
    err, sim = _invariance_bounds(dtype)
    assert abs(result["pdi"]) <= err
    assert result["li"] <= err
    assert result["sis"] >= 1 - sim
    assert result["orbit_consistency"] == 1.0
    # and the same unaveraged network is clearly not invariant: the test can fail
    raw = invariance_suite(small_cnn(8, 8).to(dtype).eval(), x, group)
    assert raw["li"] > 1e-3 and raw["sis"] < 0.99
    # li_within is in squared logit units: tiny next to the raw network's
    assert result["li_within"] <= err * raw["li_within"]


def test_group_averaged_1d_model_is_exactly_invariant(dtype: torch.dtype) -> None:
    x = torch.randn(16, 1, 10, dtype=dtype)
    group = get_group("cyclic1d", x.shape[1:])
    model = GroupAveraged(small_cnn1d(10).to(dtype), group).eval()
    result = invariance_suite(model, x, group)
    err, sim = _invariance_bounds(dtype)
    assert abs(result["pdi"]) <= err and result["li"] <= err and result["sis"] >= 1 - sim


def test_saliency_is_mapped_back_by_the_inverse_action(dtype: torch.dtype) -> None:
    # a linear model w·x: the saliency at g·x is w, mapped back it is g⁻¹·w
    w = torch.randn(1, 6, 6, dtype=dtype)

    class Linear(nn.Module):
        def forward(self, u: torch.Tensor) -> torch.Tensor:
            s = (u * w).flatten(1).sum(1, keepdim=True)
            return torch.cat([s, -s], dim=1)

    x = torch.rand(3, 1, 6, 6, dtype=dtype) + 1.0
    group = get_group("c4")
    out = orbit_pass(Linear(), x, group, saliency=True)
    assert out.saliency is not None
    for i in range(4):
        sign = torch.where(out.logits[0, :, 0] >= out.logits[0, :, 1], 1.0, -1.0).to(dtype)
        expected = group.act_inverse(w.unsqueeze(0), i).expand(3, 1, 6, 6) * sign.view(3, 1, 1, 1)
        assert torch.allclose(out.saliency[i], expected)


def test_sis_zero_map_conventions(dtype: torch.dtype) -> None:
    maps = torch.zeros(3, 2, 4, dtype=dtype)
    maps[:, 1, 0] = 1.0  # sample 1: all maps equal and non-zero
    assert functional.sis_per_sample(maps).tolist() == [1.0, 1.0]
    maps[2, 1] = 0.0  # one zero map beside non-zero ones
    assert functional.sis_per_sample(maps)[1].item() == pytest.approx(0.5)
    maps[0, 0, 0] = 1.0  # a zero map beside a non-zero identity map
    assert functional.sis_per_sample(maps)[0].item() == 0.0


@pytest.mark.parametrize("scale", [1e-30, 1e-25, 1.0, 1e20, 1e30])
def test_sis_does_not_depend_on_the_maps_magnitude(scale: float, dtype: torch.dtype) -> None:
    """Tiny gradients are not "zero maps" and huge ones do not overflow, in either dtype."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 3, 10, generator=gen, dtype=torch.float64)
    base[2, 0] = -base[0, 0]  # an opposite map: cosine -1
    expected = functional.sis_per_sample(base)
    maps = (base * scale).to(dtype)
    got = functional.sis_per_sample(maps)
    assert torch.isfinite(got).all()
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert torch.allclose(got, expected, atol=tol)
    # the reference, computed the slow way on the unscaled maps
    for b in range(3):
        ref, cos = base[0, b], []
        for i in range(1, 4):
            cos.append(float(base[i, b] @ ref) / float(base[i, b].norm() * ref.norm()))
        assert got[b].item() == pytest.approx(sum(cos) / 3, abs=tol)


def test_li_is_zero_when_all_logits_are_equal() -> None:
    class Constant(nn.Module):
        def forward(self, u: torch.Tensor) -> torch.Tensor:
            return torch.ones(u.shape[0], 3, dtype=u.dtype) + 0 * u.flatten(1)[:, :1]

    with pytest.warns(UndefinedMeasureWarning, match="sis is undefined"):
        result = invariance_suite(Constant(), torch.rand(4, 1, 4, 4), "c4")
    assert result["li"] == 0.0 and result["pdi"] == pytest.approx(0.0, abs=1e-7)
    assert result["sis"] is None  # no input gradient at all: nothing to compare


@pytest.mark.parametrize("cuts", [[], [1], [1, 2]])
def test_li_of_logits_equal_up_to_rounding_is_zero(cuts: list[int], dtype: torch.dtype) -> None:
    """All logits equal but for one unit of rounding: both variances are noise, li is 0.

    Without the rounding floor the ratio of two rounding errors came out anywhere in [0, 1]
    and differed between one batch and a stream of batches.
    """
    from ginvariance.metrics.functional import finalize, merge_statistics, orbit_statistics

    eps = torch.finfo(dtype).eps
    z = torch.full((2, 3, 1), -1.7787, dtype=dtype)
    z[1, 0, 0] = z[1, 0, 0] * (1 + eps)  # one element off by one ulp
    bounds = [0, *cuts, 3]
    total = None
    for a, b in itertools.pairwise(bounds):
        total = merge_statistics(total, orbit_statistics(OrbitOutputs(z[:, a:b])))
    assert finalize(total)["li"] == 0.0
    # a spread across samples far above rounding keeps the tiny within-orbit part
    z[0, 1:, 0] += torch.tensor([1.0, 2.0], dtype=dtype)
    z[1, 1:, 0] += torch.tensor([1.0, 2.0], dtype=dtype)
    li = finalize(orbit_statistics(OrbitOutputs(z)))["li"]
    assert 0.0 < li < 1e-10 if dtype == torch.float64 else 0.0 < li < 1e-5


class Offset(nn.Module):
    """A model plus a constant on every logit: softmax, pdi, sis and li do not change."""

    def __init__(self, model: nn.Module, offset: float) -> None:
        super().__init__()
        self.model, self.offset = model, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.offset


@pytest.mark.parametrize("offset", [1e4, 1e6, 1e8])
def test_li_does_not_cancel_under_a_large_logit_offset(offset: float) -> None:
    """S2 − ‖S1‖²/(nN) on raw sums lost li to cancellation (0.75 read as 0.16 at 1e8)."""
    torch.manual_seed(0)
    base = _model_for((1, 6, 6), torch.float64)
    x = torch.randn(23, 1, 6, 6, dtype=torch.float64)
    expected = invariance_suite(base, x, "c4", saliency=False)["li"]
    shifted = Offset(base, offset)
    got = invariance_suite(shifted, x, "c4", saliency=False, chunk_size=5)["li"]
    metric = InvarianceMetrics(shifted, "c4", saliency=False)
    for a, b in [(0, 3), (3, 11), (11, 23)]:
        metric.update(x[a:b])
    # float64 logits near 1e8 keep ~8 digits of their spread
    tol = 1e-12 * offset
    assert got == pytest.approx(expected, rel=tol)
    assert metric.compute()["li"] == pytest.approx(expected, rel=tol)


def test_states_synced_across_processes_add_up(dtype: torch.dtype) -> None:
    """Two 'processes' centred their sums on different first batches; synced, they give the
    measures of all the data (a stand-in gather hands over the other process's states)."""
    from ginvariance.metrics.functional import shift_frame

    torch.manual_seed(0)
    model = Offset(_model_for((1, 6, 6), dtype), 50.0)
    x = torch.randn(19, 1, 6, 6, dtype=dtype)
    y = torch.randint(0, 10, (19,))
    whole = invariance_suite(model, x, "c4", y)
    a, b = InvarianceMetrics(model, "c4"), InvarianceMetrics(model, "c4")
    a.update(x[:8], y[:8])
    b.update(x[8:], y[8:])
    mine = invariance_suite(model, x[:8], "c4", y[:8])  # (compute() would cache its result)
    names = ("count", "order", "li_shift", "li_sum_z", "li_sum_sq")
    zero = torch.zeros((), dtype=torch.float64)
    theirs = {n: getattr(b, n) for n in a._reductions}
    theirs.update(shift_frame({n: getattr(b, n) for n in names}, zero))
    queue = iter([theirs[n] for n in a._reductions])

    def gather(tensor: torch.Tensor, group: object = None) -> list[torch.Tensor]:
        return [tensor, next(queue)]

    a.sync(dist_sync_fn=gather, distributed_available=lambda: True)
    synced = a._measures()  # compute() itself refuses to run on manually synced states
    tol = {"rel": 1e-9} if dtype == torch.float64 else {"abs": 1e-6}
    for key in (*KEYS, "li_within"):
        assert synced[key] == pytest.approx(whole[key], **tol), key
    a.unsync()  # back to this process's own states
    a._computed = None
    for key in (*KEYS, "li_within"):
        assert a.compute()[key] == pytest.approx(mine[key], **tol), key


def test_measure_accepts_tensors_datasets_and_loaders(dtype: torch.dtype) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    model = _model_for((1, 6, 6), dtype)
    x = torch.randn(20, 1, 6, 6, dtype=dtype)
    y = torch.randint(0, 10, (20,))
    a = measure(model, (x, y), "c4").to_dict()
    b = measure(model, TensorDataset(x, y), "c4").to_dict()
    c = measure(model, DataLoader(TensorDataset(x, y), batch_size=6), "c4").to_dict()
    for key in KEYS:
        assert a["id"][key] == pytest.approx(b["id"][key], rel=1e-9)
        assert a["id"][key] == pytest.approx(c["id"][key], rel=1e-9)
    assert a["id"]["n_samples"] == 20 and a["shift"] == {}


def test_measure_with_custom_shifts_drops_accuracy_for_label_free_shifts() -> None:
    model = _model_for((1, 6, 6), torch.float32)
    x = torch.randn(10, 1, 6, 6)
    y = torch.randint(0, 10, (10,))

    def uniform(t: torch.Tensor, seed: int) -> torch.Tensor:
        return torch.rand(t.shape, generator=torch.Generator().manual_seed(seed))

    report = measure(model, (x, y), "c4", shifts={"negated": lambda t, s: -t, "uniform": uniform})
    d = report.to_dict()
    assert set(d["shift"]) == {"negated", "uniform"}
    assert "accuracy" in d["shift"]["negated"] and "accuracy" not in d["shift"]["uniform"]
    direct = invariance_suite(model, -x, "c4", y)
    assert d["shift"]["negated"]["pdi"] == pytest.approx(direct["pdi"], rel=1e-9)


def test_measure_restores_training_mode() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 3))
    model.train()
    a = measure(model, (torch.randn(5, 1, 4, 4),), "c4")
    b = measure(model, (torch.randn(5, 1, 4, 4),), "c4")
    assert model.training
    assert a.id["n_samples"] == b.id["n_samples"] == 5


# -- bad input ----------------------------------------------------------------------------
def test_bad_inputs_raise_specific_errors() -> None:
    model = _model_for((1, 6, 6), torch.float32)
    x = torch.randn(4, 1, 6, 6)
    with pytest.raises(DataError, match="NaN"):
        invariance_suite(model, x.clone().fill_(float("nan")), "c4")
    with pytest.raises(DataError, match="empty"):
        invariance_suite(model, x[:0], "c4")
    with pytest.raises(DataError, match="floating"):
        invariance_suite(model, x.long(), "c4")
    with pytest.raises(DataError, match="batch axis"):
        invariance_suite(model, torch.randn(5), "c4")
    with pytest.raises(DataError, match="labels"):
        invariance_suite(model, x, "c4", torch.zeros(3, dtype=torch.long))
    with pytest.raises(LabelError, match="lie in"):
        invariance_suite(model, x, "c4", torch.full((4,), 10))
    with pytest.raises(GroupActionError, match="square"):
        invariance_suite(_model_for((1, 4, 6), torch.float32), torch.randn(2, 1, 4, 6), "c4")
    with pytest.raises(ConfigError, match="chunk size"):
        invariance_suite(model, x, "c4", chunk_size=0)
    with pytest.raises(ConfigError, match="memory budget"):
        invariance_suite(model, x, "c4", memory_budget=-1)
    with pytest.raises(ModelError, match=r"\(B, K\)"):
        invariance_suite(nn.Identity(), x, "c4")
    with pytest.raises(DataError, match="Dataset"):
        measure(model, "not data", "c4")


def test_pdi_of_an_invariant_float32_model_is_not_negative() -> None:
    """pdi is computed from float64 logits: float32 rounding cannot make a divergence < 0.

    Logits that agree over the orbit up to one float32 rounding (what a weight-tied or
    group-averaged float32 net returns) gave per-sample pdi down to −1.2e-7 when the
    log-probabilities were taken in float32.
    """
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(1, 256, 10, generator=g) * 8).repeat(4, 1, 1)
    z = (z + torch.randint(-1, 2, z.shape, generator=g) * z.abs() * 6e-8).float()
    stats = functional.orbit_statistics(OrbitOutputs(logits=z))
    reference = functional.pdi_per_sample(z.double())
    assert float(stats["pdi_sum"]) == pytest.approx(float(reference.sum()), abs=1e-15)
    assert float(stats["pdi_sum"]) / 256 >= -1e-15
    assert float(reference.min()) >= -1e-15


def test_the_package_lists_measure_and_nothing_stray() -> None:
    import ginvariance

    names = dir(ginvariance)
    assert "measure" in names and "get_group" in names and "annotations" not in names
    assert ginvariance.measure is measure
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ginvariance.nope  # noqa: B018
