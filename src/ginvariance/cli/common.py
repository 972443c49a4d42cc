"""Shared pieces of the command line: the app, console, errors, progress, and the typed
options every command spells the same way (README, "Other commands and pieces"): choices are
enums whose values are the library's own tuples, bounds are ``min=``.
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
from typing import Annotated, Any, NoReturn, TypeVar

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
from ginvariance.seeds import MAX_SEED, check_seed
from ginvariance.training.config import DTYPES, MODES, ORBITS, PENALTIES

# Plain (click-style) help: flags show as flags (`--json`), not as `--json <bool>`.
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

    An empty, refused (``ValueError``) or repeated item is a ``typer.BadParameter`` naming
    ``option`` and ``example`` (the clicks typer 0.12 runs on hide a bare ``ValueError``'s text).
    """

    def parse(text: Any) -> tuple[T, ...]:
        if isinstance(text, tuple):  # a default, already parsed
            return text
        parts = [p.strip() for p in str(text).split(",")]
        if any(not p for p in parts):
            raise typer.BadParameter(
                f"{option} {text!r} has an empty item; give comma-separated {what}, "
                f"e.g. {option} {example}"
            )
        try:
            values = tuple(item(p) for p in parts)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from None
        except ValueError:
            raise typer.BadParameter(
                f"{option} {text!r} is not a comma-separated list of {what}; "
                f"e.g. {option} {example}"
            ) from None
        if len(set(values)) != len(values):
            raise typer.BadParameter(f"{option} {text!r} repeats a value; give each once")
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


def names_option(*names: str, example: str, help: str) -> Any:
    """A ``--NAMES/--NAME`` option that takes a comma list of names, e.g. ``example``."""
    parse = comma_list(names[0], str, "names", example)
    return typer.Option(*names, parser=parse, metavar="NAME,...", help=help)


def seeds_option(help: str) -> Any:
    """``--seeds/--seed``: a comma list of distinct seeds."""
    return typer.Option("--seeds", "--seed", parser=parse_seed_list, metavar="INT,...", help=help)


def merge_alias(new_value: Any, new_default: Any, old_value: Any, old: str, new: str) -> Any:
    """The value of an option given either under its name ``new`` or a deprecated ``old``
    (which says once, on stderr, that it is spelled ``new`` now)."""
    if old_value is None:
        return new_value
    warnings.warn(f"{old} is deprecated; use {new}", FutureWarning, stacklevel=2)
    if new_value != new_default and new_value != old_value:
        raise ConfigError(f"{old} and {new} are the same option; give only {new}")
    return old_value


# -- options several commands spell the same way -------------------------------------------

DeviceOption = Annotated[
    str, typer.Option(help="auto, cpu, cuda, cuda:N or mps (auto: CUDA when available).")
]
GroupOption = Annotated[str, typer.Option(help=GROUP_HELP)]
DatasetOption = Annotated[str, typer.Option(help=DATASET_HELP)]
EpochsOption = Annotated[
    int | None, typer.Option(min=1, help="Training epochs (default 40, quick 10).")
]
TrainLimitOption = Annotated[
    int | None, typer.Option(min=1, help="Train on the first N training samples only.")
]


def root_option(help: str = "Folder of IDX files for mnist-style data sets.") -> Any:
    """``--root/--data-dir``: the folder of a data set's files."""
    return typer.Option("--root", "--data-dir", help=help)


def seed_option(help: str) -> Any:
    """``--seed``: one seed in ``0..MAX_SEED``."""
    return typer.Option(min=0, max=MAX_SEED, help=help)


def emit_json(result: Any, json_out: bool, output: Path | None = None) -> bool:
    """Write ``result`` to ``output`` (atomically) if given, and print it as JSON on stdout
    with ``--json``; whether it printed."""
    from ginvariance.io import atomic_write_json, to_json

    if output is not None:
        atomic_write_json(output, result)
    if json_out:
        typer.echo(to_json(result), nl=False)
    return json_out


console = Console()
console_err = Console(stderr=True)


#: Terminal escape sequences (colours, cursor moves) and other control characters: text from
#: files, paths or other libraries' messages must not reach the terminal raw.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def shown(path: object) -> str:
    """``path`` as text any terminal can print: bytes that are not UTF-8 (a file name of
    another encoding) appear as ``\\xNN`` escapes instead of failing to print."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def note(text: str) -> None:
    """One line ``ginv: note: text`` on stderr."""
    console_err.print(f"ginv: note: {text}", highlight=False, soft_wrap=True)


def err_line(text: str) -> None:
    """Write ``ginv: text`` and a newline to stderr, at once."""
    sys.stderr.write(f"ginv: {text}\n")
    sys.stderr.flush()


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with status 2 (control characters removed)."""
    err_line("error: " + " ".join(_CONTROL.sub("", str(message)).split()))
    sys.exit(2)


class RichProgress:
    """A rich progress bar on stderr implementing :class:`ginvariance.progress.Progress`; one
    line per finished stage when stderr is not a terminal; silent unless ``enabled``."""

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
        """The line of the stage under way, if it ran to its end (else the error is the line)."""
        if self._stage is None:
            return
        description, total, began = self._stage
        self._stage = None
        if self._done < total:
            return
        info = f" ({self._info})" if self._info else ""
        err_line(
            f"{description}: {total}/{total} done in {time.perf_counter() - began:.1f} s{info}"
        )

    def note(self, text: str) -> None:
        """One line about work that finished inside the stage (a concurrent training)."""
        if self.lines:
            err_line(text)
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
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
