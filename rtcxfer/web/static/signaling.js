// WebSocket client of the signaling protocol (PROTOCOL.md section 1).
//
// One object per page: it logs in once, keeps the online-user list current from
// `userlist` / `updata`, and hands relayed offer / answer / candidate / leave
// messages to whoever listens. Events (CustomEvent, payload in `detail`):
//   users      the full, sorted list of online names after any change
//   offer, answer, candidate, leave   a relayed message, as received
//   server-error   an `error` message from the server
//   closed     the WebSocket closed after login (detail: a message for the user)

export class SignalingUnreachable extends Error {
  constructor(url) {
    super(`cannot reach the signaling server at ${url}`);
    this.name = "SignalingUnreachable";
  }
}

export class LoginRefused extends Error {
  constructor(name, serverMessage) {
    super(
      serverMessage
        ? `the server refused the name "${name}": ${serverMessage}`
        : `the name "${name}" is taken: choose another one`,
    );
    this.name = "LoginRefused";
  }
}

const RELAYED_TYPES = new Set(["offer", "answer", "candidate", "leave"]);
const LOGIN_TIMEOUT_MS = 15000;

/** ws:// or wss:// URL of the signaling endpoint on the host that served this page. */
export function defaultSignalingUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/`;
}

/**
 * The room this page is for (docs/protocol.md, ext field `room`), from its URL:
 * `/#room=NAME` or `/r/NAME`; null for the default room.
 */
export function roomFromLocation(location = window.location) {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  let room = hash.get("room");
  if (room === null) {
    const match = /^\/r\/([^/]+)\/?$/.exec(location.pathname);
    if (match !== null) {
      try {
        room = decodeURIComponent(match[1]);
      } catch {
        room = null;
      }
    }
  }
  return room === null || room === "" ? null : room;
}

const TOKEN_STORAGE_KEY = "rtcxfer.token";

/**
 * The server's access token (`rtcxfer serve --token`), if the page has one: taken
 * from the URL fragment (`#token=...`, e.g. from the QR code `serve` prints), then
 * remembered in this browser and removed from the address bar (so it is not shared
 * by copying the address); else the one remembered; else null.
 */
export function pageToken(location = window.location, storage = window.localStorage) {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromUrl = hash.get("token");
  if (fromUrl !== null && fromUrl !== "") {
    rememberToken(fromUrl, storage);
    hash.delete("token");
    const rest = hash.toString();
    if (typeof history !== "undefined" && location === window.location) {
      history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    }
    return fromUrl;
  }
  try {
    return storage.getItem(TOKEN_STORAGE_KEY);
  } catch {
    return null;
  }
}

/** Remember `token` for the next visits (or forget it: null or ""). */
export function rememberToken(token, storage = window.localStorage) {
  try {
    if (token === null || token === "") {
      storage.removeItem(TOKEN_STORAGE_KEY);
    } else {
      storage.setItem(TOKEN_STORAGE_KEY, token);
    }
  } catch {
    // Storage refused (private mode): the token works for this visit only.
  }
}

