// A zip written front to back as the files arrive, for a received folder
// (docs/browser.md, "A received folder"). Pure: no DOM, no I/O, so node runs it
// in tests/browser/test_zip_writer.py.
//
// Every entry is stored (not compressed) with a data descriptor (general purpose
// bit 3): its CRC-32 and sizes follow its data, since they are known only at its
// end. ZIP64 records (APPNOTE 6.3.x, sections 4.3.9, 4.3.14-16, 4.5.3) are written
// wherever a size, an offset or the entry count does not fit the classic fields,
// so a folder of any size or number of files makes one valid zip.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (the zip one) of ``bytes`` continued from ``crc`` (0 to start). */
export function crc32(crc, bytes) {
  let c = crc ^ 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
const FLAGS = 0x0808; // bit 3: data descriptor; bit 11: names are UTF-8
const VERSION_ZIP64 = 45;
const VERSION_PLAIN = 20;
const utf8 = new TextEncoder();

function dosDateTime(date) {
  const year = Math.min(Math.max(date.getFullYear(), 1980), 2107);
  return {
    time: (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1),
    date: ((year - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate(),
  };
}

function setU64(view, at, value) {
  view.setBigUint64(at, BigInt(value), true);
}

/**
 * Writes a zip through ``emit(Uint8Array)``: startEntry(name, size, mtime), write(bytes)...,
 * endEntry(), then finish() after the last entry. ``size`` is the announced size
 * (null when unknown): an entry that may reach 4 GiB gets a ZIP64 local header, so
 * its descriptor carries 8-byte sizes. Per entry, only its central directory
 * record (about 60 bytes plus its name) is kept until finish().
 */
export class ZipWriter {
  constructor(emit, now = new Date()) {
    this.emit = emit;
    this.offset = 0;
    this.count = 0;
    this.central = [];
    this.centralBytes = 0;
    this.entry = null;
    this.stamp = dosDateTime(now);
  }

  /** Bytes emitted so far. */
  get position() {
    return this.offset;
  }

  out(bytes) {
    this.offset += bytes.length;
    this.emit(bytes);
  }

  /** ``mtime``: the file's modification time (seconds since the epoch, as on the wire)
   * or null for the writer's own time. */
  startEntry(name, size = null, mtime = null) {
    if (this.entry !== null) throw new Error("the previous zip entry is not ended");
    const stamp = typeof mtime === "number" && Number.isFinite(mtime)
      ? dosDateTime(new Date(mtime * 1000)) : this.stamp;
    const encoded = utf8.encode(name);
    if (encoded.length > MAX16) throw new Error("a zip entry name has at most 65,535 bytes");
    const zip64 = size === null || size >= MAX32;
    const extra = zip64 ? 20 : 0;
    const header = new Uint8Array(30 + encoded.length + extra);
    const view = new DataView(header.buffer);
    view.setUint32(0, 0x04034b50, true);
    view.setUint16(4, zip64 ? VERSION_ZIP64 : VERSION_PLAIN, true);
    view.setUint16(6, FLAGS, true);
    view.setUint16(8, 0, true); // stored
    view.setUint16(10, stamp.time, true);
    view.setUint16(12, stamp.date, true);
    // CRC-32 and sizes are zero here (bit 3); with ZIP64 the sizes say "see the extra".
    view.setUint32(18, zip64 ? MAX32 : 0, true);
    view.setUint32(22, zip64 ? MAX32 : 0, true);
    view.setUint16(26, encoded.length, true);
    view.setUint16(28, extra, true);
    header.set(encoded, 30);
    if (zip64) {
      const at = 30 + encoded.length;
      view.setUint16(at, 0x0001, true);
      view.setUint16(at + 2, 16, true); // original and compressed size, both 0 for now
    }
    this.entry = { encoded, zip64, stamp, start: this.offset, crc: 0, size: 0 };
    this.out(header);
  }

  write(bytes) {
    const entry = this.entry;
    if (entry === null) throw new Error("zip data outside an entry");
    entry.crc = crc32(entry.crc, bytes);
    entry.size += bytes.length;
    this.out(bytes);
  }

  endEntry() {
    const entry = this.entry;
    if (entry === null) throw new Error("no zip entry to end");
    this.entry = null;
    const descriptor = new Uint8Array(entry.zip64 ? 24 : 16);
    const view = new DataView(descriptor.buffer);
    view.setUint32(0, 0x08074b50, true);
    view.setUint32(4, entry.crc, true);
    if (entry.zip64) {
      setU64(view, 8, entry.size);
      setU64(view, 16, entry.size);
    } else {
      view.setUint32(8, entry.size, true);
      view.setUint32(12, entry.size, true);
    }
    this.out(descriptor);
    this.central.push(this.centralRecord(entry));
    this.count += 1;
  }

  centralRecord({ encoded, zip64, stamp, start, crc, size }) {
    // The sizes go to the ZIP64 extra when the local header had one (or they need it);
    // the offset when it passes 4 GiB. Only the fields set to 0xffffffff are in the extra.
    const bigSizes = zip64 || size >= MAX32;
    const bigOffset = start >= MAX32;
    const extra = (bigSizes || bigOffset) ? 4 + (bigSizes ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
    const record = new Uint8Array(46 + encoded.length + extra);
    const view = new DataView(record.buffer);
    view.setUint32(0, 0x02014b50, true);
    view.setUint16(4, VERSION_ZIP64, true); // made by: MS-DOS attributes, spec 4.5
    view.setUint16(6, extra ? VERSION_ZIP64 : VERSION_PLAIN, true);
    view.setUint16(8, FLAGS, true);
    view.setUint16(10, 0, true);
    view.setUint16(12, stamp.time, true);
    view.setUint16(14, stamp.date, true);
    view.setUint32(16, crc, true);
    view.setUint32(20, bigSizes ? MAX32 : size, true);
    view.setUint32(24, bigSizes ? MAX32 : size, true);
    view.setUint16(28, encoded.length, true);
    view.setUint16(30, extra, true);
    view.setUint32(42, bigOffset ? MAX32 : start, true);
    record.set(encoded, 46);
    if (extra) {
      let at = 46 + encoded.length;
      view.setUint16(at, 0x0001, true);
      view.setUint16(at + 2, extra - 4, true);
      at += 4;
      if (bigSizes) {
        setU64(view, at, size);
        setU64(view, at + 8, size);
        at += 16;
      }
      if (bigOffset) setU64(view, at, start);
    }
    this.centralBytes += record.length;
    return record;
  }

  /** The central directory and its end records; the zip is complete after this. */
  finish() {
    if (this.entry !== null) throw new Error("the last zip entry is not ended");
    const centralStart = this.offset;
    // Central records are emitted in groups, so a huge folder is not one huge buffer.
    let group = [];
    let groupBytes = 0;
    const flush = () => {
      if (!group.length) return;
      const joined = new Uint8Array(groupBytes);
      let at = 0;
      for (const record of group) {
        joined.set(record, at);
        at += record.length;
      }
      group = [];
      groupBytes = 0;
      this.out(joined);
    };
    for (const record of this.central) {
      group.push(record);
      groupBytes += record.length;
      if (groupBytes >= 1 << 20) flush();
    }
    flush();
    this.central = [];
    const centralSize = this.offset - centralStart;
    const zip64 = this.count >= MAX16 || centralSize >= MAX32 || centralStart >= MAX32;
    if (zip64) {
      const end64At = this.offset;
      const end64 = new Uint8Array(56 + 20);
      const view = new DataView(end64.buffer);
      view.setUint32(0, 0x06064b50, true);
      setU64(view, 4, 44); // size of the rest of this record
      view.setUint16(12, VERSION_ZIP64, true);
      view.setUint16(14, VERSION_ZIP64, true);
      view.setUint32(16, 0, true); // this disk
      view.setUint32(20, 0, true); // disk of the central directory
      setU64(view, 24, this.count);
      setU64(view, 32, this.count);
      setU64(view, 40, centralSize);
      setU64(view, 48, centralStart);
      // The ZIP64 end of central directory locator.
      view.setUint32(56, 0x07064b50, true);
      view.setUint32(60, 0, true);
      setU64(view, 64, end64At);
      view.setUint32(72, 1, true); // total number of disks
      this.out(end64);
    }
    const end = new Uint8Array(22);
    const view = new DataView(end.buffer);
    view.setUint32(0, 0x06054b50, true);
    view.setUint16(8, Math.min(this.count, MAX16), true);
    view.setUint16(10, Math.min(this.count, MAX16), true);
    view.setUint32(12, Math.min(centralSize, MAX32), true);
    view.setUint32(16, Math.min(centralStart, MAX32), true);
    this.out(end);
  }
}
