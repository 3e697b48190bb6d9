"""The page's SPAKE2 (web/static/spake2.js on the vendored noble libraries) agrees with
python-spake2, the CLI's, on both sides; node runs the page's module as is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from spake2 import SPAKE2_A, SPAKE2_B

from rtcxfer.protocol.code import SPAKE2_ID_RECEIVER, SPAKE2_ID_SENDER

HELPER = Path(__file__).with_name("spake2_interop.mjs")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_js(side: str, password: str, python_message: bytes) -> tuple[bytes, bytes]:
    assert NODE is not None
    result = subprocess.run([NODE, str(HELPER), side, password], input=python_message.hex(),
                            capture_output=True, text=True, timeout=60, check=True)
    message, key = result.stdout.split()
    return bytes.fromhex(message), bytes.fromhex(key)


@pytest.mark.parametrize("js_side", ["A", "B"])
def test_same_code_same_key(js_side: str) -> None:
    python_class = SPAKE2_B if js_side == "A" else SPAKE2_A
    python = python_class(b"7-guitar-orbit", idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    js_message, js_key = run_js(js_side, "7-guitar-orbit", python.start())
    assert js_message[:1] == js_side.encode() and len(js_message) == 33
    assert python.finish(js_message) == js_key


def test_another_code_another_key() -> None:
    python = SPAKE2_A(b"7-guitar-orbit", idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    js_message, js_key = run_js("B", "7-guitar-piano", python.start())
    assert python.finish(js_message) != js_key


def test_js_refuses_a_message_from_its_own_side() -> None:
    python = SPAKE2_A(b"7-guitar-orbit", idA=SPAKE2_ID_SENDER, idB=SPAKE2_ID_RECEIVER)
    assert NODE is not None
    result = subprocess.run([NODE, str(HELPER), "A", "7-guitar-orbit"],
                            input=python.start().hex(), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode != 0
    assert "not a SPAKE2 message from the other side" in result.stderr
