"""A world of namespaces with rtcxfer serve and coturn running in it (tests/nat)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nat.netns import (
    PUBLIC_IP,
    RTCXFER,
    TURN_SECRET,
    NsProcess,
    World,
    clean_env,
    start_turn,
    wait_listening,
)

SIGNALING_PORT = 9090
TURN_PORT = 3478
STUN_URL = f"stun:{PUBLIC_IP}:{TURN_PORT}"
TURN_UDP = f"turn:{PUBLIC_IP}:{TURN_PORT}"
TURN_TCP = f"turn:{PUBLIC_IP}:{TURN_PORT}?transport=tcp"
SERVER = f"ws://{PUBLIC_IP}:{SIGNALING_PORT}"


def events(process: NsProcess, name: str) -> list[dict]:
    found = []
    for line in list(process.stdout_lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


class Scenario:
    """A world with the signaling server (and coturn) running in it."""

    def __init__(self, world: World, tmp: Path) -> None:
        self.world = world
        self.tmp = tmp

    def serve(self, *, stun: bool = True, turn: bool = True) -> None:
        args = [*RTCXFER, "serve", "--host", PUBLIC_IP, "--port", str(SIGNALING_PORT)]
        # coturn answers STUN too: it runs whenever the server hands out either.
        if stun or turn:
            self.turn = start_turn(self.world, TURN_PORT, self.tmp / "turn.log")
            wait_listening(self.world, "pub", TURN_PORT, "udp")
        if stun:
            args += ["--stun", STUN_URL]
        env = None
        if turn:
            args += ["--turn", TURN_UDP, "--turn", TURN_TCP, "--turn-ttl", "600"]
            env = clean_env(RTCXFER_TURN_SECRET=TURN_SECRET)
        self.server = self.world.start("pub", args, env=env)
        self.server.wait_for_line(lambda line: line.startswith("ws://"))

    def listen(self, host: str, name: str, *extra: str) -> tuple[NsProcess, Path]:
        folder = self.tmp / f"in-{name}"
        process = self.world.start(host, [*RTCXFER, "listen", "--server", SERVER, "--name",
                                          name, "--dir", str(folder), "--yes", "--json",
                                          *extra])
        process.wait_for_line(lambda line: '"connected"' in line)
        return process, folder

    def send(self, host: str, peer: str, path: Path, *extra: str) -> NsProcess:
        return self.world.start(host, [*RTCXFER, "send", "--server", SERVER, "--name",
                                       f"from-{host}", "--json", *extra, peer, str(path)])


def payload(tmp_path: Path, size: int = 300_000) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(size))
    return path


SERVER_HTTP = f"http://{PUBLIC_IP}:{SIGNALING_PORT}/"
