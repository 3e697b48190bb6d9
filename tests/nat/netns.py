"""Real NATs for the tests: Linux network namespaces, veth pairs, bridges, iptables NAT.

The world this builds (all addresses private, all inside namespaces created here)::

    "public" 10.211.0.0/24  (namespace pub: rtcxfer serve and coturn on 10.211.0.1)
        ├── router ra  WAN 10.211.0.2  ── home A 192.168.211.0/24 (hosts a1 .2, a2 .3)
        └── router rb  WAN 10.211.0.3  ── home B 192.168.212.0/24 (host b1 .2)

Each router forwards between its home network and the public one and NATs the
home network behind its WAN address: plain MASQUERADE (endpoint-independent
mapping: the same public port for every destination, what STUN needs) or
MASQUERADE ``--random-fully`` (a new random port per destination: a symmetric
NAT, which STUN cannot see through). A router can also drop outbound UDP.

Namespace names start with a per-run prefix (``rx11-<hex>-``); :meth:`World.close`
deletes every namespace, which takes their veths, bridges and rules with them.
Processes started in a namespace are stopped by PID.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from support import CliProcess

PUBLIC_NET = "10.211.0"
PUBLIC_IP = f"{PUBLIC_NET}.1"
HOME_NETS = {"ra": "192.168.211", "rb": "192.168.212"}
ROUTER_WAN = {"ra": f"{PUBLIC_NET}.2", "rb": f"{PUBLIC_NET}.3"}


class NetnsUnavailable(Exception):
    """Namespaces (or the tools) cannot be used here: the tests skip with this reason."""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result


def unavailable_reason() -> str | None:
    """Why namespaces cannot be built here, or None."""
    for tool in ("ip", "iptables", "turnserver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"rx11-probe-{secrets.token_hex(3)}"
    try:
        run("ip", "netns", "add", name)
    except (RuntimeError, OSError) as error:
        return f"cannot create a network namespace: {error}"
    try:
        probe = run("ip", "netns", "exec", name, "iptables", "-t", "nat", "-L", check=False)
        if probe.returncode != 0:
            return f"iptables NAT does not work in a namespace: {probe.stderr.strip()}"
    finally:
        run("ip", "netns", "del", name, check=False)
    return None


@dataclass(frozen=True)
class Home:
    """How a home network's router treats its traffic."""

    symmetric: bool = False  # MASQUERADE --random-fully
    block_udp: bool = False  # drop every UDP datagram leaving the home network


