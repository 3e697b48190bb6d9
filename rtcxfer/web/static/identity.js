// The page's long-lived DTLS identity: one ECDSA P-256 RTCCertificate kept in
// IndexedDB (an RTCCertificate is structured-cloneable), so the fingerprint a
// CLI peer pins stays the same from one visit to the next (docs/security.md).
// Where IndexedDB is unavailable (private windows in some browsers) the page
// falls back to a certificate per page load, as before.

const DB_NAME = "rtcxfer";
const STORE = "identity";
const KEY = "certificate";
// A year: rtcxfer pins certificates valid 180 days or more (a browser's default is
// 30 days, made per connection), and Chromium caps the validity it grants.
const LIFETIME_MS = 365 * 86400000;
const KEYGEN = { name: "ECDSA", namedCurve: "P-256", expires: LIFETIME_MS };

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function openDb() {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

function usable(certificate) {
  return certificate instanceof RTCCertificate && certificate.expires > Date.now() + 86400000;
}

/** The stored certificate, made (and stored) on first use; null if none can be kept. */
export async function pageCertificate() {
  if (typeof RTCPeerConnection === "undefined" || typeof indexedDB === "undefined") {
    return null;
  }
  try {
    const db = await openDb();
    try {
      const stored = await request(db.transaction(STORE).objectStore(STORE).get(KEY));
      if (usable(stored)) {
        return stored;
      }
      const made = await RTCPeerConnection.generateCertificate(KEYGEN);
      await request(db.transaction(STORE, "readwrite").objectStore(STORE).put(made, KEY));
      return made;
    } finally {
      db.close();
    }
  } catch (error) {
    console.warn(`rtcxfer: no lasting identity (${error})`);
    return null;
  }
}

/** The certificate's SHA-256 fingerprint as rtcxfer writes it: "AB:CD:…". */
export function certificateFingerprint(certificate) {
  const found = certificate.getFingerprints().find((f) => f.algorithm.toLowerCase() === "sha-256");
  return found ? found.value.toUpperCase() : null;
}
