"""The browser page on its own and page to page, in real headless Chromium."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from browser.pages import PeerFactory, sha256_hex

from rtcxfer.peer.verification import verification_code

pytestmark = pytest.mark.browser

# Lengths around the 64-byte block and the 56-byte padding boundary, plus a
# few larger ones fed in uneven slices.
SHA256_LENGTHS = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 65_537, 1_048_583]

SHA256_AGAINST_WEBCRYPTO = """
async (lengths) => {
  const { Sha256, toHex } = await import("/sha256.js");
  const results = [];
  for (const length of lengths) {
    const data = new Uint8Array(length);
    for (let start = 0; start < length; start += 65536) {
      crypto.getRandomValues(data.subarray(start, Math.min(start + 65536, length)));
    }
    const hasher = new Sha256();
    let position = 0;
    let step = 1;
    while (position < length) {
      const end = Math.min(length, position + step);
      hasher.update(data.subarray(position, end));
      position = end;
      step = (step * 7 + 3) % 9000 + 1;
    }
    const expected = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
    results.push({ length, ours: hasher.hexDigest(), webcrypto: expected });
  }
  return results;
}
"""


def test_incremental_sha256_matches_webcrypto(peers: PeerFactory) -> None:
    page = peers.open().page
    results = page.evaluate(SHA256_AGAINST_WEBCRYPTO, SHA256_LENGTHS)
    assert [r["length"] for r in results] == SHA256_LENGTHS
    mismatches = [r for r in results if r["ours"] != r["webcrypto"]]
    assert mismatches == []


def test_verification_code_matches_the_cli_implementation(peers: PeerFactory) -> None:
    page = peers.open().page
    offer_fingerprint = ":".join(f"{byte:02x}" for byte in os.urandom(32))
    answer_fingerprint = os.urandom(32).hex().upper()
    # Several fingerprints, as aiortc lists them: only the first sha-256 counts.
    offer = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"
        f"a=fingerprint:sha-384 {os.urandom(48).hex()}\r\n"
        f"a=fingerprint:sha-256 {offer_fingerprint}\r\n"
        f"a=fingerprint:sha-256 {os.urandom(32).hex()}\r\n"
    )
    answer = (
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        f"a=fingerprint:SHA-256 {answer_fingerprint}\r\n"
    )
    code = page.evaluate(
        """async ([offer, answer]) => {
             const { verificationCode } = await import("/verify.js");
             return verificationCode(offer, answer);
           }""",
        [offer, answer],
    )
    assert code == verification_code(offer, answer)


def test_page_is_served_with_its_assets_and_logs_in(peers: PeerFactory) -> None:
    peer = peers.open("alice")
    assert peer.page.text_content("#whoami") == "alice"
    assert peer.wait_for_status("ok") == "logged in as alice"
    # The name is remembered for the next visit.
    peer.page.reload()
    peer.page.wait_for_selector("body[data-ready]")
    assert peer.page.input_value("#login-name") == "alice"


def test_taken_name_is_refused_with_a_clear_message(peers: PeerFactory) -> None:
    peers.open("alice")
    second = peers.open()
    second.page.fill("#login-name", "alice")
    second.page.click("#login-button")
    message = second.wait_for_status("error")
    assert "alice" in message
    assert second.page.is_visible("#login-form")


def test_user_list_follows_logins_and_logouts(peers: PeerFactory) -> None:
    alice = peers.open("alice")
    bob = peers.open("bob")
    alice.wait_for_user("bob")
    bob.wait_for_user("alice")
    bob.page.click("#logout-button")
    alice.wait_for_user("bob", online=False)
    assert alice.page.is_visible("#no-users")


def test_page_to_page_several_files_with_matching_codes(peers: PeerFactory,
                                                        tmp_path: Path) -> None:
    alice = peers.open("alice")
    bob = peers.open("bob")
    files = [
        ("large.bin", os.urandom(3 * 1024 * 1024 + 12_345)),
        ("empty.txt", b""),
        ("one-frame.bin", os.urandom(16 * 1024)),
    ]
    alice.pick_user("bob")
    alice.choose_files(files)
    alice.page.click("#send-button")

    offered_code = bob.wait_for_offer()
    offered = bob.page.locator("#offer-files .file-name").all_text_contents()
    assert offered == [name for name, _ in files]
    # Several files reach bob as one zip download (docs/browser.md, "A received folder").
    with bob.page.expect_download() as pending:
        bob.page.click("#accept-button")

    sent = alice.wait_for_status("ok")
    assert sent.startswith("sent 3 files") and "to bob" in sent
    # bob's status is already "ok" (logged in): wait for the folder's end first.
    bob.page.wait_for_selector(
        "#received-list li[data-testid=received-folder][data-state=done]")
    received = bob.wait_for_status("ok")
    assert received.startswith("received 3 files") and "from alice" in received
    assert alice.page.text_content("#send-code") == offered_code
    assert bob.page.text_content("[data-testid=incoming-code]") == offered_code
    target = tmp_path / "from-alice.zip"
    pending.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == [name for name, _ in files]
        for name, data in files:
            assert sha256_hex(archive.read(name)) == sha256_hex(data)


def test_decline_from_the_page_is_reported_to_the_sender(peers: PeerFactory) -> None:
    alice = peers.open("alice")
    bob = peers.open("bob")
    alice.pick_user("bob")
    alice.choose_files([("secret.txt", b"not for bob")])
    alice.page.click("#send-button")
    bob.wait_for_offer()
    bob.page.click("#decline-button")
    assert "bob declined" in alice.wait_for_status("warn")
    assert bob.page.locator("#received-list li").count() == 0
    # The sender may try again at once: the page is not left busy.
    alice.page.wait_for_selector("#send-button:not([disabled])")


def test_losing_the_signaling_server_is_reported(peers: PeerFactory) -> None:
    alice = peers.open("alice")
    peers.server.process.stop()
    assert "disconnected from the signaling server" in alice.wait_for_status("error")
    assert alice.page.is_visible("#login-form")
