// Sending a text from the page with rtcxfer/2 (docs/protocol.md, "Text"): one text
// entry, driven by the same SenderMachine2 rules as the CLI (machines2.js).

import { Sha256 } from "./sha256.js";
import { MAX_TEXT_BYTES, ProtocolError, SenderMachine2, parseMessage2 } from "./machines2.js";
import { FRAME_BYTES, PeerDeclined, TransferFailed } from "./transfer.js";

/** Send `text` on an open channel; resolves once the receiver acked it and said done. */
export function sendText(channel, peer, text) {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > MAX_TEXT_BYTES) {
    return Promise.reject(new TransferFailed(
      `the text has ${bytes.length} bytes; at most ${MAX_TEXT_BYTES} fit`));
  }
  const machine = new SenderMachine2(1, bytes.length);
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (error) => {
      if (finished) return;
      finished = true;
      channel.removeEventListener("message", onMessage);
      channel.removeEventListener("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const send = (data) => {
      try {
        channel.send(data);
      } catch {
        execute(machine.channelClosed());
      }
    };
    const execute = (actions) => {
      for (const action of actions) {
        if (action.send) {
          send(JSON.stringify(action.send));
          continue;
        }
        switch (action.action) {
          case "StreamFile": {
            for (let start = 0; start < bytes.length; start += FRAME_BYTES) {
              send(bytes.slice(start, start + FRAME_BYTES));
            }
            const hasher = new Sha256();
            hasher.update(bytes);
            execute(machine.fileSent(0, hasher.hexDigest(), bytes.length));
            break;
          }
          case "Declined":
            finish(new PeerDeclined(peer, action.reason));
            break;
          case "Finished":
            finish(action.failed
              ? new TransferFailed(`${peer} refused the text: ${action.failures[0][1]}`) : null);
            break;
          case "Fail":
            if (action.close_channel) channel.close();
            finish(new TransferFailed(action.reason));
            break;
          default:
            break;
        }
      }
    };
    const onMessage = (event) => {
      if (typeof event.data !== "string") {
        execute(machine.receiveChunk());
        return;
      }
      let message;
      try {
        message = parseMessage2(event.data);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        execute(machine.protocolViolation(error.message));
        return;
      }
      if (machine.state === "awaiting accept" && message.type === "error") {
        finish(new TransferFailed(`${peer} cannot take a text (it speaks only rtcxfer/1?): `
          + message.message));
        return;
      }
      execute(machine.receiveMessage(message));
    };
    const onClose = () => execute(machine.channelClosed());
    channel.addEventListener("message", onMessage);
    channel.addEventListener("close", onClose);
    execute(machine.start([{ name: "text", size: bytes.length, mtime: null, text: true }], false));
  });
}

// A v1 hello above this many bytes might not fit the receiver's max-message-size
// (65536 when its SDP says nothing): such lists go out with rtcxfer/2 in batches.
export const V1_HELLO_LIMIT = 60000;
const BATCH_BYTES = 60000;
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const LOW_WATER_BYTES = 1024 * 1024;
const READ_BLOCK_BYTES = 1024 * 1024;

function wireEntry({ file, stream, name }) {
  // A stream (docs/protocol.md, "Streams"): its size and sha256 go in its eof.
  if (stream !== undefined) return { name, size: null, mtime: null, text: false };
  const entry = { name, size: file.size, mtime: null, text: false };
  if (typeof file.lastModified === "number") entry.mtime = file.lastModified / 1000;
  return entry;
}

/** Would the rtcxfer/1 hello for `files` ({file, name}) be too large to send safely? */
export function needsBatches(files) {
  let bytes = 60;
  for (const chosen of files) {
    bytes += new TextEncoder().encode(JSON.stringify(wireEntry(chosen))).length + 1;
    if (bytes > V1_HELLO_LIMIT) return true;
  }
  return false;
}

/**
 * Sends many files with rtcxfer/2 (a `hello` with version 2, then `list` batches;
 * several files in flight, acks in groups). Same callbacks as FileSender.
 * A receiver that speaks only rtcxfer/1 refuses the hello: the transfer fails.
 */
export class FileSender2 {
  constructor(channel, peer, files, { onProgress = () => {}, onAccepted = () => {} } = {}) {
    this.channel = channel;
    this.peer = peer;
    this.files = files;
    this.onProgress = onProgress;
    this.onAccepted = onAccepted;
    this.total = files.reduce((sum, entry) => sum + (entry.file ? entry.file.size : 0), 0);
    this.totalSent = 0;
    this.machine = new SenderMachine2(files.length, this.total);
    this.listed = 0;
    this.queue = [];
    this.streaming = false;
  }

  nextBatch(limit) {
    const batch = [];
    let bytes = 100;
    while (batch.length < limit && this.listed < this.files.length) {
      const entry = wireEntry(this.files[this.listed]);
      const length = new TextEncoder().encode(JSON.stringify(entry)).length + 1;
      if (batch.length && bytes + length > BATCH_BYTES) break;
      bytes += length;
      batch.push(entry);
      this.listed += 1;
    }
    return batch;
  }

