"""`ginv sweep`: a real 2 × 2 sweep on a local Ray instance, its resume, and its statistics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ginvariance.experiments.sweep import (
    CONFIG_FILE,
    MEASURE_KEYS,
    REFERENCE,
    SWEEP_FIGURE,
    SWEEP_FILE,
    SWEEP_PAGE,
    TRIAL_RESULTS,
    SweepConfig,
    aggregate,
    plan_trials,
    summarize,
)
from ginvariance.report.sweep_page import render_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--seeds", "0,1", "--lams", "0,1", "--epochs", "1", "--limit", "64", "--n-measure", "16"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def reference_summary(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean, sample std and CI half-width by the textbook formulas, one value at a time."""
    n = len(values)
    mean = 0.0
    for v in values:
        mean += v / n
    var = 0.0
    for v in values:
        var += (v - mean) ** 2 / (n - 1)
    std = math.sqrt(var)
    return mean, std, stats.t.ppf((1 + confidence) / 2, n - 1) * std / math.sqrt(n)


# -- the real sweep --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """seeds {0, 1} × λ {0, 1} on digits/c4, one epoch on 64 samples, on a 2-CPU local Ray."""
    import contextlib
    import io

    from ginvariance.cli import main

    out = tmp_path_factory.mktemp("sweep")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        main(["sweep", "--out", str(out), *TINY, "--no-reference", "--num-cpus", "2", "--json"])
    return out, json.loads(stdout.getvalue()), stderr.getvalue()


def test_every_trial_writes_a_complete_results_file(tiny_sweep: tuple[Path, dict, str]) -> None:
    out, summary, _ = tiny_sweep
    assert len(summary["trials"]) == 4
    seen = set()
    for rel in summary["trials"]:
        results = json.loads((out / rel / TRIAL_RESULTS).read_text())
        assert {"models", "group", "dataset", "seed", "config", "versions"} <= set(results)
        assert results["group"] == "c4" and results["dataset"] == "digits"
        ((name, entry),) = results["models"].items()
        assert name == ("augmented" if results["lam"] == 0 else "regularized")
        assert set(entry["id"]) >= set(MEASURE_KEYS)
        assert set(entry["shift"]) == {"uniform"}
        assert {"pdi", "li", "sis"} <= set(entry["shift"]["uniform"])
        for block in (entry["id"], entry["shift"]["uniform"]):
            for key in ("pdi", "li", "sis"):
                assert math.isfinite(block[key])
        assert entry["id"]["n_samples"] == 16
        assert results["config"]["train"]["epochs"] == 1
        assert results["config"]["train"]["lam"] == results["lam"]
        assert "torch" in results["versions"]
        seen.add((results["seed"], results["lam"]))
        assert (out / rel / f"{name}.safetensors").is_file()
    assert seen == {(0, 0.0), (0, 1.0), (1, 0.0), (1, 1.0)}


