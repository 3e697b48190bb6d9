"""Replay (and record) the rtcxfer/2 test vectors against the Python machines.

A vector is a JSON transcript: which machine (``sender`` or ``receiver``) and its
setup, then steps; each step is one event and the exact actions expected from it.
Messages are in their wire JSON; other actions are ``{"action": name, ...fields}``.
The same files are meant for the page's JS machines (docs/protocol.md, rtcxfer/2).

``python tests/vectors/machines2.py record`` rewrites the ``expect`` of every vector
from the current machines: review the diff before committing it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from rtcxfer.protocol.transfer import TransferProtocolError
from rtcxfer.protocol.transfer2 import Entry, encode_message2, parse_message2
from rtcxfer.transfer import machines2
from rtcxfer.transfer.machines2 import ReceiverMachine2, SenderMachine2

VECTORS = Path(__file__).parent


def entry(raw: dict[str, Any]) -> Entry:
    return Entry(raw["name"], raw.get("size"), raw.get("mtime"), bool(raw.get("text")))


def action_json(action: object) -> dict[str, Any]:
    if isinstance(action, machines2.Send):
        return {"send": json.loads(encode_message2(action.message))}
    fields: dict[str, Any] = {"action": type(action).__name__}
    for field in dataclasses.fields(action):  # type: ignore[arg-type]
        value = getattr(action, field.name)
        if isinstance(value, Entry):
            value = {"name": value.name, "size": value.size}
        elif field.name == "hello":
            value = value.count
        elif field.name == "entries":
            value = [item.name for item in value]
        elif isinstance(value, tuple):
            value = [list(item) if isinstance(item, tuple) else item for item in value]
        if field.name == "renamed" and not value:
            continue  # an ext field, left out when empty (as on the wire)
        fields[field.name] = value
    if "reason" in fields and isinstance(fields["reason"], str):
        fields["reason"] = fields["reason"][:60]
    return fields


def step(machine: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
    if "message" in event:
        try:
            message = parse_message2(json.dumps(event["message"]))
        except TransferProtocolError as error:
            return [action_json(a) for a in machine.protocol_violation(str(error))]
        actions = machine.receive_message(message)
    elif "chunk" in event:
        actions = machine.receive_chunk(event["chunk"])
    elif "start" in event:
        actions = machine.start([entry(raw) for raw in event["start"]],
                                compatible=event.get("compatible", False))
    elif "list_batch" in event:
        actions = machine.list_batch([entry(raw) for raw in event["list_batch"]])
    elif "file_sent" in event:
        sent = event["file_sent"]
        actions = machine.file_sent(sent["index"], sent["sha256"], sent["size"])
    elif "decide" in event:
        actions = machine.decide(event["decide"].get("reason"), event["decide"]["offsets"])
    elif "offsets_found" in event:
        found = event["offsets_found"]
        actions = machine.offsets_found(found["first"], found["offsets"])
    elif "settled" in event:
        actions = machine.files_settled([(i, r) for i, r in event["settled"]])
    elif "channel_closed" in event:
        actions = machine.channel_closed()
    else:
        raise ValueError(f"unknown event {event}")
    return [action_json(action) for action in actions]


def new_machine(vector: dict[str, Any]) -> Any:
    setup = vector.get("setup", {})
    if vector["machine"] == "sender":
        return SenderMachine2(setup["count"], setup["total"])
    return ReceiverMachine2(fold_case=setup.get("fold_case", False),
                            stdout=setup.get("stdout", False))


def replay(vector: dict[str, Any]) -> list[list[dict[str, Any]]]:
    machine = new_machine(vector)
    return [step(machine, item["event"]) for item in vector["steps"]]


def vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.json"))


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    for path in vector_files():
        vector = json.loads(path.read_text())
        for item, got in zip(vector["steps"], replay(vector), strict=True):
            item["expect"] = got
        path.write_text(json.dumps(vector, indent=1, ensure_ascii=False) + "\n")
