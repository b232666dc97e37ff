"""The response the route handlers return: already-encoded bytes and headers, sent as they are.

It is Litestar's own `ASGIResponse` (so `after_request` hooks, middleware and the OpenAPI document
treat it as before), built without `ASGIResponse.__init__`, which spends most of a `GET /status`
response's time re-parsing and de-duplicating headers the handler already knows are unique."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.response.base import ASGIResponse

JSON = b"application/json"
RawHeaders = list[tuple[bytes, bytes]]


class Encoded(ASGIResponse):
    """A complete response: status, lower-case header names, body; content-type and -length added
    unless the status allows no body (304)."""

    __slots__ = ()

    def __init__(self, body: bytes, headers: RawHeaders | None = None, *, status_code: int = 200,
                 media_type: bytes = JSON) -> None:
        # Deliberately not ASGIResponse.__init__: every slot it sets is set here, from bytes.
        raw = headers if headers is not None else []
        if status_code in (204, 304):
            body = b""
        else:
            raw.append((b"content-type", media_type))
            raw.append((b"content-length", b"%d" % len(body)))
        self.headers = MutableScopeHeaders({"headers": raw})
        self.background = None
        self.body = body
        self.content_length = len(body)
        self._encoded_cookies = ()
        self.encoding = "utf-8"
        self.is_head_response = False
        self.status_code = status_code

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.encode_headers()})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
        if self.background is not None:
            await self.background()