def test_aggregate_counts_and_confidence_intervals(tiny_sweep: tuple[Path, dict, str]) -> None:
    out, summary, _ = tiny_sweep
    assert json.loads((out / SWEEP_FILE).read_text())["entries"] == summary["entries"]
    entries = summary["entries"]
    assert [(e["model"], e["lam"]) for e in entries] == [("cnn", 0.0), ("cnn", 1.0)]
    trials = [json.loads((out / rel / TRIAL_RESULTS).read_text()) for rel in summary["trials"]]
    for e in entries:
        assert e["seeds"] == [0, 1]
        runs = sorted((t for t in trials if t["lam"] == e["lam"]), key=lambda t: t["seed"])
        for cond in ("id", "uniform"):
            block = e["id"] if cond == "id" else e["shift"]["uniform"]
            keys = MEASURE_KEYS if cond == "id" else ("pdi", "li", "sis")
            for key in keys:
                s = block[key]
                vals = [
                    (r["models"][e["mode"]]["id"] if cond == "id" else
                     r["models"][e["mode"]]["shift"]["uniform"])[key]
                    for r in runs
                ]  # fmt: skip
                mean, std, half = reference_summary(vals)
                assert s["n"] == 2 and s["values"] == vals
                assert s["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
                assert s["std"] == pytest.approx(std, rel=1e-9, abs=1e-15)
                lo, hi = s["ci"]
                assert lo <= s["mean"] <= hi
                assert hi - lo == pytest.approx(2 * half, rel=1e-9, abs=1e-15)


def test_figure_and_page_are_written(tiny_sweep: tuple[Path, dict, str]) -> None:
    out, _, stderr = tiny_sweep
    width, height = png_size(out / SWEEP_FIGURE)
    assert width > 400 and height > 200
    page = (out / SWEEP_PAGE).read_text()
    assert f"src='{SWEEP_FIGURE}'" in page and "<script" not in page
    assert stderr == "", "the library and Ray must stay silent"


def test_running_again_restores_without_training_again(
    tiny_sweep: tuple[Path, dict, str],
) -> None:
    import contextlib
    import io

    from ginvariance.cli import main

    out, summary, _ = tiny_sweep
    files = [out / rel / TRIAL_RESULTS for rel in summary["trials"]]
    before = {f: f.stat().st_mtime_ns for f in files}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main(["sweep", "--out", str(out), *TINY, "--no-reference", "--num-cpus", "2", "--json"])
    again = json.loads(stdout.getvalue())
    assert again["entries"] == summary["entries"]
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_a_sweep_of_another_configuration_is_refused(
    tiny_sweep: tuple[Path, dict, str], capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    out, _, _ = tiny_sweep
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(out), *TINY[:-2], "--n-measure", "8", "--no-reference"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another configuration" in err and "n_measure" in err


# -- statistics and the figure without Ray ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_summarize_matches_the_textbook_formulas(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 7):
        values = [float(v) for v in rng.normal(0.3, 0.1, n).astype(dtype)]
        s = summarize(values)
        mean, std, half = reference_summary(values)
        tol = 1e-6 if dtype is np.float32 else 1e-12
        assert s["mean"] == pytest.approx(mean, rel=tol)
        assert s["std"] == pytest.approx(std, rel=tol)
        assert s["ci"] == pytest.approx([mean - half, mean + half], rel=tol)
    one = summarize([0.5])
    assert one["mean"] == 0.5 and one["std"] is None and one["ci"] is None
    same = summarize([0.25, 0.25, 0.25])
    assert same["ci"] == [0.25, 0.25]


def synthetic_trial(mode: str, model: str, lam: float | None, seed: int, pdi: float) -> dict:
    measures = {"accuracy": 0.9, "orbit_accuracy": 0.8, "orbit_consistency": 0.7, "pdi": pdi,
                "li": pdi / 2, "sis": 1 - pdi, "n_samples": 10}  # fmt: skip
    uniform = {"pdi": 10 * pdi, "li": 5 * pdi, "sis": 1 - 2 * pdi, "n_samples": 10}
    entry = {"id": measures, "shift": {"uniform": uniform}}
    return {"models": {mode: entry}, "group": "c4", "dataset": "digits", "seed": seed,
            "lam": lam, "model": model, "mode": mode}  # fmt: skip


def test_aggregate_groups_cells_and_puts_the_reference_first(tmp_path: Path) -> None:
    trials = [
        synthetic_trial("regularized", "cnn", 1.0, 1, 0.01),
        synthetic_trial("augmented", "cnn", 0.0, 0, 0.1),
        synthetic_trial("regularized", "cnn", 1.0, 0, 0.03),
        synthetic_trial(REFERENCE, REFERENCE, None, 0, 0.0),
        synthetic_trial("augmented", "cnn", 0.0, 1, 0.2),
    ]
    entries = aggregate(trials)
    assert [(e["model"], e["lam"], e["seeds"]) for e in entries] == [
        (REFERENCE, None, [0]),
        ("cnn", 0.0, [0, 1]),
        ("cnn", 1.0, [0, 1]),
    ]
    assert entries[2]["id"]["pdi"]["mean"] == pytest.approx(0.02)
    assert entries[2]["shift"]["uniform"]["pdi"]["mean"] == pytest.approx(0.2)
    assert "accuracy" not in entries[2]["shift"]["uniform"]
    assert entries[0]["id"]["pdi"]["ci"] is None  # one seed: no interval
    summary = {"entries": entries, "confidence": 0.95, "references_skipped": []}
    render_sweep(json.loads(json.dumps(summary)), tmp_path)  # exact zeros on a log axis
    assert png_size(tmp_path / SWEEP_FIGURE)[0] > 400
    assert "weight-tied" in (tmp_path / SWEEP_PAGE).read_text()


def test_plan_has_one_trial_per_cell_and_a_reference_per_seed() -> None:
    config = SweepConfig(seeds=(0, 1, 2), lams=(0, 0.1, 1), groups=("c4", "flip"),
                         models=("cnn", "mlp"))  # fmt: skip
    trials = plan_trials(config)
    assert len(trials) == 2 * 3 * (2 * 3 + 1)
    assert len({t.key for t in trials}) == len(trials)
    assert {t.mode for t in trials if t.lam == 0} == {"augmented"}
    assert {t.mode for t in trials if t.lam} == {"regularized"}
    assert all(t.model == REFERENCE for t in trials if t.lam is None)
    assert len(plan_trials(SweepConfig(reference=False, lams=(0, 1)))) == 4


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--lams", "0,-1"], "≥ 0"),
        (["--lams", "0,x"], "--lams"),
        (["--lams", "1,1"], "repeats"),
        (["--lams", "nan"], "finite"),
        (["--seeds", "0,a"], "--seeds"),
        (["--groups", "c4,"], "empty"),
        (["--groups", "c5"], "c5"),
        (["--datasets", "nope"], "nope"),
        (["--models", "resnet"], "resnet"),
        (["--models", "weight-tied"], "reference"),
        (["--datasets", "mnist1d", "--groups", "c4"], "c4"),
        (["--shifts", "bogus"], "bogus"),
        (["--epochs", "0"], "epochs"),
        (["--num-cpus", "0"], "num-cpus"),
        (["--resume"], "resume"),
        (["--address", "127.0.0.1:1"], "Ray cluster"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(tmp_path / "out"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ginv: error:") and expected in err, err
    assert not (tmp_path / "out" / SWEEP_FILE).exists()


def test_unwritable_or_foreign_folders_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.json").write_text("{}")
    for out, expected in ((a_file, "output folder"), (foreign, "holds no sweep")):
        with pytest.raises(SystemExit) as exc:
            main(["sweep", "--out", str(out), "--epochs", "1"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err


def test_without_ray_the_message_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ginvariance.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(tmp_path / "out"), "--epochs", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install" in err and "sweep" in err, err
    assert not (tmp_path / "out" / CONFIG_FILE).exists()


def test_importing_ginvariance_does_not_import_ray() -> None:
    code = (
        "import sys, ginvariance, ginvariance.cli, ginvariance.experiments.sweep; "
        "sys.exit(int('ray' in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0