  run() {
    const channel = this.channel;
    channel.bufferedAmountLowThreshold = LOW_WATER_BYTES;
    return new Promise((resolve, reject) => {
      this.finish = (error) => {
        if (this.finished) return;
        this.finished = true;
        channel.removeEventListener("message", onMessage);
        channel.removeEventListener("close", onClose);
        if (error) reject(error);
        else resolve();
      };
      const onMessage = (event) => {
        if (typeof event.data !== "string") {
          this.execute(this.machine.receiveChunk());
          return;
        }
        let message;
        try {
          message = parseMessage2(event.data);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          this.execute(this.machine.protocolViolation(error.message));
          return;
        }
        if (this.machine.state === "awaiting accept" && message.type === "error") {
          this.finish(new TransferFailed(`${this.peer} cannot take ${this.files.length} files `
            + `at once (it speaks only rtcxfer/1?): ${message.message}`));
          return;
        }
        const accepting = this.machine.state === "awaiting accept";
        const actions = this.machine.receiveMessage(message);
        if (accepting && this.machine.state === "running") this.onAccepted();
        this.execute(actions);
      };
      const onClose = () => this.execute(this.machine.channelClosed());
      channel.addEventListener("message", onMessage);
      channel.addEventListener("close", onClose);
      const first = this.nextBatch(this.files.length);
      this.execute(this.machine.start(first, false));
    });
  }

  send(data) {
    try {
      this.channel.send(data);
    } catch {
      this.execute(this.machine.channelClosed());
    }
  }

  execute(actions) {
    for (const action of actions) {
      if (action.send) {
        this.send(JSON.stringify(action.send));
        continue;
      }
      switch (action.action) {
        case "ListMore":
          this.execute(this.machine.listBatch(this.nextBatch(action.limit)));
          break;
        case "StreamFile":
          this.queue.push(action);
          if (!this.streaming) this.stream();
          break;
        case "Declined":
          this.finish(new PeerDeclined(this.peer, action.reason));
          break;
        case "Finished":
          this.finish(action.failed
            ? new TransferFailed(`${this.peer} refused ${action.failed} file(s): ${action.failures[0][1]}`)
            : null);
          break;
        case "Fail":
          if (action.close_channel) this.channel.close();
          this.finish(new TransferFailed(action.reason));
          break;
        default:
          break;
      }
    }
  }

  async stream() {
    this.streaming = true;
    try {
      while (this.queue.length && !this.finished) {
        const { index, offset } = this.queue.shift();
        const { file, stream } = this.files[index];
        if (stream !== undefined) {
          await this.sendStream(index, stream);
          continue;
        }
        const hasher = new Sha256();
        let position = 0;
        this.totalSent += offset;
        while (position < file.size && !this.finished) {
          const end = Math.min(position + READ_BLOCK_BYTES, file.size);
          const block = new Uint8Array(await file.slice(position, end).arrayBuffer());
          hasher.update(block);
          // The first `offset` bytes are already at the receiver: hashed, not sent.
          for (let cursor = Math.max(0, offset - position); cursor < block.length;
            cursor += FRAME_BYTES) {
            await this.waitForRoom();
            const piece = block.subarray(cursor, Math.min(cursor + FRAME_BYTES, block.length));
            this.send(piece);
            this.totalSent += piece.length;
          }
          position = end;
        }
        if (this.finished) return;
        this.onProgress({ index, sent: file.size, size: file.size, totalSent: this.totalSent,
                          total: this.total });
        this.execute(this.machine.fileSent(index, hasher.hexDigest(), file.size));
      }
    } catch (error) {
      this.execute(this.machine.abort(`the sender failed: ${error}`));
      this.finish(error instanceof TransferFailed ? error : new TransferFailed(String(error)));
    } finally {
      this.streaming = false;
    }
  }

  /** A stream entry: its bytes as they come, then its size and sha256 in its eof. */
  async sendStream(index, stream) {
    const reader = stream.getReader();
    const hasher = new Sha256();
    let size = 0;
    try {
      while (!this.finished) {
        const { done, value } = await reader.read();
        if (done) break;
        const block = value instanceof Uint8Array ? value : new Uint8Array(value);
        hasher.update(block);
        for (let cursor = 0; cursor < block.length; cursor += FRAME_BYTES) {
          await this.waitForRoom();
          const piece = block.subarray(cursor, Math.min(cursor + FRAME_BYTES, block.length));
          this.send(piece);
          this.totalSent += piece.length;
        }
        size += block.length;
        this.onProgress({ index, sent: size, size: null, totalSent: this.totalSent,
                          total: this.total });
      }
    } finally {
      if (this.finished) reader.cancel().catch(() => {});
      reader.releaseLock();
    }
    if (!this.finished) this.execute(this.machine.fileSent(index, hasher.hexDigest(), size));
  }

  waitForRoom() {
    const channel = this.channel;
    if (channel.readyState !== "open") {
      return Promise.reject(new TransferFailed(`the connection to ${this.peer} was lost`));
    }
    if (channel.bufferedAmount <= HIGH_WATER_BYTES) return Promise.resolve();
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
