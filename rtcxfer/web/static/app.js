// The page: log in, pick a user, send files, answer incoming offers.
//
// All protocol work lives in signaling.js (server), session.js (one
// RTCPeerConnection per (peer, session)) and transfer.js (rtcxfer/1); this
// module only wires them to the DOM and turns every failure into a message.

import {
  defaultSignalingUrl, pageToken, rememberToken, roomFromLocation, SignalingClient,
} from "./signaling.js";
import {
  CloseReason,
  describePath,
  newSessionId,
  PeerSession,
  sessionKey,
  useCertificate,
} from "./session.js";
import { pageCertificate } from "./identity.js";
import { isCodeName } from "./codemode.js";
import "./codeui.js";
import { FileSender, PeerDeclined, invisibleCharacter, unsafeNameReason } from "./transfer.js";
import { chooseReceiver } from "./receive2.js";
import { FileSender2, needsBatches, sendText } from "./send2.js";
import { MAX_TEXT_BYTES } from "./machines2.js";
import {
  BlobOutput, ZipSink, downloadLink, registerDownloadWorker, startStreamedDownload,
} from "./download.js";
import { DirectorySink } from "./savefolder.js";

const NAME_STORAGE_KEY = "rtcxfer.name";
const MAX_NAME_LENGTH = 64;
const CERTIFICATE_WAIT_MS = 10000;
// A typed text longer than a text may be (MAX_TEXT_BYTES) is sent as a stream of this name.
const LONG_TEXT_NAME = "text.txt";

const byId = (id) => document.getElementById(id);

const ui = {
  status: byId("status"),
  whoami: byId("whoami"),
  room: byId("room"),
  logoutButton: byId("logout-button"),
  loginSection: byId("login-section"),
  loginForm: byId("login-form"),
  loginName: byId("login-name"),
  loginToken: byId("login-token"),
  loginButton: byId("login-button"),
  appSection: byId("app-section"),
  userList: byId("user-list"),
  noUsers: byId("no-users"),
  sendTarget: byId("send-target"),
  dropZone: byId("drop-zone"),
  fileInput: byId("file-input"),
  folderInput: byId("folder-input"),
  folderLabel: byId("folder-label"),
  chosenList: byId("chosen-list"),
  sendButton: byId("send-button"),
  clearButton: byId("clear-button"),
  cancelButton: byId("cancel-button"),
  sendProgress: byId("send-progress"),
  sendCode: byId("send-code"),
  sendTotal: byId("send-total"),
  sendRate: byId("send-rate"),
  incomingTransfers: byId("incoming-transfers"),
  receivedList: byId("received-list"),
  nothingReceived: byId("nothing-received"),
  log: byId("log"),
  offerDialog: byId("offer-dialog"),
  offerSender: byId("offer-sender"),
  offerSummary: byId("offer-summary"),
  offerCode: byId("offer-code"),
  offerFiles: byId("offer-files"),
  acceptButton: byId("accept-button"),
  saveFolderButton: byId("save-folder-button"),
  textInput: byId("text-input"),
  sendTextButton: byId("send-text-button"),
  declineButton: byId("decline-button"),
  relayOnly: byId("relay-only"),
  path: byId("path"),
};

const state = {
  signaling: null,
  sessions: new Map(),
  selectedPeer: null,
  chosen: [],
  outgoing: null,
  // Incoming offers are shown one dialog at a time, in arrival order.
  dialogQueue: Promise.resolve(),
};

// ---------------------------------------------------------------- messages

function setStatus(message, kind = "info") {
  ui.status.textContent = message;
  ui.status.dataset.kind = kind;
  log(message, kind);
}

function log(message, kind = "info") {
  const entry = document.createElement("li");
  entry.textContent = `${new Date().toLocaleTimeString()}  ${message}`;
  entry.dataset.kind = kind;
  ui.log.prepend(entry);
  while (ui.log.children.length > 200) {
    ui.log.lastElementChild.remove();
  }
}

function formatBytes(count) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${count} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function formatRate(bytes, startedAt) {
  const seconds = (performance.now() - startedAt) / 1000;
  if (seconds <= 0) {
    return "";
  }
  return `${formatBytes(bytes)} at ${formatBytes(bytes / seconds)}/s`;
}

function filesSummary(files, total, count = files.length) {
  const noun = count === 1 ? "file" : "files";
  return `${count} ${noun} (${formatBytes(total)})`;
}

// ---------------------------------------------------------------- ICE (docs/peer.md)

