"""The server's own framing of outgoing text frames agrees with websockets'."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from rtcxfer.server.presence import text_frame


@given(st.binary(max_size=300))
def test_small_frames_are_byte_for_byte_websockets_frames(payload: bytes) -> None:
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_every_length_encoding_matches() -> None:
    # 7-bit, 16-bit and 64-bit lengths, on both sides of each boundary.
    for length in (0, 125, 126, 127, 65535, 65536, 70000):
        payload = b"x" * length
        assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)
