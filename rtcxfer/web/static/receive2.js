// Receiving on the page: rtcxfer/1 or rtcxfer/2, whichever the sender's hello picks
// (docs/protocol.md, "rtcxfer/2"). The rules live in machines2.js (the same vectors
// as the Python machines); this module moves bytes, hashes them and hands out files,
// streams and texts; a received folder goes to one sink (download.js, savefolder.js).

import { Sha256 } from "./sha256.js";
import { ProtocolError, ReceiverMachine2, messageJson, parseMessage2 } from "./machines2.js";
import { FileReceiver, TransferFailed } from "./transfer.js";

// Frames are merged into a Blob every this many bytes (kept out of the JS heap).
const RECEIVE_BLOB_BYTES = 8 * 1024 * 1024;
// Settled files are acked together after this long.
const ACK_DELAY_MS = 10;

/** Does this first frame offer rtcxfer/2 (a v2 hello, or a v1 hello with versions [.., 2])? */
export function offersV2(frame) {
  if (typeof frame !== "string") return false;
  try {
    const hello = JSON.parse(frame);
    return hello !== null && typeof hello === "object" && hello.type === "hello"
      && (hello.version === 2 || (hello.version === 1 && Array.isArray(hello.versions)
        && hello.versions.includes(2)));
  } catch {
    return false;
  }
}

/**
 * Waits for the sender's first frame and resolves with a receiver whose run()
 * resolves "accepted" or "declined": a v1 FileReceiver, or a FileReceiver2.
 */
export function chooseReceiver(channel, peer, callbacks) {
  return new Promise((resolve, reject) => {
    const onMessage = (event) => {
      channel.removeEventListener("message", onMessage);
      channel.removeEventListener("close", onClose);
      if (offersV2(event.data)) {
        const receiver = new FileReceiver2(channel, peer, callbacks);
        receiver.handle(event.data);
        resolve(receiver);
      } else {
        const receiver = callbacks.openFolder
          ? new FolderReceiverV1(channel, peer, callbacks) : new FileReceiver(channel, peer, callbacks);
        receiver.exchange.push(event.data);
        resolve(receiver);
      }
    };
    const onClose = () => {
      channel.removeEventListener("message", onMessage);
      reject(new TransferFailed(`${peer} closed the connection before sending anything`));
    };
    channel.addEventListener("message", onMessage);
    channel.addEventListener("close", onClose);
  });
}

/** Copies one verified file (a Blob) into a folder sink. */
export async function feedBlob(sink, { name, size, blob, mtime = null }) {
  sink.open(name, size, mtime);
  const reader = blob.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sink.write(value);
  }
  const problem = await sink.close(true);
  if (problem) throw new TransferFailed(problem);
}

/**
 * An rtcxfer/1 transfer (an older CLI, or a page sending a short list) with the
 * same folder handling as FileReceiver2: several files go to openFolder's sink,
 * each once verified, instead of onFile. rtcxfer/1 acks a file before the sink
 * has it; a file the sink cannot keep fails the transfer on this side.
 */
class FolderReceiverV1 extends FileReceiver {
  constructor(channel, peer, callbacks) {
    super(channel, peer, { ...callbacks,
                           decide: (hello) => this.decideFolder(hello),
                           onFile: (file) => this.keepFile(file) });
    this.callbacks = callbacks;
    this.sink = null;
    this.folderResult = null;
    this.feeding = Promise.resolve();
    this.failure = null;
    this.aborted = null;
  }

  async decideFolder(hello) {
    const offer = { ...hello, count: hello.files.length, kind: "files" };
    this.mtimes = hello.files.map((entry) => entry.mtime ?? null);
    const decision = await this.callbacks.decide(offer);
    if (decision === true && offer.count > 1) {
      this.sink = await this.callbacks.openFolder(offer, this);
    }
    return decision;
  }

  keepFile(file) {
    if (this.sink === null) {
      this.callbacks.onFile?.(file);
      return;
    }
    this.feeding = this.feeding
      .then(() => (this.failure === null
        ? feedBlob(this.sink, { ...file, mtime: this.mtimes?.[file.index] ?? null }) : null))
      .catch((error) => {
        this.failure ??= error;
      });
  }

  async run() {
    try {
      const outcome = await super.run();
      if (outcome === "accepted" && this.sink !== null) {
        await this.feeding;
        if (this.failure !== null) throw this.failure;
        this.folderResult = await this.sink.finish();
      }
      return outcome;
    } catch (error) {
      const failure = this.aborted === null ? error : new TransferFailed(this.aborted);
      if (this.sink !== null) this.sink.abort(failure.message);
      throw failure;
    }
  }

  /** Ends the transfer from this side (the sender is told why). */
  abort(reason) {
    this.aborted = reason;
    try {
      this.channel.send(JSON.stringify({ type: "error", message: reason }));
    } catch {
      // Already closed: closing below is all that is left.
    }
    this.channel.close();
  }
}

