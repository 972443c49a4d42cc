"""The study behind ``ginv run``: claims, determinism, resuming, refusing to overwrite, CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ginvariance.errors import ConfigError, OutputError
from ginvariance.experiments import (
    MODELS,
    RESULTS_FILE,
    SALIENCY_FILE,
    TRAINED_MODELS,
    StudyConfig,
    checkpoint_dir,
    evaluate_claims,
    plan_checkpoints,
    run_study,
)
from ginvariance.experiments.claims import CLAIM_KEYS, verdict
from ginvariance.experiments.stats import aggregate as _aggregate
from ginvariance.experiments.study import LONGEST_FIRST
from ginvariance.folder import MANIFEST_FILE, output_folder
from ginvariance.io import atomic_write_text, to_json

# A tiny study: a few training samples and epochs, few test samples. Its numbers mean
# nothing; it exercises every step of the real one in seconds.
TINY = StudyConfig(
    limit=96,
    epochs=2,
    n_measure=24,
    n_spectral=8,
    shifts=("uniform", "noise-0.5"),
    n_directions=2,
    eps=(1e-3, 1e-1),
    n_saliency=1,
)


def without_timings(results: dict) -> str:
    return to_json({k: v for k, v in results.items() if k != "timings"})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tiny")
    return out, run_study(TINY, out)


# -- the real quick study ----------------------------------------------------------------


@pytest.mark.slow
def test_quick_study_shows_the_claims(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`ginv run --quick` for real: every file written, and the claims as measured.

    C1, C2, C4 and C5 in the paper's raw terms hold. C3 holds for the weight-tied net (exact on
    every input) but the augmented net's pdi on uniform noise is not 5× its in-distribution
    value in this short setting: the study reports what it measures, and this test checks only
    the direction of that effect. C5 beyond a change of scale is not asserted either way.
    """
    from ginvariance.cli import main

    main(["run", "--quick", "--out", str(tmp_path), "--json"])
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert printed == results
    for name in ("report.html", "saliency.png", "measures.png", "spectral.png", SALIENCY_FILE):
        assert (tmp_path / name).is_file(), name
    assert results["config"]["quick"] is True
    assert sorted(results["models"]) == sorted(MODELS)
    claims = results["claims"]
    numbers = json.dumps({k: c["numbers"] for k, c in claims.items()}, indent=1)
    # The verdicts are what the numbers say ...
    assert claims == json.loads(to_json(evaluate_claims(results["models"])))
    # ... and in the quick setting these claims of the paper hold.
    for key in ("C1", "C2", "C4", "C5-raw"):
        assert claims[key]["holds"], f"{key} fails: {numbers}"
    c3 = claims["C3-decision"]["numbers"]
    assert c3["weight_tied_max_abs_pdi"] <= 1e-5 and c3["weight_tied_min_consistency"] == 1.0
    assert claims["C3-logit"]["numbers"]["weight_tied_max_li"] <= 1e-5
    assert c3["pdi_ratio"] > 1.0, numbers
    # Weight-tying is exact on every input condition.
    wt = results["models"]["weight-tied"]
    for values in [wt["id"], *wt["shift"].values()]:
        assert abs(values["pdi"]) <= 1e-5 and values["li"] <= 1e-5
        assert values["sis"] == pytest.approx(1.0, abs=1e-3)  # float32 gradients: ~3e-4


# -- determinism, resuming, refusing -------------------------------------------------------


