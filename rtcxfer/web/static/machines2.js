// rtcxfer/2 (docs/protocol.md, "rtcxfer/2"): message parsing and the sender and
// receiver state machines, without any I/O. A port of rtcxfer/protocol/transfer2.py
// and rtcxfer/transfer/machines2.py: both pass the same recorded vectors
// (tests/vectors/*.json, run with node by tests/transfer/test_vectors_js.py).
//
// Actions are plain objects: {send: message} or {action: "Name", ...fields}, the
// shape the vectors use.

import { unsafeNameReason } from "./transfer.js";

export const VERSION2 = 2;
export const LIST_AHEAD = 16384;
export const WINDOW = 1024;
export const MAX_TEXT_BYTES = 65536;
export const MAX_PACK_FILES = 1024;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_TEXT_LENGTH = 1000;
const KEPT_FAILURES = 5;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export class ProtocolError extends Error {}

export function shorten(text) {
  return text.length <= MAX_TEXT_LENGTH ? text : text.slice(0, MAX_TEXT_LENGTH - 1) + "…";
}

function isInt(value) {
  return typeof value === "number" && Number.isInteger(value);
}

function count(obj, field, context) {
  const value = obj[field];
  if (!isInt(value) || value < 0) {
    throw new ProtocolError(`${context}: '${field}' must be a non-negative integer`);
  }
  if (value > MAX_SAFE) {
    throw new ProtocolError(`${context}: '${field}' is too large`);
  }
  return value;
}

function text(obj, field, context) {
  if (typeof obj[field] !== "string") {
    throw new ProtocolError(`${context}: '${field}' must be a string`);
  }
  return shorten(obj[field]);
}

function parseEntry(raw, context, v2) {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ProtocolError(`${context} must be an object`);
  }
  if (typeof raw.name !== "string") {
    throw new ProtocolError(`${context}: 'name' must be a string`);
  }
  const size = v2 && (raw.size === null || raw.size === undefined) ? null
    : count(raw, "size", context);
  let mtime = null;
  if (raw.mtime !== null && raw.mtime !== undefined) {
    if (typeof raw.mtime !== "number" || !Number.isFinite(raw.mtime)) {
      throw new ProtocolError(`${context}: 'mtime' must be a finite number`);
    }
    mtime = raw.mtime;
  }
  const isText = v2 ? (raw.text === undefined ? false : raw.text) : false;
  if (isText !== true && isText !== false) {
    throw new ProtocolError(`${context}: 'text' must be true or false`);
  }
  if (isText && (size === null || size > MAX_TEXT_BYTES)) {
    throw new ProtocolError(`${context}: a text has a size of at most ${MAX_TEXT_BYTES}`);
  }
  return { name: raw.name, size, mtime, text: isText };
}

function parseEntries(obj, context, v2) {
  if (!Array.isArray(obj.files)) {
    throw new ProtocolError(`${context}: 'files' must be an array`);
  }
  return obj.files.map((raw, position) => parseEntry(raw, `${context}.files[${position}]`, v2));
}

function parseOffsets(obj, context) {
  const offsets = obj.offsets;
  if (!Array.isArray(offsets) || !offsets.every((o) => isInt(o) && o >= 0 && o <= MAX_SAFE)) {
    throw new ProtocolError(`${context}: 'offsets' must be an array of byte counts`);
  }
  return offsets;
}

function parseSha(obj, context) {
  const digest = obj.sha256;
  if (typeof digest !== "string" || !SHA256_HEX.test(digest.toLowerCase())) {
    throw new ProtocolError(`${context}: 'sha256' must be 64 hexadecimal digits`);
  }
  return digest.toLowerCase();
}

