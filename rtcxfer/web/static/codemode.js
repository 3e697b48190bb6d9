// Code mode in the page (docs/protocol.md, "Code mode"): receive with a code that
// `rtcxfer send --code` printed, or send and show a code for `rtcxfer receive`.
// Neither side needs a name: each logs in under a one-time rtcxfer-code-… name on
// its own signaling connection. SPAKE2 on the code (spake2.js) gives both sides a
// key; each MACs both DTLS certificate fingerprints with it before any file byte
// moves, so a server that swapped certificates is caught by both.

import { SignalingClient, LoginRefused } from "./signaling.js";
import { CloseReason, newSessionId, PeerSession } from "./session.js";
import { FileReceiver, FileSender } from "./transfer.js";
import { Spake2 } from "./spake2.js";
import { WORDS } from "./codewords.js";
import { sha256Fingerprint } from "./verify.js";
import { hmac } from "./vendor/noble-hashes/hmac.js";
import { sha256 } from "./vendor/noble-hashes/sha2.js";

export const WRONG_OR_TAMPERED = "the code was wrong or the connection was tampered with";
export const CODE_NAME_PREFIX = "rtcxfer-code-";
const CODE_SESSION_PREFIX = "code-";
const MESSAGE_KEY = "rtcxfer-code";
const ID_SENDER = "rtcxfer-code/1 sender";
const ID_RECEIVER = "rtcxfer-code/1 receiver";
const NUMBER_LIMITS = [999, 99999];
const CLAIM_ATTEMPTS = 20;
const TIMEOUT_MS = 30000;
const CLOSE_DELAY_MS = 2000;
const encoder = new TextEncoder();

export class CodeError extends Error {}

export function isCodeName(name) {
  return name.startsWith(CODE_NAME_PREFIX);
}

/** `7-guitar-orbit` (any case, spaces around ignored) → {number, words, text}. */
export function parseCode(text) {
  const match = /^([1-9][0-9]{0,5})((?:-[a-z]+)+)$/.exec(String(text).trim().toLowerCase());
  if (match === null) {
    throw new CodeError("a code looks like 7-guitar-orbit: a number, then words, joined by '-'");
  }
  const words = match[2].slice(1).split("-");
  if (words.length !== 2) {
    throw new CodeError("a code has 2 words after the number");
  }
  const unknown = words.find((word) => !WORDS.includes(word));
  if (unknown !== undefined) {
    throw new CodeError(`"${unknown}" is not one of the code words; check the spelling`);
  }
  return { number: Number(match[1]), words, text: [match[1], ...words].join("-") };
}

function randomBelow(limit) {
  // Rejection sampling on 32-bit values: no modulo bias.
  const bound = Math.floor(0x100000000 / limit) * limit;
  for (;;) {
    const [value] = crypto.getRandomValues(new Uint32Array(1));
    if (value < bound) {
      return value % limit;
    }
  }
}

function newCode(limit) {
  const number = randomBelow(limit) + 1;
  const words = [WORDS[randomBelow(WORDS.length)], WORDS[randomBelow(WORDS.length)]];
  return { number, words, text: [number, ...words].join("-") };
}

function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  if (typeof text !== "string" || text.length % 2 !== 0 || text.length > 256 ||
      !/^[0-9a-fA-F]*$/.test(text)) {
    return null;
  }
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

