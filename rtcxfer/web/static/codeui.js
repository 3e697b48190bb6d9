// The "With a code" card: receive with a typed code, or send files and show a code
// (codemode.js does the work). Independent of the logged-in part of the page.

import { defaultSignalingUrl } from "./signaling.js";
import { receiveWithCode, sendWithCode } from "./codemode.js";
import { BlobOutput, ZipSink, downloadLink } from "./download.js";
import { feedBlob } from "./receive2.js";

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

/** Several files reach the person as one download, a zip with their paths (as the
 * logged-in part of the page does); a single file keeps its own link. */
async function offerDownloads(files, items, code, entries) {
  if (files.length === 1) {
    const [{ name, blob }] = files;
    items[0].append(downloadLink(blob, name.split("/").pop(), "Download"));
    return;
  }
  const sink = new ZipSink(new BlobOutput());
  for (const file of files) {
    await feedBlob(sink, { ...file, mtime: entries[file.index]?.mtime ?? null });
  }
  const zip = await sink.finish();
  const item = document.createElement("li");
  item.dataset.testid = "code-received-zip";
  item.dataset.count = String(files.length);
  item.append(downloadLink(zip, `code-${code.split("-")[0]}.zip`,
    `Download all ${files.length} files (zip)`));
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
  try {
    const { files } = await receiveWithCode(defaultSignalingUrl(), ui.input.value, {
      onStatus: (text) => setStatus(text),
      onFile: (file) => {
        arrived.push(file);
        items.push(addFile(file));
      },
    });
    await offerDownloads(arrived, items, ui.input.value.trim(), files);
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
