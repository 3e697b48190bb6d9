// Sending a text from the page with rtcxfer/2 (docs/protocol.md, "Text"): one text
// entry, driven by the same SenderMachine2 rules as the CLI (machines2.js).

import { Sha256 } from "./sha256.js";
import { MAX_TEXT_BYTES, ProtocolError, SenderMachine2, parseMessage2 } from "./machines2.js";
import { FRAME_BYTES, PeerDeclined, TransferFailed } from "./transfer.js";

/** Send `text` on an open channel; resolves once the receiver acked it and said done. */
export function sendText(channel, peer, text) {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > MAX_TEXT_BYTES) {
    return Promise.reject(new TransferFailed(
      `the text has ${bytes.length} bytes; at most ${MAX_TEXT_BYTES} fit`));
  }
  const machine = new SenderMachine2(1, bytes.length);
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (error) => {
      if (finished) return;
      finished = true;
      channel.removeEventListener("message", onMessage);
      channel.removeEventListener("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const send = (data) => {
      try {
        channel.send(data);
      } catch {
        execute(machine.channelClosed());
      }
    };
    const execute = (actions) => {
      for (const action of actions) {
        if (action.send) {
          send(JSON.stringify(action.send));
          continue;
        }
        switch (action.action) {
          case "StreamFile": {
            for (let start = 0; start < bytes.length; start += FRAME_BYTES) {
              send(bytes.slice(start, start + FRAME_BYTES));
            }
            const hasher = new Sha256();
            hasher.update(bytes);
            execute(machine.fileSent(0, hasher.hexDigest(), bytes.length));
            break;
          }
          case "Declined":
            finish(new PeerDeclined(peer, action.reason));
            break;
          case "Finished":
            finish(action.failed
              ? new TransferFailed(`${peer} refused the text: ${action.failures[0][1]}`) : null);
            break;
          case "Fail":
            if (action.close_channel) channel.close();
            finish(new TransferFailed(action.reason));
            break;
          default:
            break;
        }
      }
    };
    const onMessage = (event) => {
      if (typeof event.data !== "string") {
        execute(machine.receiveChunk());
        return;
      }
      let message;
      try {
        message = parseMessage2(event.data);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        execute(machine.protocolViolation(error.message));
        return;
      }
      if (machine.state === "awaiting accept" && message.type === "error") {
        finish(new TransferFailed(`${peer} cannot take a text (it speaks only rtcxfer/1?): `
          + message.message));
        return;
      }
      execute(machine.receiveMessage(message));
    };
    const onClose = () => execute(machine.channelClosed());
    channel.addEventListener("message", onMessage);
    channel.addEventListener("close", onClose);
    execute(machine.start([{ name: "text", size: bytes.length, mtime: null, text: true }], false));
  });
}
