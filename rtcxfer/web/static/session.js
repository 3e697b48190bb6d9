// One RTCPeerConnection per (peer, session), negotiated over the signaling client.
//
// The sender is the offerer and creates the single `rtcxfer/1` data channel
// (reliable, ordered); the receiver answers and gets the channel from
// `datachannel`. Candidates are trickled as `candidate` messages and closed
// with `null`; remote candidates that arrive before the remote description are
// queued (docs/protocol.md, "Candidates").

import { EndReason, Negotiation } from "./negotiation.js";
import { verificationCode } from "./verify.js";

export const CHANNEL_LABEL = "rtcxfer/1";
const CONNECT_TIMEOUT_MS = 30000;
// The same rule as rtcxfer/peer/negotiation.py: ICE has failed when no candidate
// pair answered within this long of the last thing that could create a pair (both
// descriptions crossed, a remote candidate arrived).
const ICE_CHECK_MS = 10000;
// The offer/answer waits this long for ICE gathering so its SDP carries the
// host candidates too (peers that do not trickle still connect); on loopback
// and LAN, gathering finishes well before this.
const GATHERING_GRACE_MS = 1500;

/** Why a session ended, as far as the UI needs to tell the user. */
export const CloseReason = Object.freeze({
  LOCAL: "local",
  CANCELLED: "cancelled",
  PEER_LEFT: "peer-left",
  PEER_OFFLINE: "peer-offline",
  // The peer left while ICE was still checking: it found no path either.
  NO_ICE_PATH: "no-ice-path",
});

export class ConnectionFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "ConnectionFailed";
  }
}

const now = () => performance.now() / 1000;

export function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The URLs of an iceServers list, in order. */
export function iceServerUrls(iceServers) {
  const urls = [];
  for (const server of iceServers ?? []) {
    const listed = typeof server?.urls === "string" ? [server.urls] : server?.urls;
    if (Array.isArray(listed)) {
      urls.push(...listed.filter((url) => typeof url === "string"));
    }
  }
  return urls;
}

/** What a person reads when ICE found no path (docs/peer.md): what was tried, what to do. */
export function noIcePathMessage(peer, iceServers, detail = "") {
  const urls = iceServerUrls(iceServers);
  const tried = urls.length > 0 ? urls.join(", ") : "no STUN or TURN server";
  const why = detail ? ` (${detail})` : "";
  if (!urls.some((url) => url.startsWith("turn"))) {
    return `could not reach ${peer} directly${why}; ICE servers tried: ${tried}; ` +
      "a TURN server relays between networks that cannot reach each other: " +
      "use a signaling server started with --turn (docs/deploy.md)";
  }
  return `could not reach ${peer}${why}, not even through TURN; ICE servers tried: ` +
    `${tried}; check that the TURN server is reachable from both networks`;
}

function turnHostPort(url) {
  let rest = url.slice(url.indexOf(":") + 1).split("?")[0];
  if (rest.startsWith("[")) {
    return rest.includes("]:") ? rest : `${rest}:3478`;
  }
  if (!rest.includes(":")) {
    rest += url.startsWith("turns:") ? ":5349" : ":3478";
  }
  return rest;
}

/** The path in the words and fields of rtcxfer's `path` event (docs/peer.md). */
export function describePath(path) {
  if (path.kind === "relayed") {
    const transport = path.relay.startsWith("turns:") ? "tls" : path.protocol;
    return `relayed via TURN ${turnHostPort(path.relay)} (${transport})`;
  }
  if (path.local_type === "host" && path.remote_type === "host") {
    return "direct (LAN)";
  }
  return "direct through NAT";
}

