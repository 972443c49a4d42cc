"""Regenerate the numbers the README quotes, from runs made on this machine.

    python scripts/readme_numbers.py example        # the own-model example: train, then measure
    python scripts/readme_numbers.py compare        # how many digits of it survive threads/dtype
    python scripts/readme_numbers.py rotation       # the tolerance of rotation-N
    python scripts/readme_numbers.py study DIR      # the claims table of `ginv run --out DIR`

Each prints Markdown (or the command's own output) to paste into the README. The study itself
is not run here (`ginv run` takes a quarter of an hour on a laptop, more on a busy machine):
run it first, then point `study` at its folder. Run from the repository root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "own_model"
MEASURE = [
    "measure",
    "--model",
    "examples/own_model/model.py:build",
    "--checkpoint",
    "examples/own_model/model.safetensors",
    "--data",
    "examples/own_model/test.npz",
    "--group",
    "c4",
    "--shift",
    "uniform,invert",
]


def _ginv(args: list[str], threads: int | None = None) -> str:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    env["COLUMNS"] = "80"
    done = subprocess.run(
        [sys.executable, "-m", "ginvariance.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def example() -> None:
    """Train the example model (seeded) and print `ginv measure`'s table for it."""
    subprocess.run([sys.executable, str(EXAMPLE / "train.py")], cwd=ROOT, check=True)
    print("$ ginv " + " ".join(MEASURE))
    print(_ginv(MEASURE), end="")


def compare() -> None:
    """The example measured with 1 and 2 threads and in float64: the digits that agree.

    Thread counts change the order of floating-point sums inside PyTorch, as another machine
    does; float64 shows what float32 rounding costs.
    """
    if not (EXAMPLE / "model.safetensors").exists():
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], cwd=ROOT, check=True)
    runs = {
        "float32, 1 thread": json.loads(_ginv([*MEASURE, "--json"], threads=1)),
        "float32, 2 threads": json.loads(_ginv([*MEASURE, "--json"], threads=2)),
        "float64, 2 threads": json.loads(_ginv([*MEASURE, "--json", "--dtype", "float64"], 2)),
    }
    base = runs["float32, 1 thread"]
    print("| run | largest relative difference to float32, 1 thread | in |")
    print("|---|---|---|")
    for name, run in runs.items():
        worst, where = 0.0, "—"
        for cond, values in [("id", base["id"]), *base["shift"].items()]:
            other = run["id"] if cond == "id" else run["shift"][cond]
            for key, v in values.items():
                w = other.get(key)
                if isinstance(v, float) and isinstance(w, float) and v != 0:
                    rel = abs(w - v) / abs(v)
                    if rel > worst:
                        worst, where = rel, f"{key} ({cond})"
        print(f"| {name} | {worst:.1e} | {where} |")


def rotation() -> None:
    """pdi of a model invariant by construction under rotation-N: the interpolation's error.

    The model is the study's untrained CNN (seed 0) averaged over the very orbit it is measured
    on, on the digits test split; an exact group scores ≤ 1e-12 on it.
    """
    import torch

    from ginvariance import measure
    from ginvariance.data import load_dataset
    from ginvariance.groups import get_group
    from ginvariance.models import build_model
    from ginvariance.models.symmetrize import symmetrize

    test = load_dataset("digits", "test")
    print("| group | dtype | pdi (nats) | li |")
    print("|---|---|---|---|")
    for name in ("c4", "rotation-4", "rotation-8", "rotation-16"):
        for dtype in (torch.float32, torch.float64):
            torch.manual_seed(0)
            group = get_group(name, tuple(test.x.shape[1:]))
            model = symmetrize(build_model("cnn", tuple(test.x.shape[1:]), 10), group).to(dtype)
            r = measure(model, (test.x.to(dtype), test.y), group, saliency=False).id
            print(f"| {name} | {str(dtype)[6:]} | {r['pdi']:.2e} | {r['li']:.2e} |")


def study(folder: str) -> None:
    """The claims of `ginv run --out FOLDER`: mean [95% interval] (per seed), needs, verdict."""
    results = json.loads((Path(folder) / "results.json").read_text(encoding="utf-8"))
    seeds = ", ".join(map(str, results["seeds"]))
    print(f"{results['dataset']}, {results['group']}, seeds {seeds}:\n")
    print("| claim | deciding quantity: mean [95% interval] (per seed) | needs | verdict |")
    print("|---|---|---|---|")
    for key, claim in results["claims"].items():
        d = claim["deciding"]
        ci = f" [{d['ci'][0]:.3g}, {d['ci'][1]:.3g}]" if d.get("ci") else ""
        per = ", ".join(f"{v:.3g}" for v in d.get("values") or [])
        op = {">=": "≥", "<=": "≤"}.get(d["op"], d["op"])
        print(
            f"| {key} | {d['name']} {d['mean']:.3g}{ci} ({per}) | {op} {d['threshold']:g} "
            f"| {claim['verdict']} |"
        )


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "study" and len(sys.argv) == 3:
        study(sys.argv[2])
    elif what in ("example", "compare", "rotation") and len(sys.argv) == 2:
        globals()[what]()
    else:
        sys.exit(__doc__)