/**
 * One rtcxfer/2 transfer received on the page. Callbacks: decide(hello) resolves
 * true to accept (hello: {files, total, count, kind}); onProgress({index, received,
 * totalReceived}); onFile({index, name, size, sha256, blob}); onText(text);
 * openFolder(offer, receiver): for an accepted transfer of several files, resolves
 * with the sink they all go to instead of onFile (open(name, size), write(bytes),
 * close(ok) resolving with null or a failure once the file is kept, finish(),
 * abort(reason)), or null; the file is acked only once the sink kept it, and
 * this.folderResult is what finish() resolved with.
 */
export class FileReceiver2 {
  constructor(channel, peer, { decide, onProgress = () => {}, onFile = () => {},
                               onText = () => {}, openFolder = null }) {
    this.channel = channel;
    this.peer = peer;
    this.decide = decide;
    this.onProgress = onProgress;
    this.onFile = onFile;
    this.onText = onText;
    this.openFolder = openFolder;
    this.sink = null;
    this.folderResult = null;
    this.machine = new ReceiverMachine2();
    this.mtimes = new Map();
    this.current = null;
    this.pendingPack = null;
    this.settledQueue = [];
    this.ackTimer = null;
    this.totalReceived = 0;
    this.received = 0;
    this.files = [];
    this.total = 0;
    this.listener = (event) => this.handle(event.data);
    this.closeListener = () => this.execute(this.machine.channelClosed());
    channel.addEventListener("message", this.listener);
    channel.addEventListener("close", this.closeListener);
    this.outcome = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  run() {
    return this.outcome.finally(() => {
      this.channel.removeEventListener("message", this.listener);
      this.channel.removeEventListener("close", this.closeListener);
      clearTimeout(this.ackTimer);
    });
  }

  handle(data) {
    if (typeof data !== "string") {
      const pack = this.pendingPack;
      this.pendingPack = null;
      if (pack !== null) this.unpack(pack, new Uint8Array(data));
      else this.chunk(new Uint8Array(data));
      return;
    }
    let message;
    try {
      message = parseMessage2(data);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.execute(this.machine.protocolViolation(error.message));
      return;
    }
    if (this.pendingPack !== null) {
      this.execute(this.machine.protocolViolation(
        "a control message where the binary frame of a 'pack' was due"));
    } else if (message.type === "pack") {
      const length = message.files.reduce((sum, item) => sum + item.length, 0);
      if (length) this.pendingPack = message;
      else this.unpack(message, new Uint8Array(0));
    } else {
      if (message.type === "hello" || message.type === "list") this.noteTimes(message);
      this.execute(this.machine.receiveMessage(message));
    }
  }

  /** The modification times of listed entries, kept until each file opens (for the
   * zip; the machine's actions carry names and sizes only). */
  noteTimes(message) {
    const first = message.type === "list" ? message.first : 0;
    if (!Array.isArray(message.files) || !Number.isInteger(first)) return;
    message.files.forEach((entry, position) => {
      if (typeof entry.mtime === "number") this.mtimes.set(first + position, entry.mtime);
    });
  }

  chunk(bytes) {
    const actions = this.machine.receiveChunk(bytes.length);
    if (actions.length && actions[0].action === "WriteChunk" && this.current !== null) {
      const current = this.current;
      current.hasher.update(bytes);
      current.received += bytes.length;
      this.totalReceived += bytes.length;
      if (current.inSink) {
        this.sink.write(bytes);
        this.onProgress({ index: current.index, received: current.received,
                          totalReceived: this.totalReceived });
        return;
      }
      current.frames.push(bytes.slice());
      current.framesBytes += bytes.length;
      if (current.framesBytes >= RECEIVE_BLOB_BYTES) {
        current.blobs.push(new Blob(current.frames));
        current.frames = [];
        current.framesBytes = 0;
      }
      this.onProgress({ index: current.index, received: current.received,
                        totalReceived: this.totalReceived });
      return;
    }
    this.execute(actions);
  }

  unpack(pack, bytes) {
    const length = pack.files.reduce((sum, item) => sum + item.length, 0);
    if (bytes.length !== length) {
      this.execute(this.machine.protocolViolation(
        `a 'pack' of ${length} bytes came with a frame of ${bytes.length}`));
      return;
    }
    let position = 0;
    for (const item of pack.files) {
      this.execute(this.machine.receiveMessage({ type: "file", index: item.index, offset: item.offset }));
      if (item.length && !this.ended) {
        this.chunk(bytes.subarray(position, position + item.length));
        position += item.length;
      }
      if (this.ended) return;
      this.execute(this.machine.receiveMessage({ type: "eof", index: item.index,
        sha256: item.sha256, size: item.offset + item.length }));
    }
  }

  send(message) {
    try {
      this.channel.send(JSON.stringify(message));
    } catch {
      this.execute(this.machine.channelClosed());
    }
  }

  execute(actions) {
    for (const action of actions) {
      if (action.send) {
        this.send(action.send);
        continue;
      }
      switch (action.action) {
        case "AskDecision": this.ask(); break;
        case "LookupOffsets": {
          // The page holds nothing from earlier transfers: every entry starts at 0.
          const entries = action.entries;
          queueMicrotask(() => this.execute(this.machine.offsetsFound(
            action.first, entries.map(() => 0))));
          break;
        }
        case "OpenFile":
          this.current = { index: action.index, name: action.entry.name, hasher: new Sha256(),
                           frames: [], framesBytes: 0, blobs: [], received: 0,
                           inSink: this.sink !== null };
          if (this.sink !== null) {
            this.sink.open(action.entry.name, action.entry.size,
              this.mtimes.get(action.index) ?? null);
          }
          // Files open in index order: the times up to this one are no longer needed
          // (entries held complete never open).
          for (const key of this.mtimes.keys()) {
            if (key > action.index) break;
            this.mtimes.delete(key);
          }
          break;
        case "DiscardFile":
          if (this.current !== null && this.current.index === action.index) {
            this.current.frames = [];
            this.current.blobs = [];
            if (this.current.inSink) {
              // The file failed; so will the transfer (the sink is aborted at its end).
              this.current.inSink = false;
              this.sink.close(false).catch(() => {});
            }
          }
          break;
        case "VerifyFile": this.verify(action); break;
        case "Declined": this.end("declined"); break;
        case "Finished":
          if (action.failed) {
            this.fail(new TransferFailed(`${action.failed} file(s) failed: ${action.failures[0][1]}`));
          } else if (this.sink !== null) {
            this.sink.finish().then((result) => {
              this.folderResult = result;
              this.end("accepted");
            }, (error) => this.fail(new TransferFailed(error.message)));
          } else {
            this.end("accepted");
          }
          break;
        case "Fail":
          if (action.close_channel) this.channel.close();
          this.fail(new TransferFailed(action.reason));
          break;
        default: break;
      }
    }
  }

  async ask() {
    const hello = this.machine;
    const entries = [...hello.entries.values()];
    const kind = hello.text ? "text" : (hello.count === 1 && entries[0]?.size === null ? "stream" : "files");
    const offer = {
      files: entries.map((e) => ({ name: e.name, size: e.size ?? 0 })),
      total: hello.total, count: hello.count, kind,
    };
    this.files = offer.files;
    this.total = offer.total;
    this.count = offer.count;
    let decision;
    try {
      decision = await this.decide(offer);
    } catch (error) {
      this.execute(this.machine.abort("the receiver failed while deciding"));
      this.fail(error);
      return;
    }
    const reason = decision === true ? null
      : (typeof decision === "string" && decision ? decision : "declined by the user");
    if (reason === null && kind === "files" && offer.count > 1 && this.openFolder !== null) {
      try {
        this.sink = await this.openFolder(offer, this);
      } catch (error) {
        this.execute(this.machine.abort(`cannot save the folder: ${error.message}`));
        return;
      }
      if (this.done && this.sink !== null) {
        // The transfer ended while the folder was being opened.
        this.sink.abort("the transfer ended before it started");
        return;
      }
    }
    this.execute(this.machine.decide(reason, entries.map(() => 0)));
  }

  verify(action) {
    const current = this.current;
    this.current = null;
    let failure = null;
    const digest = current.hasher.hexDigest();
    if (digest !== action.sha256) {
      failure = `sha256 mismatch (announced ${action.sha256.slice(0, 16)}..., received ${digest.slice(0, 16)}...)`;
    }
    if (current.inSink) {
      this.sink.close(failure === null).then(
        (problem) => this.kept(action, failure ?? problem ?? null),
        (error) => this.kept(action, failure ?? error.message));
      return;
    }
    current.blobs.push(new Blob(current.frames));
    const blob = new Blob(current.blobs, { type: "application/octet-stream" });
    if (failure === null && this.machine.text) {
      blob.arrayBuffer().then((buffer) => {
        let textValue = null;
        try {
          textValue = new TextDecoder("utf-8", { fatal: true }).decode(buffer);
        } catch {
          this.settle(action.index, "the text is not valid UTF-8");
          return;
        }
        this.onText(textValue);
        this.settle(action.index, null);
      });
      return;
    }
    if (failure === null) {
      this.received += 1;
      this.onFile({ index: action.index, name: current.name, size: action.size,
                    sha256: digest, blob });
    }
    this.settle(action.index, failure);
  }

  settle(index, failure) {
    this.settledQueue.push([index, failure]);
    if (this.ackTimer === null) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        const results = this.settledQueue;
        this.settledQueue = [];
        this.execute(this.machine.filesSettled(results));
      }, ACK_DELAY_MS);
    }
  }

  kept(action, failure) {
    if (failure === null) this.received += 1;
    this.settle(action.index, failure);
  }

  /** Ends the transfer from this side (the sender is told why). */
  abort(reason) {
    this.execute(this.machine.abort(reason));
  }

  get ended() {
    return this.done === true;
  }

  end(outcome) {
    if (this.done) return;
    this.done = true;
    this.resolve(outcome);
  }

  fail(error) {
    if (this.done) return;
    this.done = true;
    if (this.sink !== null) this.sink.abort(error.message);
    this.reject(error);
  }
}

export { messageJson };