/** The selected candidate pair of `pc` as a path; null if the browser does not say. */
export async function selectedPath(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((report) => {
    if (report.type === "transport" && report.selectedCandidatePairId) {
      pair = stats.get(report.selectedCandidatePairId) ?? pair;
    }
  });
  if (pair === null) {
    stats.forEach((report) => {
      if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        pair = pair ?? report;
      }
    });
  }
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  if (!local || !remote) {
    return null;
  }
  const known = (type) => (["host", "srflx", "prflx", "relay"].includes(type) ? type : "host");
  const path = {
    kind: "direct",
    local_type: known(local.candidateType),
    remote_type: known(remote.candidateType),
    protocol: local.protocol === "tcp" ? "tcp" : "udp",
    relay: null,
  };
  if (path.local_type === "relay") {
    path.kind = "relayed";
    path.protocol = local.relayProtocol === "udp" ? "udp" : "tcp";
    const host = local.address ?? local.ip;
    path.relay = typeof local.url === "string" ? local.url : `turn:${host}:${local.port}`;
  } else if (path.remote_type === "relay") {
    path.kind = "relayed";
    path.protocol = "udp";
    const host = remote.address ?? remote.ip;
    path.relay = `turn:${host.includes(":") ? `[${host}]` : host}:${remote.port}`;
  }
  return path;
}

export function sessionKey(peer, session) {
  return JSON.stringify([peer, session]);
}

// The page's lasting certificate (identity.js), used by every connection once set.
let lastingCertificate = null;

export function useCertificate(certificate) {
  lastingCertificate = certificate;
}

