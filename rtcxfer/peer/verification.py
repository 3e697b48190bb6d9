"""The verification code both ends print (docs/protocol.md, "Verification code").

A signaling server that wanted to read the transfer would have to terminate
DTLS itself and so present its own certificates to each side; the code mixes
both fingerprints, so the two people would see different codes.
"""

from __future__ import annotations

import hashlib

from rtcxfer.peer.sdp import sha256_fingerprint

CONTEXT = "rtcxfer-verify/1"


def verification_code(offer_sdp: str, answer_sdp: str) -> str:
    """``1234-5678`` from the offer's and the answer's SHA-256 fingerprints."""
    material = f"{CONTEXT}|{sha256_fingerprint(offer_sdp)}|{sha256_fingerprint(answer_sdp)}"
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    number = int.from_bytes(digest[:4], "big") % 100_000_000
    digits = f"{number:08d}"
    return f"{digits[:4]}-{digits[4:]}"
