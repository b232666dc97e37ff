"""The HTTP/1.1 protocol eventstate serves with: uvicorn's httptools protocol, with a bound on the
bytes a request head may take before it is complete.

The edge middleware's 431 sees headers only once they are parsed, so a head of tens of megabytes
would be buffered whole first (and stall the event loop parsing it). Here the connection is
answered 431 and closed as soon as the unfinished head outgrows the bound, so memory stays within
the bound plus one read.
"""

from __future__ import annotations

import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from eventstate.serialization import problem_body

# A head may carry the request line, separators and line ends beside the headers the edge counts,
# so the bound here is looser than EVENTSTATE_MAX_HEADER_BYTES: it only has to stop the absurd.
SLACK_BYTES = 16 * 1024
_DETAIL = "the request headers are larger than the limit"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, refusing a request head larger than EVENTSTATE_MAX_HEADER_BYTES (plus slack)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit = int(os.environ.get("EVENTSTATE_MAX_HEADER_BYTES", "16384")) * 2 + SLACK_BYTES
        self._head_bytes = 0
        self._in_head = True
        self._heads = 0  # request heads completed on this connection

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: nothing more is read from this connection
        heads = self._heads
        super().data_received(data)
        # Only a read that completed no head and left one unfinished counts towards the bound.
        if self._in_head and heads == self._heads and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self._head_limit:
                self._refuse_head()

    def _refuse_head(self) -> None:
        body = problem_body(431, _DETAIL, "headers-too-large", "Request header fields too large")
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()
