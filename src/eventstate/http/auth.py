"""The API-key guard: constant-time comparison against every configured key; keys are never logged."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

API_KEY_HEADER = "x-api-key"
_HEADER_NAME = API_KEY_HEADER.encode()


def key_checker(keys: tuple[str, ...]) -> Callable[[bytes], None]:
    """A check that raises NotAuthorizedException unless the given key equals one of `keys`."""
    encoded = [k.encode("utf-8") for k in keys]

    def check(given: bytes) -> None:
        # Compare with every key, so the time taken does not tell which (or whether one) matched.
        matched = False
        for key in encoded:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise NotAuthorizedException(
                "a valid X-API-KEY header is required" if given else "the X-API-KEY header is missing"
            )

    return check


def api_key_guard(keys: tuple[str, ...]) -> Guard:
    """A guard that admits a request only with an `X-API-KEY` equal to one of `keys`."""
    check = key_checker(keys)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        given = [value for name, value in connection.scope["headers"] if name == _HEADER_NAME]
        if len(given) > 1:
            # Which one a proxy or a framework would pick differs: refuse rather than guess.
            raise NotAuthorizedException("give exactly one X-API-KEY header")
        check(given[0] if given else b"")

    return guard