// TURN credentials from the server expire (username "<unix expiry>:<name>"): ask
// for fresh ones (ext iceservers) when they would expire within this long.
const ICE_REFRESH_MARGIN_S = 300;

async function sessionOptions(signaling) {
  const expiries = signaling.iceServers
    .map((server) => Number.parseInt(String(server?.username ?? "").split(":")[0], 10))
    .filter((expiry) => Number.isFinite(expiry));
  if (expiries.length > 0 && Math.min(...expiries) < Date.now() / 1000 + ICE_REFRESH_MARGIN_S) {
    await signaling.refreshIceServers();
  }
  const relayOnly = ui.relayOnly !== null && ui.relayOnly.checked;
  if (relayOnly && !signaling.iceServers.some((server) =>
    [server?.urls].flat().some((url) => typeof url === "string" && url.startsWith("turn")))) {
    throw new Error("relay only needs a TURN server, and this server offers none");
  }
  return { iceServers: signaling.iceServers, relayOnly };
}

function showPath(session, path) {
  const words = describePath(path);
  if (ui.path !== null) {
    ui.path.textContent = `path to ${session.peer}: ${words}`;
    ui.path.dataset.kind = path.kind;
    ui.path.dataset.localType = path.local_type;
    ui.path.dataset.remoteType = path.remote_type;
    ui.path.dataset.protocol = path.protocol;
    ui.path.dataset.relay = path.relay ?? "";
    ui.path.hidden = false;
  }
  log(`path to ${session.peer}: ${words}`);
}

// ---------------------------------------------------------------- login

