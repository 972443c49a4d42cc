"""Fuzzing the measures and the groups: a correct result or a documented exception, nothing else.

Hypothesis draws sample shapes, dtypes (float32, float64 and invalid ones), values (NaN,
±inf, huge, tiny and subnormal magnitudes, all-zero), labels (in and out of range), chunk
sizes and batch splits. Allowed outcomes:

* a result within the measures' ranges — ``pdi`` in ``[-1e-6, log n + 1e-6]``, ``li`` in
  ``[0, 1]``, ``sis`` in ``[-1, 1]``, accuracies in ``[0, 1]`` — and the streaming classes
  over any split equal to one batch;
* a :class:`~ginvariance.errors.GinvarianceError`, of the class the input calls for: bad
  inputs, labels, groups or chunk sizes give their own error, and valid inputs may only
  fail with a :class:`ModelError` (logits that overflow).

Runs derandomized (seeded) with a fixed number of examples per test (``EXAMPLES``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from ginvariance.errors import (
    ConfigError,
    DataError,
    GinvarianceError,
    GroupActionError,
    LabelError,
    ModelError,
)
from ginvariance.groups import get_group
from ginvariance.metrics import InvarianceMetrics, invariance_suite

#: max_examples of each test; their sum is the number of fuzz examples per run.
EXAMPLES = {"suite": 1500, "streaming": 800, "groups": 1200, "act_per_sample": 500}

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

GROUPS = ["c4", "d4", "flip", "shift", "shift-2", "cyclic1d", "cyclic1d-2", "rotation-3"]
VALID_DTYPES = [np.float32, np.float64]
INVALID_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.float16, np.complex64]
SPECIAL = [0.0, -0.0, 1e-45, 1e-300, 1e-30, 1.0, -1.0, 1e30, -1e30, 3e38, 1e300, math.inf,
           -math.inf, math.nan]  # fmt: skip

# (C, s, s) with s in {2, 4} fits every group in GROUPS; the others often do not
FITTING = st.tuples(st.integers(1, 2), st.sampled_from([2, 4]), st.sampled_from([2, 4]))
SAMPLE_SHAPES = st.one_of(
    FITTING,
    FITTING,
    FITTING,
    st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)),  # (C, H, W)
    st.tuples(st.integers(1, 5), st.integers(1, 5)),  # (H, W) or (C, L)
    st.tuples(st.integers(1, 6)),  # (L,)
)


@st.composite
def inputs(draw: st.DrawFn, valid_dtype_only: bool = False) -> np.ndarray:
    """A batch ``(B, *S)`` of any values, in a valid or (sometimes) invalid dtype."""
    batch = draw(st.integers(1, 5))
    shape = (batch, *draw(SAMPLE_SHAPES))
    dtypes = VALID_DTYPES if valid_dtype_only else VALID_DTYPES * 6 + INVALID_DTYPES
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    kind = draw(st.sampled_from(["normal", "normal", "special", "zeros", "any"]))
    if dtype.kind not in "fc":
        return draw(hnp.arrays(dtype, shape))
    if kind == "zeros":
        return np.zeros(shape, dtype)
    if kind == "any":  # hypothesis' own choice of floats: NaN, ±inf, subnormals, extremes
        return draw(hnp.arrays(dtype, shape))
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(shape)
    if kind == "special":  # a random scale and a few special values
        x = x * draw(st.sampled_from([1e-300, 1e-30, 1e-6, 1.0, 1e6, 1e30, 1e150]))
        n_special = draw(st.integers(0, 3))
        for _ in range(n_special):
            index = tuple(draw(st.integers(0, s - 1)) for s in shape)
            x[index] = draw(st.sampled_from(SPECIAL))
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def linear(sample_shape: tuple[int, ...], classes: int, dtype: torch.dtype, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(sample_shape), classes))
    return model.to(dtype if dtype in (torch.float32, torch.float64) else torch.float32)


def group_fits(group: str, sample_shape: tuple[int, ...]) -> bool:
    try:
        get_group(group, sample_shape)
    except GroupActionError:
        return False
    return True


def expected_error(x: torch.Tensor, group: str) -> type[GinvarianceError] | None:
    """The error an input must raise before any model runs, or None when it is measurable."""
    if not x.is_floating_point() or x.dim() < 2 or not bool(torch.isfinite(x).all()):
        return DataError
    if not group_fits(group, tuple(x.shape[1:])):
        return GroupActionError
    return None  # float16 included: whether the model runs on it is the model's business


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bytes of the elements, last axis widened (so that NaN equals the same NaN)."""
    return t.contiguous().view(torch.uint8)


