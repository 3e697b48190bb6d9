// The rtcxfer/1 file transfer protocol (PROTOCOL.md section 2) over an open
// RTCDataChannel: the sender and receiver state machines.
//
// Both sides talk through an Exchange, so every step is an
// explicit "await the next message and check it is what this state expects";
// anything else is a named failure, never a silent hang.

import { Sha256 } from "./sha256.js";

// 16 KiB frames keep every browser and aiortc happy (docs/protocol.md).
export const FRAME_BYTES = 16 * 1024;
// Files are read (and hashed) in blocks this big.
const READ_BLOCK_BYTES = 1024 * 1024;
// Chromium's send() throws once 16 MiB is queued: stop writing well before.
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const LOW_WATER_BYTES = 1024 * 1024;
// Received frames are merged into a Blob every this many bytes, so the browser
// may keep them out of the JavaScript heap.
const RECEIVE_BLOB_BYTES = 8 * 1024 * 1024;
// After the last ack, how long the sender waits for the receiver's `done`.
const DONE_TIMEOUT_MS = 10000;

export class TransferFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "TransferFailed";
  }
}

export class PeerDeclined extends Error {
  constructor(peer, reason) {
    super(reason ? `${peer} declined the transfer: ${reason}` : `${peer} declined the transfer`);
    this.name = "PeerDeclined";
    this.reason = reason;
  }
}

export class HashMismatch extends TransferFailed {
  constructor(name) {
    super(`sha256 mismatch for ${name}: the received bytes are not the file that was sent`);
    this.name = "HashMismatch";
  }
}

export class ProtocolViolation extends TransferFailed {
  constructor(message) {
    super(`protocol error: ${message}`);
    this.name = "ProtocolViolation";
  }
}

const RESERVED_DEVICE_NAMES = new Set([
  "CON", "PRN", "AUX", "NUL",
  ..."123456789".split("").flatMap((digit) => [`COM${digit}`, `LPT${digit}`]),
]);
// rtcxfer's own partial downloads: a CLI receiver refuses names ending so.
const PARTIAL_SUFFIXES = [".rtcxfer-part", ".rtcxfer-part.json"];
const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;
const utf8 = new TextEncoder();

/**
 * Why a file name is unacceptable, or null when it is fine: the same rules as
 * the CLI receiver (rtcxfer/transfer/paths.py), so the page neither accepts a
 * hostile name nor sends one the CLI would refuse. Names are relative POSIX
 * paths and are treated as hostile (PROTOCOL.md section 2).
 */
// Characters that are never visible text (rtcxfer/text.py, is_hidden): format
// characters (bidi controls, zero-width), separators, private use, unassigned, and
// blank fillers that make two names look alike.
const HIDDEN_CHARACTER =
  /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}\u115f\u1160\u3164\uffa0\u2800]/u;

/** The first invisible or bidi character of ``text`` as "\\uXXXX", or null. */
export function invisibleCharacter(text) {
  const hidden = HIDDEN_CHARACTER.exec(text);
  return hidden === null ? null : `\\u${hidden[0].codePointAt(0).toString(16).padStart(4, "0")}`;
}

export function unsafeNameReason(name) {
  if (typeof name !== "string" || name.length === 0) {
    return "empty name";
  }
  if (utf8.encode(name).length > MAX_PATH_BYTES) {
    return `longer than ${MAX_PATH_BYTES} bytes`;
  }
  for (const char of name) {
    const code = char.codePointAt(0);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
      return "contains a control character";
    }
  }
  const hidden = invisibleCharacter(name);
  if (hidden !== null) {
    // Bidi controls and invisible characters (rtcxfer/text.py): "photo\u202egnp.exe"
    // would show as "photoexe.png".
    return `contains an invisible or bidirectional character (${hidden})`;
  }
  if (name.includes("\\")) {
    return "contains a backslash";
  }
  if (name.startsWith("/")) {
    return "is an absolute path";
  }
  if (/^[A-Za-z]:/.test(name)) {
    return "starts with a drive letter";
  }
  const components = name.split("/");
  for (const component of components) {
    if (component === "" || component === "." || component === "..") {
      return "has an empty, '.' or '..' component";
    }
    if (utf8.encode(component).length > MAX_COMPONENT_BYTES) {
      return `has a component longer than ${MAX_COMPONENT_BYTES} bytes`;
    }
    const device = component.split(".")[0].replace(/ +$/, "").toUpperCase();
    if (RESERVED_DEVICE_NAMES.has(device)) {
      return `uses the reserved device name ${device}`;
    }
  }
  const last = components[components.length - 1];
  if (PARTIAL_SUFFIXES.some((suffix) => last.endsWith(suffix))) {
    return "ends like an rtcxfer partial download";
  }
  return null;
}

