// SPAKE2 exactly as python-spake2 0.9 (the CLI's `spake2` package) computes it,
// on the Ed25519 group of the vendored @noble/ed25519, with @noble/hashes for
// SHA-256 and HKDF. docs/protocol.md ("Code mode") names the parameters.
//
// Side A blinds with M and unblinds with N, side B the reverse; a message is the
// side byte ("A"/"B") followed by the 32-byte point. The key is
// SHA-256(SHA-256(pw) | SHA-256(idA) | SHA-256(idB) | X | Y | K) with X side A's
// point, Y side B's, K the shared point.

import { Point } from "./vendor/noble-ed25519/index.js";
import { hkdf } from "./vendor/noble-hashes/hkdf.js";
import { sha256 } from "./vendor/noble-hashes/sha2.js";

// python-spake2's arbitrary_element(b"M") and arbitrary_element(b"N").
const M = Point.fromHex("15cfd18e385952982b6a8f8c7854963b58e34388c8e6dae891db756481a02312");
const N = Point.fromHex("f04f2e7eb734b2a8f8b472eaf9c3c632576ac64aea650b496a8a20ff00e583c3");
const L = Point.CURVE().n;
const G = Point.BASE;
const SIDE = { A: 0x41, B: 0x42 };
const encoder = new TextEncoder();

export class SpakeError extends Error {}

function bigEndian(bytes) {
  let value = 0n;
  for (const byte of bytes) {
    value = (value << 8n) | BigInt(byte);
  }
  return value;
}

function passwordScalar(password) {
  // groups.password_to_scalar: HKDF-SHA256(ikm=pw, salt="", info="SPAKE2 pw", 48 bytes) mod L.
  return bigEndian(hkdf(sha256, password, new Uint8Array(0), encoder.encode("SPAKE2 pw"), 48)) % L;
}

function randomScalar() {
  for (;;) {
    const scalar = bigEndian(crypto.getRandomValues(new Uint8Array(64))) % L;
    if (scalar !== 0n) {
      return scalar;
    }
  }
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

export class Spake2 {
  /** side "A" (the sender in rtcxfer's code mode) or "B" (the receiver). */
  constructor(side, password, idA, idB) {
    this.side = side;
    this.password = encoder.encode(password);
    this.idA = encoder.encode(idA);
    this.idB = encoder.encode(idB);
    this.pw = passwordScalar(this.password);
    this.started = false;
    this.finished = false;
  }

  /** Our message: side byte + 32-byte point. */
  start() {
    if (this.started) {
      throw new SpakeError("start() may only be called once");
    }
    this.started = true;
    this.xy = randomScalar();
    const blinding = this.side === "A" ? M : N;
    this.outbound = G.multiply(this.xy).add(blinding.multiply(this.pw)).toBytes();
    return concat(Uint8Array.of(SIDE[this.side]), this.outbound);
  }

  /** The 32-byte key from the other side's message; SpakeError if it is not usable. */
  finish(message) {
    if (!this.started || this.finished) {
      throw new SpakeError("finish() needs one start() and may only be called once");
    }
    this.finished = true;
    const otherSide = this.side === "A" ? SIDE.B : SIDE.A;
    if (!(message instanceof Uint8Array) || message.length !== 33 || message[0] !== otherSide) {
      throw new SpakeError("not a SPAKE2 message from the other side");
    }
    const inbound = message.slice(1);
    let element;
    try {
      element = Point.fromBytes(inbound);
    } catch {
      throw new SpakeError("not a point");
    }
    if (element.is0() || !element.isTorsionFree()) {
      throw new SpakeError("not an element of the prime-order group");
    }
    if (sameBytes(element.toBytes(), this.outbound)) {
      throw new SpakeError("our own message reflected");
    }
    const unblinding = this.side === "A" ? N : M;
    const shared = element.add(unblinding.multiply(L - this.pw)).multiply(this.xy);
    const [x, y] = this.side === "A" ? [this.outbound, inbound] : [inbound, this.outbound];
    return sha256(concat(sha256(this.password), sha256(this.idA), sha256(this.idB), x, y,
      shared.toBytes()));
  }
}
