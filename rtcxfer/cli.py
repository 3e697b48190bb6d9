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
from rtcxfer.text import printable

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
RATE_BURST_SECONDS = 5


class PrintableFormatter(logging.Formatter):
    """Log lines whose message has every hidden character escaped (rtcxfer.text).

    Log arguments carry names, reasons and addresses from clients and peers; one
    of them could otherwise write escape sequences or fake lines into the log.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


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
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
def serve(host: str, port: int, max_users: int, token: str | None, certfile: Path | None,
          keyfile: Path | None, allowed_origins: tuple[str, ...], rate_limit: float,
          log_level: str) -> None:
    """Run the signaling server (and the browser page on the same port).

    \b
    Examples:
      rtcxfer serve                               # ws://127.0.0.1:9090, page at http://127.0.0.1:9090/
      rtcxfer serve --host 0.0.0.0 --token s3cret # reachable from the LAN, logins need the token
      rtcxfer serve --certfile cert.pem --keyfile key.pem --port 443
    """
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


def _server_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from rtcxfer.peer.serverurl import BadServerUrl, normalise_server_url

    try:
        return normalise_server_url(value)
    except BadServerUrl as error:
        raise click.BadParameter(str(error)) from None


def _user_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from rtcxfer.protocol.signaling import name_problem

    if value is None:
        return None
    problem = name_problem(value)
    if problem is not None:
        raise click.BadParameter(f"{printable(value)!r}: {problem}")
    return value


_SERVER_OPTION = click.option(
    "--server", envvar="RTCXFER_SERVER", default="ws://127.0.0.1:9090",
    show_default=True, show_envvar=True, callback=_server_url,
    help="Signaling server: ws://, wss://, or the page's http(s):// address as the "
         "browser shows it.")
_NAME_OPTION = click.option(
    "--name", envvar="RTCXFER_NAME", default=None, show_envvar=True, callback=_user_name,
    help="Name to log in with (default: the OS user name).")
_SIGNALING_OPTIONS = [
    click.option("--token", envvar="RTCXFER_TOKEN", default=None, show_envvar=True,
                 help="Access token, for a server started with one."),
]
# Only commands that open a peer connection (send, listen) take these.
_CONNECTION_OPTIONS = [
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
]
_OUTPUT_OPTIONS = [
    click.option("--json", "json_events", is_flag=True,
                 help="One JSON event per line on stdout (docs/peer.md)."),
    click.option("--quiet", "-q", is_flag=True, help="Print errors only."),
    click.option("--log-level", type=LOG_LEVELS, default="warning", show_default=True),
]


def _apply(options: list[Callable[..., Any]], command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        command = option(command)
    return command


def _peer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a command that connects to a peer (send, listen)."""
    return _apply([_SERVER_OPTION, _NAME_OPTION, *_SIGNALING_OPTIONS, *_CONNECTION_OPTIONS,
                   *_OUTPUT_OPTIONS], command)