/** One text frame of an rtcxfer/2 session as a typed message, or ProtocolError. */
export function parseMessage2(frame) {
  let obj;
  try {
    obj = JSON.parse(frame);
  } catch (error) {
    throw new ProtocolError(`control frame is not valid JSON: ${error.message}`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new ProtocolError("control frame is not a JSON object");
  }
  if (typeof obj.type !== "string") {
    throw new ProtocolError("control frame has no string 'type'");
  }
  switch (obj.type) {
    case "hello": {
      if (!isInt(obj.version) || (obj.version !== 1 && obj.version !== VERSION2)) {
        throw new ProtocolError(`hello: unsupported version ${JSON.stringify(obj.version)}`);
      }
      if (obj.version === 1) {
        const files = parseEntries(obj, "hello", false);
        const total = count(obj, "total", "hello");
        if (total !== files.reduce((sum, e) => sum + e.size, 0)) {
          throw new ProtocolError("hello: 'total' is not the sum of the file sizes");
        }
        const versions = Array.isArray(obj.versions) ? obj.versions.filter(isInt) : [];
        return { type: "hello", version: 1, count: files.length, total, files, versions };
      }
      const files = parseEntries(obj, "hello", true);
      const total = count(obj, "total", "hello");
      const number = count(obj, "count", "hello");
      if (files.length > number) {
        throw new ProtocolError(`hello: ${files.length} files but 'count' is ${number}`);
      }
      return { type: "hello", version: VERSION2, count: number, total, files, versions: [] };
    }
    case "accept": {
      if (obj.version !== undefined && obj.version !== null && !isInt(obj.version)) {
        throw new ProtocolError("accept: 'version' must be an integer");
      }
      return { type: "accept", offsets: parseOffsets(obj, "accept"),
               version: obj.version ?? null };
    }
    case "decline":
      return { type: "decline", reason: obj.reason === undefined || obj.reason === null
        ? "no reason given" : text(obj, "reason", "decline") };
    case "list":
      return { type: "list", first: count(obj, "first", "list"),
               files: parseEntries(obj, "list", true) };
    case "have":
      return { type: "have", first: count(obj, "first", "have"),
               offsets: parseOffsets(obj, "have") };
    case "file":
      return { type: "file", index: count(obj, "index", "file"),
               offset: count(obj, "offset", "file") };
    case "eof": {
      const sha256 = parseSha(obj, "eof");
      const size = obj.size === undefined || obj.size === null ? null : count(obj, "size", "eof");
      return { type: "eof", index: count(obj, "index", "eof"), sha256, size };
    }
    case "acks": {
      const upto = count(obj, "upto", "acks");
      const rawFailed = obj.failed === undefined ? [] : obj.failed;
      if (!Array.isArray(rawFailed)) {
        throw new ProtocolError("acks: 'failed' must be an array");
      }
      const failed = rawFailed.map((raw, position) => {
        if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
          throw new ProtocolError(`acks.failed[${position}] must be an object`);
        }
        const reason = raw.reason === undefined || raw.reason === null
          ? "no reason given" : text(raw, "reason", "acks.failed");
        return [count(raw, "index", "acks.failed"), reason];
      });
      return { type: "acks", upto, failed };
    }
    case "pack": {
      if (!Array.isArray(obj.files) || obj.files.length < 1 || obj.files.length > MAX_PACK_FILES) {
        throw new ProtocolError(`pack: 'files' must be an array of 1 to ${MAX_PACK_FILES}`);
      }
      const files = obj.files.map((raw, position) => {
        const context = `pack.files[${position}]`;
        if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
          throw new ProtocolError(`${context} must be an object`);
        }
        return { index: count(raw, "index", context), offset: count(raw, "offset", context),
                 length: count(raw, "length", context), sha256: parseSha(raw, context) };
      });
      return { type: "pack", files };
    }
    case "done":
      return { type: "done" };
    case "error":
      return { type: "error", message: obj.message === undefined || obj.message === null
        ? "no message given" : text(obj, "message", "error") };
    default:
      throw new ProtocolError(`unknown control message type '${obj.type.slice(0, 40)}'`);
  }
}

