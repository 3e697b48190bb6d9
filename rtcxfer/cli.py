"""The ``rtcxfer`` command line: click commands, progress output and exit codes."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rtcxfer import __version__
from rtcxfer.errors import ExitCode, RtcxferError

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
RATE_BURST_SECONDS = 5


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


# -- serve: the signaling server (docs/server.md) -------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 or :: for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="TCP port; 0 picks a free one.")
@click.option("--max-users", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Logged-in users at most; further logins are refused.")
@click.option("--token", envvar="RTCXFER_TOKEN", default=None,
              help="Shared access token every login must carry [env: RTCXFER_TOKEN].")
@click.option("--certfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS certificate chain (PEM): serve wss:// and https://.")
@click.option("--keyfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS private key (PEM), if not inside --certfile.")
@click.option("--allow-origin", "allowed_origins", multiple=True, metavar="ORIGIN",
              help="Also accept WebSockets from this browser origin (repeatable; '*' for any).")
@click.option("--rate-limit", type=click.FloatRange(min=1), default=100.0, show_default=True,
              help="Messages per second per connection (bursts of five seconds' worth); "
                   "a client above it is closed with 1008.")
@click.option("--login-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, metavar="SECONDS",
              help="Close a WebSocket that has not logged in after this long.")
@click.option("--max-idle-per-ip", type=click.IntRange(min=1), default=16, show_default=True,
              help="Connections from one IP address that may wait without logging in "
                   "(beyond a 2 s grace); the oldest extra ones are closed.")
@click.option("--room-required", is_flag=True,
              help="Refuse logins without a room (the \"room\" field of login).")
@click.option("--redis", "redis_url", envvar="RTCXFER_REDIS", default=None, show_envvar=True,
              metavar="URL",
              help="Share one name space with other instances through Redis "
                   "(redis://HOST:PORT/DB; needs rtcxfer[redis]). Default: this process only.")
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
def serve(host: str, port: int, max_users: int, token: str | None, certfile: Path | None,
          keyfile: Path | None, allowed_origins: tuple[str, ...], rate_limit: float,
          login_timeout: float, max_idle_per_ip: int, room_required: bool,
          redis_url: str | None, log_level: str) -> None:
    """Run the signaling server (and the browser page on the same port)."""
    from rtcxfer.server.runner import load_tls, serve_main
    from rtcxfer.server.server import ServerConfig

    if keyfile is not None and certfile is None:
        raise click.UsageError("--keyfile needs --certfile")
    if token == "":
        raise click.UsageError("--token must not be empty")
    configure_logging(log_level)
    if log_level.lower() != "debug":
        # websockets logs every failed handshake and keepalive timeout at info.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    config = ServerConfig(
        host=host,
        port=port,
        max_users=max_users,
        token=token,
        ssl_context=load_tls(certfile, keyfile) if certfile is not None else None,
        allowed_origins=frozenset(allowed_origins),
        message_rate=rate_limit,
        message_burst=max(1, round(RATE_BURST_SECONDS * rate_limit)),
        login_timeout=login_timeout,
        max_idle_per_ip=max_idle_per_ip,
        room_required=room_required,
        redis_url=redis_url or None,
    )
    serve_main(config)


# -- peer commands: send, listen, users, demo (docs/peer.md) --------------------
# rtcxfer.peer imports aiortc, which is slow to load: imported inside the commands
# so that `rtcxfer serve` does not pay for it.


FAST_PATH_OPTION = click.option(
    "--fast-path/--no-fast-path", "fast_path", default=True, show_default=True,
    envvar="RTCXFER_FAST_PATH", show_envvar=True,
    help="Use rtcxfer's tuned SCTP/DTLS data path (docs/fast-path.md); "
         "--no-fast-path runs stock aiortc, to compare or to rule it out.")


def _select_data_path(fast_path: bool) -> None:
    from rtcxfer import fastpath

    if fast_path:
        fastpath.enable()
    else:
        fastpath.disable()


def _peer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--server", envvar="RTCXFER_SERVER", default="ws://127.0.0.1:9090",
                     show_default=True, show_envvar=True, help="Signaling server URL."),
        click.option("--name", envvar="RTCXFER_NAME", default=None, show_envvar=True,
                     help="Name to log in with (default: the OS user name)."),
        click.option("--token", envvar="RTCXFER_TOKEN", default=None, show_envvar=True,
                     help="Access token, for a server started with one."),
        click.option("--room", envvar="RTCXFER_ROOM", default=None, show_envvar=True,
                     help="Room to log in to: only its users see each other "
                          "(default: the server's default room)."),
        click.option("--stun", multiple=True, metavar="URL",
                     help="STUN server (repeatable; default: none)."),
        click.option("--turn", multiple=True, metavar="URL",
                     help="TURN server (repeatable; default: none)."),
        click.option("--turn-user", default=None, help="TURN user name."),
        click.option("--turn-password", envvar="RTCXFER_TURN_PASSWORD", default=None,
                     show_envvar=True,
                     help="TURN password (the variable keeps it out of `ps`)."),
        click.option("--connect-timeout", type=click.FloatRange(min=1), default=30.0,
                     show_default=True, metavar="SECONDS",
                     help="Give up on reaching a peer after this long."),
        FAST_PATH_OPTION,
        click.option("--json", "json_events", is_flag=True,
                     help="One JSON event per line on stdout (docs/peer.md)."),
        click.option("--quiet", "-q", is_flag=True, help="Print errors only."),
        click.option("--log-level", type=LOG_LEVELS, default="warning", show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _peer_setup(params: dict[str, Any]) -> tuple[Any, Any]:
    """ClientOptions and Output from the common options (removed from ``params``)."""
    from rtcxfer.peer.client import ClientOptions
    from rtcxfer.peer.config import IceOptions
    from rtcxfer.progress import Output

    configure_logging(params.pop("log_level"))
    _select_data_path(params.pop("fast_path"))
    output = Output.from_flags(json_events=params.pop("json_events"), quiet=params.pop("quiet"))
    ice = IceOptions(stun=params.pop("stun"), turn=params.pop("turn"),
                     turn_user=params.pop("turn_user"),
                     turn_password=params.pop("turn_password"))
    client = ClientOptions(server=params.pop("server"), name=params.pop("name"),
                           token=params.pop("token"), ice=ice,
                           connect_timeout=params.pop("connect_timeout"),
                           room=params.pop("room"))
    return client, output


@cli.command()
@click.argument("peer")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_peer_options
def send(peer: str, paths: tuple[Path, ...], **params: Any) -> int:
    """Send files and folders to PEER; succeeds only when every file arrived intact."""
    from rtcxfer.peer.run import run_peer_command
    from rtcxfer.peer.sender import send as send_to_peer

    client, output = _peer_setup(params)
    run_peer_command(lambda: send_to_peer(peer, paths, client, output), output)
    return ExitCode.OK


@cli.command()
@click.option("--dir", "download_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Where received files go.")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Accept every offer.")
@click.option("--from", "allowed_senders", multiple=True, metavar="NAME",
              help="Accept files only from NAME (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Replace existing files instead of saving as 'name (1).ext'.")
@_peer_options
def listen(download_dir: Path, assume_yes: bool, allowed_senders: tuple[str, ...],
           overwrite: bool, **params: Any) -> int:
    """Stay online and receive files; asks before accepting unless --yes."""
    from rtcxfer.peer.listener import Listener, ListenOptions
    from rtcxfer.peer.run import run_peer_command

    client, output = _peer_setup(params)
    options = ListenOptions(download_dir=download_dir, assume_yes=assume_yes,
                            allowed_senders=frozenset(allowed_senders), overwrite=overwrite,
                            interactive=sys.stdin.isatty())
    listener = Listener(client, options, output)
    stopped = run_peer_command(listener.run, output, exit_codes={signal.SIGTERM: ExitCode.OK})
    return stopped if isinstance(stopped, ExitCode) else ExitCode.OK


@cli.command()
@_peer_options
def users(**params: Any) -> int:
    """Print the users online on the server, one per line."""
    from rtcxfer.peer.client import list_users
    from rtcxfer.peer.run import run_peer_command
    from rtcxfer.progress import OutputMode

    client, output = _peer_setup(params)
    online = run_peer_command(lambda: list_users(client), output)
    assert isinstance(online, list)
    if output.mode is OutputMode.JSON:
        output.event("users", users=online)
    else:
        for user in online:
            click.echo(user)
    return ExitCode.OK


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--size", "size_mib", type=click.IntRange(0, 4096), default=16, show_default=True,
              help="Size of the generated file in MiB (when no PATHS are given).")
@click.option("--keep", is_flag=True, help="Keep the temporary folder and print where it is.")
@FAST_PATH_OPTION
@click.option("--json", "json_events", is_flag=True, help="One JSON event per line on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only.")
@click.option("--log-level", type=LOG_LEVELS, default="warning", show_default=True)
def demo(paths: tuple[Path, ...], size_mib: int, keep: bool, fast_path: bool,
         json_events: bool, quiet: bool, log_level: str) -> int:
    """Send a file to yourself through a private server on loopback, and verify it."""
    from rtcxfer.peer.config import IceOptions
    from rtcxfer.peer.demo import run_demo
    from rtcxfer.peer.run import run_peer_command
    from rtcxfer.progress import Output

    configure_logging(log_level)
    _select_data_path(fast_path)
    output = Output.from_flags(json_events=json_events, quiet=quiet)
    run_peer_command(
        lambda: run_demo(paths, size_mib=size_mib, keep=keep, ice=IceOptions(), output=output),
        output,
    )
    return ExitCode.OK


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
