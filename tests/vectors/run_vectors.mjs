// Replays tests/vectors/*.json against the page's rtcxfer/2 machines
// (rtcxfer/web/static/machines2.js): `node tests/vectors/run_vectors.mjs`.
// Free text (reasons, messages) is compared up to its first ": " (the kind of
// failure, not its wording); everything else exactly. Exit code 1 on a mismatch.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  ProtocolError, ReceiverMachine2, SenderMachine2, parseMessage2,
} from "../../rtcxfer/web/static/machines2.js";

const here = dirname(fileURLToPath(import.meta.url));

function entry(raw) {
  return { name: raw.name, size: raw.size ?? null, mtime: raw.mtime ?? null, text: !!raw.text };
}

function normalise(value) {
  if (typeof value === "string") return value.split(": ")[0];
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, normalise(value[key])]));
  }
  return value;
}

function cutReasons(actions) {
  return actions.map((action) => {
    if (action.action && typeof action.reason === "string") {
      return { ...action, reason: action.reason.slice(0, 60) };
    }
    return action;
  });
}

function step(machine, event) {
  if ("message" in event) {
    let message;
    try {
      message = parseMessage2(JSON.stringify(event.message));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return machine.protocolViolation(error.message);
    }
    return machine.receiveMessage(message);
  }
  if ("chunk" in event) return machine.receiveChunk(event.chunk);
  if ("start" in event) return machine.start(event.start.map(entry), !!event.compatible);
  if ("list_batch" in event) return machine.listBatch(event.list_batch.map(entry));
  if ("file_sent" in event) {
    const sent = event.file_sent;
    return machine.fileSent(sent.index, sent.sha256, sent.size);
  }
  if ("decide" in event) return machine.decide(event.decide.reason ?? null, event.decide.offsets);
  if ("offsets_found" in event) {
    return machine.offsetsFound(event.offsets_found.first, event.offsets_found.offsets);
  }
  if ("settled" in event) return machine.filesSettled(event.settled);
  if ("channel_closed" in event) return machine.channelClosed();
  throw new Error(`unknown event ${JSON.stringify(event)}`);
}

let failures = 0;
let checked = 0;
for (const file of readdirSync(here).filter((name) => name.endsWith(".json")).sort()) {
  const vector = JSON.parse(readFileSync(join(here, file), "utf8"));
  const setup = vector.setup || {};
  const machine = vector.machine === "sender"
    ? new SenderMachine2(setup.count, setup.total)
    : new ReceiverMachine2({ foldCase: !!setup.fold_case, stdout: !!setup.stdout });
  vector.steps.forEach((item, number) => {
    const got = normalise(cutReasons(step(machine, item.event)));
    const expected = normalise(item.expect);
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      failures += 1;
      console.log(`FAIL ${vector.name} step ${number}: ${JSON.stringify(item.event)}\n`
        + `  expected ${JSON.stringify(expected)}\n  got      ${JSON.stringify(got)}`);
    }
  });
  checked += 1;
}
console.log(`${checked} vectors, ${failures} mismatching steps`);
process.exit(failures ? 1 : 0);
