import { Spake2 } from "../../rtcxfer/web/static/spake2.js";
import { readFileSync } from "node:fs";
// Usage: node spake2_interop.mjs SIDE PASSWORD < other side's message (hex)
// Prints our message (hex), then the key (hex).
const [side, pw] = process.argv.slice(2);
const s = new Spake2(side, pw, "rtcxfer-code/1 sender", "rtcxfer-code/1 receiver");
const mine = Buffer.from(s.start()).toString("hex");
console.log(mine);
// read other side's message from stdin
const other = readFileSync(0, "utf8").trim();
console.log(Buffer.from(s.finish(Uint8Array.from(Buffer.from(other, "hex")))).toString("hex"));