export class PeerSession {
  /**
   * Follows the pure Negotiation machine (negotiation.js): every event goes to
   * the machine, and its actions are carried out here, one after another.
   *
   * @param {import("./signaling.js").SignalingClient} signaling
   * @param {string} peer      the other user's name
   * @param {string} session   the session id ("" for clients without sessions)
   * @param {"offerer"|"answerer"} role
   * @param {{iceServers?: object[], relayOnly?: boolean}|object[]} options
   */
  constructor(signaling, peer, session, role, options = {}) {
    const { iceServers = [], relayOnly = false } = Array.isArray(options)
      ? { iceServers: options }
      : options;
    this.signaling = signaling;
    this.peer = peer;
    this.session = session;
    this.role = role;
    this.key = sessionKey(peer, session);
    this.iceServers = iceServers;
    this.machine = new Negotiation(role, now(), CONNECT_TIMEOUT_MS / 1000, ICE_CHECK_MS / 1000);
    this.closed = false;
    // Set by the app once the transfer ended and the connection only winds down.
    this.finishing = false;
    this.closeReason = null;
    this.connected = false; // the data channel is open
    this.path = null;
    this.onPath = null;
    this.pathRequested = false;
    this.timer = null;
    // Actions run one after another, in the order their events arrived.
    this.work = Promise.resolve();
    // Local candidates wait here until the offer/answer itself went out, so
    // the other side knows the session before its first candidate arrives.
    this.queuedLocalCandidates = [];
    this.descriptionSent = false;
    // The SDP texts exactly as they crossed the signaling server: the browser
    // re-serialises pc.remoteDescription (and drops fingerprints from it), so
    // the verification code is computed from these instead.
    this.offerSdp = null;
    this.answerSdp = null;
    this.pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: relayOnly ? "relay" : "all",
      ...(lastingCertificate ? { certificates: [lastingCertificate] } : {}),
    });
    this.pc.addEventListener("icecandidate", (event) => this.onLocalCandidate(event.candidate));

    let openChannel;
    let failChannel;
    this.channel = new Promise((resolve, reject) => {
      openChannel = resolve;
      failChannel = reject;
    });
    // A failure before anyone awaits the channel must not surface as unhandled.
    this.channel.catch(() => {});
    this.openChannel = openChannel;
    this.failChannel = failChannel;

    this.pc.addEventListener("iceconnectionstatechange", () => {
      const ice = this.pc.iceConnectionState;
      if (ice === "failed") {
        this.run(this.machine.iceState("failed"));
      } else if (ice === "connected" || ice === "completed") {
        this.machine.checksSucceeded();
        this.schedule();
      }
    });
    this.pc.addEventListener("connectionstatechange", () => {
      const connection = this.pc.connectionState;
      if (connection !== "closed" || !this.closed) {
        this.run(this.machine.iceState(connection));
      }
    });
    if (role === "answerer") {
      this.pc.addEventListener("datachannel", (event) => {
        if (event.channel.label === CHANNEL_LABEL) {
          this.watchChannel(event.channel);
        }
      });
    }
    this.schedule();
  }

  /** Sender side: create the channel, send the offer; resolves once the offer went out. */
  async start() {
    const channel = this.pc.createDataChannel(CHANNEL_LABEL, { ordered: true });
    this.watchChannel(channel);
    await this.run(this.machine.start());
  }

  /** Receiver side: apply a relayed offer and answer it. */
  async answer(offer) {
    await this.run(this.machine.descriptionReceived("offer", offer));
  }

  /** Sender side: apply the relayed answer. */
  async acceptAnswer(answer) {
    await this.run(this.machine.descriptionReceived("answer", answer));
  }

  async addRemoteCandidate(candidate) {
    await this.run(this.machine.candidateReceived(candidate, now()));
  }

  /** Queue the machine's actions behind those of earlier events; resolves when they ran. */
  run(actions) {
    this.work = this.work.then(() => this.perform(actions));
    this.schedule();
    return this.work;
  }

  async perform(actions) {
    const queue = [...actions];
    while (queue.length > 0) {
      const action = queue.shift();
      try {
        queue.unshift(...await this.carryOut(action));
      } catch (error) {
        queue.unshift(...this.machine.failed(error?.message ?? String(error)));
      }
    }
    this.schedule();
  }

  /** One action; returns the actions the machine answers with. */
  async carryOut(action) {
    switch (action.type) {
      case "make-description": {
        if (this.closed) {
          return [];
        }
        const description = action.kind === "offer"
          ? await this.pc.createOffer()
          : await this.pc.createAnswer();
        await this.pc.setLocalDescription(description);
        await this.gatheringSettled();
        this.sendDescription(action.kind);
        return this.machine.localDescriptionSent(now());
      }
      case "apply-remote-description":
        if (action.kind === "offer") {
          this.offerSdp = action.sdp;
        } else {
          this.answerSdp = action.sdp;
        }
        await this.pc.setRemoteDescription({ type: action.kind, sdp: action.sdp });
        return this.machine.remoteDescriptionApplied(now());
      case "add-remote-candidate":
        await this.applyRemoteCandidate(action.init);
        return [];
      case "connected":
        this.reportPath();
        return [];
      case "end":
        this.onEnd(action);
        return [];
      default:
        return [];
    }
  }

  onEnd({ reason, detail }) {
    const peer = this.peer;
    switch (reason) {
      case EndReason.NO_ICE_PATH:
        this.fail(noIcePathMessage(peer, this.iceServers, detail.replace("the peer", peer)));
        break;
      case EndReason.CONNECTION_LOST:
        this.fail(`lost the connection to ${peer}`);
        break;
      case EndReason.CONNECTION_CLOSED:
        this.fail(`the connection to ${peer} closed`);
        break;
      case EndReason.MALFORMED:
        this.fail(`${peer} sent ${detail}`);
        break;
      case EndReason.NEGOTIATION_FAILED:
        this.fail(`negotiation with ${peer} failed: ${detail}`);
        break;
      case EndReason.PEER_LEFT:
        this.fail(`${peer} left`);
        break;
      default:
        this.fail(`the connection to ${peer} was closed`);
    }
  }

  /** Wake the machine when its deadline comes (connect timeout, ICE check deadline). */
  schedule() {
    clearTimeout(this.timer);
    const deadline = this.machine.deadline();
    if (deadline === null) {
      return;
    }
    this.timer = setTimeout(() => {
      this.run(this.machine.tick(now()));
    }, Math.max(0, (deadline - now()) * 1000) + 5);
  }

  async applyRemoteCandidate(candidate) {
    if (this.closed) {
      return;
    }
    const endOfCandidates =
      candidate === null || typeof candidate !== "object" || !candidate.candidate;
    try {
      if (endOfCandidates) {
        await this.pc.addIceCandidate();
      } else {
        await this.pc.addIceCandidate(candidate);
      }
    } catch {
      // Duplicates (aiortc also lists its candidates in the SDP), candidates of
      // an address family this browser cannot use, and a second
      // end-of-candidates are all harmless: the rest of the list still applies.
    }
  }

  async reportPath() {
    if (this.pathRequested) {
      return;
    }
    this.pathRequested = true;
    try {
      this.path = await selectedPath(this.pc);
    } catch {
      this.path = null;
    }
    if (this.path !== null && typeof this.onPath === "function") {
      this.onPath(this.path);
    }
  }

  gatheringSettled() {
    if (this.pc.iceGatheringState === "complete") {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, GATHERING_GRACE_MS);
      const pc = this.pc;
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", onChange);
        resolve();
      }
      function onChange() {
        if (pc.iceGatheringState === "complete") {
          done();
        }
      }
      pc.addEventListener("icegatheringstatechange", onChange);
    });
  }

  sendDescription(kind) {
    if (this.closed) {
      return;
    }
    const { type, sdp } = this.pc.localDescription;
    if (kind === "offer") {
      this.offerSdp = sdp;
    } else {
      this.answerSdp = sdp;
    }
    this.signaling.relay(kind, this.peer, this.session, { type, sdp });
    this.descriptionSent = true;
    for (const candidate of this.queuedLocalCandidates) {
      this.signaling.relay("candidate", this.peer, this.session, candidate);
    }
    this.queuedLocalCandidates = [];
  }

  onLocalCandidate(candidate) {
    if (this.closed) {
      return;
    }
    // A null candidate (or an empty one) is end-of-candidates: relayed as null.
    const payload = candidate && candidate.candidate ? candidate.toJSON() : null;
    if (this.descriptionSent) {
      this.signaling.relay("candidate", this.peer, this.session, payload);
    } else {
      this.queuedLocalCandidates.push(payload);
    }
  }

  watchChannel(channel) {
    channel.binaryType = "arraybuffer";
    channel.addEventListener("open", () => {
      this.connected = true;
      this.run(this.machine.iceState("connected"));
      this.openChannel(channel);
    });
    channel.addEventListener("close", () => {
      this.fail(`the data channel to ${this.peer} closed before it opened`);
    });
  }

  /** The verification code of this connection; valid once offer and answer crossed. */
  verificationCode() {
    return verificationCode(this.offerSdp, this.answerSdp);
  }

  fail(message) {
    clearTimeout(this.timer);
    this.failChannel(new ConnectionFailed(message));
  }

  /**
   * Close the connection once; `reason` is kept in `closeReason` to explain the
   * end to the user. The peer gets a `leave` unless it is gone already.
   */
  close(reason = CloseReason.LOCAL) {
    if (this.closed) {
      return;
    }
    if (reason === CloseReason.PEER_LEFT) {
      // A peer that leaves while ICE is still checking found no path either.
      const [ending] = this.machine.leaveReceived();
      if (ending?.reason === EndReason.NO_ICE_PATH) {
        reason = CloseReason.NO_ICE_PATH;
        this.onEnd(ending);
      }
    }
    this.machine.end(EndReason.CLOSED);
    this.closed = true;
    this.closeReason = reason;
    this.fail(`the connection to ${this.peer} was closed`);
    if (reason === CloseReason.LOCAL || reason === CloseReason.CANCELLED) {
      this.signaling.relay("leave", this.peer, this.session);
    }
    this.pc.close();
  }
}
