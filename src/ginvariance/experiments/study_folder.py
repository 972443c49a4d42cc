"""The study folder (:mod:`ginvariance.folder`: locked for a run, only files of its manifest
replaced): where each file goes, what a run may replace, and reading results back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ginvariance.checks import json_roundtrip
from ginvariance.errors import CheckpointError, DataError, OutputError
from ginvariance.experiments.defaults import (
    CHECKPOINTS_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    SALIENCY_FILE,
    TRAINED_MODELS,
    read_json,
)
from ginvariance.experiments.study_config import StudyConfig
from ginvariance.training.config import differences


def checkpoint_dir(out_dir: str | Path, seed: int) -> Path:
    """``DIR/checkpoints/seed-<seed>``: the checkpoints of one seed."""
    return Path(out_dir) / CHECKPOINTS_DIR / f"seed-{int(seed)}"


def plan_checkpoints(config: StudyConfig, out_dir: str | Path, *, force: bool) -> dict:
    """Decide, before any training, what happens to each checkpoint in ``out_dir``.

    Returns ``{(seed, mode): "resume" | "new" | "overwrite"}``: ``resume`` for a checkpoint
    trained with this configuration (finished or not: training continues), ``new`` where
    there is none, ``overwrite`` when ``force`` is set for one of another configuration or
    one that cannot be read (corrupt, truncated, of an older format: it is trained again).
    Every checkpoint is read in full and checked against its checksum.

    Raises
    ------
    OutputError
        ``out_dir`` holds results or checkpoints of another configuration, or unreadable
        ones, and ``force`` is not set; or a file of the study's names that ginv did not
        write (not in the folder's manifest: never replaced, even with ``force``).
    """
    from ginvariance.folder import MANIFEST_FILE, read_manifest
    from ginvariance.training import checkpoint_meta, sidecar_path

    config = config.resolved()
    out = Path(out_dir)
    owned = read_manifest(out)

    def check_owned(path: Path) -> None:
        rel = path.relative_to(out).as_posix()
        if rel not in owned and (path.exists() or path.is_symlink()):
            raise OutputError(
                f"{str(path)!r} exists and was not written by ginv (it is not listed in "
                f"{str(out / MANIFEST_FILE)!r}); ginv replaces only its own files: move it "
                "away, or choose another --out"
            )

    results_path = out / RESULTS_FILE
    for name in (RESULTS_FILE, SALIENCY_FILE, REPORT_FILE):
        check_owned(out / name)
    if results_path.exists() and not force:
        stored = (read_json(results_path) or {}).get("config")
        if not isinstance(stored, dict):
            raise OutputError(
                f"{str(results_path)!r} is not a results file of ginv run; "
                "pass --force to overwrite it, or choose another --out"
            )
        diffs = differences(json_roundtrip(config.to_dict(), sort_keys=True), stored)
        if diffs:
            raise OutputError(
                f"{str(out)!r} holds results of another configuration ({'; '.join(diffs[:3])}); "
                "pass --force to replace them, or choose another --out"
            )
    plan: dict[tuple[int, str], str] = {}
    for seed in config.seeds:
        for mode in TRAINED_MODELS:
            path = checkpoint_dir(out, seed) / f"{mode}.safetensors"
            check_owned(path)
            check_owned(sidecar_path(path))
            if not path.exists():
                plan[(seed, mode)] = "new"
                continue
            try:
                stored = checkpoint_meta(path).get("config")
            except CheckpointError as exc:
                if not force:  # the problem the message names, without its advice
                    problem = str(exc).rsplit("; ", 1)[0]
                    raise OutputError(
                        f"{problem}; pass --force to train it again, or choose another --out"
                    ) from None
                stored = None
            mine = json_roundtrip(config.train_config(mode, seed).to_dict(), sort_keys=True)
            diffs = (
                differences(mine, stored)
                if isinstance(stored, dict)
                else ["it records no training configuration"]
            )
            if diffs and not force:
                raise OutputError(
                    f"checkpoint {str(path)!r} belongs to another configuration "
                    f"({'; '.join(diffs[:3])}); pass --force to replace it, or choose another --out"
                )
            plan[(seed, mode)] = "overwrite" if diffs else "resume"
    return plan


def clear_outputs(out: Path) -> None:
    """Remove the results and report files that ginv wrote in ``out`` for an earlier run:
    ``results.json``, ``saliency.npz``, ``report.html`` and the report's PNG figures, if the
    folder's manifest lists them; any other file is left alone."""
    from ginvariance.folder import owner_of

    folder = owner_of(out, inclusive=True)
    assert folder is not None, "the study folder is held while the study runs"
    for rel in sorted(folder.files):
        if "/" not in rel and (
            rel in (RESULTS_FILE, SALIENCY_FILE, REPORT_FILE) or rel.endswith(".png")
        ):
            folder.remove(out / rel)


def load_results(out_dir: str | Path) -> dict[str, Any]:
    """Read ``DIR/results.json`` written by :func:`~ginvariance.experiments.run_study`.

    Raises
    ------
    DataError
        No results file, or one that is not complete JSON of a study.
    """
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise DataError(f"no results at {str(path)!r}; run 'ginv run --out {out_dir}' first")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{str(path)!r} is not readable JSON ({exc}); run 'ginv run --out {out_dir}' again"
        ) from None
    if not isinstance(results, dict) or not isinstance(results.get("models"), dict):
        raise DataError(f"{str(path)!r} is not a results file of ginv run; run it again")
    return results


def load_saliency(out_dir: str | Path) -> dict[str, np.ndarray] | None:
    """Read ``DIR/saliency.npz`` (no pickles); ``None`` when it is absent or unreadable."""
    path = Path(out_dir) / SALIENCY_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError):
        return None


__all__ = ["checkpoint_dir", "clear_outputs", "load_results", "load_saliency", "plan_checkpoints"]
