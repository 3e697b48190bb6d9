"""A receiver in its own process, for tests that kill it: ``python receiver_process.py DIR``.

It reads the sender's offer (one JSON line) on stdin, answers on stdout, then runs
``receive_files`` into DIR, printing ``progress <bytes>`` as the part file grows and
``report <files> <bytes> <resumed_bytes> <ok>`` at the end.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import aioice.ice
from aiortc import RTCDataChannel

# Run as a script, so this folder is on sys.path and peers.py imports directly.
from peers import (
    description_from_json,
    description_to_json,
    loopback_addresses,
    new_connection,
)

from rtcxfer.protocol.transfer import FileEntry
from rtcxfer.transfer import IncomingOffer, TransferReport, receive_files


class PrintingObserver:
    def transfer_started(self, files: Sequence[FileEntry], offsets: Sequence[int], *,
                         total: int | None = None) -> None:
        print("offsets", *offsets, flush=True)

    def file_started(self, index: int, entry: FileEntry, offset: int) -> None:
        return None

    def file_progress(self, index: int, done: int) -> None:
        print("progress", done, flush=True)

    def file_finished(self, index: int, entry: FileEntry, ok: bool, reason: str | None,
                      path: Path | None, *, saved_as: str | None = None,
                      resumed_from: int | None = None) -> None:
        return None

    def transfer_finished(self, ok: bool) -> None:
        return None


async def accept(offer: IncomingOffer) -> None:
    return None


async def main(download_dir: Path) -> None:
    aioice.ice.get_host_addresses = loopback_addresses
    connection = new_connection()
    transfer: asyncio.Future[TransferReport] = asyncio.get_running_loop().create_future()

    def on_datachannel(channel: RTCDataChannel) -> None:
        running = asyncio.ensure_future(receive_files(
            channel, download_dir=download_dir, decide=accept, overwrite=False,
            observer=PrintingObserver()))
        running.add_done_callback(lambda done: transfer.set_result(done.result()))

    connection.on("datachannel", on_datachannel)
    offer = await asyncio.to_thread(sys.stdin.readline)
    await connection.setRemoteDescription(description_from_json(offer))
    await connection.setLocalDescription(await connection.createAnswer())
    print(description_to_json(connection.localDescription), flush=True)
    report = await transfer
    print("report", report.files, report.bytes, report.resumed_bytes, report.ok, flush=True)
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
