"""The ``rtcxfer`` command line: click commands, progress output and exit codes."""

from __future__ import annotations

import logging
import sys

import click

from rtcxfer import __version__
from rtcxfer.errors import ExitCode, RtcxferError

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rtcxfer")
def cli() -> None:
    """Peer-to-peer file transfer over WebRTC data channels."""


def main() -> None:
    try:
        result = cli.main(standalone_mode=False)
    except RtcxferError as error:
        click.echo(f"rtcxfer: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("rtcxfer: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("rtcxfer: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(result if isinstance(result, int) else ExitCode.OK)
