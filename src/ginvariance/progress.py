"""The one progress reporter interface that library code talks to instead of printing: the
command line passes a rich progress bar (:class:`ginvariance.cli.common.RichProgress`), ``None``
means silence."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress of a long piece of work."""

    def start(self, total: int, description: str) -> None:
        """A task of ``total`` units begins."""

    def advance(self, amount: int = 1, **info: float) -> None:
        """``amount`` more units are done; ``info`` carries figures to show (loss, accuracy)."""

    def finish(self) -> None:
        """The current task is done."""


def note(progress: Progress | None, text: str) -> None:
    """Pass one line about finished work to ``progress`` if it has a ``note(text)`` method
    (the command line's reporter prints it; others need not implement it)."""
    method = getattr(progress, "note", None)
    if callable(method):
        method(text)


class NullProgress:
    """A progress reporter that reports nothing."""

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, amount: int = 1, **info: float) -> None:
        pass

    def finish(self) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def ensure_progress(progress: Progress | None) -> Progress:
    return NullProgress() if progress is None else progress
