// The "With a code" card: receive with a typed code, or send files and show a code
// (codemode.js does the work). Independent of the logged-in part of the page.

import { defaultSignalingUrl } from "./signaling.js";
import { receiveWithCode, sendWithCode } from "./codemode.js";
import { BlobOutput, ZipSink, downloadLink, startStreamedDownload } from "./download.js";

const ui = {
  form: document.getElementById("code-receive-form"),
  input: document.getElementById("code-input"),
  receiveButton: document.getElementById("code-receive-button"),
  fileInput: document.getElementById("code-file-input"),
  shownBlock: document.getElementById("code-shown-block"),
  shown: document.getElementById("code-shown"),
  status: document.getElementById("code-status"),
  received: document.getElementById("code-received"),
};

let busy = false;

function setStatus(text, kind = "info") {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

function setBusy(value) {
  busy = value;
  ui.receiveButton.disabled = value;
  ui.fileInput.disabled = value;
}

/** A verified file in the card's list; its link comes once the transfer is complete. */
function addFile(file) {
  const { name, size, sha256 } = file;
  const item = document.createElement("li");
  item.dataset.testid = "code-received-file";
  item.dataset.name = name;
  item.dataset.sha256 = sha256;
  item.dataset.size = String(size);
  const label = document.createElement("span");
  label.className = "file-name";
  label.textContent = name;
  const verified = document.createElement("span");
  verified.className = "verified";
  verified.textContent = "✓ verified";
  verified.title = `sha256 ${sha256}`;
  item.append(label, verified);
  ui.received.append(item);
  return item;
}

/** Several files reach the person as one download: a zip streamed to the browser's
 * downloads as they arrive (the download worker, download.js), or, where the worker
 * is missing, a zip offered here once complete. A single file keeps its own link. */
function folderDownload(code) {
  const filename = `code-${code.split("-")[0]}.zip`;
  const folder = { filename, count: 0, route: "zip" };
  folder.open = async (offer, receiver) => {
    folder.count = offer.count;
    const output = await startStreamedDownload(filename, {
      onCancel: (reason) => receiver.abort(reason),
      onFallback: () => {
        folder.route = "zip";
        setStatus(`the browser did not start the download: the zip of ${offer.count} files `
          + "is offered here once complete…");
      },
    });
    folder.route = output === null ? "zip" : "stream";
    setStatus(output === null
      ? `receiving ${offer.count} files: the zip is offered here once complete…`
      : `receiving ${offer.count} files: downloading ${filename} as they arrive…`);
    return new ZipSink(output ?? new BlobOutput());
  };
  return folder;
}

function offerDownloads(files, items, folder, result) {
  if (result === null || result === undefined) {
    if (files.length === 1) {
      const [{ name, blob }] = files;
      items[0].append(downloadLink(blob, name.split("/").pop(), "Download"));
    }
    if (folder.route !== "stream") return;
  }
  const item = document.createElement("li");
  item.dataset.testid = "code-received-zip";
  item.dataset.count = String(folder.count);
  if (result instanceof Blob) {
    item.dataset.route = "zip";
    item.append(downloadLink(result, folder.filename,
      `Download all ${folder.count} files (zip)`));
  } else {
    item.dataset.route = "stream";
    item.textContent = `all ${folder.count} files are in the download ${folder.filename}`;
  }
  ui.received.append(item);
}

async function receive(event) {
  event.preventDefault();
  if (busy) {
    return;
  }
  setBusy(true);
  ui.shownBlock.hidden = true;
  const arrived = [];
  const items = [];
  const folder = folderDownload(ui.input.value.trim());
  try {
    const { files, folder: result } = await receiveWithCode(defaultSignalingUrl(),
      ui.input.value, {
        onStatus: (text) => setStatus(text),
        onFile: (file) => {
          arrived.push(file);
          items.push(addFile(file));
        },
        onVerified: (file) => addFile(file),  // a folder's file, now in its zip
        openFolder: folder.open,
      });
    offerDownloads(arrived, items, folder, result);
    setStatus(`received ${files.length} file(s): every file verified`, "ok");
  } catch (error) {
    setStatus(error.message, "error");
  } finally {
    setBusy(false);
  }
}

async function send() {
  const files = Array.from(ui.fileInput.files, (file) => ({ file, name: file.name }));
  ui.fileInput.value = "";
  if (busy || files.length === 0) {
    return;
  }
  setBusy(true);
  try {
    await sendWithCode(defaultSignalingUrl(), files, {
      onCode: (code) => {
        ui.shown.textContent = code;
        ui.shownBlock.hidden = false;
      },
      onStatus: (text) => setStatus(text),
    });
    setStatus(`sent ${files.length} file(s): every file verified`, "ok");
  } catch (error) {
    setStatus(error.message, "error");
  } finally {
    setBusy(false);
  }
}

if (ui.form !== null) {
  ui.form.addEventListener("submit", receive);
  ui.fileInput.addEventListener("change", send);
}
