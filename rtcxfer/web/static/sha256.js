// Incremental SHA-256 (FIPS 180-4).
//
// crypto.subtle.digest() only hashes one buffer at once, which would force the
// page to hold a whole file in memory; received and sent files are hashed here
// block by block as they stream instead. Tested against crypto.subtle in the
// browser tests.

const ROUND_CONSTANTS = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const INITIAL_STATE = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

const BLOCK_BYTES = 64;

export class Sha256 {
  constructor() {
    this.state = new Uint32Array(INITIAL_STATE);
    this.schedule = new Uint32Array(64);
    // Bytes of an incomplete block carried over to the next update().
    this.pending = new Uint8Array(BLOCK_BYTES);
    this.pendingLength = 0;
    this.byteCount = 0;
    this.finished = false;
  }

  /** Feed more bytes (an ArrayBuffer, a typed array or a DataView). */
  update(data) {
    if (this.finished) {
      throw new Error("Sha256.update() after digest()");
    }
    const bytes = toBytes(data);
    this.byteCount += bytes.length;
    let position = 0;
    if (this.pendingLength > 0) {
      const take = Math.min(BLOCK_BYTES - this.pendingLength, bytes.length);
      this.pending.set(bytes.subarray(0, take), this.pendingLength);
      this.pendingLength += take;
      position = take;
      if (this.pendingLength < BLOCK_BYTES) {
        return this;
      }
      this.compress(new DataView(this.pending.buffer), 0);
      this.pendingLength = 0;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    while (position + BLOCK_BYTES <= bytes.length) {
      this.compress(view, position);
      position += BLOCK_BYTES;
    }
    if (position < bytes.length) {
      this.pending.set(bytes.subarray(position), 0);
      this.pendingLength = bytes.length - position;
    }
    return this;
  }

  /** Finish and return the 32-byte digest; the hasher cannot be fed afterwards. */
  digest() {
    if (this.finished) {
      throw new Error("Sha256.digest() called twice");
    }
    const bitCount = this.byteCount * 8;
    // Pad with 0x80 and zeros to 56 mod 64, leaving 8 bytes for the bit count.
    const paddingLength = (this.pendingLength < 56 ? 56 : 120) - this.pendingLength;
    const trailer = new Uint8Array(paddingLength + 8);
    trailer[0] = 0x80;
    const trailerView = new DataView(trailer.buffer);
    // Bit counts beyond 2^32 do not fit a 32-bit integer: split by division.
    trailerView.setUint32(paddingLength, Math.floor(bitCount / 0x100000000));
    trailerView.setUint32(paddingLength + 4, bitCount >>> 0);
    const byteCount = this.byteCount;
    this.update(trailer);
    this.byteCount = byteCount;
    this.finished = true;
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) {
      outView.setUint32(i * 4, this.state[i]);
    }
    return out;
  }

  /** Finish and return the digest as lower-case hex, the form rtcxfer/1 puts in `eof`. */
  hexDigest() {
    return toHex(this.digest());
  }

  compress(view, offset) {
    const w = this.schedule;
    for (let i = 0; i < 16; i++) {
      w[i] = view.getUint32(offset + i * 4);
    }
    for (let i = 16; i < 64; i++) {
      const w15 = w[i - 15];
      const w2 = w[i - 2];
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    const state = this.state;
    let a = state[0];
    let b = state[1];
    let c = state[2];
    let d = state[3];
    let e = state[4];
    let f = state[5];
    let g = state[6];
    let h = state[7];
    for (let i = 0; i < 64; i++) {
      const sigma1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const choose = (e & f) ^ (~e & g);
      const t1 = (h + sigma1 + choose + ROUND_CONSTANTS[i] + w[i]) | 0;
      const sigma0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const majority = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (sigma0 + majority) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

export function toHex(bytes) {
  let hex = "";
  for (const byte of bytes) {
    hex += byte.toString(16).padStart(2, "0");
  }
  return hex;
}

function toBytes(data) {
  if (data instanceof Uint8Array) {
    return data;
  }
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new TypeError("Sha256.update() takes an ArrayBuffer or a typed array");
}
