"""The ``ginv`` command line: the only place that prints or exits.

Every :class:`~ginvariance.errors.GinvarianceError` (and every usage error) ends as one line on
stderr and exit status 2.
"""

from __future__ import annotations

import signal
import sys
import warnings
from typing import Any, NoReturn

import typer

# Commands register themselves on `app` when imported.
from ginvariance.cli import bench as _bench  # noqa: F401
from ginvariance.cli import measure as _measure  # noqa: F401
from ginvariance.cli import run as _run  # noqa: F401
from ginvariance.cli import sweep as _sweep  # noqa: F401
from ginvariance.cli import train as _train  # noqa: F401
from ginvariance.cli.common import app, console_err, err_line, fail
from ginvariance.errors import GinvarianceError

#: The base class of click's usage errors, found through typer's public ``BadParameter``
#: (typer ≥ 0.12 re-exports click's, later typers their own copy of click).
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _interrupted() -> NoReturn:
    console_err.print("ginv: interrupted; run the same command again to continue")
    sys.exit(130)


def _warning_line(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Show a warning as one line on stderr: ``ginv: warning: ...``."""
    err_line("warning: " + " ".join(str(message).split()))


class _Terminated(BaseException):
    """Raised by the SIGTERM handler: unwinds like Ctrl-C, so that a write under way removes
    its temporary file and the output folder's lock is released."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``ginv``: runs the typer app, turning errors into one line and exit 2,
    warnings into one line each, SIGINT into one line and status 130 and SIGTERM into one line
    and status 143 (every write is atomic and unwinds: no half-written file remains)."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave the handler alone
        previous = None
    try:
        _main(argv)
    except _Terminated:
        err_line("terminated; run the same command again to continue")
        sys.exit(143)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> None:
    command = typer.main.get_command(app)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            status = command.main(args=argv, prog_name="ginv", standalone_mode=False)
    except GinvarianceError as exc:
        fail(str(exc))
    except OSError as exc:  # the file system refused a path given on the command line
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}; check the path and that it can be read or written")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _interrupted()
    except _ClickException as exc:
        text = exc.format_message()  # type: ignore[attr-defined]
        if type(exc).__name__ == "NoArgsIsHelpError":  # `ginv` alone: its message is the help
            sys.stdout.write(text.rstrip("\n") + "\n")
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        message = text.replace("\n", " ").rstrip(". ")
        if not message:  # `ginv` alone: the help has been printed
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        fail(f"{message}; see 'ginv --help'")
    except KeyboardInterrupt:
        _interrupted()
    # `ginv` alone printed the help: a usage error (status 2) with every click; click 8.1
    # prints it and returns
    if not (sys.argv[1:] if argv is None else argv):
        sys.exit(2)
    # without standalone mode, an interrupt (Ctrl-C) comes back as a return value
    if status == 130:
        _interrupted()
    if isinstance(status, int) and status != 0:
        sys.exit(status)


__all__ = ["app", "main"]
