"""The page's negotiation.js and negotiation.py are one machine: same events, same actions.

Hundreds of random event sequences (and the hand-written ones) go through the
Python machine here and through the JavaScript one in node; every step's
actions and state must match.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rtcxfer.peer.negotiation import (
    AddRemoteCandidate,
    ApplyRemoteDescription,
    Connected,
    End,
    EndReason,
    MakeDescription,
    Negotiation,
    Role,
)

STATIC = Path(__file__).resolve().parents[2] / "rtcxfer" / "web" / "static"
FP = ":".join(["AB"] * 32)
SDP = f"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 {FP}\r\n"
PAYLOADS: list[Any] = [
    {"type": "offer", "sdp": SDP}, {"type": "answer", "sdp": SDP}, "junk", None,
    {"type": "offer", "sdp": "v=0\r\n"}, {"type": "answer", "sdp": "v=0\r\nm=application 9\r\n"},
    {"type": "offer", "sdp": "v=0\r\nm=application 9\r\na=fingerprint:sha-256 AB:CD\r\n"},
]
CANDIDATES: list[Any] = [None, {"candidate": "candidate:1 1 udp 1 10.0.0.1 1 typ host"}]
ICE_STATES = ["new", "checking", "connected", "completed", "failed", "closed", "disconnected"]

NODE_RUNNER = """
import { Negotiation } from "%s";
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const out = [];
  for (const script of JSON.parse(input)) {
    const machine = new Negotiation(script.role, script.started, script.timeout);
    const steps = [];
    for (const [method, args] of script.events) {
      const result = machine[method](...args);
      steps.push([result ?? null, machine.state]);
    }
    out.push(steps);
  }
  process.stdout.write(JSON.stringify(out));
});
"""

# python method -> javascript method
METHODS = {
    "start": "start", "description_received": "descriptionReceived",
    "remote_description_applied": "remoteDescriptionApplied",
    "local_description_sent": "localDescriptionSent", "candidate_received": "candidateReceived",
    "ice_state": "iceState", "checks_succeeded": "checksSucceeded",
    "leave_received": "leaveReceived", "signaling_lost": "signalingLost", "failed": "failed",
    "end": "end", "tick": "tick", "deadline": "deadline",
}


def as_json(action: Any) -> dict[str, Any]:
    match action:
        case MakeDescription(kind):
            return {"type": "make-description", "kind": kind}
        case ApplyRemoteDescription(kind, sdp):
            return {"type": "apply-remote-description", "kind": kind, "sdp": sdp}
        case AddRemoteCandidate(init):
            return {"type": "add-remote-candidate", "init": init}
        case Connected():
            return {"type": "connected"}
        case End(reason, detail):
            return {"type": "end", "reason": reason.value, "detail": detail}
    raise AssertionError(action)


def run_python(script: dict[str, Any]) -> list[Any]:
    machine = Negotiation(Role(script["role"]), script["started"], script["timeout"])
    steps = []
    for method, args in script["events"]:
        if method == "end":
            args = [EndReason(args[0]), *args[1:]]
        result = getattr(machine, method)(*args)
        if isinstance(result, list):
            result = [as_json(action) for action in result]
        steps.append([result, machine.state.value])
    return steps


def _random_args(rng: random.Random, method: str, now: float) -> list[Any]:
    if method == "description_received":
        return [rng.choice(["offer", "answer"]), rng.choice(PAYLOADS)]
    if method in ("remote_description_applied", "local_description_sent", "tick"):
        return [now]
    if method == "candidate_received":
        return [rng.choice(CANDIDATES), now]
    if method == "ice_state":
        return [rng.choice(ICE_STATES)]
    if method == "failed":
        return ["boom"]
    if method == "end":
        return [rng.choice([r.value for r in EndReason]), "why"]
    return []


def random_script(rng: random.Random) -> dict[str, Any]:
    now = 0.0
    events: list[tuple[str, list[Any]]] = []
    for _ in range(rng.randint(1, 14)):
        now += rng.choice([0.0, 0.5, 3.0, 11.0])
        method = rng.choice(list(METHODS))
        args = _random_args(rng, method, now)
        events.append((method, args))
    return {"role": rng.choice(["offerer", "answerer"]), "started": 0.0,
            "timeout": rng.choice([5.0, 30.0]), "events": events}


HAPPY_OFFERER = {"role": "offerer", "started": 0.0, "timeout": 30.0, "events": [
    ("start", []), ("local_description_sent", [1.0]), ("candidate_received", [CANDIDATES[1], 1.1]),
    ("description_received", ["answer", PAYLOADS[1]]), ("remote_description_applied", [2.0]),
    ("deadline", []), ("candidate_received", [None, 3.0]), ("tick", [12.9]), ("tick", [13.0]),
]}
HAPPY_ANSWERER = {"role": "answerer", "started": 0.0, "timeout": 30.0, "events": [
    ("description_received", ["offer", PAYLOADS[0]]), ("remote_description_applied", [1.0]),
    ("local_description_sent", [1.5]), ("ice_state", ["checking"]), ("checks_succeeded", []),
    ("deadline", []), ("ice_state", ["connected"]), ("leave_received", []),
]}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_machine_matches_python(tmp_path: Path) -> None:
    rng = random.Random(11)
    scripts = [HAPPY_OFFERER, HAPPY_ANSWERER, *(random_script(rng) for _ in range(400))]
    runner = tmp_path / "run.mjs"
    runner.write_text(NODE_RUNNER % (STATIC / "negotiation.js").as_uri())
    wire = [{**s, "events": [[METHODS[m], a] for m, a in s["events"]]} for s in scripts]
    result = subprocess.run(["node", str(runner)], input=json.dumps(wire), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    javascript = json.loads(result.stdout)
    ended = 0
    for script, js_steps in zip(scripts, javascript, strict=True):
        python_steps = run_python(script)
        assert js_steps == python_steps, json.dumps(script)
        ended += python_steps[-1][1] == "ended"
    # The random scripts reach the interesting places, not only "ignored".
    assert ended > 100
    assert any(isinstance(step[0], list) and step[0] and step[0][0]["type"] == "connected"
               for s in scripts for step in run_python(s))