export function entryJson(entry) {
  const raw = { name: entry.name, size: entry.size };
  if (entry.mtime !== null && entry.mtime !== undefined) raw.mtime = entry.mtime;
  if (entry.text) raw.text = true;
  return raw;
}

/** The wire JSON object of a message made by the machines. */
export function messageJson(message) {
  switch (message.type) {
    case "hello": {
      const obj = { type: "hello", version: message.version };
      if (message.version === VERSION2) obj.count = message.count;
      obj.files = message.files.map(entryJson);
      obj.total = message.total;
      if (message.versions && message.versions.length) obj.versions = message.versions;
      return obj;
    }
    case "accept": {
      const obj = { type: "accept", offsets: message.offsets };
      if (message.version !== null && message.version !== undefined) obj.version = message.version;
      return obj;
    }
    case "list":
      return { type: "list", first: message.first, files: message.files.map(entryJson) };
    case "eof": {
      const obj = { type: "eof", index: message.index, sha256: message.sha256 };
      if (message.size !== null && message.size !== undefined) obj.size = message.size;
      return obj;
    }
    case "acks":
      return { type: "acks", upto: message.upto,
               failed: message.failed.map(([index, reason]) => ({ index, reason })) };
    default:
      return { ...message };
  }
}

const send = (message) => ({ send: messageJson(message) });
const ENDED = new Set(["done", "declined", "failed", "handed over"]);

class Failures {
  constructor() { this.count = 0; this.kept = []; }
  add(index, reason) {
    this.count += 1;
    if (this.kept.length < KEPT_FAILURES) this.kept.push([index, reason]);
  }
}

/** Clash detection over a whole transfer (names2.NameGuard): NFC, case folding. */
export class NameGuard {
  constructor(foldCase) { this.foldCase = foldCase; this.files = new Set(); this.folders = new Set(); }
  add(name) {
    const problem = unsafeNameReason(name);
    const shown = `'${name.length <= 80 ? name : name.slice(0, 77) + "..."}'`;
    if (problem !== null) throw new UnsafeName(`${shown} ${problem}`);
    let key = name.normalize("NFC");
    if (this.foldCase) key = key.toLowerCase();
    const parts = key.split("/");
    if (this.files.has(key)) throw new UnsafeName(`${shown} appears twice`);
    if (this.folders.has(key)) throw new UnsafeName(`${shown} is both a file and a folder`);
    const parents = parts.slice(1).map((_, depth) => parts.slice(0, depth + 1).join("/"));
    if (parents.some((parent) => this.files.has(parent))) {
      throw new UnsafeName(`${shown} puts a file inside another file`);
    }
    this.files.add(key);
    for (const parent of parents) this.folders.add(parent);
  }
}

export class UnsafeName extends Error {}

export class SenderMachine2 {
  constructor(total_count, total) {
    this.count = total_count;
    this.total = total;
    this.state = "ready";
    this.compatible = false;
    this.listed = 0;
    this.listRequested = false;
    this.sizes = new Map();
    this.offsets = new Map();
    this.unanswered = [];
    this.nextStart = 0;
    this.streaming = -1;
    this.settled = 0;
    this.doneSent = false;
    this.failures = new Failures();
  }

  start(batch, compatible = false) {
    if (this.state !== "ready") throw new Error("the sender machine was already started");
    this.state = "awaiting accept";
    this.compatible = compatible;
    const hello = compatible
      ? { type: "hello", version: 1, count: this.count, total: this.total, files: batch,
          versions: [1, VERSION2] }
      : { type: "hello", version: VERSION2, count: this.count, total: this.total, files: batch };
    this.#listed(batch);
    return [send(hello)];
  }

