"""Fixtures every test area shares.

- Every test gets its own rtcxfer config folder (identity and pinned peers), set
  in the environment so CLI subprocesses started with ``cli_env()`` inherit it; a
  test that needs two different identities passes its own ``XDG_CONFIG_HOME``.
- A real ``rtcxfer serve`` (``server``) and real CLI subprocesses (``run``,
  ``listen``, ``send``), each stopped when the test ends. A folder whose tests need
  another kind of server (tests/server, tests/browser) overrides ``server``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import CliProcess, running_server, wait_for_event


@pytest.fixture(autouse=True)
def _private_config_home(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


CONNECT_TIMEOUT = 60.0


@pytest.fixture
def server() -> Iterator[str]:
    with running_server() as (url, _process):
        yield url


@pytest.fixture
def processes() -> Iterator[list[CliProcess]]:
    """Every CLI process a test starts; each is stopped when the test ends."""
    started: list[CliProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def run(processes: list[CliProcess]) -> Callable[..., CliProcess]:
    def start(*args: str) -> CliProcess:
        process = CliProcess(list(args))
        processes.append(process)
        return process

    return start


@pytest.fixture
def listen(server: str, run: Callable[..., CliProcess]) -> Callable[..., CliProcess]:
    """Start ``rtcxfer listen --json`` as ``name`` into ``folder``; return it once logged in."""

    def start(name: str, folder: Path, *extra: str, url: str | None = None) -> CliProcess:
        process = run("listen", "--server", url or server, "--name", name, "--dir", str(folder),
                      "--json", *extra)
        wait_for_event(process, "connected", timeout=CONNECT_TIMEOUT)
        return process

    return start


@pytest.fixture
def send(server: str, run: Callable[..., CliProcess]) -> Callable[..., CliProcess]:
    """Start ``rtcxfer send --json`` from ``name`` to ``peer``."""

    def start(name: str, peer: str, *paths: Path | str, url: str | None = None) -> CliProcess:
        return run("send", "--server", url or server, "--name", name, "--json", peer,
                   *map(str, paths))

    return start