class World:
    """The namespaces above; use as a context manager."""

    def __init__(self, a: Home = Home(), b: Home = Home()) -> None:
        self.prefix = f"rx11-{secrets.token_hex(3)}-"
        self.homes = {"ra": a, "rb": b}
        self.namespaces: list[str] = []
        self.processes: list[NsProcess] = []

    def ns(self, short: str) -> str:
        return self.prefix + short

    def __enter__(self) -> World:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, short: str) -> str:
        name = self.ns(short)
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        # IPv4 only: without this every new interface gets an IPv6 link-local address
        # that turns from tentative to valid a second later (duplicate address
        # detection), and Chromium, started meanwhile in the namespace, aborts the
        # page's module loads with net::ERR_NETWORK_CHANGED.
        self.sh(short, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                       "net.ipv6.conf.default.disable_ipv6=1 && ip link set lo up")
        return name

    def sh(self, short: str, command: str) -> None:
        run("ip", "netns", "exec", self.ns(short), "sh", "-ec", command)

    def _veth(self, left: str, left_if: str, right: str, right_if: str) -> None:
        # Created in the left namespace, so that no interface ever appears on the host.
        tmp = f"rx{secrets.token_hex(5)}"
        self.sh(left, f"ip link add {left_if} type veth peer name {tmp}")
        self.sh(left, f"ip link set {tmp} netns {self.ns(right)}")
        self.sh(right, f"ip link set {tmp} name {right_if}")

    def _build(self) -> None:
        self._add("pub")
        self.sh("pub", f"ip link add br0 type bridge && ip addr add {PUBLIC_IP}/24 dev br0 "
                       "&& ip link set br0 up")
        for router, home in self.homes.items():
            net = HOME_NETS[router]
            self._add(router)
            self._veth(router, "wan", "pub", f"p-{router}")
            self.sh("pub", f"ip link set p-{router} master br0 && ip link set p-{router} up")
            self.sh(router, f"ip addr add {ROUTER_WAN[router]}/24 dev wan && ip link set wan up"
                            f" && ip link add lan type bridge && ip addr add {net}.1/24 dev lan"
                            " && ip link set lan up && sysctl -qw net.ipv4.ip_forward=1")
            masquerade = "-j MASQUERADE" + (" --random-fully" if home.symmetric else "")
            self.sh(router, f"iptables -t nat -A POSTROUTING -o wan {masquerade}")
            if home.block_udp:
                self.sh(router, "iptables -A FORWARD -i lan -p udp -j DROP")
            # Nothing from the public side may open a connection into the home network,
            # nor to the router itself. Dropping (not rejecting) unsolicited packets
            # also keeps the kernel from recording them as connections, which would
            # make the next outgoing mapping to that peer pick another port.
            self.sh(router, "iptables -A FORWARD -i wan -m conntrack "
                            "--ctstate ESTABLISHED,RELATED -j ACCEPT && "
                            "iptables -A FORWARD -i wan -j DROP && "
                            "iptables -A INPUT -i wan -m conntrack "
                            "--ctstate ESTABLISHED,RELATED -j ACCEPT && "
                            "iptables -A INPUT -i wan -j DROP")
            hosts = ["a1", "a2"] if router == "ra" else ["b1"]
            for index, host in enumerate(hosts, start=2):
                self._add(host)
                self._veth(router, f"h-{host}", host, "eth0")
                self.sh(router, f"ip link set h-{host} master lan && ip link set h-{host} up")
                self.sh(host, f"ip addr add {net}.{index}/24 dev eth0 && ip link set eth0 up"
                              f" && ip route add default via {net}.1")

    def address(self, host: str) -> str:
        router = "ra" if host.startswith("a") else "rb"
        return f"{HOME_NETS[router]}.{int(host[1:]) + 1}"

    def start(self, short: str, args: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> NsProcess:
        process = NsProcess(self.ns(short), args, env=env, cwd=cwd)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy") and not key.startswith("RTCXFER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class NsProcess(CliProcess):
    """A process inside a namespace (``args``: the whole command), its output collected
    line by line."""

    def __init__(self, namespace: str, args: Sequence[str], *,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        super().__init__(args, env=env or clean_env(), cwd=cwd,
                         command=["ip", "netns", "exec", namespace])

    def wait_for_line(self, predicate, *, stream: str = "stdout",  # type: ignore[no-untyped-def]
                      timeout: float = 30.0) -> str:
        return super().wait_for_line(predicate, stream=stream, timeout=timeout)


RTCXFER = [sys.executable, "-m", "rtcxfer"]
TURN_SECRET = "rx11-test-secret"
TURN_REALM = "rtcxfer.test"


def start_turn(world: World, port: int, log: Path) -> NsProcess:
    """coturn on the public address, TURN REST API auth, relaying to the test networks."""
    return world.start("pub", [
        "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls",
        "--listening-ip", PUBLIC_IP, "--relay-ip", PUBLIC_IP, "--listening-port", str(port),
        "--min-port", "49160", "--max-port", "49400",
        "--use-auth-secret", "--static-auth-secret", TURN_SECRET, "--realm", TURN_REALM,
        "--fingerprint", "--no-multicast-peers",
        f"--allowed-peer-ip={PUBLIC_NET}.0-{PUBLIC_NET}.255",
        "--denied-peer-ip=0.0.0.0-255.255.255.255",
        "--log-file", str(log), "--simple-log", "--no-stdout-log",
        "--pidfile", str(log.with_suffix(".pid")),
    ])


def wait_listening(world: World, short: str, port: int, proto: str = "tcp",
                   timeout: float = 20.0) -> None:
    """Wait until something listens on ``port`` in a namespace (ss, bounded)."""
    deadline = time.monotonic() + timeout
    flag = "-tln" if proto == "tcp" else "-uln"
    while time.monotonic() < deadline:
        out = run("ip", "netns", "exec", world.ns(short), "ss", "-H", flag,
                  f"sport = :{port}", check=False).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {proto} {port} in {short}")