  listBatch(batch) {
    if (ENDED.has(this.state)) return [];
    if (!this.listRequested) throw new Error("listBatch() without ListMore");
    this.listRequested = false;
    const first = this.listed;
    this.#listed(batch);
    return [send({ type: "list", first, files: batch }), ...this.#progress()];
  }

  fileSent(index, sha256, size) {
    if (ENDED.has(this.state)) return [];
    if (index !== this.streaming) throw new Error(`fileSent(${index}) while streaming ${this.streaming}`);
    this.streaming = -1;
    this.nextStart = index + 1;
    return [send({ type: "eof", index, sha256, size }), ...this.#progress()];
  }

  receiveMessage(message) {
    if (ENDED.has(this.state)) return [];
    if (message.type === "error") {
      this.state = "failed";
      return [{ action: "Fail", reason: `the receiver reported an error: ${message.message}`,
                close_channel: false }];
    }
    if (this.state === "awaiting accept" && message.type === "decline") {
      this.state = "declined";
      return [{ action: "Declined", reason: message.reason }];
    }
    if (this.state === "awaiting accept" && message.type === "accept") return this.#accepted(message);
    if (this.state === "running" && message.type === "have") {
      return this.#have(message.first, message.offsets, "have");
    }
    if (this.state === "running" && message.type === "acks") return this.#acks(message);
    if (this.state === "running" && message.type === "done" && this.doneSent
        && this.settled === this.count) {
      this.state = "done";
      return [{ action: "Finished", failed: this.failures.count, failures: this.failures.kept }];
    }
    return this.protocolViolation(`unexpected '${message.type}' while ${this.state}`);
  }

  receiveChunk() { return this.protocolViolation("the receiver sent a binary frame"); }

  abort(reason) {
    if (ENDED.has(this.state)) return [];
    this.state = "failed";
    return [send({ type: "error", message: shorten(reason) }),
            { action: "Fail", reason, close_channel: true }];
  }

  channelClosed() {
    if (ENDED.has(this.state)) return [];
    this.state = "failed";
    return [{ action: "Fail", close_channel: false,
              reason: "the connection closed before the receiver confirmed every file" }];
  }

  protocolViolation(reason) {
    if (ENDED.has(this.state)) return [];
    this.state = "failed";
    return [send({ type: "error", message: `protocol violation: ${reason}` }),
            { action: "Fail", reason: `the receiver broke the protocol: ${reason}`, close_channel: true }];
  }

  #listed(batch) {
    batch.forEach((entry, position) => this.sizes.set(this.listed + position, entry.size));
    this.unanswered.push([this.listed, batch.length]);
    this.listed += batch.length;
  }

  #accepted(message) {
    if (message.version === null) {
      if (!this.compatible) return this.protocolViolation("a v1 accept to an rtcxfer/2 hello");
      this.state = "handed over";
      return [{ action: "FallBackToV1", offsets: message.offsets }];
    }
    if (message.version !== VERSION2) return this.protocolViolation(`accept with version ${message.version}`);
    this.state = "running";
    return this.#have(0, message.offsets, "accept");
  }

