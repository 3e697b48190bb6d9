// The negotiation of one peer connection as an explicit, pure state machine:
// the page's copy of rtcxfer/peer/negotiation.py, rule for rule (tests feed
// both the same events and compare the actions, tests/peer/test_negotiation_js.py).
//
// No I/O and no clock: session.js tells it what happened (a relayed message,
// an ICE or connection state, the time) and carries out the actions it returns,
// in order. Times are in seconds on any monotonic clock.
//
//   new --offer sent (offerer)--> have-local --answer applied--> checking --> connected
//   new --offer applied (answerer)--> have-remote --answer sent--> checking --> connected
//   any --leave / failure / close--> ended

export const ICE_CHECK_SECONDS = 10;

export const State = Object.freeze({
  NEW: "new",
  HAVE_LOCAL: "have-local",
  HAVE_REMOTE: "have-remote",
  CHECKING: "checking",
  CONNECTED: "connected",
  ENDED: "ended",
});

export const EndReason = Object.freeze({
  NO_ICE_PATH: "no-ice-path",
  CONNECTION_LOST: "connection-lost",
  CONNECTION_CLOSED: "connection-closed",
  PEER_LEFT: "peer-left",
  MALFORMED: "malformed",
  NEGOTIATION_FAILED: "negotiation-failed",
  SERVER_LOST: "server-lost",
  CLOSED: "closed",
  EXTERNAL: "external",
});

// Actions: plain objects with a `type`.
export const makeDescription = (kind) => ({ type: "make-description", kind });
export const applyRemoteDescription = (kind, sdp) => ({ type: "apply-remote-description", kind, sdp });
export const addRemoteCandidate = (init) => ({ type: "add-remote-candidate", init });
export const connected = () => ({ type: "connected" });
export const end = (reason, detail = "") => ({ type: "end", reason, detail });

const FINGERPRINT = /^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$/m;

/** Why an SDP is unusable for rtcxfer (no data channel, no SHA-256 fingerprint), or null. */
export function sdpProblem(sdp) {
  if (!/^m=application/m.test(sdp)) {
    return "the session description has no data channel (m=application) line";
  }
  const lines = sdp.split(/\r?\n/).filter((line) => FINGERPRINT.test(line));
  const sha256 = lines.map((line) => line.match(FINGERPRINT))
    .find((match) => match[1].toLowerCase() === "sha-256");
  if (sha256 === undefined) {
    return "the session description has no SHA-256 DTLS fingerprint";
  }
  if (sha256[2].replaceAll(":", "").length !== 64) {
    return "the SHA-256 fingerprint does not have 32 bytes";
  }
  return null;
}

export class Negotiation {
  constructor(role, started, connectTimeout, iceCheckSeconds = ICE_CHECK_SECONDS) {
    this.role = role; // "offerer" | "answerer"
    this.started = started;
    this.connectTimeout = connectTimeout;
    this.iceCheckSeconds = iceCheckSeconds;
    this.state = State.NEW;
    this.ended = null;
    this.queued = [];
    this.remoteApplied = false;
    this.activity = null; // last time something could create a pair
  }

  start() {
    if (this.state !== State.NEW || this.role !== "offerer") {
      return [];
    }
    this.state = State.HAVE_LOCAL;
    return [makeDescription("offer")];
  }

  descriptionReceived(kind, payload) {
    const expected = this.role === "answerer" ? "offer" : "answer";
    if (this.state === State.ENDED || kind !== expected) {
      return [];
    }
    if (this.remoteApplied || ![State.NEW, State.HAVE_LOCAL].includes(this.state)) {
      return [];
    }
    if (this.role === "offerer" && this.state !== State.HAVE_LOCAL) {
      return [];
    }
    if (payload === null || typeof payload !== "object" || payload.type !== kind ||
        typeof payload.sdp !== "string") {
      return this.finish(EndReason.MALFORMED, `a malformed ${kind}`);
    }
    const problem = sdpProblem(payload.sdp);
    if (problem !== null) {
      return this.finish(EndReason.MALFORMED, `an unusable ${kind}: ${problem}`);
    }
    this.remoteApplied = true;
    if (this.role === "answerer") {
      this.state = State.HAVE_REMOTE;
    }
    return [applyRemoteDescription(kind, payload.sdp)];
  }

  remoteDescriptionApplied(now) {
    if (this.state === State.ENDED) {
      return [];
    }
    const actions = this.queued.map((init) => addRemoteCandidate(init));
    this.queued = [];
    if (this.role === "answerer") {
      actions.push(makeDescription("answer"));
    } else {
      this.checking(now);
    }
    return actions;
  }

  localDescriptionSent(now) {
    if (this.state === State.HAVE_REMOTE) {
      this.checking(now);
    }
    return [];
  }

  candidateReceived(init, now) {
    if (this.state === State.ENDED) {
      return [];
    }
    if (!this.remoteApplied) {
      this.queued.push(init);
      return [];
    }
    if (this.activity !== null) {
      this.activity = now;
    }
    return [addRemoteCandidate(init)];
  }

  iceState(state) {
    if (this.state === State.ENDED) {
      return [];
    }
    if (state === "connected" || state === "completed") {
      if (this.state === State.CONNECTED) {
        return [];
      }
      this.state = State.CONNECTED;
      return [connected()];
    }
    if (state === "failed") {
      return this.state === State.CONNECTED
        ? this.finish(EndReason.CONNECTION_LOST)
        : this.finish(EndReason.NO_ICE_PATH, "ICE failed");
    }
    if (state === "closed") {
      return this.finish(EndReason.CONNECTION_CLOSED);
    }
    return [];
  }

  checksSucceeded() {
    this.activity = null;
  }

  leaveReceived() {
    if (this.state === State.CHECKING && this.activity !== null) {
      return this.finish(EndReason.NO_ICE_PATH, "the peer gave up while ICE was checking");
    }
    return this.finish(EndReason.PEER_LEFT);
  }

  signalingLost() {
    if ([State.NEW, State.HAVE_LOCAL, State.HAVE_REMOTE].includes(this.state)) {
      return this.finish(EndReason.SERVER_LOST);
    }
    return [];
  }

  failed(detail) {
    return this.finish(EndReason.NEGOTIATION_FAILED, detail);
  }

  end(reason, detail = "") {
    return this.finish(reason, detail);
  }

  deadline() {
    if (this.state === State.CONNECTED || this.state === State.ENDED) {
      return null;
    }
    const overall = this.started + this.connectTimeout;
    return this.activity === null
      ? overall
      : Math.min(overall, this.activity + this.iceCheckSeconds);
  }

  tick(now) {
    const deadline = this.deadline();
    if (deadline === null || now < deadline) {
      return [];
    }
    if (this.activity !== null && now >= this.activity + this.iceCheckSeconds) {
      return this.finish(EndReason.NO_ICE_PATH,
        `no candidate pair answered within ${this.iceCheckSeconds} s`);
    }
    return this.finish(EndReason.NO_ICE_PATH, `not connected within ${this.connectTimeout} s`);
  }

  checking(now) {
    this.state = State.CHECKING;
    this.activity = now;
  }

  finish(reason, detail = "") {
    if (this.state === State.ENDED) {
      return [];
    }
    this.state = State.ENDED;
    this.ended = end(reason, detail);
    return [this.ended];
  }
}