/** One side of an rtcxfer/1 exchange: frames read one at a time, control messages sent. */
class Exchange {
  constructor(channel, peer) {
    this.channel = channel;
    this.peer = peer;
    this.queue = [];
    this.waiting = null;
    this.closedError = null;
    channel.addEventListener("message", (event) => this.push(event.data));
    channel.addEventListener("close", () => this.onClose());
    if (channel.readyState === "closing" || channel.readyState === "closed") {
      this.onClose();
    }
  }

  push(data) {
    if (this.waiting !== null) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve(data);
    } else {
      this.queue.push(data);
    }
  }

  onClose() {
    this.closedError = new TransferFailed(`the connection to ${this.peer} was lost`);
    if (this.waiting !== null) {
      const { reject } = this.waiting;
      this.waiting = null;
      reject(this.closedError);
    }
  }

  send(message) {
    if (this.channel.readyState !== "open") {
      throw new TransferFailed(`the connection to ${this.peer} was lost`);
    }
    this.channel.send(JSON.stringify(message));
  }

  /** The next frame: a string (control) or an ArrayBuffer (file bytes). */
  next(timeoutMs = 0) {
    if (this.queue.length > 0) {
      return Promise.resolve(this.queue.shift());
    }
    if (this.closedError !== null) {
      return Promise.reject(this.closedError);
    }
    return new Promise((resolve, reject) => {
      let timer = null;
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.waiting = null;
          reject(new TransferFailed(`${this.peer} stopped answering`));
        }, timeoutMs);
      }
      this.waiting = {
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  /** The next control message, parsed; binary data here is a protocol error. */
  async nextControl(timeoutMs = 0) {
    return parseControl(await this.next(timeoutMs));
  }
}

function parseControl(data) {
  if (typeof data !== "string") {
    throw new ProtocolViolation("binary data where a control message was expected");
  }
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    throw new ProtocolViolation("a control message is not valid JSON");
  }
  if (message === null || typeof message !== "object" || typeof message.type !== "string") {
    throw new ProtocolViolation("a control message has no type");
  }
  if (message.type === "error") {
    throw new TransferFailed(`the peer reported an error: ${String(message.message ?? "")}`);
  }
  return message;
}


/** Tell the peer why we stop, if the channel is still open; never throws. */
function reportError(channel, error) {
  if (channel.readyState !== "open" || error.peerAlreadyKnows) {
    return;
  }
  try {
    channel.send(JSON.stringify({ type: "error", message: error.message }));
  } catch {
    // The channel died while reporting: the peer sees the close instead.
  }
}