// Storage may be disabled (privacy settings, sandboxed frames) and then throws:
// remembering the name is a convenience, never a reason to fail.
function rememberedName() {
  try {
    return localStorage.getItem(NAME_STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
}

function rememberName(name) {
  try {
    localStorage.setItem(NAME_STORAGE_KEY, name);
  } catch {
    log("this browser does not let the page remember your name");
  }
}

function nameProblem(name) {
  if (name.length === 0) {
    return "enter a name";
  }
  if (name.length > MAX_NAME_LENGTH) {
    return `a name has at most ${MAX_NAME_LENGTH} characters`;
  }
  for (const char of name) {
    const code = char.codePointAt(0);
    if (code < 0x20 || code === 0x7f) {
      return "a name cannot contain control characters";
    }
  }
  if (invisibleCharacter(name) !== null) {
    return "a name cannot contain invisible or bidirectional characters";
  }
  return null;
}

async function login(event) {
  event.preventDefault();
  const name = ui.loginName.value.trim();
  const problem = nameProblem(name);
  if (problem !== null) {
    setStatus(problem, "error");
    return;
  }
  ui.loginButton.disabled = true;
  setStatus(`logging in as ${name}…`);
  const signaling = new SignalingClient(defaultSignalingUrl());
  const room = roomFromLocation();
  const token = ui.loginToken.value;
  try {
    await signaling.login(name, room, token === "" ? null : token);
    rememberToken(token === "" ? null : token);
  } catch (error) {
    setStatus(error.message, "error");
    ui.loginButton.disabled = false;
    return;
  }
  rememberName(name);
  state.signaling = signaling;
  wireSignaling(signaling);
  renderUsers(signaling.users());
  ui.whoami.textContent = name;
  ui.whoami.hidden = false;
  ui.room.textContent = room === null ? "" : `room: ${room}`;
  ui.room.hidden = room === null;
  ui.logoutButton.hidden = false;
  ui.loginSection.hidden = true;
  ui.appSection.hidden = false;
  ui.loginButton.disabled = false;
  document.body.dataset.loggedIn = "true";
  setStatus(`logged in as ${name}`, "ok");
}

function logout() {
  for (const session of state.sessions.values()) {
    session.close();
  }
  state.sessions.clear();
  if (state.signaling !== null) {
    state.signaling.close();
  }
  showLoggedOut("logged out");
}

function showLoggedOut(message, kind = "info") {
  state.signaling = null;
  state.selectedPeer = null;
  ui.whoami.hidden = true;
  ui.logoutButton.hidden = true;
  ui.loginSection.hidden = false;
  ui.appSection.hidden = true;
  delete document.body.dataset.loggedIn;
  updateSendControls();
  setStatus(message, kind);
}

// ---------------------------------------------------------------- users

function wireSignaling(signaling) {
  let previous = new Set(signaling.users());
  signaling.addEventListener("users", (event) => {
    const users = event.detail;
    const now = new Set(users);
    for (const name of previous) {
      if (!now.has(name) && name !== signaling.name) {
        log(`${name} went offline`);
      }
    }
    for (const name of now) {
      if (!previous.has(name) && name !== signaling.name) {
        log(`${name} came online`);
      }
    }
    previous = now;
    renderUsers(users);
  });
  signaling.addEventListener("offer", (event) => onRemoteOffer(event.detail));
  signaling.addEventListener("answer", (event) => onRemoteAnswer(event.detail));
  signaling.addEventListener("candidate", (event) => onRemoteCandidate(event.detail));
  signaling.addEventListener("leave", (event) => onRemoteLeave(event.detail));
  signaling.addEventListener("server-error", (event) => onServerError(event.detail));
  signaling.addEventListener("closed", (event) => {
    // Transfers already connected go on peer to peer; only signaling is gone.
    showLoggedOut(`${event.detail}: log in again to see who is online`, "error");
  });
}

function renderUsers(users) {
  const me = state.signaling === null ? null : state.signaling.name;
  // Code mode's one-time logins are nobody to pick (docs/protocol.md, "Code mode").
  const others = users.filter((name) => name !== me && !isCodeName(name));
  ui.userList.replaceChildren(
    ...others.map((name) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "user";
      button.textContent = name;
      button.dataset.name = name;
      button.dataset.testid = "user";
      button.setAttribute("aria-pressed", String(name === state.selectedPeer));
      button.addEventListener("click", () => selectPeer(name));
      item.append(button);
      return item;
    }),
  );
  ui.noUsers.hidden = others.length > 0;
  if (state.selectedPeer !== null && !others.includes(state.selectedPeer)) {
    ui.sendTarget.textContent = `${state.selectedPeer} (offline)`;
  }
  updateSendControls();
}

function selectPeer(name) {
  state.selectedPeer = name;
  ui.sendTarget.textContent = name;
  for (const button of ui.userList.querySelectorAll("button.user")) {
    button.setAttribute("aria-pressed", String(button.dataset.name === name));
  }
  updateSendControls();
}

// ---------------------------------------------------------------- choosing files

function chooseFiles(entries) {
  const known = new Set(state.chosen.map((entry) => entry.name));
  for (const entry of entries) {
    const problem = unsafeNameReason(entry.name);
    if (problem !== null) {
      setStatus(`cannot send ${entry.name}: ${problem}`, "error");
      continue;
    }
    if (known.has(entry.name)) {
      continue;
    }
    known.add(entry.name);
    state.chosen.push(entry);
  }
  renderChosen();
}

function renderChosen() {
  ui.chosenList.replaceChildren(
    ...state.chosen.map((entry, index) => {
      const item = document.createElement("li");
      item.dataset.testid = "chosen-file";
      item.dataset.index = String(index);
      const label = document.createElement("span");
      label.className = "file-name";
      label.textContent = entry.name;
      const size = document.createElement("span");
      size.className = "file-size";
      size.textContent = formatBytes(entry.file.size);
      const bar = document.createElement("progress");
      bar.max = Math.max(entry.file.size, 1);
      bar.value = 0;
      bar.setAttribute("aria-label", `progress of ${entry.name}`);
      entry.progressBar = bar;
      item.append(label, size, bar);
      return item;
    }),
  );
  updateSendControls();
}

function filesFromInput(input) {
  const entries = Array.from(input.files, (file) => ({
    file,
    name: file.webkitRelativePath || file.name,
  }));
  input.value = "";
  return entries;
}

async function filesFromDrop(dataTransfer) {
  const roots = Array.from(dataTransfer.items ?? [])
    .filter((item) => item.kind === "file")
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (roots.length === 0 || roots.includes(null)) {
    return Array.from(dataTransfer.files, (file) => ({ file, name: file.name }));
  }
  const entries = [];
  for (const root of roots) {
    await collectEntry(root, entries);
  }
  return entries;
}

async function collectEntry(entry, into) {
  const name = entry.fullPath.replace(/^\/+/, "");
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    into.push({ file, name });
    return;
  }
  const reader = entry.createReader();
  // readEntries() returns the directory in batches until an empty one.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) {
      return;
    }
    for (const child of batch) {
      await collectEntry(child, into);
    }
  }
}

function updateSendControls() {
  const online =
    state.signaling !== null &&
    state.selectedPeer !== null &&
    state.signaling.isOnline(state.selectedPeer);
  const busy = state.outgoing !== null;
  ui.sendButton.disabled = busy || !online || state.chosen.length === 0;
  ui.clearButton.disabled = busy || state.chosen.length === 0;
  ui.cancelButton.hidden = !busy;
}

