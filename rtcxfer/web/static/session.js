// One RTCPeerConnection per (peer, session), negotiated over the signaling client.
//
// The sender is the offerer and creates the single `rtcxfer/1` data channel
// (reliable, ordered); the receiver answers and gets the channel from
// `datachannel`. Candidates are trickled as `candidate` messages and closed
// with `null`; remote candidates that arrive before the remote description are
// queued (docs/protocol.md, "Candidates").

import { verificationCode } from "./verify.js";

export const CHANNEL_LABEL = "rtcxfer/1";
const CONNECT_TIMEOUT_MS = 30000;
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
});

export class ConnectionFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "ConnectionFailed";
  }
}

export function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
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
   * @param {import("./signaling.js").SignalingClient} signaling
   * @param {string} peer      the other user's name
   * @param {string} session   the session id ("" for clients without sessions)
   * @param {"offerer"|"answerer"} role
   */
  constructor(signaling, peer, session, role, iceServers = []) {
    this.signaling = signaling;
    this.peer = peer;
    this.session = session;
    this.role = role;
    this.key = sessionKey(peer, session);
    this.closed = false;
    // Set by the app once the transfer ended and the connection only winds down.
    this.finishing = false;
    this.closeReason = null;
    this.connected = false;
    this.remoteDescriptionSet = false;
    this.queuedRemoteCandidates = [];
    // Local candidates wait here until the offer/answer itself went out, so
    // the other side knows the session before its first candidate arrives.
    this.queuedLocalCandidates = [];
    this.descriptionSent = false;
    // The SDP texts exactly as they crossed the signaling server: the browser
    // re-serialises pc.remoteDescription (and drops fingerprints from it), so
    // the verification code is computed from these instead.
    this.offerSdp = null;
    this.answerSdp = null;
    this.pc = new RTCPeerConnection(
      lastingCertificate ? { iceServers, certificates: [lastingCertificate] } : { iceServers },
    );
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
    this.connectTimer = setTimeout(() => {
      this.fail(`could not connect to ${peer}: no network path was found in time`);
    }, CONNECT_TIMEOUT_MS);

    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed") {
        this.fail(`the connection to ${peer} failed (no ICE path between the two peers)`);
      }
    });
    if (role === "answerer") {
      this.pc.addEventListener("datachannel", (event) => {
        if (event.channel.label === CHANNEL_LABEL) {
          this.watchChannel(event.channel);
        }
      });
    }
  }

  /** Sender side: create the channel, send the offer; resolves once the offer went out. */
  async start() {
    const channel = this.pc.createDataChannel(CHANNEL_LABEL, { ordered: true });
    this.watchChannel(channel);
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this.gatheringSettled();
    this.sendDescription("offer");
  }

  /** Receiver side: apply a relayed offer and answer it. */
  async answer(offer) {
    this.offerSdp = offer.sdp;
    await this.pc.setRemoteDescription(offer);
    await this.remoteDescriptionApplied();
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await this.gatheringSettled();
    this.sendDescription("answer");
  }

  /** Sender side: apply the relayed answer. */
  async acceptAnswer(answer) {
    if (this.pc.signalingState !== "have-local-offer") {
      return;
    }
    this.answerSdp = answer.sdp;
    await this.pc.setRemoteDescription(answer);
    await this.remoteDescriptionApplied();
  }

  async addRemoteCandidate(candidate) {
    if (!this.remoteDescriptionSet) {
      this.queuedRemoteCandidates.push(candidate);
      return;
    }
    await this.applyRemoteCandidate(candidate);
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

  async remoteDescriptionApplied() {
    this.remoteDescriptionSet = true;
    const queued = this.queuedRemoteCandidates;
    this.queuedRemoteCandidates = [];
    for (const candidate of queued) {
      await this.applyRemoteCandidate(candidate);
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
      clearTimeout(this.connectTimer);
      this.connected = true;
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
    clearTimeout(this.connectTimer);
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
    this.closed = true;
    this.closeReason = reason;
    this.fail(`the connection to ${this.peer} was closed`);
    if (reason === CloseReason.LOCAL || reason === CloseReason.CANCELLED) {
      this.signaling.relay("leave", this.peer, this.session);
    }
    this.pc.close();
  }
}
