"""The user's long-lived DTLS identity: one ECDSA P-256 key and certificate.

A browser makes one ``RTCCertificate`` and can keep it; rtcxfer keeps one per
user in ``$XDG_CONFIG_HOME/rtcxfer/identity.pem`` (default ``~/.config``), key
and certificate in one PEM file of mode 0600, created on first use. Every
connection presents it, so a peer's SHA-256 certificate fingerprint stays the
same from one transfer to the next and can be pinned (:mod:`rtcxfer.peer.trust`).

The fingerprint that matters is the one of the certificate the peer actually
presented in the DTLS handshake (:func:`peer_fingerprint`), not a line of SDP
text: aiortc checks the handshake against the SDP, but reading the SDP again
would trust rtcxfer's parser to agree with aiortc's about which line counts.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
from pathlib import Path

from aiortc import RTCCertificate, RTCPeerConnection
from aiortc.rtcdtlstransport import certificate_digest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rtcxfer.errors import RtcxferError

IDENTITY_FILE = "identity.pem"
# aiortc's own certificates live 30 days; a pinned identity must outlive many
# transfers. Nothing checks the validity period of a WebRTC certificate's peer
# (only its fingerprint), so a long one costs nothing.
VALIDITY = datetime.timedelta(days=3650)
# A certificate valid this long is a lasting identity, worth pinning. aiortc and
# browsers make a fresh 30-day certificate per connection by default: peers written
# to PROTOCOL.md alone usually present one, and pinning it would refuse their next
# connection. rtcxfer's CLI identity lives 10 years, the page's 1 year.
LASTING = datetime.timedelta(days=180)


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/rtcxfer``, or ``~/.config/rtcxfer``."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    if base and Path(base).is_absolute():
        return Path(base) / "rtcxfer"
    try:
        return Path.home() / ".config" / "rtcxfer"
    except RuntimeError:  # no HOME and no password entry
        raise RtcxferError("cannot find a home folder for rtcxfer's identity; "
                           "set XDG_CONFIG_HOME") from None


def ensure_config_dir() -> Path:
    directory = config_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise RtcxferError(
            f"cannot create the config folder {directory}: {error.strerror or error}"
        ) from error
    return directory


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint, upper-case hex with ``:`` separators (as in SDP)."""
    return certificate_digest(certificate, "sha-256")


class Identity:
    """The stored key and certificate, as aiortc wants them."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate,
                 path: Path | None = None) -> None:
        self.key = key
        self.certificate = certificate
        self.path = path
        self.fingerprint = fingerprint(certificate)

    def rtc_certificate(self) -> RTCCertificate:
        return RTCCertificate(key=self.key, cert=self.certificate)


def generate() -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcxfer-" + secrets.token_hex(8))])
    now = datetime.datetime.now(tz=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, certificate)


def _parse(data: bytes, path: Path) -> Identity:
    try:
        key = serialization.load_pem_private_key(data, password=None)
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise RtcxferError(f"{path} is not an rtcxfer identity ({error}); move it away "
                           "to make a new one") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1):
        raise RtcxferError(f"{path}: the key is not ECDSA P-256")
    if key.public_key() != certificate.public_key():
        raise RtcxferError(f"{path}: the certificate does not belong to the key")
    return Identity(key, certificate, path)


def load_or_create(directory: Path | None = None) -> Identity:
    """The identity in ``directory`` (default :func:`config_dir`), made on first use."""
    directory = directory or ensure_config_dir()
    path = directory / IDENTITY_FILE
    try:
        return _parse(path.read_bytes(), path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise RtcxferError(f"cannot read {path}: {error.strerror or error}") from error
    identity = generate()
    pem = identity.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + identity.certificate.public_bytes(serialization.Encoding.PEM)
    temporary = directory / f".{IDENTITY_FILE}.{secrets.token_hex(4)}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        # link, not rename: two processes creating it at once keep the first one.
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _parse(path.read_bytes(), path)
    except OSError as error:
        raise RtcxferError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    identity.path = path
    return identity


def use_certificate(pc: RTCPeerConnection, identity: Identity) -> None:
    """Make ``pc`` present ``identity`` instead of the certificate it generated.

    aiortc has no ``certificates`` member in ``RTCConfiguration``: the peer
    connection makes its list in ``__init__`` and reads it only when it creates
    its DTLS transport (on the first ``createDataChannel`` or remote
    description), so replacing the list right after construction is enough.
    """
    if pc.sctp is not None:
        raise RuntimeError("the certificate must be set before negotiation starts")
    pc._RTCPeerConnection__certificates = [identity.rtc_certificate()]  # type: ignore[attr-defined]


def peer_certificate(pc: RTCPeerConnection) -> x509.Certificate:
    """The certificate the peer presented in the DTLS handshake (while connected)."""
    sctp = pc.sctp
    ssl = getattr(sctp.transport, "_ssl", None) if sctp is not None else None
    certificate = ssl.get_peer_certificate(as_cryptography=True) if ssl is not None else None
    if certificate is None:
        raise RuntimeError("the DTLS handshake has not completed")
    return certificate


def peer_fingerprint(pc: RTCPeerConnection) -> str:
    """SHA-256 fingerprint of the certificate the peer presented in the DTLS handshake."""
    return fingerprint(peer_certificate(pc))


def is_lasting(certificate: x509.Certificate) -> bool:
    """Whether the peer keeps this certificate (see LASTING), so that pinning it makes sense."""
    return certificate.not_valid_after_utc - certificate.not_valid_before_utc >= LASTING


def presented_identity(pc: RTCPeerConnection) -> tuple[str, bool]:
    """The peer's fingerprint and whether it is a lasting identity; read it while connected."""
    certificate = peer_certificate(pc)
    return fingerprint(certificate), is_lasting(certificate)


def local_fingerprint(pc: RTCPeerConnection) -> str:
    """SHA-256 fingerprint of the certificate this side presents."""
    certificates = pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
    return fingerprint(certificates[0]._cert)
