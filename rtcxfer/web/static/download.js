// How a received folder reaches the page's user as ONE download (docs/browser.md,
// "A received folder"): a zip streamed to disk by the browser's own download
// manager through the service worker download-sw.js where the page can register
// one, else a zip Blob offered once complete. The zip itself is zipstream.js.

import { ZipWriter } from "./zipstream.js";

// Frames are merged into a Blob every this many bytes (kept out of the JS heap).
const BLOB_PART_BYTES = 8 * 1024 * 1024;
// The browser has this long to start the download (its first read), else the
// folder becomes a Blob zip offered when complete (e.g. the browser blocked it).
const START_TIMEOUT_MS = 15000;
// A message to the worker every this often while a download runs: browsers stop
// idle service workers, and a message is activity.
const KEEPALIVE_MS = 10000;
const WORKER_URL = new URL("download-sw.js", import.meta.url);
const DOWNLOAD_URL = new URL("rtcxfer-download/", import.meta.url);

let workerRegistration = null;

/** Registers the download worker (once, at start-up); false where it cannot be. */
export async function registerDownloadWorker() {
  if (typeof navigator === "undefined" || !("serviceWorker" in navigator)
      || !globalThis.isSecureContext) {
    return false;
  }
  try {
    // The scope is the page's root, also when the page is a room's (/r/NAME).
    await navigator.serviceWorker.register(WORKER_URL, { scope: new URL("./", import.meta.url).href });
    // A worker that never activates must not hold the page: 5 s, then without it.
    workerRegistration = await Promise.race([
      navigator.serviceWorker.ready,
      new Promise((resolve) => { setTimeout(() => resolve(null), 5000); }),
    ]);
    return workerRegistration !== null && workerRegistration.active !== null;
  } catch {
    workerRegistration = null;
    return false;
  }
}

/** A link that saves ``blob`` as ``filename`` (a name without folders). */
export function downloadLink(blob, filename, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.textContent = text;
  return link;
}

/** Collects the zip as Blob parts; blob() once complete. */
export class BlobOutput {
  constructor(parts = []) {
    this.parts = parts;
    this.frames = [];
    this.framesBytes = 0;
  }

  write(bytes) {
    this.frames.push(bytes.slice());
    this.framesBytes += bytes.length;
    if (this.framesBytes >= BLOB_PART_BYTES) this.merge();
  }

  merge() {
    if (this.frames.length) this.parts.push(new Blob(this.frames));
    this.frames = [];
    this.framesBytes = 0;
  }

  flushed() {
    return Promise.resolve();
  }

  close() {
    this.merge();
    return Promise.resolve(new Blob(this.parts, { type: "application/zip" }));
  }

  error() {
    this.parts = [];
    this.frames = [];
  }
}

function ownBuffer(bytes) {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer : bytes.slice().buffer;
}

/**
 * The zip bytes, handed to the worker's stream each time the browser's download
 * asks for more (what waits meanwhile is what the page holds). ``onCancel(reason)``
 * when the person cancels the download in the browser; ``onFallback()`` when the
 * browser did not start it in time: everything is then kept as a BlobOutput.
 */
class StreamOutput {
  constructor(port, { onCancel, onFallback }) {
    this.port = port;
    this.onCancel = onCancel;
    this.onFallback = onFallback;
    this.queue = [];
    this.written = 0;
    this.sent = 0;
    this.waiters = [];
    this.demand = false;
    this.scheduled = false;
    this.ending = null;
    this.ended = false;
    this.started = false;
    this.blob = null;
    this.broken = null;
    port.onmessage = (event) => this.message(event.data);
    this.startTimer = setTimeout(() => this.fallBack(), START_TIMEOUT_MS);
    this.keepalive = setInterval(() => workerRegistration?.active?.postMessage({ type: "keepalive" }),
      KEEPALIVE_MS);
  }

  message(message) {
    if (this.blob !== null || message === null || typeof message !== "object") return;
    if (message.type === "started") {
      this.started = true;
      clearTimeout(this.startTimer);
    } else if (message.type === "pull") {
      this.demand = true;
      this.schedule();
    } else if (message.type === "cancelled") {
      this.stop();
      this.broken = "the download was cancelled in the browser";
      this.release(new Error(this.broken));
      this.onCancel(this.broken);
    }
  }

