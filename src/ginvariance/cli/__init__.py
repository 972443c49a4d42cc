"""The ``ginv`` command line: the only place that prints or exits.

Each command lives in its own module and registers itself on :data:`app`. Every
:class:`~ginvariance.errors.GinvarianceError` (and every usage error) ends as one line on
stderr and exit status 2.
"""

from __future__ import annotations

import sys

import typer
from typer._click import exceptions as click_exceptions

# Commands register themselves on `app` when imported.
from ginvariance.cli import bench as _bench  # noqa: F401
from ginvariance.cli import measure as _measure  # noqa: F401
from ginvariance.cli import run as _run  # noqa: F401
from ginvariance.cli import sweep as _sweep  # noqa: F401
from ginvariance.cli import train as _train  # noqa: F401
from ginvariance.cli.common import app, console_err, fail
from ginvariance.errors import GinvarianceError


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``ginv``: runs the typer app, turning errors into one line and exit 2."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="ginv", standalone_mode=False)
    except GinvarianceError as exc:
        fail(str(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console_err.print("ginv: interrupted; run the same command again to continue")
        sys.exit(130)
    except click_exceptions.ClickException as exc:
        message = exc.format_message().replace("\n", " ").rstrip(". ")
        fail(f"{message}; see 'ginv --help'")
    except KeyboardInterrupt:
        console_err.print("ginv: interrupted; run the same command again to continue")
        sys.exit(130)


__all__ = ["app", "main"]
