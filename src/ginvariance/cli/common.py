"""Shared pieces of the command line: the app, console, errors, progress, and the typed
options every command spells the same way.

Flag names: one concept, one name in every command (``--seed``/``--seeds``, ``--out`` for a
folder and ``--output`` for a file, ``--root``, ``--json``, ``--resume/--no-resume``,
``--force/--no-force``); list options take comma lists; choices are enums whose values are
the library's own tuples; bounds are ``min=``.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ginvariance.data.datasets import DATASET_NAMES, SPLITS
from ginvariance.data.shifts import SHIFT_NAMES
from ginvariance.errors import ConfigError
from ginvariance.groups import GROUP_NAMES
from ginvariance.seeds import check_seed
from ginvariance.training.config import DTYPES, MODES, ORBITS, PENALTIES

# Plain (click-style) help: flags show as flags (`--json`), not as `--json <bool>`, and the
# help reads the same at any width and in any terminal.
app = typer.Typer(
    name="ginv",
    help="Tell genuine invariance from learned invariance in any PyTorch classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: The folder every command that writes a folder (run, train, sweep) writes into by default.
DEFAULT_OUT = Path("ginv-out")


# -- choices: enums whose values are the library's own tuples ------------------------------


def _choices(name: str, values: tuple[str, ...]) -> Any:
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)


Method = _choices("Method", MODES)
Penalty = _choices("Penalty", PENALTIES)
Orbit = _choices("Orbit", ORBITS)
Dtype = _choices("Dtype", DTYPES)
Split = _choices("Split", SPLITS)


def value(choice: Any) -> Any:
    """The plain value of an enum choice (``None`` stays ``None``)."""
    return choice.value if isinstance(choice, Enum) else choice


#: Help of ``--dataset`` and ``--group``: the full list, not an ellipsis.
DATASET_HELP = "Data set: " + ", ".join(DATASET_NAMES) + "."
GROUP_HELP = (
    "Group: "
    + ", ".join(GROUP_NAMES)
    + " (S: shift step in pixels, N: number of rotations; rotation-N interpolates, so it is "
    "approximately invariant only)."
)
SHIFT_HELP = (
    "Distribution shifts, comma-separated or repeated: "
    + ", ".join(SHIFT_NAMES)
    + ", noise-SIGMA (e.g. noise-0.5), or all."
)


# -- comma lists ---------------------------------------------------------------------------

T = TypeVar("T")


def _ascii_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def comma_list(
    option: str, item: Callable[[str], T], what: str, example: str
) -> Callable[[Any], tuple[T, ...]]:
    """A typer ``parser=`` for ``option``: ``"a,b"`` → ``(item("a"), item("b"))``.

    An empty item, an item ``item`` refuses (``ValueError``) or a repeated value is a
    :class:`~ginvariance.errors.ConfigError` naming ``option`` and giving ``example``.
    """

    def parse(text: Any) -> tuple[T, ...]:
        # click reports a BadParameter with its message; a ValueError (as ConfigError is) it
        # replaces by a bare "Invalid value" in the clicks that typer 0.12 runs on
        try:
            return _parse(text)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from None

    def _parse(text: Any) -> tuple[T, ...]:
        if isinstance(text, tuple):  # a default, already parsed
            return text
        parts = [p.strip() for p in str(text).split(",")]
        if any(not p for p in parts):
            raise ConfigError(
                f"{option} {text!r} has an empty item; give comma-separated {what}, "
                f"e.g. {option} {example}"
            )
        try:
            values = tuple(item(p) for p in parts)
        except ConfigError:
            raise
        except ValueError:
            raise ConfigError(
                f"{option} {text!r} is not a comma-separated list of {what}; "
                f"e.g. {option} {example}"
            ) from None
        if len(set(values)) != len(values):
            raise ConfigError(f"{option} {text!r} repeats a value; give each once")
        return values

    return parse


def _seed(text: str) -> int:
    return check_seed(_ascii_int(text), "seed in --seeds", "--seeds 0,1,2")


def _lam(text: str) -> float:
    v = float(text)
    if not math.isfinite(v) or v < 0:
        raise ConfigError(
            f"λ {text!r} in --lams must be a finite number ≥ 0 (0 = augmented); "
            "e.g. --lams 0,0.1,1,10"
        )
    return v


parse_seed_list = comma_list("--seeds", _seed, "non-negative integers (digits 0-9)", "0,1,2")
parse_lam_list = comma_list("--lams", _lam, "numbers", "0,0.1,1,10")
parse_threads = comma_list("--threads", _ascii_int, "positive integers", "1,2")
parse_rss_n = comma_list("--rss-n", _ascii_int, "positive integers", "10000,100000")


def name_list(option: str, example: str) -> Callable[[Any], tuple[str, ...]]:
    """A comma list of names (groups, data sets, models, shifts)."""
    return comma_list(option, str, "names", example)


def deprecated(old: str, new: str) -> None:
    """Say once, on stderr, that ``old`` still works but is spelled ``new`` now."""
    warnings.warn(f"{old} is deprecated; use {new}", FutureWarning, stacklevel=2)


def merge_alias(new_value: Any, new_default: Any, old_value: Any, old: str, new: str) -> Any:
    """The value of an option given either under its name ``new`` or a deprecated ``old``."""
    if old_value is None:
        return new_value
    deprecated(old, new)
    if new_value != new_default and new_value != old_value:
        raise ConfigError(f"{old} and {new} are the same option; give only {new}")
    return old_value


@app.callback()
def _root() -> None:
    """Tell genuine invariance from learned invariance in any PyTorch classifier."""


console = Console()
console_err = Console(stderr=True)


#: Terminal escape sequences (colours, cursor moves) and other control characters: text from
#: files, paths or other libraries' messages must not reach the terminal raw.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def shown(path: object) -> str:
    """``path`` as text any terminal can print: bytes that are not UTF-8 (a file name of
    another encoding) appear as ``\\xNN`` escapes instead of failing to print."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with status 2 (control characters removed)."""
    line = " ".join(_CONTROL.sub("", str(message)).split())
    sys.stderr.write(f"ginv: error: {line}\n")
    sys.stderr.flush()
    sys.exit(2)