function sameBytes(a, b) {
  if (a.length !== b.length) {
    return false;
  }
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) {
    difference |= a[i] ^ b[i];
  }
  return difference === 0;
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((yes, no) => {
    resolve = yes;
    reject = no;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function withTimeout(promise, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CodeError(message)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function isDescription(value, type) {
  return value !== null && typeof value === "object" && value.type === type &&
    typeof value.sdp === "string";
}

/** The bytes of a code-mode `candidate` payload of `kind` ("pake"/"confirm"), or null. */
function readMessage(payload, kind) {
  if (payload === null || typeof payload !== "object" || payload[MESSAGE_KEY] !== kind) {
    return null;
  }
  return fromHex(kind === "pake" ? payload.pake : payload.mac);
}

function certificateFingerprint(der) {
  return toHex(sha256(new Uint8Array(der))).toUpperCase().match(/../g).join(":");
}

/** Our certificate's fingerprint (our own SDP) and the one the peer showed in DTLS. */
function fingerprints(pc) {
  const local = sha256Fingerprint(pc.localDescription.sdp, "local");
  const transport = pc.sctp === null ? null : pc.sctp.transport;
  const remote = transport !== null && typeof transport.getRemoteCertificates === "function"
    ? transport.getRemoteCertificates() : [];
  if (remote.length === 0) {
    throw new CodeError("this browser does not show the peer's certificate; code mode needs it");
  }
  return { local, remote: certificateFingerprint(remote[0]) };
}

function confirmation(key, role, senderFingerprint, receiverFingerprint) {
  const material = `rtcxfer-code/1 confirm|${role}|${senderFingerprint}|${receiverFingerprint}`;
  return hmac(sha256, key, encoder.encode(material));
}

/** The code-mode messages of one attempt (one code session). */
class CodeMessages {
  constructor(codeSession) {
    this.codeSession = codeSession;
    this.pake = deferred();
    this.mac = deferred();
  }

  /** Take `message` if it belongs to the code session; true if it did. */
  take(message) {
    if (message.session !== this.codeSession) {
      return false;
    }
    if (message.type === "leave") {
      const gaveUp = new CodeError(`${WRONG_OR_TAMPERED} (the other side gave up)`);
      this.pake.reject(gaveUp);
      this.mac.reject(gaveUp);
    } else if (message.type === "candidate") {
      const pake = readMessage(message.candidate, "pake");
      const mac = readMessage(message.candidate, "confirm");
      if (pake !== null) {
        this.pake.resolve(pake);
      }
      if (mac !== null) {
        this.mac.resolve(mac);
      }
    }
    return true;
  }
}

async function prove(signaling, peer, messages, session, key, role) {
  const { local, remote } = fingerprints(session.pc);
  const [senderFp, receiverFp] = role === "sender" ? [local, remote] : [remote, local];
  signaling.relay("candidate", peer, messages.codeSession, {
    [MESSAGE_KEY]: "confirm",
    mac: toHex(confirmation(key, role, senderFp, receiverFp)),
  });
  const mac = await withTimeout(messages.mac.promise, `${WRONG_OR_TAMPERED} (no confirmation came)`);
  const other = role === "sender" ? "receiver" : "sender";
  if (!sameBytes(mac, confirmation(key, other, senderFp, receiverFp))) {
    throw new CodeError(WRONG_OR_TAMPERED);
  }
}

function finishPake(spake, message) {
  try {
    return spake.finish(message);
  } catch {
    throw new CodeError(WRONG_OR_TAMPERED);
  }
}

function listen(signaling, handler) {
  for (const type of ["offer", "answer", "candidate", "leave"]) {
    signaling.addEventListener(type, (event) => handler(event.detail));
  }
}

function hangUp(signaling, session) {
  // The sender closes first; give our last frames (ack, done) time to leave.
  setTimeout(() => {
    if (session !== null) {
      session.close();
    }
    signaling.close();
  }, CLOSE_DELAY_MS);
}

/**
 * Receive the files of `rtcxfer send --code` (or another page) given its code.
 * Resolves with {files, total} once every file arrived verified; rejects with an
 * Error whose message is meant for the person.
 */
export async function receiveWithCode(url, text, { onStatus = () => {}, onFile = () => {},
  onProgress = () => {} } = {}) {
  const code = parseCode(text);
  const signaling = new SignalingClient(url);
  await signaling.login(`${CODE_NAME_PREFIX}r-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`);
  const sender = `${CODE_NAME_PREFIX}${code.number}`;
  const sid = newSessionId();
  const messages = new CodeMessages(CODE_SESSION_PREFIX + sid);
  const offered = deferred();
  let session = null;
  listen(signaling, (message) => {
    if (message.name !== sender || messages.take(message) || message.session !== sid) {
      return;
    }
    if (message.type === "offer" && session === null && isDescription(message.offer, "offer")) {
      session = new PeerSession(signaling, sender, sid, "answerer");
      offered.resolve(message.offer);
    } else if (message.type === "candidate" && session !== null) {
      session.addRemoteCandidate(message.candidate);
    } else if (message.type === "leave" && session !== null) {
      session.close(CloseReason.PEER_LEFT);
    }
  });
  // The relay of our pake to an absent sender comes back as an error naming it. The
  // user list is not asked: a server may hide code names (docs/protocol.md).
  signaling.addEventListener("server-error", (event) => {
    if (String(event.detail).includes(sender)) {
      messages.pake.reject(new CodeError(`nobody is waiting for code ${code.text}: check the ` +
        "number, or ask for a new code (a code works once)"));
    }
  });
  try {
    const spake = new Spake2("B", code.text, ID_SENDER, ID_RECEIVER);
    signaling.relay("candidate", sender, messages.codeSession,
      { [MESSAGE_KEY]: "pake", pake: toHex(spake.start()) });
    onStatus("waiting for the sender…");
    const their = await withTimeout(messages.pake.promise, "the sender did not answer");
    const key = finishPake(spake, their);
    const offer = await withTimeout(offered.promise, "the sender did not connect");
    onStatus("connecting to the sender…");
    await session.answer(offer);
    const channel = await session.channel;
    // Listening from the moment the channel opens: the sender starts (its hello) as
    // soon as it has our proof, which may be before we have its own. The frames wait
    // in the receiver's queue; none is looked at before the proof (run() below).
    const receiver = new FileReceiver(channel, `code ${code.text}`, {
      decide: () => Promise.resolve(true),
      onProgress,
      onFile,
    });
    await prove(signaling, sender, messages, session, key, "receiver");
    onStatus("the sender knows the code: receiving…");
    const outcome = await receiver.run();
    if (outcome !== "accepted") {
      throw new CodeError("the transfer did not complete");
    }
    return { files: receiver.files, total: receiver.total };
  } finally {
    hangUp(signaling, session);
  }
}

async function claimCode(url) {
  for (const limit of NUMBER_LIMITS) {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt += 1) {
      const code = newCode(limit);
      const signaling = new SignalingClient(url);
      try {
        await signaling.login(`${CODE_NAME_PREFIX}${code.number}`);
        return { code, signaling };
      } catch (error) {
        if (!(error instanceof LoginRefused)) {
          throw error;
        }
      }
    }
  }
  throw new CodeError("no free code number on this server; try again later");
}

/**
 * Send `files` ([{file, name}]) to whoever types the code `onCode` is given.
 * Resolves with the FileSender once every file was acknowledged.
 */
export async function sendWithCode(url, files, { onCode = () => {}, onStatus = () => {},
  onProgress = () => {} } = {}) {
  const { code, signaling } = await claimCode(url);
  const first = deferred();
  let chosen = null; // {peer, messages}
  let session = null;
  listen(signaling, (message) => {
    if (chosen === null) {
      const pake = message.type === "candidate" && typeof message.session === "string" &&
        message.session.startsWith(CODE_SESSION_PREFIX) &&
        readMessage(message.candidate, "pake") !== null;
      if (pake) {
        chosen = { peer: message.name, messages: new CodeMessages(message.session) };
        chosen.messages.take(message);
        first.resolve();
      }
      return;
    }
    if (message.name !== chosen.peer || chosen.messages.take(message)) {
      if (message.type === "candidate" && readMessage(message.candidate, "pake") !== null) {
        // The code is spoken for: every later attempt is turned away.
        signaling.relay("leave", message.name, message.session);
      }
      return;
    }
    if (session === null || message.session !== session.session) {
      return;
    }
    if (message.type === "answer" && isDescription(message.answer, "answer")) {
      session.acceptAnswer(message.answer).catch((error) => session.fail(error.message));
    } else if (message.type === "candidate") {
      session.addRemoteCandidate(message.candidate);
    } else if (message.type === "leave") {
      session.close(CloseReason.PEER_LEFT);
    }
  });
  try {
    onCode(code.text);
    onStatus(`code: ${code.text}, waiting for the receiver…`);
    await first.promise;
    const { peer, messages } = chosen;
    const spake = new Spake2("A", code.text, ID_SENDER, ID_RECEIVER);
    const ours = spake.start();
    const key = finishPake(spake, await messages.pake.promise);
    signaling.relay("candidate", peer, messages.codeSession, { [MESSAGE_KEY]: "pake", pake: toHex(ours) });
    session = new PeerSession(signaling, peer, messages.codeSession.slice(CODE_SESSION_PREFIX.length),
      "offerer");
    onStatus("connecting to the receiver…");
    await session.start();
    const channel = await session.channel;
    // Listening before the proof, like the receiver: nothing the peer sends is lost.
    const fileSender = new FileSender(channel, `code ${code.text}`, files, { onProgress });
    await prove(signaling, peer, messages, session, key, "sender");
    onStatus("the receiver knows the code: sending…");
    await fileSender.run();
    return fileSender;
  } finally {
    hangUp(signaling, session);
  }
}
