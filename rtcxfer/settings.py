"""Settings set up once: ``$XDG_CONFIG_HOME/rtcxfer/config.toml``.

The file holds what a person would otherwise repeat on every command: the
server, their name, the token, the room, the download folder and ICE servers.
It becomes click's ``default_map``, so the order of precedence is click's own:
a flag on the command line, then the environment variable, then the config
file, then the built-in default. ``rtcxfer config`` shows the effective value
of each setting and where it came from.

Example::

    server = "wss://xfer.example.org"
    name = "alice"
    token = "s3cret"
    room = "family"
    dir = "~/Downloads/rtcxfer"
    stun = ["stun:stun.example.org:3478"]

    [serve]               # options of `rtcxfer serve`, by their long names
    host = "0.0.0.0"
    max-users = 500
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

CONFIG_ENV = "RTCXFER_CONFIG"  # a different file (tests, several profiles)

# Top-level keys of the file -> the parameter name they set on every command that has it.
PEER_KEYS: dict[str, str] = {
    "server": "server",
    "name": "name",
    "token": "token",
    "room": "room",
    "dir": "download_dir",
    "stun": "stun",
    "turn": "turn",
    "turn_user": "turn_user",
    "turn_password": "turn_password",
}
LIST_KEYS = frozenset({"stun", "turn"})
SECRET_KEYS = frozenset({"token", "turn_password"})
SERVE_TABLE = "serve"


class ConfigError(click.UsageError):
    """The config file exists but cannot be used (exit 2, before anything connects)."""


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rtcxfer" / "config.toml"


def load_file(path: Path) -> dict[str, Any]:
    """The parsed file, ``{}`` if there is none; :class:`ConfigError` if it is unusable."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror or error}") from None
    _check(path, data)
    return data


def _check(path: Path, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key == SERVE_TABLE:
            if not isinstance(value, dict):
                raise ConfigError(f"config file {path}: [serve] must be a table")
            continue
        if key not in PEER_KEYS:
            known = ", ".join([*PEER_KEYS, f"[{SERVE_TABLE}]"])
            raise ConfigError(f"config file {path}: unknown setting {key!r} (known: {known})")
        if key in LIST_KEYS:
            if isinstance(value, str):
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"config file {path}: {key} must be a string or a "
                                  "list of strings")
        elif not isinstance(value, str):
            raise ConfigError(f"config file {path}: {key} must be a string")


def default_map(group: click.Group, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """click ``default_map`` for ``group``'s commands from the parsed file."""
    result: dict[str, dict[str, Any]] = {}
    for command_name, command in group.commands.items():
        names = {param.name for param in command.params}
        defaults: dict[str, Any] = {}
        if command_name == SERVE_TABLE:
            for key, value in data.get(SERVE_TABLE, {}).items():
                param = key.replace("-", "_")
                if param not in names:
                    raise ConfigError(f"config file: [serve] has no option {key!r}")
                defaults[param] = value
        else:
            for key, param in PEER_KEYS.items():
                if key in data and param in names:
                    value = data[key]
                    if key in LIST_KEYS and isinstance(value, str):
                        value = [value]
                    if key == "dir":
                        value = os.path.expanduser(value)
                    defaults[param] = value
        if defaults:
            result[command_name] = defaults
    return result


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    source: str


def effective(group: click.Group, data: Mapping[str, Any], path: Path) -> list[Setting]:
    """Each peer setting's effective value and where it comes from (``rtcxfer config``)."""
    settings: list[Setting] = []
    for key, param_name in PEER_KEYS.items():
        found = _find_param(group, param_name)
        if found is None:
            continue
        command, param = found
        envvar = param.envvar if isinstance(param.envvar, str) else None
        if envvar and os.environ.get(envvar):
            value: Any = os.environ[envvar]
            source = f"environment ({envvar})"
        elif key in data:
            value = data[key]
            source = f"config file ({path})"
        else:
            value = param.get_default(click.Context(command))
            if getattr(param, "multiple", False) and not isinstance(value, list | tuple):
                value = []  # click's "unset" sentinel for an empty repeatable option
            source = "default"
        if key == "dir" and isinstance(value, str):
            value = os.path.expanduser(value)
        if key == "dir" and value is None:
            from rtcxfer.peer.listener import default_download_dir

            value = str(default_download_dir())
        if key == "server" and isinstance(value, str):
            from rtcxfer.peer.serverurl import BadServerUrl, normalise_server_url

            try:
                value = normalise_server_url(value)
            except BadServerUrl as error:
                value = f"{value} (unusable: {error})"
        if key in SECRET_KEYS and value:
            value = "(set, not shown)"
        if isinstance(value, tuple | list):
            value = list(value)
        elif key in LIST_KEYS and isinstance(value, str):
            value = [value]
        settings.append(Setting(key, value, source))
    return settings


def _find_param(group: click.Group, name: str) -> tuple[click.Command, click.Parameter] | None:
    for command in group.commands.values():
        for param in command.params:
            if param.name == name:
                return command, param
    return None