  #have(first, offsets, kind) {
    if (!this.unanswered.length) return this.protocolViolation(`'${kind}' without a list to answer`);
    const [expectedFirst, length] = this.unanswered[0];
    if (first !== expectedFirst || offsets.length !== length) {
      return this.protocolViolation(`'${kind}' for ${offsets.length} entries from ${first}, `
        + `expected ${length} from ${expectedFirst}`);
    }
    for (let position = 0; position < offsets.length; position++) {
      const size = this.sizes.get(first + position);
      const limit = size === null ? 0 : size;
      if (offsets[position] > limit) {
        return this.protocolViolation(`offset ${offsets[position]} of entry ${first + position} is past its size ${limit}`);
      }
    }
    this.unanswered.shift();
    offsets.forEach((offset, position) => this.offsets.set(first + position, offset));
    return this.#progress();
  }

  #acks(message) {
    if (!(this.settled <= message.upto && message.upto <= this.nextStart)) {
      return this.protocolViolation(`acks up to ${message.upto} when ${this.settled} were settled and ${this.nextStart} sent`);
    }
    let previous = -1;
    for (const [index, reason] of message.failed) {
      if (!(this.settled <= index && index < message.upto) || index <= previous) {
        return this.protocolViolation(`acks: failed entry ${index} out of range`);
      }
      previous = index;
      this.failures.add(index, reason);
    }
    const first = this.settled;
    this.settled = message.upto;
    return [{ action: "Settled", first, upto: message.upto, failed: message.failed },
            ...this.#progress()];
  }

  #progress() {
    const actions = [];
    if (this.listed < this.count && !this.listRequested && this.listed < this.settled + LIST_AHEAD
        && this.state === "running") {
      this.listRequested = true;
      actions.push({ action: "ListMore",
                     limit: Math.min(this.count - this.listed, this.settled + LIST_AHEAD - this.listed) });
    }
    if (this.state === "running" && this.streaming < 0 && this.nextStart < this.count
        && this.offsets.has(this.nextStart) && this.nextStart < this.settled + WINDOW) {
      const index = this.nextStart;
      this.streaming = index;
      const offset = this.offsets.get(index);
      this.offsets.delete(index);
      this.sizes.delete(index);
      actions.push(send({ type: "file", index, offset }));
      actions.push({ action: "StreamFile", index, offset });
    }
    if (this.state === "running" && !this.doneSent && this.streaming < 0
        && this.nextStart === this.count) {
      this.doneSent = true;
      actions.push(send({ type: "done" }));
    }
    return actions;
  }
}

const brief = (entry) => ({ name: entry.name, size: entry.size });

export class ReceiverMachine2 {
  constructor({ foldCase = false, stdout = false } = {}) {
    this.state = "awaiting hello";
    this.names = new NameGuard(foldCase);
    this.stdout = stdout;
    this.count = 0;
    this.total = 0;
    this.listedTotal = 0;
    this.listed = 0;
    this.entries = new Map();
    this.offsets = new Map();
    this.lookups = [];
    this.answered = 0;
    this.nextFile = 0;
    this.current = null;
    this.verifying = new Set();
    this.finished = new Map();
    this.settled = 0;
    this.doneRequested = false;
    this.failures = new Failures();
    this.text = false;
  }

  receiveMessage(message) {
    if (ENDED.has(this.state)) return [];
    if (message.type === "error") {
      this.state = "failed";
      return [{ action: "Fail", reason: `the sender reported an error: ${message.message}`,
                close_channel: false }];
    }
    if (this.state === "awaiting hello" && message.type === "hello") return this.#hello(message);
    if (this.state === "running" && message.type === "list") return this.#list(message);
    if (this.state === "running" && message.type === "file" && this.current === null) {
      return this.#fileStart(message);
    }
    if (this.state === "running" && message.type === "eof" && this.current !== null
        && message.index === this.current.index) {
      return this.#eof(message);
    }
    if (this.state === "running" && message.type === "done" && this.current === null
        && !this.doneRequested) {
      if (this.nextFile !== this.count) {
        return this.protocolViolation(`'done' after ${this.nextFile} of ${this.count} entries`);
      }
      this.doneRequested = true;
      return this.#finishIfRequested();
    }
    return this.protocolViolation(`unexpected '${message.type}' while ${this.state}`);
  }

  receiveChunk(length) {
    if (ENDED.has(this.state)) return [];
    const current = this.current;
    if (this.state !== "running" || current === null) {
      return this.protocolViolation("a binary frame outside a file");
    }
    if (current.failure !== null) return [];
    const size = current.entry.size;
    const limit = size === null ? null : (current.entry.text ? MAX_TEXT_BYTES : size);
    if (limit !== null && current.received + length > limit) {
      current.failure = `the sender sent more than the announced ${size} bytes`;
      return [{ action: "DiscardFile", index: current.index }];
    }
    current.received += length;
    return [{ action: "WriteChunk", index: current.index }];
  }

