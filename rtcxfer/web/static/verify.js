// The verification code of docs/protocol.md, identical to the CLI's.
//
// Both ends show it so two people can confirm the signaling server did not put
// itself in the middle: it would have to swap the DTLS certificates, which
// changes the fingerprints the code is derived from. The hash is the page's own
// SHA-256 rather than crypto.subtle, which exists only in secure contexts and
// the page may be served over plain http on a LAN address.

import { Sha256 } from "./sha256.js";

const FINGERPRINT_LINE = /^a=fingerprint:sha-256[ \t]+([0-9a-fA-F:]+)[ \t\r]*$/im;

export class FingerprintMissing extends Error {
  constructor(role) {
    super(`the ${role} SDP has no a=fingerprint:sha-256 line`);
    this.name = "FingerprintMissing";
  }
}

/** The first sha-256 fingerprint of an SDP, upper-case hex with ':' separators. */
export function sha256Fingerprint(sdp, role = "remote") {
  const match = FINGERPRINT_LINE.exec(sdp);
  if (match === null) {
    throw new FingerprintMissing(role);
  }
  const hex = match[1].replaceAll(":", "").toUpperCase();
  if (hex.length !== 64) {
    throw new FingerprintMissing(role);
  }
  return hex.match(/../g).join(":");
}

/** The code shown to the user, "1234-5678", from the offer and answer SDPs. */
export function verificationCode(offerSdp, answerSdp) {
  const offerFingerprint = sha256Fingerprint(offerSdp, "offer");
  const answerFingerprint = sha256Fingerprint(answerSdp, "answer");
  const material = new TextEncoder().encode(
    `rtcxfer-verify/1|${offerFingerprint}|${answerFingerprint}`,
  );
  const digest = new DataView(new Sha256().update(material).digest().buffer);
  const digits = String(digest.getUint32(0) % 100000000).padStart(8, "0");
  return `${digits.slice(0, 4)}-${digits.slice(4)}`;
}