// ---------------------------------------------------------------- sending

async function send() {
  const signaling = state.signaling;
  const peer = state.selectedPeer;
  if (signaling === null || peer === null || state.chosen.length === 0) {
    return;
  }
  if (!signaling.isOnline(peer)) {
    setStatus(`${peer} is not online`, "error");
    return;
  }
  // A copy: files chosen while this transfer runs wait for the next one.
  const files = [...state.chosen];
  let options;
  try {
    options = await sessionOptions(signaling);
  } catch (error) {
    setStatus(error.message, "error");
    return;
  }
  const session = new PeerSession(signaling, peer, newSessionId(), "offerer", options);
  session.onPath = (path) => showPath(session, path);
  state.sessions.set(session.key, session);
  state.outgoing = { session, peer };
  updateSendControls();
  for (const entry of files) {
    entry.progressBar.value = 0;
  }
  ui.sendProgress.hidden = false;
  ui.sendCode.textContent = "…";
  ui.sendTotal.max = Math.max(1, files.reduce((sum, entry) => sum + entry.file.size, 0));
  ui.sendTotal.value = 0;
  ui.sendRate.textContent = "";
  setStatus(`connecting to ${peer}…`);
  try {
    await session.start();
    const channel = await session.channel;
    const code = session.verificationCode();
    ui.sendCode.textContent = code;
    setStatus(`connected to ${peer}, code ${code}: waiting for ${peer} to accept`);
    let startedAt = performance.now();
    // A list too long for one rtcxfer/1 hello goes out with rtcxfer/2 in batches.
    const Sender = needsBatches(files) ? FileSender2 : FileSender;
    const sender = new Sender(channel, peer, files, {
      onAccepted: () => {
        startedAt = performance.now();
        setStatus(`${peer} accepted: sending ${filesSummary(files, sender.total)}`);
      },
      onProgress: ({ index, sent, totalSent }) => {
        files[index].progressBar.value = sent;
        ui.sendTotal.value = totalSent;
        ui.sendRate.textContent = formatRate(totalSent, startedAt);
      },
    });
    await sender.run();
    setStatus(`sent ${filesSummary(files, sender.total)} to ${peer}: every file verified`, "ok");
    state.chosen = state.chosen.filter((entry) => !files.includes(entry));
    renderChosen();
  } catch (error) {
    setStatus(describeFailure(error, session), error instanceof PeerDeclined ? "warn" : "error");
  } finally {
    session.close();
    state.sessions.delete(session.key);
    state.outgoing = null;
    updateSendControls();
  }
}

/** Send the typed text to the picked user (rtcxfer/2; a v1 receiver refuses it). */
async function sendTypedText() {
  const signaling = state.signaling;
  const peer = state.selectedPeer;
  const text = ui.textInput.value;
  if (signaling === null || peer === null || text === "" || state.outgoing !== null) {
    return;
  }
  const session = new PeerSession(signaling, peer, newSessionId(), "offerer");
  state.sessions.set(session.key, session);
  state.outgoing = { session, peer };
  updateSendControls();
  setStatus(`connecting to ${peer}…`);
  try {
    await session.start();
    const channel = await session.channel;
    ui.sendProgress.hidden = false;
    ui.sendCode.textContent = session.verificationCode();
    const bytes = new TextEncoder().encode(text);
    if (bytes.length <= MAX_TEXT_BYTES) {
      setStatus(`connected to ${peer}: waiting for ${peer} to accept the text`);
      await sendText(channel, peer, text);
      setStatus(`sent the text to ${peer}`, "ok");
    } else {
      // Too long to be shown: it goes as a stream (docs/protocol.md, "Streams") and
      // lands as a file, or on the standard output of `rtcxfer listen --once --stdout`.
      setStatus(`connected to ${peer}: waiting for ${peer} to accept the text as the `
        + `file ${LONG_TEXT_NAME} (${formatBytes(bytes.length)}, too long to be shown)`);
      let startedAt = performance.now();
      const sender = new FileSender2(channel, peer,
        [{ stream: new Blob([bytes]).stream(), name: LONG_TEXT_NAME }], {
          onAccepted: () => {
            startedAt = performance.now();
          },
          onProgress: ({ totalSent }) => {
            ui.sendRate.textContent = formatRate(totalSent, startedAt);
          },
        });
      await sender.run();
      setStatus(`sent the text to ${peer} as ${LONG_TEXT_NAME}: verified`, "ok");
    }
    ui.textInput.value = "";
  } catch (error) {
    setStatus(describeFailure(error, session), error instanceof PeerDeclined ? "warn" : "error");
  } finally {
    session.close();
    state.sessions.delete(session.key);
    state.outgoing = null;
    updateSendControls();
  }
}