export class SignalingClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.name = null;
    this.online = new Set();
    this.pendingLogin = null;
    // ext: the login reply's iceServers (docs/protocol.md); [] when it had none.
    this.iceServers = [];
    this.iceServersWaiters = [];
  }

  /** ext `iceservers`: ask for fresh ICE servers (new TURN credentials); resolves either way. */
  refreshIceServers(timeoutMs = 5000) {
    if (this.socket === null || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (ok) => {
        clearTimeout(timer);
        this.iceServersWaiters = this.iceServersWaiters.filter((w) => w !== done);
        resolve(ok);
      };
      this.iceServersWaiters.push(done);
      this.socket.send(JSON.stringify({ type: "iceservers" }));
    });
  }

  /** Connect and claim `name`; resolves with the online names, rejects with a named error. */
  login(name, room = null, token = pageToken()) {
    if (this.socket !== null) {
      return Promise.reject(new Error("this signaling client is already connected"));
    }
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(this.url);
      } catch {
        reject(new SignalingUnreachable(this.url));
        return;
      }
      this.socket = socket;
      const timer = setTimeout(() => {
        this.failLogin(new SignalingUnreachable(this.url));
      }, LOGIN_TIMEOUT_MS);
      this.pendingLogin = { name, resolve, reject, timer, loggedIn: false };
      socket.addEventListener("open", () => {
        const message = { type: "login", name };
        if (room !== null) {
          message.room = room;
        }
        if (token !== null && token !== "") {
          message.token = token;
        }
        socket.send(JSON.stringify(message));
      });
      socket.addEventListener("message", (event) => this.onFrame(event.data));
      socket.addEventListener("close", () => this.onClose());
    });
  }

  failLogin(error) {
    const pending = this.pendingLogin;
    if (pending === null) {
      return;
    }
    this.pendingLogin = null;
    clearTimeout(pending.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.close();
    }
    pending.reject(error);
  }

  onFrame(data) {
    if (typeof data !== "string") {
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      return;
    }
    const pending = this.pendingLogin;
    if (pending !== null) {
      this.onLoginPhaseMessage(pending, message);
      return;
    }
    if (message.type === "updata") {
      this.onUpdata(message);
    } else if (message.type === "userlist") {
      this.setUsers(message.users);
    } else if (message.type === "iceservers") {
      this.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
      for (const done of [...this.iceServersWaiters]) {
        done(true);
      }
    } else if (message.type === "error") {
      this.emit("server-error", String(message.message ?? "unspecified error"));
    } else if (RELAYED_TYPES.has(message.type) && typeof message.name === "string") {
      this.emit(message.type, message);
    }
  }

  onLoginPhaseMessage(pending, message) {
    if (message.type === "login") {
      if (message.success === true) {
        pending.loggedIn = true;
        this.name = pending.name;
        this.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
      } else {
        this.failLogin(new LoginRefused(pending.name, message.message));
      }
    } else if (message.type === "userlist" && pending.loggedIn) {
      this.pendingLogin = null;
      clearTimeout(pending.timer);
      this.setUsers(message.users);
      pending.resolve(this.users());
    } else if (message.type === "error" && !pending.loggedIn) {
      this.failLogin(new LoginRefused(pending.name, String(message.message ?? "")));
    }
  }

  onUpdata(message) {
    if (typeof message.name !== "string") {
      return;
    }
    if (message.action === "login") {
      this.online.add(message.name);
    } else if (message.action === "offline") {
      this.online.delete(message.name);
    } else {
      return;
    }
    this.emit("users", this.users());
  }

  setUsers(users) {
    if (!Array.isArray(users)) {
      return;
    }
    this.online = new Set(users.filter((user) => typeof user === "string"));
    this.emit("users", this.users());
  }

  onClose() {
    if (this.pendingLogin !== null) {
      this.failLogin(new SignalingUnreachable(this.url));
      return;
    }
    if (this.socket === null) {
      return;
    }
    this.socket = null;
    this.online = new Set();
    this.emit("closed", "disconnected from the signaling server");
  }

  users() {
    return [...this.online].sort((a, b) => a.localeCompare(b));
  }

  isOnline(name) {
    return this.online.has(name);
  }

  /** Relay `payload` (offer / answer / candidate field) to `peer`, tagged with `session`. */
  relay(type, peer, session, payload = undefined) {
    const message = { type, name: this.name, othername: peer };
    if (type !== "leave") {
      message[type] = payload;
    }
    if (session !== "") {
      message.session = session;
    }
    this.send(message);
  }

  send(message) {
    if (this.socket === null || this.socket.readyState !== WebSocket.OPEN) {
      return false;
    }
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Log out by closing the WebSocket; the server tells everyone else. */
  close() {
    const socket = this.socket;
    this.socket = null;
    this.online = new Set();
    if (socket !== null) {
      socket.close();
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
