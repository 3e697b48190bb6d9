"""The opening handshake as the signaling port parses it: websockets' server protocol, plus

an answer for requests websockets cannot parse. websockets refuses any request
with a body (``Content-Length`` other than 0, ``Transfer-Encoding``) by closing
the connection without a word; a ``POST`` with a body then looks like a reset
to the client. Here such a request gets ``405 Method Not Allowed`` (a method
other than GET/HEAD) or ``400 Bad Request`` (a GET/HEAD with a body), with
``Connection: close``, and the connection ends once the client has read it.
"""

from __future__ import annotations

import http
from collections.abc import Generator

from websockets.exceptions import (
    HeaderLineTooLong,
    InvalidMessage,
    RequestLineTooLong,
    TooManyHeaders,
)
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING
from websockets.server import ServerProtocol

from rtcxfer.server.http import make_response, text_response

ALLOWED_METHODS = ("GET", "HEAD")
ALLOW_HEADER = ("Allow", ", ".join(ALLOWED_METHODS))


class SignalingProtocol(ServerProtocol):
    """A :class:`ServerProtocol` that answers requests with a body instead of dropping them.

    :meth:`parse` is websockets' own (websockets 14-15), with one more case.
    """

    def parse(self) -> Generator[None]:
        if self.state is CONNECTING:
            request_line: list[bytes] = []

            def read_line(max_length: int, too_long: type[Exception]
                          ) -> Generator[None, None, bytes | bytearray]:
                line = yield from self.reader.read_line(max_length, too_long)
                if not request_line:
                    request_line.append(line)
                return line

            try:
                request = yield from Request.parse(read_line)
            except RequestLineTooLong as exc:
                self.handshake_exc = exc
                self.send_response(self.reject(http.HTTPStatus.REQUEST_URI_TOO_LONG,
                                               f"Failed to open a WebSocket connection: {exc}.\n"))
                yield
            except (HeaderLineTooLong, TooManyHeaders) as exc:
                self.handshake_exc = exc
                self.send_response(self.reject(
                    http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"Failed to open a WebSocket connection: {exc}.\n"))
                yield
            except (ValueError, NotImplementedError) as exc:
                self.handshake_exc = InvalidMessage("did not receive a valid HTTP request")
                if _is_body_refusal(exc):
                    method = request_line[0].split(b" ", 1)[0] if request_line else b""
                    self.send_response(_body_response(method))
                else:
                    self.send_eof()
                    self.parser = self.discard()
                    next(self.parser)
                yield
            except Exception as exc:
                self.handshake_exc = InvalidMessage("did not receive a valid HTTP request")
                self.handshake_exc.__cause__ = exc
                self.send_eof()
                self.parser = self.discard()
                next(self.parser)
                yield
            self.events.append(request)
        yield from super(ServerProtocol, self).parse()


def _is_body_refusal(error: Exception) -> bool:
    text = str(error)
    return "request body" in text or "transfer codings" in text


def _body_response(method: bytes) -> Response:
    if method in (b"GET", b"HEAD"):
        return text_response(http.HTTPStatus.BAD_REQUEST, "a request body is not supported")
    return make_response(http.HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n",
                         "text/plain; charset=utf-8", [ALLOW_HEADER])