  decide(reason, offsets) {
    if (this.state !== "deciding") return [];
    if (reason !== null && reason !== undefined) {
      this.state = "declined";
      return [send({ type: "decline", reason: shorten(reason) }), { action: "Declined", reason }];
    }
    this.state = "running";
    const [first, length] = this.lookups.shift();
    return this.#answer(first, length, offsets, true);
  }

  offsetsFound(first, offsets) {
    if (this.state !== "running" || !this.lookups.length || this.lookups[0][0] !== first) return [];
    const [, length] = this.lookups.shift();
    return this.#answer(first, length, offsets, false);
  }

  filesSettled(results) {
    if (ENDED.has(this.state)) return [];
    for (const [index, failure] of results) {
      if (this.verifying.has(index)) {
        this.verifying.delete(index);
        this.finished.set(index, failure);
      }
    }
    let upto = this.settled;
    const failed = [];
    while (this.finished.has(upto)) {
      const failure = this.finished.get(upto);
      this.finished.delete(upto);
      if (failure !== null && failure !== undefined) {
        failed.push([upto, shorten(failure)]);
        this.failures.add(upto, failure);
      }
      upto += 1;
    }
    if (upto === this.settled) return [];
    this.settled = upto;
    return [send({ type: "acks", upto, failed }), ...this.#finishIfRequested()];
  }

  channelClosed() {
    if (ENDED.has(this.state)) return [];
    this.state = "failed";
    return [{ action: "Fail", reason: "the connection closed before the transfer finished",
              close_channel: false }];
  }

  abort(reason) {
    if (ENDED.has(this.state)) return [];
    this.state = "failed";
    return [send({ type: "error", message: shorten(reason) }),
            { action: "Fail", reason, close_channel: true }];
  }

  protocolViolation(reason) {
    if (ENDED.has(this.state)) return [];
    this.state = "failed";
    return [send({ type: "error", message: `protocol violation: ${reason}` }),
            { action: "Fail", reason: `the sender broke the protocol: ${reason}`, close_channel: true }];
  }

  #hello(hello) {
    this.count = hello.count;
    this.total = hello.total;
    const texts = hello.files.filter((entry) => entry.text);
    if (texts.length && hello.count !== 1) {
      return this.protocolViolation("a text must be the only entry of its transfer");
    }
    this.text = texts.length > 0;
    if (this.stdout && (hello.count !== 1 || this.text)) {
      this.state = "declined";
      const reason = "this receiver takes exactly one file or stream (listen --stdout)";
      return [send({ type: "decline", reason }), { action: "Declined", reason }];
    }
    let problem;
    try {
      problem = this.#checkBatch(hello.files);
    } catch (error) {
      if (!(error instanceof UnsafeName)) throw error;
      this.state = "declined";
      const reason = `refused file name: ${error.message}`;
      return [send({ type: "decline", reason: shorten(reason) }), { action: "Declined", reason }];
    }
    if (problem !== null) return this.protocolViolation(problem);
    this.state = "deciding";
    this.#take(hello.files);
    return [{ action: "AskDecision", hello: hello.count }];
  }