function describeFailure(error, session) {
  if (error instanceof PeerDeclined) {
    return error.message;
  }
  switch (session.closeReason) {
    case CloseReason.CANCELLED:
      return `transfer to ${session.peer} cancelled`;
    case CloseReason.PEER_OFFLINE:
      return `${session.peer} is not online`;
    case CloseReason.PEER_LEFT:
      return `${session.peer} left before the transfer finished`;
    default:
      return error.message;
  }
}

function cancelSend() {
  if (state.outgoing !== null) {
    state.outgoing.session.close(CloseReason.CANCELLED);
  }
}

// ---------------------------------------------------------------- receiving

function isDescription(value, type) {
  return value !== null && typeof value === "object" && value.type === type &&
    typeof value.sdp === "string";
}

function sessionOf(message) {
  return typeof message.session === "string" ? message.session : "";
}

async function onRemoteOffer(message) {
  const signaling = state.signaling;
  const peer = message.name;
  const sessionId = sessionOf(message);
  const previous = state.sessions.get(sessionKey(peer, sessionId));
  if (signaling === null || (previous !== undefined && !previous.finishing)) {
    return;
  }
  if (previous !== undefined) {
    // The peer started over while the last connection was winding down.
    previous.close(CloseReason.PEER_LEFT);
  }
  if (!isDescription(message.offer, "offer")) {
    log(`ignored a malformed offer from ${peer}`, "error");
    return;
  }
  let options;
  try {
    options = await sessionOptions(signaling);
  } catch (error) {
    log(`cannot answer ${peer}: ${error.message}`, "error");
    signaling.relay("leave", peer, sessionId);
    return;
  }
  if (state.sessions.has(sessionKey(peer, sessionId))) {
    return;
  }
  const session = new PeerSession(signaling, peer, sessionId, "answerer", options);
  session.onPath = (path) => showPath(session, path);
  state.sessions.set(session.key, session);
  log(`${peer} is connecting to send files…`);
  let folder = null;
  try {
    await session.answer(message.offer);
    const channel = await session.channel;
    const code = session.verificationCode();
    const view = new IncomingView(peer, code);
    // Where a received folder goes: the directory picked in the dialog, if any.
    const choice = { directory: null };
    // rtcxfer/1 or rtcxfer/2, as the sender's first message says (receive2.js).
    const receiver = await chooseReceiver(channel, peer, {
      decide: (hello) => decideOffer(session, channel, hello, code, view, choice),
      onProgress: (progress) => view.progress(progress),
      onFile: (file) => addReceivedFile(peer, file),
      onText: (text) => addReceivedText(peer, text),
      openFolder: async (offer, receiving) => {
        folder = new ReceivedFolder(peer, offer);
        return folder.open(choice.directory, receiving);
      },
    });
    const outcome = await receiver.run();
    if (folder !== null) {
      folder.finished(outcome === "accepted" ? receiver.folderResult : undefined);
    }
    if (outcome === "accepted") {
      const summary = filesSummary(receiver.files, receiver.total, receiver.count);
      view.finish(`received ${summary}, all verified`);
      setStatus(`received ${summary} from ${peer}: every file verified`, "ok");
    } else {
      setStatus(`declined the files from ${peer}`);
    }
  } catch (error) {
    const text = session.closeReason === CloseReason.PEER_LEFT
      ? `${peer} left before the transfer finished`
      : `receiving from ${peer} failed: ${error.message}`;
    if (folder !== null) folder.failed(text);
    setStatus(text, "error");
  } finally {
    // The sender closes first; give our last frames (ack, done, decline) time to leave.
    // The session stays known meanwhile, so that the sender's `leave` finds it and we
    // do not relay a `leave` of our own to someone who already went offline.
    session.finishing = true;
    setTimeout(() => {
      session.close();
      if (state.sessions.get(session.key) === session) {
        state.sessions.delete(session.key);
      }
    }, 2000);
  }
}

function decideOffer(session, channel, hello, code, view, choice = { directory: null }) {
  const decision = state.dialogQueue.then(
    () => showOfferDialog(session, channel, hello, code, choice),
  );
  state.dialogQueue = decision.then(() => undefined);
  return decision.then((accepted) => {
    if (accepted) {
      view.start(hello);
    }
    return accepted;
  });
}