def test_same_seed_gives_identical_results(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    """Two fresh trainings with the same seed: results.json equal byte for byte but timings."""
    first_dir, first = tiny_run
    second = run_study(TINY, tmp_path)
    assert without_timings(first) == without_timings(second)
    on_disk = json.loads((first_dir / RESULTS_FILE).read_text())
    assert without_timings(on_disk) == without_timings(first)
    assert set(first["timings"]["seeds"]["0"]) == set(MODELS)
    # The weights themselves are identical.
    for mode in TRAINED_MODELS:
        a = (checkpoint_dir(first_dir, 0) / f"{mode}.safetensors").read_bytes()
        b = (checkpoint_dir(tmp_path, 0) / f"{mode}.safetensors").read_bytes()
        assert a == b, mode


def test_results_have_the_design_format(tiny_run: tuple[Path, dict]) -> None:
    _, results = tiny_run
    assert results["group"] == "c4" and results["dataset"] == "digits"
    assert results["seed"] == 0 and results["seeds"] == [0]
    assert set(results["claims"]) == set(CLAIM_KEYS)
    reference = results["shift_reference"]
    assert reference["source"] == "training split" and reference["n_samples"] == TINY.limit
    assert set(results["shift_parameters"]) == set(TINY.shifts)
    assert results["shift_parameters"]["noise-0.5"]["scale"] == pytest.approx(
        0.5 * reference["std"]
    )
    assert "torch" in results["versions"]
    for mode in MODELS:
        entry = results["models"][mode]
        assert set(entry["id"]) >= {"accuracy", "orbit_accuracy", "pdi", "li", "sis"}
        assert set(entry["shift"]) == {"uniform", "noise-0.5"}
        assert "accuracy" not in entry["shift"]["uniform"]  # pure noise has no labels
        assert entry["id"]["n_samples"] == TINY.n_measure
        assert len(entry["spectral"]["singular_values"]) == 10
        assert entry["spectral"]["eps"] == list(TINY.eps)
        assert len(entry["per_seed"]) == 1 and entry["per_seed"][0]["id"] == entry["id"]
        assert entry["std"]["id"]["pdi"] is None  # one seed: no spread
    with np.load(tiny_run[0] / SALIENCY_FILE, allow_pickle=False) as saliency:
        assert saliency["x"].shape == (1, 1, 8, 8)
        assert saliency["weight-tied"].shape == (4, 1, 1, 8, 8)
        assert saliency["symmetrized"].shape == (4, 1, 1, 8, 8)
    # frame averaging of the augmented net: invariant by construction, at 4 forwards
    sym = results["models"]["symmetrized"]
    assert sym["inference_forwards"] == 4 and results["models"]["plain"]["inference_forwards"] == 1
    for values in [sym["id"], *sym["shift"].values()]:
        assert abs(values["pdi"]) <= 1e-6 and values["orbit_consistency"] == 1.0
    assert not (checkpoint_dir(tiny_run[0], 0) / "symmetrized.safetensors").exists()
    trained = results["models"]["regularized-normalized"]["per_seed"][0]["train"]
    assert trained  # trained with its own penalty (checked in test_study_config_of_models)


def test_rerun_reuses_checkpoints(tiny_run: tuple[Path, dict]) -> None:
    """Deleting results.json and running again reproduces it without training."""
    out, first = tiny_run
    before = {
        m: (checkpoint_dir(out, 0) / f"{m}.safetensors").stat().st_mtime_ns for m in TRAINED_MODELS
    }
    (out / RESULTS_FILE).unlink()
    again = run_study(TINY, out)
    assert without_timings(again) == without_timings(first)
    for mode in TRAINED_MODELS:
        path = checkpoint_dir(out, 0) / f"{mode}.safetensors"
        assert path.stat().st_mtime_ns == before[mode]  # not trained again


class InterruptDuring:
    """A progress reporter that raises KeyboardInterrupt after ``after`` epochs of ``task``."""

    def __init__(self, task: str, after: int) -> None:
        self.task, self.after, self.current, self.done = task, after, "", 0

    def start(self, total: int, description: str) -> None:
        self.current = description

    def advance(self, amount: int = 1, **info: float) -> None:
        if self.current == self.task:
            self.done += amount
            if self.done >= self.after:
                raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def test_interrupted_run_leaves_no_results_and_finishes(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """Ctrl-C after one epoch of the regularized model: no results; a rerun finishes them."""
    with pytest.raises(KeyboardInterrupt):
        run_study(TINY, tmp_path, progress=InterruptDuring("train regularized", after=1))
    assert not (tmp_path / RESULTS_FILE).exists()
    assert not (tmp_path / SALIENCY_FILE).exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    folder = checkpoint_dir(tmp_path, 0)
    assert json.loads((folder / "regularized.json").read_text())["epoch"] == 1
    assert not (folder / "weight-tied.safetensors").exists()
    written = {m: (folder / f"{m}.safetensors").stat().st_mtime_ns for m in MODELS[:3]}

    finished = run_study(TINY, tmp_path)
    after = {m: (folder / f"{m}.safetensors").stat().st_mtime_ns for m in MODELS[:3]}
    assert after["plain"] == written["plain"] and after["augmented"] == written["augmented"]
    assert json.loads((folder / "regularized.json").read_text())["epoch"] == TINY.epochs
    # Resuming reproduces the uninterrupted run exactly.
    assert without_timings(finished) == without_timings(tiny_run[1])


def test_mnist_study_is_deterministic(tmp_path: Path) -> None:
    """The 28×28 MNIST digits, twice (one and two trainings at a time): the same results."""
    tiny = dataclasses.replace(TINY, dataset="mnist", limit=64, n_measure=8, n_spectral=4)
    first = run_study(tiny, tmp_path / "a", jobs=1)
    second = run_study(tiny, tmp_path / "b", jobs=2)
    assert first["sample_shape"] == [1, 28, 28]
    assert without_timings(first) == without_timings(second)
    wt = first["models"]["weight-tied"]
    for values in [wt["id"], *wt["shift"].values()]:  # weight-tying is exact at 28×28 too
        assert abs(values["pdi"]) <= 1e-5 and values["li"] <= 1e-5


class InterruptAfterTasks:
    """A progress whose ``advance`` raises KeyboardInterrupt once ``after`` tasks finished."""

    def __init__(self, after: int) -> None:
        self.after, self.done = after, 0

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, amount: int = 1, **info: float) -> None:
        self.done += amount
        if self.done >= self.after:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def test_interrupted_concurrent_run_stops_and_finishes(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """Ctrl-C while two trainings run: no results, finished epochs kept; a rerun finishes."""
    with pytest.raises(KeyboardInterrupt):
        run_study(TINY, tmp_path, jobs=2, progress=InterruptAfterTasks(1))
    assert not (tmp_path / RESULTS_FILE).exists()
    folder = checkpoint_dir(tmp_path, 0)
    kept = [m for m in TRAINED_MODELS if (folder / f"{m}.safetensors").exists()]
    assert kept and len(kept) < len(TRAINED_MODELS)  # stopped before every model was trained
    import torch

    threads = torch.get_num_threads()
    finished = run_study(TINY, tmp_path, jobs=2)
    assert torch.get_num_threads() == threads  # the study's one thread per task is undone
    assert finished["timings"]["jobs"] == 2
    # two trainings at a time, each on one thread, resumed: the numbers of jobs=1
    assert without_timings(finished) == without_timings(tiny_run[1])
    assert set(LONGEST_FIRST) == set(TRAINED_MODELS)


def test_jobs_must_be_a_positive_integer(tmp_path: Path) -> None:
    for jobs in (0, -1, True, 1.5):
        with pytest.raises(ConfigError, match="jobs must be a positive integer"):
            run_study(TINY, tmp_path, jobs=jobs)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_killed_run_leaves_no_results_and_finishes(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """SIGKILL while training: complete checkpoints only; the same call finishes the study."""
    script = (
        "import sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from ginvariance.experiments import StudyConfig, run_study\n"
        f"run_study({TINY!r}, sys.argv[1])\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    marker = checkpoint_dir(tmp_path, 0) / "plain.json"
    try:
        while not marker.exists() and process.poll() is None:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL  # killed mid-study, not finished
    assert not (tmp_path / RESULTS_FILE).exists()
    assert not (tmp_path / "report.html").exists()
    finished = run_study(TINY, tmp_path)
    assert without_timings(finished) == without_timings(tiny_run[1])


def test_refuses_results_of_another_configuration(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    other = dataclasses.replace(TINY, lam=2.0)
    before = (out / RESULTS_FILE).read_bytes()
    with pytest.raises(OutputError, match="--force"):
        run_study(other, out)
    assert (out / RESULTS_FILE).read_bytes() == before
    # Without results.json the checkpoints still tell the configuration apart.
    bare = out.parent / "checkpoints-only"
    shutil.copytree(out / "checkpoints", bare / "checkpoints")
    shutil.copy(out / MANIFEST_FILE, bare / MANIFEST_FILE)  # they are ginv's own files
    with pytest.raises(OutputError, match=r"checkpoint .* another configuration"):
        plan_checkpoints(other, bare, force=False)
    plan = plan_checkpoints(other, bare, force=True)
    # λ of the logit penalty is in every model's configuration but the scale-free one's
    assert {key: action for key, action in plan.items() if action != "overwrite"} == {
        (0, "regularized-normalized"): "resume"
    }
    assert set(plan_checkpoints(TINY, bare, force=False).values()) == {"resume"}


def test_refuses_a_folder_without_a_study(tmp_path: Path) -> None:
    (tmp_path / RESULTS_FILE).write_text("[1, 2]")
    with pytest.raises(OutputError, match="not written by ginv"):
        plan_checkpoints(TINY, tmp_path, force=True)  # not ginv's: even --force leaves it
    owned = tmp_path / "owned"
    with output_folder(owned):
        atomic_write_text(owned / RESULTS_FILE, "[1, 2]")  # ginv's file, but not a study's
    with pytest.raises(OutputError, match="not a results file"):
        plan_checkpoints(TINY, owned, force=False)


# -- claims and aggregation (pure) ---------------------------------------------------------


def _models(**overrides: float) -> dict:
    """Measures of four models for which every claim holds; ``overrides`` break one."""

    def entry(
        pdi_id,
        li_id,
        sis,
        pdi_u,
        li_u,
        sens,
        acc=0.95,
        orbit=0.94,
        cons_id=0.95,
        cons_u=0.6,
        within_id=0.01,
        within_u=0.1,
        scale=20.0,
    ):
        return {
            "id": {"accuracy": acc, "orbit_accuracy": orbit, "pdi": pdi_id, "li": li_id,
                   "li_within": within_id, "sis": sis, "orbit_consistency": cons_id},
            "shift": {"uniform": {"pdi": pdi_u, "li": li_u, "li_within": within_u, "sis": sis,
                                  "orbit_consistency": cons_u},
                      "blur": {"pdi": pdi_id, "li": li_id, "li_within": within_id, "sis": sis,
                               "orbit_consistency": cons_id}},
            "spectral": {"eps": [0.1, 1e-3], "sensitivity_random": [9.0, sens],
                         "sensitivity_random_normalized": [9.0 / scale, sens / scale],
                         "logit_scale": scale, "frobenius": 10.0 * sens},
        }  # fmt: skip

    v = {
        "aug_pdi_id": 0.01, "aug_li_id": 0.01, "aug_sis": 0.85, "aug_pdi_u": 0.2,
        "aug_li_u": 0.1, "aug_sens": 4.0, "aug_orbit": 0.94, "aug_cons_u": 0.6,
        "aug_within_u": 0.1, "reg_pdi_u": 0.001, "reg_li_u": 0.001, "reg_sis": 0.995,
        "reg_sens": 2.0, "reg_scale": 20.0, "wt_sis": 1.0, "wt_pdi": 1e-9, "wt_li": 1e-12,
        "wt_cons_u": 1.0,
    }  # fmt: skip
    v.update(overrides)
    return {
        "plain": entry(0.5, 0.5, 0.1, 0.5, 0.5, 6.0),
        "augmented": entry(v["aug_pdi_id"], v["aug_li_id"], v["aug_sis"], v["aug_pdi_u"],
                           v["aug_li_u"], v["aug_sens"], orbit=v["aug_orbit"],
                           cons_u=v["aug_cons_u"], within_u=v["aug_within_u"]),
        "regularized": entry(0.001, 0.001, v["reg_sis"], v["reg_pdi_u"], v["reg_li_u"],
                             v["reg_sens"], scale=v["reg_scale"]),
        "weight-tied": entry(v["wt_pdi"], v["wt_li"], v["wt_sis"], -v["wt_pdi"], v["wt_li"],
                             1.0, cons_id=1.0, cons_u=v["wt_cons_u"], within_id=1e-14,
                             within_u=1e-14),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("claim", "override"),
    [
        ("C1", {"aug_orbit": 0.85}),
        ("C2", {"aug_sis": 0.99}),
        ("C2", {"wt_sis": 0.95, "aug_sis": 0.5}),
        ("C3-decision", {"aug_pdi_u": 0.04}),
        ("C3-decision", {"aug_cons_u": 0.95}),
        ("C3-decision", {"wt_pdi": 2e-5}),
        ("C3-decision", {"wt_cons_u": 0.99}),
        ("C3-logit", {"aug_within_u": 0.04}),
        ("C3-logit", {"wt_li": 2e-5}),
        ("C4", {"reg_pdi_u": 0.05}),
        ("C4", {"reg_li_u": 0.05}),
        ("C4", {"reg_sis": 0.80}),
        ("C5-raw", {"reg_sens": 4.0, "reg_scale": 40.0}),
        ("C5-scale-free", {"reg_scale": 10.0}),
        ("C5-scale-free", {"reg_sens": 3.8}),
    ],
)
def test_each_claim_fails_on_its_own_numbers(claim: str, override: dict) -> None:
    holds = evaluate_claims(_models())
    assert all(c["holds"] for c in holds.values())
    assert set(holds) == {k for k in CLAIM_KEYS if not k.endswith("-normalized")}
    broken = evaluate_claims(_models(**override))
    assert {k for k, c in broken.items() if not c["holds"]} == {claim}
    assert broken[claim]["statement"] and broken[claim]["numbers"]


def test_c3_logit_level_reads_li_within_not_li() -> None:
    """li can rise 10× only because the spread across inputs shrinks: that is no verdict."""
    claims = evaluate_claims(_models(aug_li_u=0.1, aug_within_u=0.0125))
    numbers = claims["C3-logit"]["numbers"]
    assert numbers["li_ratio"] == pytest.approx(10.0)
    assert numbers["li_within_ratio"] == pytest.approx(1.25)
    assert numbers["total_variance_ratio"] == pytest.approx(0.125)
    assert not claims["C3-logit"]["holds"] and claims["C3-decision"]["holds"]


def test_claims_use_the_smallest_eps_and_absolute_pdi() -> None:
    claims = evaluate_claims(_models(wt_pdi=6e-9, reg_scale=10.0))
    assert claims["C3-decision"]["numbers"]["weight_tied_max_abs_pdi"] == pytest.approx(6e-9)
    assert claims["C5-raw"]["numbers"]["eps"] == 1e-3
    assert claims["C5-raw"]["numbers"]["ratio"] == pytest.approx(0.5)
    free = claims["C5-scale-free"]["numbers"]
    assert free["logit_scale_ratio"] == pytest.approx(0.5)
    assert free["ratio"] == pytest.approx(1.0)  # half the sensitivity, half the logits
    json.loads(to_json(claims))  # JSON-ready, no NaN or infinity


def _with_seeds(values: list[dict]) -> dict:
    """Per-seed model entries (from ``_models(**v)`` for each ``v``) under one mean entry."""
    runs = [_models(**v) for v in values]
    mean = _models()
    for name in mean:
        mean[name]["per_seed"] = [run[name] for run in runs]
    return mean


def test_study_config_of_models() -> None:
    from ginvariance.training import CALIBRATED_LAM

    tc = TINY.train_config("regularized-normalized", 3)
    assert (tc.mode, tc.penalty, tc.lam, tc.seed) == (
        "regularized",
        "logit-normalized",
        CALIBRATED_LAM["logit-normalized"],
        3,
    )
    assert (
        dataclasses.replace(TINY, lam_normalized=2.5).train_config("regularized-normalized", 0).lam
        == 2.5
    )
    assert TINY.train_config("regularized", 0).penalty == "logit"
    with pytest.raises(ConfigError, match="not trained by the study"):
        TINY.train_config("symmetrized", 0)
    with pytest.raises(ConfigError, match="lam_normalized"):
        dataclasses.replace(TINY, lam_normalized=-1.0).validate()


def test_verdicts_use_the_interval_over_seeds() -> None:
    summary = {"n": 3, "mean": 6.0, "ci": [5.5, 6.5]}
    assert verdict(summary, ">=", 5.0, True) == "holds"
    assert verdict({**summary, "ci": [4.0, 8.0]}, ">=", 5.0, True) == "unclear"
    assert verdict({**summary, "mean": 3.0, "ci": [2.0, 4.0]}, ">=", 5.0, True) == "fails"
    assert verdict(summary, ">=", 5.0, False) == "fails"  # a side condition fails
    assert verdict({"n": 1, "mean": 0.95, "ci": None}, "<", 1.0, True) == "holds"
    assert verdict({"n": 1, "mean": 1.0, "ci": None}, "<", 1.0, True) == "fails"
    assert verdict({"n": 2, "mean": 0.9, "ci": [0.85, 0.95]}, "<=", 0.9, True) == "unclear"


def test_claims_over_seeds_hold_fail_or_stay_unclear() -> None:
    # pdi on uniform / in-dist: 20, 21, 19 (holds), or 3, 12, 6 (interval straddles 5)
    steady = _with_seeds([{"aug_pdi_u": 0.20}, {"aug_pdi_u": 0.21}, {"aug_pdi_u": 0.19}])
    claims = evaluate_claims(steady)
    c3 = claims["C3-decision"]
    assert c3["verdict"] == "holds" and c3["holds"]
    assert c3["deciding"]["values"] == pytest.approx([20.0, 21.0, 19.0])
    lo, hi = c3["deciding"]["ci"]
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} · s / √n, s = 1
    assert (lo, hi) == pytest.approx((20.0 - half, 20.0 + half))
    shaky = evaluate_claims(
        _with_seeds([{"aug_pdi_u": 0.03}, {"aug_pdi_u": 0.12}, {"aug_pdi_u": 0.06}])
    )
    assert shaky["C3-decision"]["verdict"] == "unclear" and not shaky["C3-decision"]["holds"]
    # a side condition that fails in one seed fails the claim
    one_bad = evaluate_claims(_with_seeds([{}, {"wt_pdi": 2e-5}, {}]))
    assert one_bad["C3-decision"]["verdict"] == "fails"
    assert not one_bad["C3-decision"]["deciding"]["side_conditions_hold"]
    assert {k for k, c in one_bad.items() if c["verdict"] != "holds"} == {"C3-decision"}
    json.loads(to_json(claims))


def test_a_second_regularizer_gets_its_own_c4_and_c5() -> None:
    models = _models()
    models["regularized-normalized"] = copy.deepcopy(models["regularized"])
    models["regularized-normalized"]["spectral"]["logit_scale"] = 40.0
    models["regularized-normalized"]["spectral"]["sensitivity_random_normalized"] = [0.45, 0.2]
    claims = evaluate_claims(models)
    assert {"C4-normalized", "C5-raw-normalized", "C5-scale-free-normalized"} <= set(claims)
    assert claims["C5-scale-free-normalized"]["numbers"]["ratio"] == pytest.approx(1.0)
    assert not claims["C5-scale-free-normalized"]["holds"] and claims["C5-scale-free"]["holds"]
    assert "regularized-normalized net" in claims["C4-normalized"]["statement"]


def test_aggregate_is_mean_and_sample_std_over_seeds() -> None:
    rng = np.random.default_rng(0)
    runs = [
        {"id": {"pdi": float(a), "n_samples": 10}, "spectral": {"sv": [float(b), float(c)],
         "ratio": None if i == 1 else 1.0}}
        for i, (a, b, c) in enumerate(rng.random((3, 3)))
    ]  # fmt: skip
    mean = _aggregate(runs, "mean")
    std = _aggregate(runs, "std")
    pdi = [r["id"]["pdi"] for r in runs]
    assert mean["id"]["pdi"] == pytest.approx(float(np.mean(pdi)))
    assert std["id"]["pdi"] == pytest.approx(float(np.std(pdi, ddof=1)))
    sv = np.array([r["spectral"]["sv"] for r in runs])
    assert mean["spectral"]["sv"] == pytest.approx(list(sv.mean(axis=0)))
    assert std["spectral"]["sv"] == pytest.approx(list(sv.std(axis=0, ddof=1)))
    assert mean["id"]["n_samples"] == 10 and std["id"]["n_samples"] is None
    assert mean["spectral"]["ratio"] is None  # undefined in one seed: undefined on average
    assert _aggregate([runs[0]], "std")["id"]["pdi"] is None


def test_study_config_validation() -> None:
    resolved = StudyConfig(quick=True).resolved()
    assert resolved.epochs and resolved.n_measure and resolved.n_spectral
    assert StudyConfig().resolved().n_measure is None  # the whole test split
    assert StudyConfig().resolved(4).orbit == "full"
    # A large group (cyclic1d on MNIST-1D: 40 elements): a sampled orbit penalty and fewer
    # test samples, unless they are given.
    large = StudyConfig().resolved(40)
    assert large.orbit == "sample" and large.n_measure == 16384 // 40
    assert StudyConfig(quick=True).resolved(40).n_measure == 4096 // 40
    assert StudyConfig(n_measure=1000, orbit="full").resolved(40).n_measure == 1000
    assert StudyConfig(n_measure=1000, orbit="full").resolved(40).orbit == "full"
    for bad in (
        {"seeds": ()},
        {"seeds": (0, 0)},
        {"seeds": (-1,)},
        {"epochs": 0},
        {"shifts": ("blur",)},
        {"eps": (0.0,)},
        {"lam": math.inf},
        {"dtype": "float16"},
    ):
        with pytest.raises(ConfigError):
            StudyConfig(**bad).resolved()


# -- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--bogus"], "--bogus"),
        (["run", "--seeds", "0,x"], "--seeds"),
        (["run", "--seeds", "1,1"], "repeats"),
        (["run", "--seeds", ""], "--seeds"),
        (["run", "--dataset", "nope"], "nope"),
        (["run", "--group", "c7"], "c7"),
        (["run", "--dataset", "mnist1d", "--group", "c4"], "c4"),
        (["run", "--epochs", "0"], "epochs"),
        (["report"], "folder"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "out")] if argv[0] == "run" else argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ginv: error:"), err
    assert expected.lower() in err.lower(), err  # click 8.1 says FOLDER, later clicks folder
    assert not (tmp_path / "out" / RESULTS_FILE).exists()


def test_cli_refuses_other_results_without_force(
    tiny_run: tuple[Path, dict], capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    out, _ = tiny_run
    before = (out / RESULTS_FILE).read_bytes()
    with pytest.raises(SystemExit) as exc:
        main(["run", "--quick", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert (out / RESULTS_FILE).read_bytes() == before


def test_cli_report_redraws(tiny_run: tuple[Path, dict], capsys: pytest.CaptureFixture) -> None:
    from ginvariance.cli import main

    out, _ = tiny_run
    report = out / "report.html"
    report.unlink(missing_ok=True)
    main(["report", str(out)])
    assert report.is_file()
    printed = capsys.readouterr().out
    assert "C1" in printed and "C5-scale-free" in printed
    assert (out / "saliency.png").is_file()


def test_a_second_setting_mnist1d_cyclic1d(tmp_path: Path) -> None:
    """MNIST-1D under all 40 cyclic shifts, end to end (tiny), with the report."""
    from ginvariance.experiments import load_saliency
    from ginvariance.report import render_report

    config = dataclasses.replace(TINY, dataset="mnist1d", group="cyclic1d", epochs=1)
    results = run_study(config, tmp_path)
    assert results["group"] == "cyclic1d" and len(results["group_elements"]) == 40
    assert results["config"]["orbit"] == "sample"  # 40 elements: a sampled orbit penalty
    wt = results["models"]["weight-tied"]
    for values in [wt["id"], *wt["shift"].values()]:
        assert abs(values["pdi"]) <= 1e-5 and values["li"] <= 1e-5
    saliency = load_saliency(tmp_path)
    assert saliency is not None and saliency["weight-tied"].shape == (40, 1, 1, 40)
    page = render_report(results, tmp_path, saliency).read_text()
    assert "saliency.png" in page
