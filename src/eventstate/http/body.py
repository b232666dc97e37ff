"""Reading a request body, for every route that takes one: the media type, the size limit, a deadline
for a body that never arrives, and a client that leaves before sending it."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, HTTPException

JSON = b"application/json"


class BodyNotJson(HTTPException):
    """The body is declared as something other than application/json."""

    status_code = 415


class BodyTooLarge(HTTPException):
    """The body is (or is declared) larger than the limit."""

    status_code = 413


class BodyTimeout(HTTPException):
    """The body did not arrive in time."""

    status_code = 408


class ClientLeft(ClientException):
    """The client closed the connection before its body arrived; nobody is left to answer."""


def _media_type(request: Request[Any, Any, Any]) -> bytes | None:
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return value.partition(b";")[0].strip().lower()
    return None


async def read_json_body(request: Request[Any, Any, Any]) -> bytes:
    """The whole body of a JSON request, within the app's size limit and body deadline."""
    media_type = _media_type(request)
    if media_type != JSON:
        shown = "none" if media_type is None else media_type.decode("latin-1")
        raise BodyNotJson(f"the body must be application/json, not {shown}")
    limit: int = request.app.state.max_body_bytes
    declared = None
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            declared = value
    if declared is not None and not declared.isdigit():
        raise ClientException("Content-Length must be a decimal number")
    if declared is not None and int(declared) > limit:
        raise BodyTooLarge("the request body is larger than the limit")
    try:
        async with asyncio.timeout(request.app.state.body_timeout):
            return await _receive_all(request.receive, limit)
    except TimeoutError:
        raise BodyTimeout("the request body did not arrive in time") from None


async def _receive_all(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientLeft("the client closed the connection before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("the request body is larger than the limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
