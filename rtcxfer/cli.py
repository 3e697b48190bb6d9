"""The ``rtcxfer`` command line: click commands, progress output and exit codes."""

from __future__ import annotations

import logging
import os
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
@click.option("--stun", "stun_urls", multiple=True, metavar="URL",
              help="STUN server handed to every client at login (repeatable).")
@click.option("--turn", "turn_urls", multiple=True, metavar="URL",
              help="TURN server handed out with short-lived credentials (repeatable: "
                   "turn:HOST:3478, turn:HOST:3478?transport=tcp, turns:HOST:5349).")
@click.option("--turn-secret", envvar="RTCXFER_TURN_SECRET", default=None,
              help="coturn's static-auth-secret, to mint TURN credentials; never sent "
                   "[env: RTCXFER_TURN_SECRET].")
@click.option("--turn-ttl", type=click.IntRange(min=60), default=3600, show_default=True,
              metavar="SECONDS", help="Lifetime of the TURN credentials handed out.")
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
          stun_urls: tuple[str, ...], turn_urls: tuple[str, ...], turn_secret: str | None,
          turn_ttl: int, login_timeout: float, max_idle_per_ip: int, room_required: bool,
          redis_url: str | None, log_level: str) -> None:
    """Run the signaling server (and the browser page on the same port).

    \b
    Examples:
      rtcxfer serve                               # ws://127.0.0.1:9090, page at http://127.0.0.1:9090/
      rtcxfer serve --host 0.0.0.0 --token s3cret # reachable from the LAN, logins need the token
      rtcxfer serve --certfile cert.pem --keyfile key.pem --port 443
      rtcxfer serve --redis redis://127.0.0.1:6379/0 --port 9091   # one of several instances
    """
    import time

    from rtcxfer.server.ice import IceServerPolicy, IceUrlError
    from rtcxfer.server.runner import load_tls, serve_main
    from rtcxfer.server.server import ServerConfig

    if keyfile is not None and certfile is None:
        raise click.UsageError("--keyfile needs --certfile")
    try:
        ice = IceServerPolicy(stun=stun_urls, turn=turn_urls, turn_secret=turn_secret or None,
                              turn_ttl=turn_ttl)
    except IceUrlError as error:
        raise click.UsageError(str(error)) from None
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
        login_reply_extras=ice.login_reply_extras(time.time) if ice.enabled else None,
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


def _server_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from rtcxfer.peer.serverurl import BadServerUrl, normalise_server_url

    try:
        return normalise_server_url(value)
    except BadServerUrl as error:
        raise click.BadParameter(str(error)) from None


def _optional_server_url(ctx: click.Context, param: click.Parameter,
                         value: str | None) -> str | None:
    return None if value is None else _server_url(ctx, param, value)


def _room_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from rtcxfer.protocol.signaling import room_problem

    if value is None:
        return None
    problem = room_problem(value)
    if problem is not None:
        raise click.BadParameter(f"{printable(value)!r}: {problem}")
    return value


def _writable_folder(_ctx: click.Context, _param: click.Parameter,
                     value: Path | None) -> Path | None:
    """--dir: one that exists must be a folder we can write into (checked before
    connecting); one that does not exist is created later, private (0700)."""
    if value is None:
        return None
    folder = value.expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise click.BadParameter(f"{printable(folder)} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise click.BadParameter(f"{printable(folder.absolute())} is not writable "
                                     "(files could not be saved there)")
    return folder


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
    click.option("--room", envvar="RTCXFER_ROOM", default=None, show_envvar=True,
                 callback=_room_name,
                 help="Room to log in to: only its users see each other "
                      "(default: the server's default room)."),
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
    click.option("--no-server-ice", is_flag=True,
                 help="Ignore the STUN/TURN servers the signaling server hands out."),
    click.option("--relay-only", is_flag=True,
                 help="Connect only through TURN: the peer never learns your address."),
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
                     turn_password=params.pop("turn_password", None),
                     use_server_ice=not params.pop("no_server_ice", False),
                     relay_only=params.pop("relay_only", False))
    from rtcxfer.peer.config import IceServerError, own_ice_urls

    try:
        own_ice_urls(ice)  # a malformed --stun/--turn, or --turn without its user: exit 2
    except IceServerError as error:
        raise click.UsageError(str(error)) from None
    client = ClientOptions(server=params.pop("server"), name=params.pop("name", None),
                           token=params.pop("token"), ice=ice,
                           connect_timeout=params.pop("connect_timeout", CONNECT_TIMEOUT),
                           room=params.pop("room", None))
    return client, output