function showOfferDialog(session, channel, hello, code, choice = { directory: null }) {
  if (channel.readyState !== "open") {
    log(`${session.peer} withdrew the offer`);
    return Promise.resolve(false);
  }
  ui.offerSender.textContent = session.peer;
  ui.offerSummary.textContent = filesSummary(hello.files, hello.total, hello.count);
  ui.offerCode.textContent = code;
  ui.offerFiles.replaceChildren(
    ...hello.files.map((file) => {
      const item = document.createElement("li");
      item.dataset.testid = "offer-file";
      const label = document.createElement("span");
      label.className = "file-name";
      label.textContent = file.name;
      const size = document.createElement("span");
      size.className = "file-size";
      size.textContent = formatBytes(file.size);
      item.append(label, size);
      return item;
    }),
  );
  // A folder (several files, rtcxfer/2) may go straight into a directory the person
  // picks, where the browser has the File System Access API.
  const isFolder = hello.kind === "files" && hello.count > 1;
  ui.saveFolderButton.hidden = !(isFolder && typeof window.showDirectoryPicker === "function");
  return new Promise((resolve) => {
    const finish = (accepted) => {
      ui.saveFolderButton.removeEventListener("click", onSaveFolder);
      ui.acceptButton.removeEventListener("click", onAccept);
      ui.declineButton.removeEventListener("click", onDecline);
      ui.offerDialog.removeEventListener("cancel", onCancel);
      channel.removeEventListener("close", onWithdrawn);
      ui.offerDialog.close();
      resolve(accepted);
    };
    const onAccept = () => finish(true);
    const onSaveFolder = async () => {
      try {
        choice.directory = await window.showDirectoryPicker({ id: "rtcxfer-received",
                                                             mode: "readwrite" });
      } catch (error) {
        // Cancelling the picker leaves the offer open.
        if (error.name !== "AbortError") log(`cannot use that folder: ${error.message}`, "error");
        return;
      }
      finish(true);
    };
    const onDecline = () => finish(false);
    const onCancel = (event) => {
      event.preventDefault();
      finish(false);
    };
    const onWithdrawn = () => {
      log(`${session.peer} withdrew the offer`);
      finish(false);
    };
    ui.acceptButton.addEventListener("click", onAccept);
    ui.saveFolderButton.addEventListener("click", onSaveFolder);
    ui.declineButton.addEventListener("click", onDecline);
    ui.offerDialog.addEventListener("cancel", onCancel);
    channel.addEventListener("close", onWithdrawn);
    ui.offerDialog.showModal();
    ui.acceptButton.focus();
  });
}

/** The progress card of one incoming transfer. */
class IncomingView {
  constructor(peer, code) {
    this.peer = peer;
    this.code = code;
    this.root = null;
  }

  start(hello) {
    this.startedAt = performance.now();
    this.root = document.createElement("div");
    this.root.className = "progress-block";
    this.root.dataset.testid = "incoming-transfer";
    const heading = document.createElement("p");
    heading.append(`From ${this.peer}, code `);
    const codeLabel = document.createElement("strong");
    codeLabel.className = "code";
    codeLabel.dataset.testid = "incoming-code";
    codeLabel.textContent = this.code;
    heading.append(codeLabel);
    this.total = document.createElement("progress");
    this.total.max = Math.max(1, hello.total);
    this.total.value = 0;
    this.total.setAttribute("aria-label", `total received from ${this.peer}`);
    this.rate = document.createElement("p");
    this.rate.className = "rate";
    const list = document.createElement("ul");
    list.className = "file-list";
    this.bars = hello.files.map((file) => {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.className = "file-name";
      label.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = Math.max(1, file.size);
      bar.value = 0;
      bar.setAttribute("aria-label", `progress of ${file.name}`);
      item.append(label, bar);
      list.append(item);
      return bar;
    });
    this.root.append(heading, this.total, this.rate, list);
    ui.incomingTransfers.prepend(this.root);
  }

  progress({ index, received, totalReceived }) {
    if (this.root === null) {
      return;
    }
    if (index < this.bars.length) {
      this.bars[index].value = received;
    }
    this.total.value = totalReceived;
    this.rate.textContent = formatRate(totalReceived, this.startedAt);
  }

  finish(message) {
    if (this.root !== null) {
      this.rate.textContent = `${message} (${this.rate.textContent})`;
    }
  }
}

