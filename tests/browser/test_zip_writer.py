"""The page's streamed zip writer (zipstream.js), run with node, read back by Python's zipfile.

ZIP64 without gigabytes: more than 65,535 entries need the ZIP64 end records, and an
entry of unknown size (a stream inside a folder) gets a ZIP64 local header and an
8-byte data descriptor.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "rtcxfer" / "web" / "static"

# Writes the zip described by argv[3] (JSON: [[name, size-or-null, seed, length, mtime?], ...] or
# {"empty": N}) to argv[2]; entry bytes are a deterministic function of (seed, i).
SCRIPT = """
import { openSync, writeSync, closeSync } from "node:fs";
const { ZipWriter } = await import(process.argv[1]);
const out = openSync(process.argv[2], "w");
const spec = JSON.parse(process.argv[3]);
const zip = new ZipWriter((bytes) => writeSync(out, bytes));
const bytesOf = (seed, length) =>
  Uint8Array.from({ length }, (_, i) => (seed * 31 + i * 7 + (i >> 8)) & 0xff);
if (spec.empty !== undefined) {
  for (let i = 0; i < spec.empty; i++) {
    zip.startEntry(`d${i % 7}/f${i}`, 0);
    zip.endEntry();
  }
} else {
  for (const [name, size, seed, length, mtime] of spec) {
    zip.startEntry(name, size, mtime ?? null);
    const data = bytesOf(seed, length);
    // In uneven pieces, as frames arrive.
    const step = 1000 + seed;
    for (let at = 0; at < data.length; at += step) zip.write(data.subarray(at, at + step));
    zip.endEntry();
  }
}
zip.finish();
closeSync(out);
"""

# Entries of zeros written as holes of a sparse file (argv[3]: [[name, length], ...]):
# gigabytes without writing them, so sizes and offsets past 4 GiB are checked.
SPARSE_SCRIPT = """
import { openSync, writeSync, ftruncateSync, closeSync } from "node:fs";
const { ZipWriter } = await import(process.argv[1]);
const out = openSync(process.argv[2], "w");
const zeros = new Uint8Array(1 << 22);
let position = 0;
const zip = new ZipWriter((bytes) => {
  if (bytes.buffer === zeros.buffer) position += bytes.length; // a hole
  else position += writeSync(out, bytes, 0, bytes.length, position);
});
for (const [name, length] of JSON.parse(process.argv[3])) {
  zip.startEntry(name, length);
  for (let left = length; left > 0; left -= zeros.length) {
    zip.write(left >= zeros.length ? zeros : zeros.subarray(0, left));
  }
  zip.endEntry();
}
zip.finish();
ftruncateSync(out, position);
closeSync(out);
"""


def expected_bytes(seed: int, length: int) -> bytes:
    return bytes(((seed * 31 + i * 7 + (i >> 8)) & 0xFF) for i in range(length))


def run_writer(tmp_path: Path, spec: object, script: str = SCRIPT) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    target = tmp_path / "out.zip"
    subprocess.run([node, "--input-type=module", "-e", script, str(STATIC / "zipstream.js"),
                    str(target), json.dumps(spec)], check=True, timeout=600,
                   capture_output=True)
    return target


def test_more_than_65535_empty_entries_use_zip64_end_records(tmp_path: Path) -> None:
    count = 70_000
    target = run_writer(tmp_path, {"empty": count})
    data = target.read_bytes()
    # The ZIP64 end of central directory record and its locator are there...
    assert data.rfind(b"PK\x06\x06") != -1 and data.rfind(b"PK\x06\x07") != -1
    with zipfile.ZipFile(target) as archive:
        infos = archive.infolist()
        assert len(infos) == count  # ... and Python reads the count from them
        assert [info.filename for info in infos] == [f"d{i % 7}/f{i}" for i in range(count)]
        assert all(info.file_size == 0 and info.compress_type == zipfile.ZIP_STORED
                   for info in infos)
        assert all(info.flag_bits & 0x08 for info in infos)  # data descriptors
        assert archive.testzip() is None
        assert archive.read(f"d{(count - 1) % 7}/f{count - 1}") == b""


def test_entries_bytes_crc_and_a_stream_of_unknown_size(tmp_path: Path) -> None:
    spec = [
        ["photos/album/img1.jpg", 70_001, 1, 70_001],
        ["photos/empty", 0, 2, 0],
        ["Zoë/李雷.txt", 5, 3, 5],
        ["stream.bin", None, 4, 300_000],  # size unknown until its end: ZIP64 local header
        ["photos/deep/a/b/c/last", 12_345, 5, 12_345],
    ]
    target = run_writer(tmp_path, spec)
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None  # every CRC-32 matches
        assert archive.namelist() == [name for name, *_ in spec]
        for name, _, seed, length in spec:
            data = archive.read(name)  # zipfile checks the CRC-32 again
            assert hashlib.sha256(data).digest() == hashlib.sha256(
                expected_bytes(seed, length)).digest(), name
        stream = archive.getinfo("stream.bin")
        assert stream.file_size == 300_000
        raw = target.read_bytes()
        # The stream's local header carries a ZIP64 extra (sizes 0xffffffff in the header).
        at = stream.header_offset
        assert raw[at:at + 4] == b"PK\x03\x04"
        assert raw[at + 18:at + 26] == b"\xff" * 8
        assert archive.getinfo("photos/empty").header_offset > 0


def test_entries_keep_their_modification_times(tmp_path: Path) -> None:
    # The time the sender announced (seconds since the epoch), in the zip's local DOS
    # date and time (2-second steps); an entry without one gets the writer's time.
    mtime = 1_700_000_001.75
    spec = [["a/dated.txt", 3, 1, 3, mtime], ["a/undated.txt", 3, 2, 3]]
    target = run_writer(tmp_path, spec)
    expected = time.localtime(int(mtime))
    with zipfile.ZipFile(target) as archive:
        dated = archive.getinfo("a/dated.txt").date_time
        assert dated == (*expected[:5], expected.tm_sec - expected.tm_sec % 2)
        undated = archive.getinfo("a/undated.txt").date_time
        assert abs(time.mktime((*undated, 0, 0, -1)) - time.time()) < 600


@pytest.mark.slow
def test_an_entry_past_4_gib_and_offsets_past_it(tmp_path: Path) -> None:
    """Sizes and offsets past 4 GiB (a sparse file: nothing of the zeros is written)."""
    big = 4 * 1024**3 + 12_345
    spec = [["first.txt", 10], ["big/zeros.bin", big], ["after/last.txt", 3]]
    target = run_writer(tmp_path, spec, SPARSE_SCRIPT)
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == [name for name, _ in spec]
        assert archive.read("first.txt") == b"\0" * 10
        assert archive.read("after/last.txt") == b"\0" * 3
        info = archive.getinfo("big/zeros.bin")
        assert info.file_size == info.compress_size == big
        after = archive.getinfo("after/last.txt")
        assert after.header_offset > 0xFFFFFFFF  # from the ZIP64 extra of its central record
        # Reading to the end checks the CRC-32 the writer put in the descriptor.
        with archive.open(info) as member:
            read = 0
            while chunk := member.read(1 << 24):
                read += len(chunk)
        assert read == big