  #checkBatch(batch) {
    let listedTotal = this.listedTotal;
    for (const entry of batch) {
      if (entry.text && this.count !== 1) return "a text must be the only entry of its transfer";
      if (entry.size !== null) listedTotal += entry.size;
    }
    if (listedTotal > this.total) {
      return `the entries listed add up to more than the announced total ${this.total}`;
    }
    if (this.listed + batch.length === this.count && listedTotal !== this.total) {
      return `the entries add up to ${listedTotal} bytes, not the announced total ${this.total}`;
    }
    for (const entry of batch) {
      if (!entry.text) this.names.add(entry.name);
    }
    this.listedTotal = listedTotal;
    return null;
  }

  #take(batch) {
    this.lookups.push([this.listed, batch.length]);
    batch.forEach((entry, position) => this.entries.set(this.listed + position, entry));
    this.listed += batch.length;
  }

  #list(message) {
    if (message.first !== this.listed) {
      return this.protocolViolation(`'list' from ${message.first} when ${this.listed} entries were listed`);
    }
    if (!message.files.length || this.listed + message.files.length > this.count) {
      return this.protocolViolation(`'list' of ${message.files.length} entries from ${message.first} (the transfer has ${this.count})`);
    }
    if (this.listed + message.files.length > this.settled + LIST_AHEAD) {
      return this.protocolViolation(`'list' beyond ${LIST_AHEAD} entries past the ${this.settled} settled`);
    }
    let problem;
    try {
      problem = this.#checkBatch(message.files);
    } catch (error) {
      if (!(error instanceof UnsafeName)) throw error;
      return this.abort(`refused file name: ${error.message}`);
    }
    if (problem !== null) return this.protocolViolation(problem);
    const first = this.listed;
    this.#take(message.files);
    return [{ action: "LookupOffsets", first, entries: message.files.map((e) => e.name) }];
  }

  #answer(first, length, offsets, accept) {
    if (offsets.length !== length) throw new Error("offsets do not match the entries looked up");
    offsets.forEach((offset, position) => {
      const entry = this.entries.get(first + position);
      const limit = entry.size === null || entry.text ? 0 : entry.size;
      if (!(offset >= 0 && offset <= limit)) throw new Error("an offset past the entry's size");
      this.offsets.set(first + position, offset);
    });
    this.answered = first + length;
    return [send(accept ? { type: "accept", offsets, version: VERSION2 }
                        : { type: "have", first, offsets })];
  }

  #fileStart(message) {
    const index = message.index;
    if (index !== this.nextFile) {
      return this.protocolViolation(`'file' ${index} when ${this.nextFile} was expected`);
    }
    if (index >= this.answered) return this.protocolViolation(`'file' ${index} before its offset was given`);
    if (index >= this.settled + WINDOW) {
      return this.protocolViolation(`'file' ${index} beyond the window of ${WINDOW} past the ${this.settled} settled`);
    }
    const held = this.offsets.get(index);
    if (message.offset > held) {
      return this.protocolViolation(`'file' ${index} starts at ${message.offset}, past the ${held} bytes held`);
    }
    this.offsets.delete(index);
    const entry = this.entries.get(index);
    this.entries.delete(index);
    this.nextFile = index + 1;
    this.current = { index, entry, received: message.offset, failure: null };
    return [{ action: "OpenFile", index, entry: brief(entry), offset: message.offset }];
  }

  #eof(message) {
    const current = this.current;
    this.current = null;
    const entry = current.entry;
    this.verifying.add(current.index);
    if (entry.size === null) {
      if (message.size === null) return this.protocolViolation("the 'eof' of a stream has no 'size'");
      if (current.failure === null && message.size !== current.received) {
        current.failure = `the sender announced ${message.size} bytes but sent ${current.received}`;
      }
    } else if (message.size !== null && message.size !== entry.size) {
      return this.protocolViolation(`'eof' size ${message.size} differs from the announced ${entry.size}`);
    } else if (current.failure === null && current.received !== entry.size) {
      current.failure = `the sender announced ${entry.size} bytes but sent ${current.received}`;
      return [{ action: "DiscardFile", index: current.index },
              ...this.filesSettled([[current.index, current.failure]])];
    }
    if (current.failure !== null) {
      return [{ action: "DiscardFile", index: current.index },
              ...this.filesSettled([[current.index, current.failure]])];
    }
    return [{ action: "VerifyFile", index: current.index, entry: brief(entry),
              sha256: message.sha256, size: current.received }];
  }

  #finishIfRequested() {
    if (!this.doneRequested || this.verifying.size || this.settled !== this.count) return [];
    this.state = "done";
    return [send({ type: "done" }),
            { action: "Finished", failed: this.failures.count, failures: this.failures.kept }];
  }
}