IDLE_TIMEOUT_OPTION = click.option(
    "--idle-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
    help="Give up on a peer that sends nothing for this long while we wait for it "
         "(send: 300; listen: 60).")


@cli.command()
@click.argument("peer")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--skip-unreadable", is_flag=True,
              help="Send the rest when a file or folder cannot be read or is not a regular "
                   "file (each skipped path is listed); without it, send fails before "
                   "connecting.")
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symlinks that lead out of a folder being sent (by default they "
                   "are skipped, with a reason).")
@click.option("--confirm-code", "confirm_code", is_flag=True,
              help="Show the verification code and send nothing until you confirm that "
                   "the receiver sees the same code.")
@click.option("--code", "use_code", is_flag=True,
              help="No receiver name: print a one-time code (like 7-guitar-orbit) for "
                   "`rtcxfer receive CODE` on the other side; then PEER is a path too.")
@click.option("--stdin-name", default="stdin", show_default=True, metavar="NAME",
              help="Name the receiver gives standard input sent as '-'.")
@click.option("--text", default=None, metavar="TEXT",
              help="Send TEXT (or '-': standard input, up to 64 KiB) to be shown, "
                   "instead of files.")
@IDLE_TIMEOUT_OPTION
@_peer_options
def send(peer: str, paths: tuple[Path, ...], skip_unreadable: bool, follow_symlinks: bool,
         confirm_code: bool, use_code: bool, stdin_name: str, text: str | None,
         idle_timeout: float | None, **params: Any) -> int:
    """Send files and folders (or '-': standard input) to PEER; succeeds only when
    every file arrived intact.

    With --code: `rtcxfer send --code PATH...` (no PEER).

    \b
    Examples:
      rtcxfer send alice report.pdf
      rtcxfer send alice photos/ notes.txt --server http://192.168.1.20:9090
      rtcxfer send --code holiday-photos/
      tar c photos | rtcxfer send alice - --stdin-name photos.tar
      rtcxfer send alice --text "the wifi password is ..."
    """
    from rtcxfer.peer.prompt import confirm_on_terminal
    from rtcxfer.peer.run import run_peer_command
    from rtcxfer.peer.sender import SEND_IDLE_TIMEOUT, STDIN_PATH, SendOptions
    from rtcxfer.peer.sender import send as send_to_peer

    if use_code:
        if confirm_code:
            raise click.UsageError("--code already proves who is at the other end; "
                                   "--confirm-code is for named peers")
        from rtcxfer.peer.code import send_with_code

        client, output = _peer_setup(params)
        everything = (Path(peer), *paths)
        run_peer_command(lambda: send_with_code(everything, client, output), output)
        return ExitCode.OK
    if text is not None and paths:
        raise click.UsageError("--text sends a text instead of files: give no PATHS")
    if text is None and not paths:
        raise click.UsageError("give PATHS to send, '-' for standard input, or --text")
    if STDIN_PATH in paths and len(paths) > 1:
        raise click.UsageError("'-' (standard input) is sent on its own")
    data: bytes | None = None
    if text == "-":
        data = sys.stdin.buffer.read(65_537)
    elif text is not None:
        data = text.encode("utf-8", "surrogateescape")
    if confirm_code and not sys.stdin.isatty():
        raise click.UsageError("--confirm-code asks on the terminal: stdin is not one")
    client, output = _peer_setup(params)
    options = SendOptions(skip_unreadable=skip_unreadable, follow_symlinks=follow_symlinks,
                          idle_timeout=idle_timeout or SEND_IDLE_TIMEOUT,
                          stdin_name=stdin_name, text=data)

    async def confirm(code: str) -> bool:
        return await confirm_on_terminal(
            f"Does {printable(peer)} see the verification code {code}?")

    run_peer_command(lambda: send_to_peer(peer, paths, client, output, options,
                                          confirm=confirm if confirm_code else None), output)
    return ExitCode.OK