def _server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a command that only talks to the signaling server (users)."""
    return _apply([_SERVER_OPTION, *_SIGNALING_OPTIONS, *_OUTPUT_OPTIONS], command)


def _peer_setup(params: dict[str, Any]) -> tuple[Any, Any]:
    """ClientOptions and Output from the common options (removed from ``params``)."""
    from rtcxfer.peer.client import ClientOptions
    from rtcxfer.peer.config import IceOptions
    from rtcxfer.peer.session import CONNECT_TIMEOUT
    from rtcxfer.progress import Output

    configure_logging(params.pop("log_level"))
    _select_data_path(params.pop("fast_path", True))
    output = Output.from_flags(json_events=params.pop("json_events"), quiet=params.pop("quiet"))
    ice = IceOptions(stun=params.pop("stun", ()), turn=params.pop("turn", ()),
                     turn_user=params.pop("turn_user", None),
                     turn_password=params.pop("turn_password", None))
    client = ClientOptions(server=params.pop("server"), name=params.pop("name", None),
                           token=params.pop("token"), ice=ice,
                           connect_timeout=params.pop("connect_timeout", CONNECT_TIMEOUT))
    return client, output


IDLE_TIMEOUT_OPTION = click.option(
    "--idle-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
    help="Give up on a peer that sends nothing for this long while we wait for it "
         "(send: 300; listen: 60).")


@cli.command()
@click.argument("peer")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--skip-unreadable", is_flag=True,
              help="Send the rest when a file or folder cannot be read or is not a regular "
                   "file (each skipped path is listed); without it, send fails before "
                   "connecting.")
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symlinks that lead out of a folder being sent (by default they "
                   "are skipped, with a reason).")
@IDLE_TIMEOUT_OPTION
@_peer_options
def send(peer: str, paths: tuple[Path, ...], skip_unreadable: bool, follow_symlinks: bool,
         idle_timeout: float | None, **params: Any) -> int:
    """Send files and folders to PEER; succeeds only when every file arrived intact.

    \b
    Examples:
      rtcxfer send alice report.pdf
      rtcxfer send alice photos/ notes.txt --server http://192.168.1.20:9090
      rtcxfer send bob big.iso --json > events.jsonl
    """

    from rtcxfer.peer.run import run_peer_command
    from rtcxfer.peer.sender import SEND_IDLE_TIMEOUT, SendOptions
    from rtcxfer.peer.sender import send as send_to_peer

    client, output = _peer_setup(params)
    options = SendOptions(skip_unreadable=skip_unreadable, follow_symlinks=follow_symlinks,
                          idle_timeout=idle_timeout or SEND_IDLE_TIMEOUT)
    run_peer_command(lambda: send_to_peer(peer, paths, client, output, options), output)
    return ExitCode.OK


@cli.command()
@click.option("--dir", "download_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Where received files go [default: $XDG_DOWNLOAD_DIR/rtcxfer or "
                   "~/Downloads/rtcxfer, created private (0700) on first use].")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Accept every offer.")
@click.option("--from", "allowed_senders", multiple=True, metavar="NAME",
              help="Accept files only from NAME (repeatable). Names are not identities: "
                   "whoever logs in first as NAME is NAME; compare the verification code "
                   "with the sender to know who it is.")
@click.option("--overwrite", is_flag=True,
              help="Replace existing files instead of saving as 'name (1).ext'.")
@click.option("--allow-hidden", is_flag=True,
              help="Accept file names with a component starting with '.' (.ssh/..., "
                   ".bashrc); refused by default.")
@click.option("--keep-parts", "keep_parts", type=click.FloatRange(min=0), default=7.0,
              show_default=True, metavar="DAYS",
              help="At startup, remove unfinished part files (.NAME.rtcxfer-part) in the "
                   "download folder untouched for more than DAYS days (each is listed).")
@IDLE_TIMEOUT_OPTION
@_peer_options
def listen(download_dir: Path | None, assume_yes: bool, allowed_senders: tuple[str, ...],
           overwrite: bool, allow_hidden: bool, keep_parts: float, idle_timeout: float | None,
           **params: Any) -> int:
    """Stay online and receive files; asks before accepting unless --yes.

    \b
    Examples:
      rtcxfer listen                              # ask before each transfer
      rtcxfer listen --dir ~/inbox --from alice   # only alice's offers are considered
      rtcxfer listen --yes --server wss://xfer.example.org --name bob
    """
    from rtcxfer.peer.listener import (
        LISTEN_IDLE_TIMEOUT,
        Listener,
        ListenOptions,
        default_download_dir,
    )
    from rtcxfer.peer.run import run_peer_command

    client, output = _peer_setup(params)
    options = ListenOptions(download_dir=download_dir or default_download_dir(),
                            assume_yes=assume_yes,
                            allowed_senders=frozenset(allowed_senders), overwrite=overwrite,
                            interactive=sys.stdin.isatty(), allow_hidden=allow_hidden,
                            idle_timeout=idle_timeout or LISTEN_IDLE_TIMEOUT,
                            keep_parts_days=keep_parts)
    listener = Listener(client, options, output)
    stopped = run_peer_command(listener.run, output, exit_codes={signal.SIGTERM: ExitCode.OK})
    return stopped if isinstance(stopped, ExitCode) else ExitCode.OK


@cli.command()
@_server_options
def users(**params: Any) -> int:
    """Print the users online on the server, one per line.

    \b
    Examples:
      rtcxfer users
      rtcxfer users --server http://192.168.1.20:9090 --json
    """
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
            click.echo(printable(user))
        if not online and sys.stderr.isatty() and output.mode is not OutputMode.QUIET:
            # stdout stays empty for scripts; a person is told why nothing was printed.
            click.echo("nobody is online", err=True)
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
    """Send a file to yourself through a private server on loopback, and verify it.

    \b
    Examples:
      rtcxfer demo                      # a generated 16 MiB file
      rtcxfer demo --size 256           # 256 MiB
      rtcxfer demo ~/Pictures --keep    # your own files; keep the received copy
    """
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


@cli.command("config")
@click.option("--json", "json_output", is_flag=True, help="Print the settings as one JSON object.")
def show_config(json_output: bool) -> int:
    """Print the effective settings and where each comes from.

    Settings come from, in this order: a flag on the command line, an environment
    variable, the config file ($XDG_CONFIG_HOME/rtcxfer/config.toml, or the file
    RTCXFER_CONFIG names), the built-in default.

    \b
    Examples:
      rtcxfer config
      RTCXFER_SERVER=wss://xfer.example.org rtcxfer config --json
    """
    import json

    from rtcxfer.settings import config_path, effective, load_file

    path = config_path()
    settings = effective(cli, load_file(path), path)
    if json_output:
        click.echo(json.dumps({
            "config_file": str(path),
            "config_file_exists": path.exists(),
            "settings": {s.key: {"value": _jsonable(s.value), "source": s.source}
                         for s in settings},
        }))
        return ExitCode.OK
    exists = "" if path.exists() else " (none yet)"
    click.echo(f"config file: {printable(path)}{exists}")
    width = max(len(s.key) for s in settings)
    for setting in settings:
        value = "(none)" if setting.value in (None, [], ()) else setting.value
        click.echo(f"{setting.key:<{width}}  {printable(value)}  [{setting.source}]")
    return ExitCode.OK


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def main() -> None:
    from rtcxfer.settings import config_path, default_map, load_file

    try:
        defaults = default_map(cli, load_file(config_path()))
        result = cli.main(standalone_mode=False, default_map=defaults)
    except RtcxferError as error:
        text = str(error)
        # A multi-line message (the list of paths send skipped) escapes each of its
        # parts itself; any other is shown on one line, every character escaped.
        lines = text.split("\n") if getattr(error, "multiline", False) else [text]
        click.echo("rtcxfer: " + "\n".join(printable(line) for line in lines), err=True)
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
