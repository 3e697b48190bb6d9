"""Every failure a user can meet, each with a name, a message and an exit code.

The CLI maps an escaping :class:`RtcxferError` to ``str(error)`` on stderr and
``error.exit_code``; ``docs/protocol.md`` and the README list the codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    SERVER_UNREACHABLE = 3
    NAME_TAKEN = 4
    PEER_OFFLINE = 5
    DECLINED = 6
    NO_ICE_PATH = 7
    TRANSFER_FAILED = 8
    AUTHENTICATION_FAILED = 9  # peer identity changed, or code mode failed (docs/security.md)
    BUSY = 10
    INTERRUPTED = 130


class RtcxferError(Exception):
    """Base class: a failure with a message meant for the person at the terminal."""

    exit_code: ExitCode = ExitCode.FAILURE
    # True when every line of the message was escaped by whoever built it (the CLI
    # then prints it on several lines instead of escaping the line breaks).
    multiline: bool = False


class ServerUnreachable(RtcxferError):
    exit_code = ExitCode.SERVER_UNREACHABLE


class LoginRefused(RtcxferError):
    """The server refused our login for a reason other than a taken name."""

    exit_code = ExitCode.FAILURE


class NameTaken(LoginRefused):
    exit_code = ExitCode.NAME_TAKEN


class PeerOffline(RtcxferError):
    exit_code = ExitCode.PEER_OFFLINE


class PeerDeclined(RtcxferError):
    exit_code = ExitCode.DECLINED


class PeerBusy(PeerDeclined):
    """The receiver turned the transfer away because it is busy; try again later."""

    exit_code = ExitCode.BUSY
    reason: str = "busy"


class NoIcePath(RtcxferError):
    exit_code = ExitCode.NO_ICE_PATH


class TransferFailed(RtcxferError):
    exit_code = ExitCode.TRANSFER_FAILED


class Interrupted(RtcxferError):
    exit_code = ExitCode.INTERRUPTED


class AuthenticationFailed(RtcxferError):
    """The peer is not who it should be: nothing was sent or received."""

    exit_code = ExitCode.AUTHENTICATION_FAILED


class IdentityChanged(AuthenticationFailed):
    """A pinned peer presented a different certificate ("identity of alice changed")."""


class CodeMismatch(AuthenticationFailed):
    """Code mode: the PAKE key did not confirm both certificates."""
