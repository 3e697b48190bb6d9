"""rtcxfer/1 file transfer over a data channel: what the peer layer and the CLI call.

:func:`collect_sources` turns paths into files to send; :func:`send_files` and
:func:`receive_files` run the two sides of the protocol on an aiortc
``RTCDataChannel``. ``docs/transfer.md`` describes the machines, part files, resume,
path rules and durability.
"""

from rtcxfer.protocol.transfer import FileEntry
from rtcxfer.transfer.model import (
    IncomingOffer,
    SilentObserver,
    SourceError,
    SourceFile,
    TransferObserver,
    TransferReport,
)
from rtcxfer.transfer.receiver import receive_files
from rtcxfer.transfer.sender import send_files
from rtcxfer.transfer.sources import collect_sources

__all__ = [
    "FileEntry",
    "IncomingOffer",
    "SilentObserver",
    "SourceError",
    "SourceFile",
    "TransferObserver",
    "TransferReport",
    "collect_sources",
    "receive_files",
    "send_files",
]