function isCount(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * Sends `files` ([{file: Blob, name: string}]) over `channel`.
 * `onProgress({index, sent, size, totalSent, total})` is called as bytes go out.
 */
export class FileSender {
  constructor(channel, peer, files, { onProgress = () => {}, onAccepted = () => {} } = {}) {
    this.channel = channel;
    this.peer = peer;
    this.files = files;
    this.onProgress = onProgress;
    this.onAccepted = onAccepted;
    this.exchange = new Exchange(channel, peer);
    this.total = files.reduce((sum, entry) => sum + entry.file.size, 0);
    this.totalSent = 0;
  }

  async run() {
    try {
      await this.negotiate();
    } catch (error) {
      reportError(this.channel, error);
      throw error;
    }
  }

  async negotiate() {
    const channel = this.channel;
    channel.bufferedAmountLowThreshold = LOW_WATER_BYTES;
    this.exchange.send({
      type: "hello",
      version: 1,
      files: this.files.map(({ file, name }) => {
        const entry = { name, size: file.size };
        if (typeof file.lastModified === "number") {
          entry.mtime = file.lastModified / 1000;
        }
        return entry;
      }),
      total: this.total,
    });
    const reply = await this.exchange.nextControl();
    if (reply.type === "decline") {
      const reason = typeof reply.reason === "string" ? reply.reason : "";
      const declined = new PeerDeclined(this.peer, reason);
      declined.peerAlreadyKnows = true;
      throw declined;
    }
    if (reply.type !== "accept") {
      throw new ProtocolViolation(`expected accept or decline, got ${reply.type}`);
    }
    const offsets = this.checkOffsets(reply.offsets);
    this.onAccepted();
    for (let index = 0; index < this.files.length; index++) {
      await this.sendFile(index, offsets[index]);
    }
    this.exchange.send({ type: "done" });
    // Every file is acked at this point; the peer's `done` only closes the
    // exchange politely, so its absence is not a failure.
    try {
      const last = await this.exchange.nextControl(DONE_TIMEOUT_MS);
      if (last.type !== "done") {
        throw new ProtocolViolation(`expected done, got ${last.type}`);
      }
    } catch (error) {
      if (error instanceof ProtocolViolation) {
        throw error;
      }
    }
  }

  checkOffsets(offsets) {
    if (!Array.isArray(offsets) || offsets.length !== this.files.length) {
      throw new ProtocolViolation("accept.offsets does not list one offset per file");
    }
    offsets.forEach((offset, index) => {
      if (!isCount(offset) || offset > this.files[index].file.size) {
        throw new ProtocolViolation(`accept.offsets[${index}] is not a valid offset`);
      }
    });
    return offsets;
  }

  async sendFile(index, offset) {
    const { file, name } = this.files[index];
    const channel = this.channel;
    const hasher = new Sha256();
    this.exchange.send({ type: "file", index, offset });
    this.totalSent += offset;
    let sent = offset;
    const report = () => this.onProgress({
      index, sent, size: file.size, totalSent: this.totalSent, total: this.total,
    });
    report();
    let position = 0;
    let nextBlock = position < file.size ? readBlock(file, position) : null;
    while (nextBlock !== null) {
      const block = new Uint8Array(await nextBlock);
      const blockStart = position;
      position += block.length;
      // Read ahead while this block goes out.
      nextBlock = position < file.size ? readBlock(file, position) : null;
      hasher.update(block);
      // The first `offset` bytes are already at the receiver: hashed, not sent.
      let cursor = Math.max(0, offset - blockStart);
      while (cursor < block.length) {
        await this.waitForRoom();
        const end = Math.min(cursor + FRAME_BYTES, block.length);
        channel.send(block.subarray(cursor, end));
        sent += end - cursor;
        this.totalSent += end - cursor;
        cursor = end;
      }
      report();
    }
    this.exchange.send({ type: "eof", index, sha256: hasher.hexDigest() });
    const ack = await this.exchange.nextControl();
    if (ack.type !== "ack" || ack.index !== index) {
      throw new ProtocolViolation(`expected the ack of file ${index}, got ${ack.type}`);
    }
    if (ack.ok !== true) {
      const reason = typeof ack.reason === "string" && ack.reason ? ack.reason : "no reason given";
      const refused = new TransferFailed(`${this.peer} could not store ${name}: ${reason}`);
      refused.peerAlreadyKnows = true;
      throw refused;
    }
  }

  waitForRoom() {
    const channel = this.channel;
    if (channel.readyState !== "open") {
      return Promise.reject(new TransferFailed(`the connection to ${this.peer} was lost`));
    }
    if (channel.bufferedAmount <= HIGH_WATER_BYTES) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onLow = () => {
        channel.removeEventListener("close", onClose);
        resolve();
      };
      const onClose = () => {
        channel.removeEventListener("bufferedamountlow", onLow);
        reject(new TransferFailed(`the connection to ${this.peer} was lost`));
      };
      channel.addEventListener("bufferedamountlow", onLow, { once: true });
      channel.addEventListener("close", onClose, { once: true });
    });
  }
}

function readBlock(file, start) {
  return file.slice(start, Math.min(start + READ_BLOCK_BYTES, file.size)).arrayBuffer();
}

/**
 * Receives one rtcxfer/1 transfer from `channel`.
 * `decide(hello)` resolves true to accept, false (or a reason string) to decline.
 * `onProgress({index, received, size, totalReceived, total})` as bytes arrive;
 * `onFile({index, name, size, sha256, blob})` once a file's sha256 matched.
 */
export class FileReceiver {
  constructor(channel, peer, { decide, onProgress = () => {}, onFile = () => {} }) {
    this.channel = channel;
    this.peer = peer;
    this.decide = decide;
    this.onProgress = onProgress;
    this.onFile = onFile;
    this.exchange = new Exchange(channel, peer);
    this.totalReceived = 0;
  }

  /** Resolves with "accepted" after `done`, or "declined"; rejects on failure. */
  async run() {
    try {
      return await this.negotiate();
    } catch (error) {
      reportError(this.channel, error);
      throw error;
    }
  }