def check_ranges(result: dict[str, float], order: int) -> None:
    assert -1e-6 <= result["pdi"] <= math.log(order) + 1e-6, result
    assert 0.0 <= result["li"] <= 1.0, result
    assert 0.0 <= result["orbit_consistency"] <= 1.0, result
    if "sis" in result:
        assert -1.0 - 1e-6 <= result["sis"] <= 1.0 + 1e-6, result
    for key in ("accuracy", "orbit_accuracy"):
        if key in result:
            assert 0.0 <= result[key] <= 1.0, result
    assert all(math.isfinite(v) for v in result.values()), result


@settings(max_examples=EXAMPLES["suite"], **SETTINGS)
@given(
    x_np=inputs(),
    group=st.sampled_from(GROUPS),
    classes=st.integers(1, 4),
    labels=st.sampled_from(["none", "valid", "valid", "negative", "too_large"]),
    chunk=st.one_of(st.none(), st.integers(-2, 6)),
    saliency=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_invariance_suite_fuzz(
    x_np: np.ndarray,
    group: str,
    classes: int,
    labels: str,
    chunk: int | None,
    saliency: bool,
    seed: int,
) -> None:
    x = torch.from_numpy(x_np)
    b = x.shape[0]
    y = None
    if labels != "none":
        y = torch.arange(b) % classes
        if labels == "negative":
            y[0] = -1
        elif labels == "too_large":
            y[-1] = classes
    model = linear(tuple(x.shape[1:]), classes, x.dtype, seed)
    must = expected_error(x, group)
    try:
        result = invariance_suite(model, x, group, y, saliency=saliency, chunk_size=chunk)
    except GinvarianceError as exc:
        event(f"refused: {type(exc).__name__}")
        if must is not None:
            assert isinstance(exc, must), (must, exc)
        elif chunk is not None and chunk < 1:
            assert isinstance(exc, ConfigError), exc
        elif labels in ("negative", "too_large"):
            assert isinstance(exc, LabelError | ModelError), exc
        else:  # a valid input: only a model whose logits overflow may fail
            assert isinstance(exc, ModelError), exc
        return
    event("measured")
    assert must is None, "a bad input was measured"
    assert chunk is None or (chunk >= 1 and labels not in ("negative", "too_large"))
    order = get_group(group, tuple(x.shape[1:])).order
    check_ranges(result, order)
    assert ("sis" in result) == saliency
    assert ("accuracy" in result) == (y is not None)


@settings(max_examples=EXAMPLES["streaming"], **SETTINGS)
@given(
    x_np=inputs(valid_dtype_only=True),
    group=st.sampled_from(GROUPS),
    classes=st.integers(1, 4),
    cuts=st.lists(st.integers(0, 5), max_size=4),
    with_labels=st.booleans(),
    saliency=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_streaming_equals_one_batch_fuzz(
    x_np: np.ndarray,
    group: str,
    classes: int,
    cuts: list[int],
    with_labels: bool,
    saliency: bool,
    seed: int,
) -> None:
    """Any split into batches (empty ones refused) accumulates to the one-batch result."""
    x = torch.from_numpy(x_np)
    b = x.shape[0]
    y = torch.arange(b) % classes if with_labels else None
    model = linear(tuple(x.shape[1:]), classes, x.dtype, seed)
    try:
        whole = invariance_suite(model, x, group, y, saliency=saliency)
    except GinvarianceError as exc:
        assert isinstance(exc, expected_error(x, group) or ModelError), exc
        return
    bounds = sorted({0, b, *[min(c, b) for c in cuts]})
    metric = InvarianceMetrics(model, group, saliency=saliency)
    for start, stop in itertools.pairwise(bounds):
        metric.update(x[start:stop], None if y is None else y[start:stop])
    with pytest.raises(DataError):  # an empty batch is refused and leaves the state alone
        metric.update(x[:0], None if y is None else y[:0])
    # compute() gives tensors; an undefined sis is NaN where the functional suite says None
    streamed = {k: None if torch.isnan(v) else float(v) for k, v in metric.compute().items()}
    assert streamed.keys() == whole.keys()
    # float64 sums in another order, and a float32 model may round differently per batch size
    rel, tol = (1e-9, 1e-12) if x.dtype == torch.float64 else (1e-4, 1e-6)
    # li_within is in squared logit units: identical inputs in batches of other sizes can
    # differ by the rounding of their logits, so its floor is (a few ulps of |z|)²
    with torch.no_grad():
        z_max = float(model(x).double().abs().max())
    eps = torch.finfo(x.dtype if x.dtype == torch.float64 else torch.float32).eps
    for key, value in whole.items():
        floor = max(tol, (64 * eps * z_max) ** 2) if key == "li_within" else tol
        assert streamed[key] == pytest.approx(value, rel=rel, abs=floor), key
    check_ranges(streamed, get_group(group, tuple(x.shape[1:])).order)


@settings(max_examples=EXAMPLES["groups"], **SETTINGS)
@given(x_np=inputs(), group=st.sampled_from(GROUPS))
def test_group_actions_fuzz(x_np: np.ndarray, group: str) -> None:
    """Orbits have shape (n·B, *S), block i is g_i·x, and exact groups invert bit for bit."""
    x = torch.from_numpy(x_np)
    try:
        g = get_group(group, tuple(x.shape[1:]))
        orbit = g.orbit(x)
    except GinvarianceError as exc:
        assert isinstance(exc, GroupActionError), exc
        interpolated = group.startswith("rotation") and not x.is_floating_point()
        assert interpolated or not group_fits(group, tuple(x.shape[1:])), exc
        return
    n, b = g.order, x.shape[0]
    assert orbit.shape == (n * b, *x.shape[1:]) and orbit.dtype == x.dtype
    for i in range(n):
        assert torch.equal(bits(orbit[i * b : (i + 1) * b]), bits(g.act(x, i)))
    assert torch.equal(bits(orbit[:b]), bits(x))  # the identity comes first, exactly
    if g.exact:
        back = g.inverse_orbit(orbit)
        for i in range(n):  # bit for bit, NaN payloads and -0.0 included
            assert torch.equal(bits(back[i * b : (i + 1) * b]), bits(x))
        # an exact action permutes the entries of each sample: same sorted bit patterns
        ref = torch.sort(bits(x).reshape(1, b, -1), dim=-1).values
        got = torch.sort(bits(orbit).reshape(n, b, -1), dim=-1).values
        assert torch.equal(got, ref.expand_as(got))


@settings(max_examples=EXAMPLES["act_per_sample"], **SETTINGS)
@given(
    x_np=inputs(valid_dtype_only=True),
    group=st.sampled_from(GROUPS),
    data=st.data(),
)
def test_act_per_sample_fuzz(x_np: np.ndarray, group: str, data: st.DataObject) -> None:
    """Per-sample actions equal a loop over samples; indices outside the group are refused."""
    x = torch.from_numpy(x_np)
    try:
        g = get_group(group, tuple(x.shape[1:]))
    except GroupActionError:
        return
    b, n = x.shape[0], g.order
    index = torch.tensor(data.draw(st.lists(st.integers(-2, n + 1), min_size=b, max_size=b)))
    if bool(((index < 0) | (index >= n)).any()):
        with pytest.raises(GroupActionError):
            g.act_per_sample(x, index)
        return
    out = g.act_per_sample(x, index)
    for k in range(b):
        assert torch.equal(bits(out[k : k + 1]), bits(g.act(x[k : k + 1], int(index[k]))))
    drawn = g.sample(b, torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    assert drawn.shape == (b,) and int(drawn.min()) >= 0 and int(drawn.max()) < n