function addReceivedFile(peer, { name, size, sha256, blob }) {
  const item = document.createElement("li");
  item.dataset.testid = "received-file";
  item.dataset.name = name;
  item.dataset.sha256 = sha256;
  item.dataset.size = String(size);
  const label = document.createElement("span");
  label.className = "file-name";
  label.textContent = name;
  const details = document.createElement("span");
  details.className = "file-size";
  details.textContent = `${formatBytes(size)} from ${peer}`;
  const verified = document.createElement("span");
  verified.className = "verified";
  verified.textContent = "✓ verified";
  verified.title = `sha256 ${sha256}`;
  // A download name cannot hold folders: keep the last component.
  const link = downloadLink(blob, name.split("/").pop(), "Download");
  link.dataset.testid = "download";
  item.append(label, details, verified, link);
  ui.receivedList.append(item);
  ui.nothingReceived.hidden = true;
}

function addReceivedText(peer, text) {
  const item = document.createElement("li");
  item.dataset.testid = "received-text";
  const from = document.createElement("span");
  from.className = "file-size";
  from.textContent = `text from ${peer}: `;
  const body = document.createElement("pre");
  body.className = "received-text";
  body.textContent = text;
  item.append(from, body);
  ui.receivedList.append(item);
  ui.nothingReceived.hidden = true;
}

/**
 * A received folder (several files) reaches the person as ONE thing, never a link
 * per file (docs/browser.md, "A received folder"): written into the directory they
 * picked, else a zip streamed to the browser's downloads as it arrives (from the
 * moment they accepted), else a zip Blob offered as one link once complete. The
 * list item (data-state receiving, done, failed) says which and how it ended.
 */
class ReceivedFolder {
  constructor(peer, offer) {
    this.peer = peer;
    this.count = offer.count;
    this.filename = `from-${peer}.zip`;
    this.route = null;
    this.item = document.createElement("li");
    this.item.dataset.testid = "received-folder";
    this.item.dataset.count = String(offer.count);
    this.item.dataset.state = "receiving";
    this.text = document.createElement("span");
    this.item.append(this.text);
    ui.receivedList.append(this.item);
    ui.nothingReceived.hidden = true;
  }

  say(text) {
    this.text.textContent = text;
  }

  async open(directory, receiver) {
    if (directory !== null) {
      this.route = "directory";
      this.directory = directory.name;
      this.sink = new DirectorySink(directory);
      this.say(`${this.count} files from ${this.peer}: writing into the folder ${directory.name}…`);
    } else {
      const output = await startStreamedDownload(this.filename, {
        onCancel: (reason) => receiver.abort(reason),
        onFallback: () => {
          this.route = "zip";
          this.say(`${this.count} files from ${this.peer}: the browser did not start the `
            + "download, so the zip is offered here once complete…");
        },
      });
      this.route = output === null ? "zip" : "stream";
      this.sink = new ZipSink(output ?? new BlobOutput());
      this.say(output === null
        ? `${this.count} files from ${this.peer}: the zip is offered here once complete…`
        : `${this.count} files from ${this.peer}: downloading ${this.filename} as they arrive…`);
    }
    this.item.dataset.route = this.route;
    return this.sink;
  }

  finished(result) {
    if (result === undefined) {
      this.failed(`the files from ${this.peer} were declined`);
      return;
    }
    this.item.dataset.state = "done";
    if (result instanceof Blob) {
      this.item.dataset.route = "zip";
      this.say(`${this.count} files from ${this.peer}, all verified: `);
      const link = downloadLink(result, this.filename, `Download all ${this.count} files (zip)`);
      link.dataset.testid = "download-folder";
      this.item.append(link);
    } else if (this.route === "directory") {
      const renamed = this.sink.renamed.length;
      this.say(`${this.count} files from ${this.peer}, all verified, written into the folder `
        + `${this.directory}` + (renamed ? ` (${renamed} under a numbered name: the name was taken)` : ""));
    } else {
      this.say(`${this.count} files from ${this.peer}, all verified, in the download `
        + `${this.filename}`);
    }
  }

  failed(reason) {
    if (this.item.dataset.state !== "receiving") return;
    this.item.dataset.state = "failed";
    this.item.dataset.kind = "error";
    if (this.route === "directory") {
      this.say(`${reason}. The files already verified stay in the folder ${this.directory}.`);
    } else if (this.route === "stream") {
      this.say(`${reason}. The download ${this.filename} is incomplete: the browser marks it `
        + "failed.");
    } else {
      this.say(`${reason}. No zip is offered: it would be incomplete.`);
    }
  }
}