  async negotiate() {
    const hello = this.checkHello(await this.exchange.nextControl());
    const decision = await this.decide(hello);
    if (decision !== true) {
      const reason = typeof decision === "string" && decision ? decision : "declined by the user";
      this.exchange.send({ type: "decline", reason });
      return "declined";
    }
    this.files = hello.files;
    this.total = hello.total;
    this.exchange.send({ type: "accept", offsets: hello.files.map(() => 0) });
    for (let index = 0; index < hello.files.length; index++) {
      await this.receiveFile(index);
    }
    const done = await this.exchange.nextControl();
    if (done.type !== "done") {
      throw new ProtocolViolation(`expected done, got ${done.type}`);
    }
    this.exchange.send({ type: "done" });
    return "accepted";
  }

  checkHello(hello) {
    if (hello.type !== "hello") {
      throw new ProtocolViolation(`expected hello, got ${hello.type}`);
    }
    if (hello.version !== 1) {
      throw new ProtocolViolation(`unsupported rtcxfer version ${JSON.stringify(hello.version)}`);
    }
    if (!Array.isArray(hello.files)) {
      throw new ProtocolViolation("hello.files is not a list");
    }
    let sum = 0;
    const files = hello.files.map((entry, index) => {
      if (entry === null || typeof entry !== "object") {
        throw new ProtocolViolation(`hello.files[${index}] is not an object`);
      }
      const unsafe = unsafeNameReason(entry.name);
      if (unsafe !== null) {
        throw new ProtocolViolation(`refusing file name ${JSON.stringify(entry.name)}: ${unsafe}`);
      }
      if (!isCount(entry.size)) {
        throw new ProtocolViolation(`hello.files[${index}].size is not a byte count`);
      }
      sum += entry.size;
      // The mtime only dates the file in a zip: a malformed one is ignored, not refused.
      const mtime = typeof entry.mtime === "number" && Number.isFinite(entry.mtime)
        ? entry.mtime : null;
      return { name: entry.name, size: entry.size, mtime };
    });
    if (hello.total !== sum) {
      throw new ProtocolViolation("hello.total is not the sum of the file sizes");
    }
    return { files, total: sum };
  }

  reportProgress(index, received) {
    const { size } = this.files[index];
    this.onProgress({
      index, received, size, totalReceived: this.totalReceived, total: this.total,
    });
  }

  async receiveFile(index) {
    const { name, size } = this.files[index];
    const header = await this.exchange.nextControl();
    if (header.type !== "file" || header.index !== index) {
      throw new ProtocolViolation(`expected the start of file ${index}, got ${header.type}`);
    }
    if (header.offset !== 0) {
      throw new ProtocolViolation(`file ${index} starts at offset ${header.offset}, not 0`);
    }
    const hasher = new Sha256();
    const blobs = [];
    let frames = [];
    let framesBytes = 0;
    let received = 0;
    let reported = 0;
    for (;;) {
      const data = await this.exchange.next();
      if (typeof data === "string") {
        const eof = parseControl(data);
        if (eof.type !== "eof" || eof.index !== index) {
          throw new ProtocolViolation(`expected the end of file ${index}, got ${eof.type}`);
        }
        if (received !== size) {
          throw new ProtocolViolation(`file ${index} ended after ${received} of ${size} bytes`);
        }
        const digest = hasher.hexDigest();
        if (typeof eof.sha256 !== "string" || eof.sha256.toLowerCase() !== digest) {
          this.exchange.send({ type: "ack", index, ok: false, reason: "sha256 mismatch" });
          const mismatch = new HashMismatch(name);
          mismatch.peerAlreadyKnows = true;
          throw mismatch;
        }
        blobs.push(new Blob(frames));
        const blob = new Blob(blobs, { type: "application/octet-stream" });
        this.reportProgress(index, received);
        this.onFile({ index, name, size, sha256: digest, blob });
        this.exchange.send({ type: "ack", index, ok: true });
        return;
      }
      const bytes = new Uint8Array(data);
      received += bytes.length;
      this.totalReceived += bytes.length;
      if (received > size) {
        throw new ProtocolViolation(`file ${index} is longer than the announced ${size} bytes`);
      }
      hasher.update(bytes);
      frames.push(data);
      framesBytes += bytes.length;
      if (framesBytes >= RECEIVE_BLOB_BYTES) {
        blobs.push(new Blob(frames));
        frames = [];
        framesBytes = 0;
      }
      if (received - reported >= READ_BLOCK_BYTES) {
        reported = received;
        this.reportProgress(index, received);
      }
    }
  }
}