  write(bytes) {
    if (this.blob !== null) {
      this.blob.write(bytes);
      return;
    }
    if (this.broken !== null) return;
    this.queue.push(bytes);
    this.written += bytes.length;
    if (this.demand) this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    // Everything written in this task (a whole pack, say) goes in one message.
    queueMicrotask(() => {
      this.scheduled = false;
      this.send();
    });
  }

  send() {
    if (!this.demand || this.broken !== null || this.blob !== null) return;
    const end = this.ending !== null;
    if (!this.queue.length && !end) return;
    const chunks = this.queue.map(ownBuffer);
    this.queue = [];
    this.demand = false;
    this.port.postMessage({ type: "chunks", chunks, end }, chunks);
    this.sent = this.written;
    this.waiters = this.waiters.filter(([position, resolve]) => {
      if (position > this.sent) return true;
      resolve();
      return false;
    });
    if (end) {
      this.stop();
      this.ended = true;
      this.ending.resolve(null);
    }
  }

  /** Resolves once every byte written so far went to the browser's download. */
  flushed() {
    if (this.blob !== null || this.sent >= this.written) return Promise.resolve();
    if (this.broken !== null) return Promise.reject(new Error(this.broken));
    return new Promise((resolve, reject) => this.waiters.push([this.written, resolve, reject]));
  }

  /** Resolves with null once the end went to the download, or with the Blob zip. */
  close() {
    if (this.blob !== null) return this.blob.close();
    if (this.broken !== null) return Promise.reject(new Error(this.broken));
    return new Promise((resolve, reject) => {
      this.ending = { resolve, reject };
      if (this.demand) this.schedule();
    });
  }

  error(reason) {
    if (this.blob !== null) {
      this.blob.error();
      return;
    }
    if (this.broken !== null || this.ended) return;
    this.broken = reason;
    this.stop();
    this.queue = [];
    // The stream errors: the browser marks the download failed.
    this.port.postMessage({ type: "error", reason });
    this.release(new Error(reason));
  }

  release(error) {
    for (const [, , reject] of this.waiters) reject(error);
    this.waiters = [];
    if (this.ending !== null) this.ending.reject(error);
  }

  stop() {
    clearTimeout(this.startTimer);
    clearInterval(this.keepalive);
  }

  fallBack() {
    if (this.started || this.broken !== null || this.blob !== null) return;
    this.stop();
    // Nothing was handed over yet: the queue holds the zip from its first byte.
    this.blob = new BlobOutput();
    for (const bytes of this.queue) this.blob.write(bytes);
    this.queue = [];
    this.port.postMessage({ type: "error", reason: "the download did not start" });
    for (const [, resolve] of this.waiters) resolve();
    this.waiters = [];
    this.onFallback();
    if (this.ending !== null) this.blob.close().then(this.ending.resolve);
  }
}

/**
 * Starts a streamed download named ``filename`` and resolves with its output,
 * or null where the download worker is not available.
 */
export async function startStreamedDownload(filename, callbacks) {
  const worker = workerRegistration?.active;
  if (!worker) return null;
  const channel = new MessageChannel();
  const id = Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (byte) => byte.toString(16).padStart(2, "0")).join("");
  const registered = new Promise((resolve) => {
    channel.port1.onmessage = (event) => resolve(event.data?.type === "registered");
    setTimeout(() => resolve(false), 5000);
  });
  worker.postMessage({ type: "download", id, filename }, [channel.port2]);
  if (!(await registered)) return null;
  const output = new StreamOutput(channel.port1, callbacks);
  // A navigation, not <a download> (which Chromium sends past the worker): the
  // attachment becomes a download and the page stays; a navigation the worker does
  // not answer gets the server's 204, which leaves the page as it is too.
  const link = document.createElement("a");
  link.href = new URL(`${id}/${encodeURIComponent(filename)}`, DOWNLOAD_URL).href;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  return output;
}

/**
 * The folder sink FileReceiver2 writes to (receive2.js): each file becomes a
 * stored zip entry, its path kept. close(ok) resolves when the file's bytes were
 * handed over; finish() resolves with null (streamed) or the zip Blob.
 */
export class ZipSink {
  constructor(output) {
    this.output = output;
    this.zip = new ZipWriter((bytes) => this.output.write(bytes));
  }

  open(name, size, mtime = null) {
    this.zip.startEntry(name, size, mtime);
  }

  write(bytes) {
    this.zip.write(bytes);
  }

  close() {
    this.zip.endEntry();
    return this.output.flushed();
  }

  finish() {
    this.zip.finish();
    return this.output.close();
  }

  abort(reason) {
    this.output.error(reason);
  }
}
