"""The HTML report: complete, self-contained, figures beside it, nothing half-written."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest

from ginvariance.errors import DataError
from ginvariance.experiments import MODELS, evaluate_claims
from ginvariance.experiments.study import CLAIM_KEYS
from ginvariance.io import atomic_write_json
from ginvariance.report import FIGURES, check_results, render_report
from ginvariance.report.figures import saliency_figure

SHIFTS = ("uniform", "blur")


def synthetic_results(seeds: int = 2, sample_shape=(1, 8, 8)) -> dict:
    """Results in the format of ``run_study`` from random numbers (no training)."""
    rng = np.random.default_rng(0)

    def measures(labels: bool = True) -> dict:
        values = {"pdi": float(rng.random() * 0.1), "li": float(rng.random() * 0.1),
                  "li_within": float(rng.random()), "sis": float(rng.random()),
                  "orbit_consistency": float(rng.random()), "n_samples": 20}  # fmt: skip
        if labels:
            values.update(accuracy=0.9, orbit_accuracy=0.85)
        return values

    def spectral() -> dict:
        return {
            "singular_values": sorted(rng.random(10).tolist(), reverse=True),
            "frobenius": 3.0,
            "frobenius_std": 0.1,
            "eps": [1e-3, 1e-1],
            "sensitivity_random": [1.0, 1.1],
            "sensitivity_random_normalized": [0.1, 0.11],
            "sensitivity_probability": [0.01, 0.02],
            "sensitivity_group": [2.0, None],
            "jacobian_ratio": 0.9,
            "logit_scale": 10.0,
            "singular_value_ratios": [1.0, 0.8, 0.5],
            "effective_rank": 4.2,
            "lie_transform": "rotation",
            "lie_derivative": 1.5,
            "lie_derivative_normalized": 0.15,
            "saliency_power": {
                "high_frequency_fraction": 0.3,
                "radial_power": [1.0],
                "frequencies": [1.0],
            },
        }

    models = {}
    for name in MODELS:
        entry = {"id": measures(), "shift": {s: measures(s != "uniform") for s in SHIFTS},
                 "spectral": spectral()}  # fmt: skip
        if name == "weight-tied":
            entry["id"]["pdi"] = 0.0  # exact zeros must be drawable on a log axis
            entry["shift"]["uniform"]["pdi"] = -6e-9
        std = copy.deepcopy({k: entry[k] for k in ("id", "shift", "spectral")})
        entry["std"] = std if seeds > 1 else {"id": None, "shift": None, "spectral": None}
        entry["per_seed"] = []
        models[name] = entry
    return {
        "models": models,
        "claims": evaluate_claims(models),
        "group": "c4",
        "dataset": "digits",
        "seed": 0,
        "seeds": list(range(seeds)),
        "config": {"quick": True, "seeds": list(range(seeds)), "root": None, "limit": None},
        "versions": {"torch": "x"},
        "group_elements": ["e", "r90", "r180", "r270"],
        "sample_shape": list(sample_shape),
        "timings": {"total": 1.0},
    }


def synthetic_saliency(sample_shape=(1, 8, 8), n: int = 4, m: int = 2) -> dict:
    rng = np.random.default_rng(1)
    maps = {name: rng.standard_normal((n, m, *sample_shape)) for name in MODELS}
    maps["weight-tied"] = np.repeat(maps["weight-tied"][:1], n, axis=0)
    return {"x": rng.random((m, *sample_shape)), **maps}


def image_sources(page: str) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page)


@pytest.mark.parametrize("seeds", [1, 3])
def test_report_is_self_contained_and_complete(tmp_path: Path, seeds: int) -> None:
    results = synthetic_results(seeds)
    path = render_report(results, tmp_path, synthetic_saliency())
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")
    sources = image_sources(page)
    assert sorted(sources) == sorted(FIGURES.values())
    for source in sources:
        data = (tmp_path / source).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", source
    assert "<script" not in page and "http" not in page and "<link" not in page
    for key in CLAIM_KEYS:
        assert f"<b>{key}</b>" in page
    verdicts = page.count("class='holds'") + page.count("class='fails'")
    assert verdicts == 2 * len(CLAIM_KEYS) == 20  # the lead's table and the detailed one
    assert "C3 on two levels" in page and "C5 raw and scale-free" in page
    # the page leads with the verdicts: the count and every claim before the first section
    lead = page[: page.index("<h2>")]
    assert "claims hold</b>" in lead
    for key in CLAIM_KEYS:
        assert f"<b>{key}</b>" in lead
    config = page[page.index("<h2>Configuration</h2>") :]
    assert "<code>None</code>" not in config
    if seeds == 1:
        assert "one seed (0)" in page and "no interval" in page
        assert "over seeds" not in page
    else:
        assert page.count("±") > 50 and "95% Student-t confidence interval" in page
    for shift in SHIFTS:
        assert shift in page
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_without_saliency_says_so(tmp_path: Path) -> None:
    page = render_report(synthetic_results(), tmp_path).read_text(encoding="utf-8")
    assert "saliency.png" not in image_sources(page)
    assert "No saliency maps" in page
    assert not (tmp_path / "saliency.png").exists()


def test_one_dimensional_saliency_is_drawn_as_curves(tmp_path: Path) -> None:
    results = synthetic_results(sample_shape=(1, 40))
    results["group_elements"] = [f"shift {i}" for i in range(40)]
    page = render_report(results, tmp_path, synthetic_saliency((1, 40), n=40, m=1)).read_text()
    assert "saliency.png" in image_sources(page)
    assert (tmp_path / "saliency.png").stat().st_size > 1000


def test_saliency_figure_draws_any_group_order() -> None:
    png = saliency_figure(synthetic_saliency(n=2, m=1), ["plain", "weight-tied"], ["e", "flip"])
    assert png[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("claims"),
        lambda r: r["claims"].pop("C3-logit"),
        lambda r: r["models"]["augmented"].pop("spectral"),
        lambda r: r["models"]["plain"]["id"].pop("sis"),
        lambda r: r["models"]["plain"]["shift"].pop("blur"),
        lambda r: r["models"]["regularized"]["spectral"].pop("eps"),
        lambda r: r.update(models={}),
    ],
)
def test_incomplete_results_write_nothing(tmp_path: Path, damage) -> None:
    results = synthetic_results()
    damage(results)
    with pytest.raises(DataError, match="incomplete"):
        render_report(results, tmp_path, synthetic_saliency())
    assert list(tmp_path.iterdir()) == []


def test_models_come_in_the_study_order() -> None:
    results = synthetic_results()
    results["models"] = dict(sorted(results["models"].items()))  # as JSON sorts them
    assert check_results(results) == list(MODELS)


def test_cli_report_of_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ginvariance.cli import main

    atomic_write_json(tmp_path / "results.json", synthetic_results())
    main(["report", str(tmp_path)])
    assert (tmp_path / "report.html").is_file()
    assert "report:" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, "{not json", '{"models": {}}'])
def test_cli_report_of_a_bad_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str | None
) -> None:
    from ginvariance.cli import main

    if content is not None:
        (tmp_path / "results.json").write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ginv: error:")
    assert not (tmp_path / "report.html").exists()


def test_report_says_what_to_expect_on_mnist1d(tmp_path: Path) -> None:
    """On mnist1d, C2 and C3 fail: the report says so, and why, before its first section."""
    results = synthetic_results(1)
    page = render_report(results, tmp_path / "digits").read_text(encoding="utf-8")
    assert "What to expect" not in page
    results["dataset"] = "mnist1d"
    page = render_report(results, tmp_path / "mnist1d").read_text(encoding="utf-8")
    lead = page[: page.index("<h2>")]
    assert "What to expect on mnist1d: C2 and C3" in lead and "ln K" in lead
