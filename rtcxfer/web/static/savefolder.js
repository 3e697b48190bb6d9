// A received folder written straight into a directory the person picked, with the
// File System Access API where the browser has it (window.showDirectoryPicker):
// file by file as they arrive, subfolders recreated (docs/browser.md).
//
// Names were already checked by the receiver machine with the page's one set of
// rules (unsafeNameReason in transfer.js, clashes in machines2.js). An existing file
// is never overwritten: the new one gets a numbered name, as the CLI receiver does
// (rtcxfer/transfer/storage.py, numbered_name; tests/browser/test_save_folder.py
// checks the two agree).

const MAX_COMPONENT_BYTES = 255;
const MAX_NUMBERED_NAMES = 10000;
// Frames are written in pieces of about this size (one write per frame is slow).
const WRITE_BYTES = 1024 * 1024;
const utf8 = new TextEncoder();

function cutUtf8(text, maxBytes) {
  const bytes = utf8.encode(text);
  let end = Math.min(bytes.length, Math.max(0, maxBytes));
  // A character cut in the middle is dropped whole, like Python's errors="ignore".
  while (end > 0 && end < bytes.length && (bytes[end] & 0xc0) === 0x80) end -= 1;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/** ``report.pdf`` -> ``report (1).pdf``; the extension starts at the first inner dot. */
export function numberedName(leaf, number) {
  const tag = ` (${number})`;
  const dot = leaf.indexOf(".", 1);
  const [stem, extension] = dot === -1 ? [leaf, ""] : [leaf.slice(0, dot), leaf.slice(dot)];
  const room = MAX_COMPONENT_BYTES - utf8.encode(tag).length - utf8.encode(extension).length;
  if (room >= 1) return cutUtf8(stem, room) + tag + extension;
  return cutUtf8(leaf, MAX_COMPONENT_BYTES - utf8.encode(tag).length) + tag;
}

async function exists(folder, leaf) {
  try {
    await folder.getFileHandle(leaf);
    return true;
  } catch (error) {
    if (error.name === "NotFoundError") return false;
    if (error.name === "TypeMismatchError") return true; // a folder of that name
    throw error;
  }
}

/**
 * The folder sink FileReceiver2 writes to (receive2.js). close(ok) resolves once the
 * file is complete on disk (the writable closed) or, when ok is false, removed.
 */
export class DirectorySink {
  constructor(root) {
    this.root = root;
    this.folders = new Map([["", Promise.resolve(root)]]);
    this.current = null;
    this.failure = null;
    this.saved = 0;
    this.renamed = [];
  }

  folder(parts) {
    let path = "";
    let handle = this.folders.get("");
    for (const part of parts) {
      const parent = handle;
      path = path ? `${path}/${part}` : part;
      if (!this.folders.has(path)) {
        this.folders.set(path, parent.then((dir) => dir.getDirectoryHandle(part, { create: true })));
      }
      handle = this.folders.get(path);
    }
    return handle;
  }

  open(name) {
    const parts = name.split("/");
    const leaf = parts.pop();
    const file = { name, folder: null, leaf: null, writable: null, pending: [], pendingBytes: 0 };
    file.tail = this.folder(parts).then(async (folder) => {
      let placed = leaf;
      for (let number = 1; await exists(folder, placed); number++) {
        if (number > MAX_NUMBERED_NAMES) {
          throw new Error(`${leaf} and ${MAX_NUMBERED_NAMES} numbered variants all exist`);
        }
        placed = numberedName(leaf, number);
      }
      file.folder = folder;
      file.leaf = placed;
      const handle = await folder.getFileHandle(placed, { create: true });
      file.writable = await handle.createWritable();
      if (placed !== leaf) this.renamed.push([name, [...parts, placed].join("/")]);
    });
    this.current = file;
  }

  write(bytes) {
    const file = this.current;
    file.pending.push(bytes);
    file.pendingBytes += bytes.length;
    if (file.pendingBytes >= WRITE_BYTES) this.writePending(file);
  }

  writePending(file) {
    if (!file.pending.length) return;
    const piece = new Blob(file.pending);
    file.pending = [];
    file.pendingBytes = 0;
    file.tail = file.tail.then(() => file.writable.write(piece));
  }

  /** Resolves with null, or the reason the file could not be written. */
  close(ok) {
    const file = this.current;
    this.current = null;
    if (ok) this.writePending(file);
    return file.tail.then(async () => {
      if (ok) {
        await file.writable.close();
        this.saved += 1;
        return null;
      }
      await file.writable.abort();
      await file.folder.removeEntry(file.leaf);
      return null;
    }).catch(async (error) => {
      if (file.writable !== null) await file.writable.abort().catch(() => {});
      if (file.folder !== null) await file.folder.removeEntry(file.leaf).catch(() => {});
      return `cannot write ${file.name} into the folder: ${error.message}`;
    });
  }

  finish() {
    return Promise.resolve(null);
  }

  abort() {
    const file = this.current;
    this.current = null;
    if (file !== null) {
      file.tail.then(() => file.writable.abort()).then(
        () => file.folder.removeEntry(file.leaf)).catch(() => {});
    }
  }
}