class RichProgress:
    """A rich progress bar on stderr implementing :class:`ginvariance.progress.Progress`.

    When stderr is not a terminal (a log file, CI, a pipe), one line per finished stage
    instead: ``ginv: train plain: 60/60 done in 12.3 s (loss 0.041, acc 0.97)``. Silent
    when ``enabled`` is False (``--json``).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.lines = enabled and not console_err.is_terminal
        self.enabled = enabled and console_err.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._stage: tuple[str, int, float] | None = None
        self._done = 0
        self._info = ""

    def start(self, total: int, description: str) -> None:
        if self.lines:
            self._stage_line()
            self._stage, self._done, self._info = (description, total, time.perf_counter()), 0, ""
        if not self.enabled:
            return
        self.finish()
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console_err,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, info="")

    def advance(self, amount: int = 1, **info: float) -> None:
        if self.lines:
            self._done += amount
            if info:
                self._info = ", ".join(f"{k} {v:.3g}" for k, v in info.items())
        if self._bar is None or self._task is None:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
        self._bar.update(self._task, advance=amount, info=text)

    def _stage_line(self) -> None:
        """The line of the stage under way, if it ran to its end (a stage cut short by an
        error says nothing: the error is the one line)."""
        if self._stage is None:
            return
        description, total, began = self._stage
        self._stage = None
        if self._done < total:
            return
        info = f" ({self._info})" if self._info else ""
        sys.stderr.write(
            f"ginv: {description}: {total}/{total} done in "
            f"{time.perf_counter() - began:.1f} s{info}\n"
        )
        sys.stderr.flush()

    def note(self, text: str) -> None:
        """One line about work that finished inside the stage (a concurrent training)."""
        if self.lines:
            sys.stderr.write(f"ginv: {text}\n")
            sys.stderr.flush()
        elif self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)

    def finish(self) -> None:
        if self.lines:
            self._stage_line()
        if self._bar is not None:
            self._bar.stop()
        self._bar = None
        self._task = None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
