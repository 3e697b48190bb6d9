"""CLI to CLI across real NATs (tests/nat/netns.py): the path each connection takes.

Every scenario runs ``rtcxfer serve`` (handing out ``iceServers``) and, where it
says so, coturn with ``use-auth-secret`` on the "public" segment; the sender sits
in home A (``a1``) and the listener in home B (``b1``), or both in home A.
Each asserts the ``path`` event of both ends and the bytes received.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from nat.netns import Home
from nat.scenario import STUN_URL, TURN_TCP, TURN_UDP, Scenario, events, payload

pytestmark = pytest.mark.slow

def transfer(scenario: Scenario, tmp_path: Path, *, sender_host: str = "a1",
             listener_host: str = "b1", send_extra: tuple[str, ...] = ()
             ) -> tuple[dict, dict]:
    """Send one file; return the sender's and the listener's path events."""
    listener, folder = scenario.listen(listener_host, "bob")
    source = payload(tmp_path)
    sender = scenario.send(sender_host, "bob", source, *send_extra)
    code = sender.wait(90)
    assert code == 0, (f"send failed ({code}):\n{sender.stderr}\n"
                       f"listener:\n{listener.stderr}\n{listener.stdout}")
    listener.wait_for_line(lambda line: '"summary"' in line, timeout=30)
    received = folder / source.name
    assert hashlib.sha256(received.read_bytes()).digest() == \
        hashlib.sha256(source.read_bytes()).digest()
    listener.wait_for_line(lambda line: '"path"' in line, timeout=10)
    (sent_path,) = events(sender, "path")
    (received_path,) = events(listener, "path")
    for path in (sent_path, received_path):
        assert set(path) >= {"kind", "local_type", "remote_type", "protocol", "relay"}
    return sent_path, received_path


@pytest.mark.parametrize("scenario", [(Home(), Home())], indirect=True)
def test_endpoint_independent_nats_with_stun_connect_directly(
        scenario: Scenario, tmp_path: Path) -> None:
    scenario.serve(stun=True, turn=False)
    sent, received = transfer(scenario, tmp_path)
    for path in (sent, received):
        assert path["kind"] == "direct", path
        assert path["relay"] is None
        assert path["protocol"] == "udp"
        assert "srflx" in (path["local_type"], path["remote_type"]) or \
            path["remote_type"] == "prflx", path
    assert sent["local_type"] == "srflx", sent


@pytest.mark.parametrize("scenario", [(Home(), Home())], indirect=True)
def test_direct_through_nat_wins_over_turn_when_both_work(
        scenario: Scenario, tmp_path: Path) -> None:
    """With TURN offered too, the relay is held back while the direct pairs may answer."""
    scenario.serve(stun=True, turn=True)
    sent, received = transfer(scenario, tmp_path)
    assert sent["kind"] == received["kind"] == "direct", (sent, received)
    assert sent["local_type"] == "srflx", sent


@pytest.mark.parametrize("scenario", [(Home(symmetric=True), Home(symmetric=True))],
                         indirect=True)
def test_symmetric_nats_are_relayed_over_udp(scenario: Scenario, tmp_path: Path) -> None:
    scenario.serve()
    sent, received = transfer(scenario, tmp_path)
    assert sent["kind"] == received["kind"] == "relayed", (sent, received)
    relaying = sent if sent["local_type"] == "relay" else received
    assert relaying["relay"] == TURN_UDP
    assert relaying["protocol"] == "udp"


@pytest.mark.parametrize("scenario", [(Home(block_udp=True), Home())], indirect=True)
def test_blocked_udp_is_relayed_over_turn_tcp(scenario: Scenario, tmp_path: Path) -> None:
    scenario.serve()
    sent, received = transfer(scenario, tmp_path)
    assert sent == {**sent, "kind": "relayed", "local_type": "relay", "protocol": "tcp",
                    "relay": TURN_TCP}, sent
    assert received["kind"] == "relayed", received


@pytest.mark.parametrize("scenario", [(Home(symmetric=True), Home(symmetric=True))],
                         indirect=True)
def test_no_turn_and_no_direct_path_fails_fast_with_exit_7(
        scenario: Scenario, tmp_path: Path) -> None:
    scenario.serve(stun=True, turn=False)
    listener, folder = scenario.listen("b1", "bob", "--connect-timeout", "600")
    # A connect timeout far away: the failure must come from ICE failing (no pair
    # answered within 10 s, on one side or the other), not from the clock running out.
    sender = scenario.send("a1", "bob", payload(tmp_path, 1000), "--connect-timeout", "600")
    code = sender.wait(300)
    assert code == 7, sender.stderr
    assert ("no candidate pair answered within 10 s" in sender.stderr
            or "bob gave up while ICE was checking" in sender.stderr), sender.stderr
    assert f"ICE servers tried: {STUN_URL}" in sender.stderr, sender.stderr
    assert "--turn" in sender.stderr
    (error,) = events(sender, "error")
    assert error["exit_code"] == 7
    assert not events(sender, "path")
    failed = listener.wait_for_line(lambda line: '"transfer_failed"' in line, timeout=30)
    assert "could not reach from-a1" in failed
    assert not (folder / "payload.bin").exists()


@pytest.mark.parametrize("scenario", [(Home(), Home())], indirect=True)
def test_relay_only_on_a_lan_is_relayed(scenario: Scenario, tmp_path: Path) -> None:
    scenario.serve()
    sent, received = transfer(scenario, tmp_path, sender_host="a1", listener_host="a2",
                              send_extra=("--relay-only",))
    assert sent["kind"] == "relayed" and sent["local_type"] == "relay", sent
    assert sent["relay"] == TURN_UDP
    assert received["kind"] == "relayed" and received["remote_type"] == "relay", received