@cli.command()
@click.option("--dir", "download_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, callback=_writable_folder,
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
@click.option("--once", is_flag=True,
              help="Exit after the first transfer (0 if it succeeded, else 8).")
@click.option("--stdout", "to_stdout", is_flag=True,
              help="Write the one file or stream received to standard output (with --once).")
@click.option("--keep-parts", "keep_parts", type=click.FloatRange(min=0), default=7.0,
              show_default=True, metavar="DAYS",
              help="At startup, remove unfinished part files (.NAME.rtcxfer-part) in the "
                   "download folder untouched for more than DAYS days (each is listed).")
@IDLE_TIMEOUT_OPTION
@_peer_options
def listen(download_dir: Path | None, assume_yes: bool, allowed_senders: tuple[str, ...],
           overwrite: bool, allow_hidden: bool, once: bool, to_stdout: bool,
           keep_parts: float, idle_timeout: float | None, **params: Any) -> int:
    """Stay online and receive files; asks before accepting unless --yes.

    \b
    Examples:
      rtcxfer listen                              # ask before each transfer
      rtcxfer listen --dir ~/inbox --from alice   # only alice's offers are considered
      rtcxfer listen --yes --server wss://xfer.example.org --name bob
      rtcxfer listen --once --stdout --from alice | tar x
    """
    from rtcxfer.peer.listener import (
        LISTEN_IDLE_TIMEOUT,
        Listener,
        ListenOptions,
        default_download_dir,
    )
    from rtcxfer.peer.run import run_peer_command

    if to_stdout and not once:
        raise click.UsageError("--stdout needs --once")
    if to_stdout and params.get("json_events"):
        raise click.UsageError("--stdout and --json both want standard output")
    client, output = _peer_setup(params)
    options = ListenOptions(download_dir=download_dir or default_download_dir(),
                            assume_yes=assume_yes,
                            allowed_senders=frozenset(allowed_senders), overwrite=overwrite,
                            interactive=sys.stdin.isatty(), allow_hidden=allow_hidden,
                            idle_timeout=idle_timeout or LISTEN_IDLE_TIMEOUT,
                            once=once, stdout=to_stdout, keep_parts_days=keep_parts)
    listener = Listener(client, options, output)
    stopped = run_peer_command(listener.run_once if once else listener.run, output,
                               exit_codes={signal.SIGTERM: ExitCode.OK})
    return stopped if isinstance(stopped, ExitCode) else ExitCode.OK


@cli.command()
@click.argument("code")
@click.option("--dir", "download_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, callback=_writable_folder,
              help="Where received files go [default: as for listen: $XDG_DOWNLOAD_DIR/rtcxfer "
                   "or ~/Downloads/rtcxfer, created private (0700) on first use].")
@click.option("--overwrite", is_flag=True,
              help="Replace existing files instead of saving as 'name (1).ext'.")
@_peer_options
def receive(code: str, download_dir: Path | None, overwrite: bool, **params: Any) -> int:
    """Receive the files of `rtcxfer send --code`, given its CODE (like 7-guitar-orbit).

    \b
    Examples:
      rtcxfer receive 7-guitar-orbit
      rtcxfer receive 7-guitar-orbit --dir ~/inbox --server https://xfer.example.org
    """
    from rtcxfer.peer.code import receive_with_code
    from rtcxfer.peer.listener import default_download_dir, prepare_download_dir
    from rtcxfer.peer.run import run_peer_command
    from rtcxfer.protocol.code import InvalidCode, parse_code

    try:
        parsed = parse_code(code)
    except InvalidCode as error:
        raise click.BadParameter(str(error), param_hint="CODE") from None
    client, output = _peer_setup(params)
    try:
        folder = prepare_download_dir(download_dir or default_download_dir())
    except OSError as error:
        raise click.BadParameter(f"{printable(download_dir)}: {error.strerror or error}",
                                 param_hint="--dir") from None
    run_peer_command(lambda: receive_with_code(parsed, folder, client, output,
                                               overwrite=overwrite), output)
    return ExitCode.OK


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


# -- trust: pinned peer identities (docs/security.md) ---------------------------


@cli.group()
def trust() -> None:
    """Pinned peer identities: list, forget or add them.

    \b
    Examples:
      rtcxfer trust list
      rtcxfer trust forget alice
      rtcxfer trust add alice 6B:0F:...:9A --server wss://xfer.example.org
    """


@trust.command("list")
@click.option("--json", "json_out", is_flag=True, help="One JSON object per pin.")
def trust_list(json_out: bool) -> int:
    """Print every pinned peer: SERVER, ROOM, NAME, FINGERPRINT (tab-separated)."""
    import json

    from rtcxfer.peer.identity import config_dir
    from rtcxfer.peer.trust import TrustStore

    for pin in TrustStore(config_dir()).pins():
        if json_out:
            click.echo(json.dumps({"server": pin.server, "room": pin.room, "name": pin.name,
                                   "fingerprint": pin.fingerprint, "added": pin.added}))
        else:
            click.echo("\t".join((printable(pin.server), printable(pin.room) or "-",
                                  printable(pin.name), pin.fingerprint)))
    return ExitCode.OK


@trust.command("forget")
@click.argument("name")
@click.option("--server", default=None, callback=_optional_server_url,
              help="Only the pin on this server (default: all).")
@click.option("--room", default=None, help="Only the pin in this room (with --server).")
def trust_forget(name: str, server: str | None, room: str | None) -> int:
    """Forget NAME's pinned identity: the next transfer pins it anew."""
    from rtcxfer.peer.identity import config_dir
    from rtcxfer.peer.trust import TrustStore, scope_of

    if room is not None and server is None:
        raise click.UsageError("--room needs --server")
    scope = scope_of(server, room) if server is not None else None
    gone = TrustStore(config_dir()).forget(name, scope)
    if not gone:
        raise RtcxferError(f"{printable(name)} is not pinned"
                           + (f" on {printable(server)}" if server else ""))
    for pin in gone:
        click.echo(f"forgot {printable(pin.name)} on {printable(pin.server)}"
                   + (f" room {printable(pin.room)}" if pin.room else "")
                   + f" ({pin.fingerprint})")
    return ExitCode.OK


@trust.command("add")
@click.argument("name")
@click.argument("fingerprint")
@_SERVER_OPTION
@click.option("--room", default="", help="Room on the server (default: none).")
def trust_add(name: str, fingerprint: str, server: str, room: str) -> int:
    """Pin NAME to FINGERPRINT (SHA-256, as `rtcxfer trust self` prints it)."""
    from rtcxfer.peer.identity import config_dir
    from rtcxfer.peer.trust import TrustStore, normalise_fingerprint, scope_of

    try:
        value = normalise_fingerprint(fingerprint)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="FINGERPRINT") from None
    scope = scope_of(server, room)
    old = TrustStore(config_dir()).add(scope, name, value)
    click.echo(f"pinned {printable(name)} on {printable(scope.server)}: {value}"
               + (f" (was {old.fingerprint})" if old and old.fingerprint != value else ""))
    return ExitCode.OK


@trust.command("self")
def trust_self() -> int:
    """Print this user's own fingerprint (what peers pin), creating the identity if needed."""
    from rtcxfer.peer.identity import load_or_create

    click.echo(load_or_create().fingerprint)
    return ExitCode.OK


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
