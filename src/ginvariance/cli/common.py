"""Shared pieces of the command line: the app, console, errors and the progress bar."""

from __future__ import annotations

import os
import re
import sys
from typing import NoReturn

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

app = typer.Typer(
    name="ginv",
    help="Tell genuine invariance from learned invariance in any PyTorch classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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

    Silent when stderr is not a terminal, or when ``enabled`` is False.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and console_err.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int, description: str) -> None:
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
        if self._bar is None or self._task is None:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
        self._bar.update(self._task, advance=amount, info=text)

    def finish(self) -> None:
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
