"""Smoke tests of the benchmark: its naive loop and checks agree, a tiny run emits valid JSON.

``ginv bench`` (:mod:`ginvariance.bench`) and the comparisons beside the package
(``benchmarks/bench.py``: the naive loop, tmeasures). No timing is asserted: the benchmark
reports times, the tests check the numbers it compares and the shape of what it emits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from benchmarks.bench import (
    Comparisons,
    naive_suite,
    normalized_variance,
    run_comparison,
    sequential_spec,
)

from ginvariance.bench import (
    BENCH_MODELS,
    BenchCheckError,
    BenchConfig,
    build_bench_model,
    build_cnn,
    compare_measures,
    run_bench,
    synthetic_data,
)
from ginvariance.errors import ConfigError
from ginvariance.groups import get_group
from ginvariance.io import to_json
from ginvariance.metrics import invariance_suite, orbit_pass

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_naive_suite_equals_batched_suite(dtype: torch.dtype) -> None:
    model = build_cnn(8, seed=1).to(dtype)
    x, y = synthetic_data(7, 8, seed=3)
    x = x.to(dtype)
    ours = invariance_suite(model, x, "c4", y, saliency=True, chunk_size=3)
    naive = naive_suite(model, x, y, "c4")
    assert set(naive) == set(ours)
    for key in ours:
        if key == "li_within":  # squared logit units: relative
            assert naive[key] == pytest.approx(ours[key], rel=TOL[dtype]), key
        else:
            assert naive[key] == pytest.approx(ours[key], abs=TOL[dtype]), key
    assert 0 < naive["pdi"] and 0 < naive["li"] < 1 and naive["sis"] < 1


def test_naive_suite_without_labels() -> None:
    model = build_cnn(8).double()
    x, _ = synthetic_data(3, 8)
    out = naive_suite(model, x.double(), None, "c4")
    assert set(out) == {"pdi", "li", "li_within", "sis", "orbit_consistency"}


def test_compare_measures_flags_a_difference() -> None:
    same = {"pdi": 0.1, "li": 0.2, "accuracy": 0.5}
    assert compare_measures(same, dict(same), 10, "x")["pdi"] == 0.0
    with pytest.raises(BenchCheckError, match="li differs"):
        compare_measures(same, {**same, "li": 0.201}, 10, "x")
    compare_measures(same, {**same, "accuracy": 0.6}, 10, "x")  # one sample in ten
    with pytest.raises(BenchCheckError, match="accuracy"):
        compare_measures(same, {**same, "accuracy": 0.7}, 10, "x")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalized_variance_matches_a_loop(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, 3, generator=gen, dtype=dtype)
    nv = normalized_variance(logits)
    for k in range(3):
        z = logits[:, :, k].double()
        num = sum(float(z[:, b].std()) for b in range(9)) / 9
        den = sum(float(z[g, :].std()) for g in range(4)) / 4
        assert float(nv[k]) == pytest.approx(num / den, rel=1e-12)


@pytest.mark.parametrize("name", BENCH_MODELS)
@pytest.mark.parametrize("size", [8, 28])
def test_sequential_spec_rebuilds_the_model(size: int, name: str) -> None:
    model = build_bench_model(name, size)
    x, _ = synthetic_data(3, size)
    spec, seq = sequential_spec(model, x)
    kinds = [layer["type"] for layer in spec]
    assert kinds[-1] == "linear" and kinds.count("flatten") == 1
    assert kinds.index("flatten") < kinds.index("linear")
    assert torch.equal(seq(x), model(x))


def test_sequential_spec_refuses_other_layers() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    with pytest.raises(ConfigError, match="skip-tmeasures"):
        sequential_spec(model, torch.zeros(2, 1, 8, 8))


TINY = {
    "size": 8,
    "n": 8,
    "threads": (1,),
    "rounds": 1,
    "warmup": 0,
    "train_batch": 4,
    "train_rounds": 1,
    "train_steps": 1,
    "rss_n": (),
}


@pytest.mark.parametrize("name", BENCH_MODELS)
def test_tiny_bench_runs_and_emits_json(name: str) -> None:
    cfg = BenchConfig(model=name, **TINY)
    cmp = Comparisons(naive_samples=4, tmeasures=False)
    result = json.loads(to_json(run_comparison(cfg, cmp)))
    assert result["config"]["chunk_size"] == 8
    assert result["config"]["model"] == name
    assert result["checks"]["naive_vs_suite"]["samples"] == 4
    assert result["checks"]["floor_logits_max_abs_diff"] <= 1e-5
    (run,) = result["runs"]
    assert run["threads"] == 1
    for key in ("suite", "suite_logit", "forward", "forward_backward", "naive", "train_plain"):
        assert run["seconds"][key] > 0, key
    assert set(run["targets"]) == {
        "suite_logit/forward",
        "suite/forward_backward",
        "naive/suite",
        "train_regularized_sample/train_plain",
    }
    assert run["notes"]["naive_measured_on"] == 8  # a few ms: it ran on all N
    model = build_bench_model(name, 8)
    x, _ = synthetic_data(8, 8)
    nv = normalized_variance(orbit_pass(model, x, get_group("c4")).logits)
    assert result["tmeasures_normalized_variance_ours"] == pytest.approx(float(nv.mean()))


def test_ginv_bench_times_the_suite_against_the_model_only() -> None:
    result = json.loads(to_json(run_bench(BenchConfig(model="mlp", **TINY))))
    (run,) = result["runs"]
    assert "naive" not in run["seconds"] and "naive_vs_suite" not in result["checks"]
    assert {"suite", "forward_backward", "train_regularized_full"} <= set(run["seconds"])
    assert run["targets"]["suite/forward_backward"]["op"] == "<="


@pytest.mark.parametrize("option", [["--naive-samples", "4"], ["--tmeasures-venv", "venv"]])
def test_cli_comparison_options_point_to_the_benchmark_script(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bench", *option, "--skip-rss"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "python benchmarks/bench.py" in err and option[0] in err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 10}, "--size"),
        ({"n": 1}, "--n"),
        ({"threads": (0,)}, "--threads"),
        ({"model": "vgg"}, "--model"),
        ({"model": "resnet", "width": 0}, "--width"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_bad_config(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BenchConfig(**changes).check()
        run_bench(BenchConfig(**changes))


def test_tiny_resnet_bench_on_colour_images() -> None:
    """``--model resnet --size 32``: 32×32×3 inputs, the floor ratios side by side."""
    cfg = BenchConfig(
        size=32,
        model="resnet",
        width=2,
        n=4,
        threads=(1,),
        rounds=1,
        warmup=0,
        train=False,
        rss_n=(),
    )
    result = json.loads(to_json(run_bench(cfg)))
    assert result["config"]["sample_shape"] == [3, 32, 32]
    assert result["config"]["width"] == 2 and result["config"]["device"] == "cpu"
    (run,) = result["runs"]
    assert {"suite_logit/forward", "suite/forward_backward"} <= set(run["targets"])
    assert result["checks"]["floor_saliency_max_abs_diff"] <= 1e-5


def test_cli_bad_size_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "--size", "10", "--skip-tmeasures", "--skip-rss"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ginv: error:") and "\n" not in err and "--size" in err


def test_the_package_makes_no_environment_and_reaches_into_no_checkout() -> None:
    """Making virtual environments and installing packages is tooling: ``benchmarks/``."""
    import ginvariance

    root = Path(ginvariance.__file__).parent
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ('"venv"', '"pip"', '"benchmarks"'):
            assert needle not in text, f"{path.relative_to(root)} holds {needle}"


def test_train_step_refuses_an_unknown_kind() -> None:
    """A misspelt kind must not time another step silently."""
    from ginvariance.bench import make_train_step

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    for kind in ("plain", "augmented", "regularized_sample", "regularized-full"):
        make_train_step(model, get_group("c4"), kind, x, y, torch.Generator())()
    with pytest.raises(ConfigError, match="unknown training step 'regularised-full'"):
        make_train_step(model, get_group("c4"), "regularised-full", x, y, torch.Generator())
