"""Facts read out of session descriptions, and the verification code."""

from __future__ import annotations

import hashlib

import pytest

from rtcxfer.peer.sdp import (
    DEFAULT_MAX_MESSAGE_SIZE,
    SdpError,
    data_channel_mline,
    max_message_size,
    sha256_fingerprint,
)
from rtcxfer.peer.verification import verification_code

FP_A = ":".join(["ab"] * 32)
FP_B = ":".join(["0F"] * 32)


def description(fingerprint: str, *, extra: str = "", algorithm: str = "sha-256") -> str:
    return (
        "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:audio\r\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
        f"a=mid:1\r\na=sctp-port:5000\r\n{extra}"
        f"a=fingerprint:sha-1 {':'.join(['11'] * 20)}\r\n"
        f"a=fingerprint:{algorithm} {fingerprint}\r\n"
    )


@pytest.mark.parametrize(("extra", "expected"), [
    ("", DEFAULT_MAX_MESSAGE_SIZE),
    ("a=max-message-size:262144\r\n", 262144),
    ("a=max-message-size:0\r\n", 0),
    ("a=max-message-size:16384\r\n", 16384),
])
def test_max_message_size(extra: str, expected: int) -> None:
    assert max_message_size(description(FP_A, extra=extra)) == expected


def test_fingerprint_is_normalised_and_sha1_skipped() -> None:
    assert sha256_fingerprint(description(FP_A, algorithm="SHA-256")) == FP_A.upper()


def test_missing_or_short_fingerprint() -> None:
    with pytest.raises(SdpError):
        sha256_fingerprint("v=0\r\n")
    with pytest.raises(SdpError):
        sha256_fingerprint(description("AB:CD"))


def test_data_channel_mline() -> None:
    assert data_channel_mline(description(FP_A)) == (1, "1")
    with pytest.raises(SdpError):
        data_channel_mline("v=0\r\nm=audio 9 RTP/AVP 0\r\n")


def test_verification_code_follows_docs_protocol() -> None:
    material = f"rtcxfer-verify/1|{FP_A.upper()}|{FP_B}".encode()
    number = int.from_bytes(hashlib.sha256(material).digest()[:4], "big") % 100_000_000
    expected = f"{number:08d}"
    code = verification_code(description(FP_A), description(FP_B))
    assert code == f"{expected[:4]}-{expected[4:]}"


def test_verification_code_depends_on_both_fingerprints_and_their_order() -> None:
    codes = {
        verification_code(description(FP_A), description(FP_B)),
        verification_code(description(FP_B), description(FP_A)),
        verification_code(description(FP_A), description(":".join(["0E"] * 32))),
    }
    assert len(codes) == 3