// ---------------------------------------------------------------- relayed messages

/** The sessions a relayed `leave` ends: without `session`, every one with that peer. */
function sessionsFor(message) {
  const peer = message.name;
  if (typeof message.session === "string") {
    const session = state.sessions.get(sessionKey(peer, message.session));
    return session === undefined ? [] : [session];
  }
  return [...state.sessions.values()].filter((session) => session.peer === peer);
}

async function onRemoteAnswer(message) {
  const session = state.sessions.get(sessionKey(message.name, sessionOf(message)));
  if (session === undefined || session.role !== "offerer") {
    return;
  }
  if (!isDescription(message.answer, "answer")) {
    session.fail(`${message.name} sent a malformed answer`);
    return;
  }
  try {
    await session.acceptAnswer(message.answer);
  } catch (error) {
    session.fail(`cannot use the answer of ${message.name}: ${error.message}`);
  }
}

function onRemoteCandidate(message) {
  const session = state.sessions.get(sessionKey(message.name, sessionOf(message)));
  if (session !== undefined) {
    session.addRemoteCandidate(message.candidate);
  }
}

function onRemoteLeave(message) {
  for (const session of sessionsFor(message)) {
    session.close(CloseReason.PEER_LEFT);
  }
}

function onServerError(text) {
  // A relay to a user who went offline comes back as an error naming them.
  const outgoing = state.outgoing;
  if (outgoing !== null && !outgoing.session.connected && text.includes(outgoing.peer)) {
    outgoing.session.close(CloseReason.PEER_OFFLINE);
    return;
  }
  log(`server: ${text}`, "error");
}

// ---------------------------------------------------------------- start-up

/** Show the room this page logs in to (from its URL), or nothing for the default room. */
function showRoom() {
  const room = roomFromLocation();
  ui.room.textContent = room === null ? "" : `room: ${room}`;
  ui.room.hidden = room === null;
}

function start() {
  ui.loginName.value = rememberedName();
  ui.loginToken.value = pageToken() ?? "";
  showRoom();
  window.addEventListener("hashchange", () => {
    if (state.signaling === null) {
      showRoom();
    }
  });
  ui.loginForm.addEventListener("submit", login);
  ui.logoutButton.addEventListener("click", logout);
  ui.fileInput.addEventListener("change", () => chooseFiles(filesFromInput(ui.fileInput)));
  ui.folderInput.addEventListener("change", () => chooseFiles(filesFromInput(ui.folderInput)));
  if (!("webkitdirectory" in ui.folderInput)) {
    ui.folderLabel.hidden = true;
  }
  ui.sendButton.addEventListener("click", send);
  ui.sendTextButton.addEventListener("click", sendTypedText);
  ui.clearButton.addEventListener("click", () => {
    state.chosen = [];
    renderChosen();
  });
  ui.cancelButton.addEventListener("click", cancelSend);
  ui.dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    ui.dropZone.classList.add("dragging");
  });
  ui.dropZone.addEventListener("dragleave", () => ui.dropZone.classList.remove("dragging"));
  ui.dropZone.addEventListener("drop", async (event) => {
    event.preventDefault();
    ui.dropZone.classList.remove("dragging");
    try {
      chooseFiles(await filesFromDrop(event.dataTransfer));
    } catch (error) {
      setStatus(`cannot read the dropped files: ${error.message}`, "error");
    }
  });
  if (typeof RTCPeerConnection === "undefined") {
    setStatus("this browser has no WebRTC data channels: rtcxfer cannot work here", "error");
    ui.loginButton.disabled = true;
  }
  // Ready once the lasting certificate is loaded (or known to be unavailable) and the
  // worker of streamed downloads is registered (or known to be unavailable). A browser
  // whose storage or key generation stalls (a loaded machine, a locked profile) gets a
  // ready page after CERTIFICATE_WAIT_MS all the same: sessions opened before the
  // certificate arrives use a fresh one, later sessions the lasting one.
  const certificate = pageCertificate().then(useCertificate);
  Promise.all([
    Promise.race([certificate, new Promise((resolve) => {
      setTimeout(resolve, CERTIFICATE_WAIT_MS);
    })]),
    registerDownloadWorker().then((streamed) => {
      document.body.dataset.downloads = streamed ? "stream" : "blob";
    }),
  ]).finally(() => {
    document.body.dataset.ready = "true";
  });
}

start();
