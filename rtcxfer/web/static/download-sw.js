// The service worker of streamed downloads (docs/browser.md, "A received folder").
//
// The page registers a download (an id, a file name and a MessagePort), then
// navigates to rtcxfer-download/<id>/<name>: this worker answers that request with
// a ReadableStream fed by the page through the port, marked as an attachment, so
// the browser's own download manager writes it to disk as it arrives. Messages on
// the port, page -> worker: {type: "chunks", chunks: [ArrayBuffer...], end: bool},
// {type: "error", reason}; worker -> page: {type: "registered"}, {type: "started"},
// {type: "pull"} (send what you have), {type: "cancelled"} (the download was
// cancelled in the browser). An error makes the download fail in the browser.
// Nothing here is fetched from the network; unknown ids fall through to the
// server, which answers 204 so that the page stays where it is.

const PREFIX = new URL("rtcxfer-download/", self.registration.scope).pathname;
const registered = new Map();

self.addEventListener("install", (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  const data = event.data;
  // {type: "keepalive"} needs no answer: the message itself keeps this worker running.
  if (data === null || typeof data !== "object" || data.type !== "download") return;
  const port = event.ports[0];
  if (port === undefined || typeof data.id !== "string" || typeof data.filename !== "string") return;
  registered.set(data.id, { port, filename: data.filename, client: event.source?.id ?? null });
  port.postMessage({ type: "registered" });
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(PREFIX)) return;
  const id = url.pathname.slice(PREFIX.length).split("/")[0];
  const download = registered.get(id);
  if (download === undefined) return;
  registered.delete(id);
  event.respondWith(new Response(pageStream(download.port, download.client), {
    headers: {
      "Content-Type": "application/zip",
      "Content-Disposition": contentDisposition(download.filename),
      "X-Content-Type-Options": "nosniff",
      "Cache-Control": "no-store",
    },
  }));
});

/** ``attachment`` with an ASCII fallback name and the exact one (RFC 6266, RFC 8187). */
function contentDisposition(filename) {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\%;]/g, "_");
  const exact = encodeURIComponent(filename).replace(/['()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

// How often the worker checks that the page feeding a download is still open.
const CLIENT_CHECK_MS = 3000;

function pageStream(port, clientId) {
  let controller = null;
  let answered = null; // resolves the pull waiting for the page's answer
  let watch = null;
  const settle = () => {
    const resolve = answered;
    answered = null;
    if (resolve !== null) resolve();
  };
  const fail = (reason) => {
    clearInterval(watch);
    try {
      controller?.error(new Error(reason));
    } catch {
      // Already closed or errored.
    }
    settle();
  };
  // The page went away (closed, reloaded): the download fails instead of waiting
  // forever. MessagePort "close" says so where the browser has it; else the check.
  port.addEventListener("close", () => fail("the page that fed this download closed"));
  if (clientId !== null) {
    watch = setInterval(async () => {
      if ((await self.clients.get(clientId)) === undefined) {
        fail("the page that fed this download closed");
      }
    }, CLIENT_CHECK_MS);
  }
  port.onmessage = (event) => {
    const message = event.data;
    if (controller === null || message === null || typeof message !== "object") return;
    try {
      if (message.type === "chunks") {
        for (const chunk of message.chunks) controller.enqueue(new Uint8Array(chunk));
        if (message.end) {
          clearInterval(watch);
          controller.close();
        }
      } else if (message.type === "error") {
        clearInterval(watch);
        controller.error(new Error(String(message.reason)));
      }
    } catch {
      // The stream was already closed or cancelled: nothing more goes into it.
    }
    settle();
  };
  return new ReadableStream({
    start(streamController) {
      controller = streamController;
      port.postMessage({ type: "started" });
    },
    pull() {
      return new Promise((resolve) => {
        answered = resolve;
        port.postMessage({ type: "pull" });
      });
    },
    cancel() {
      clearInterval(watch);
      port.postMessage({ type: "cancelled" });
      settle();
    },
  });
}
