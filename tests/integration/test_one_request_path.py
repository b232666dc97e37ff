"""Every request goes through Litestar's router: plugins, guards and hooks reach every route alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Response
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins import InitPluginProtocol
from litestar.testing import TestClient

from eventstate.app import create_app
from eventstate.settings import Settings

KEY = "k" * 32
JSON = {"content-type": "application/json"}


class Gatekeeper(InitPluginProtocol):
    """A plugin adding an app-wide guard (refuses `X-Deny`) and an after_request hook (a header)."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        def deny(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
            if "x-deny" in connection.headers:
                raise PermissionDeniedException("denied by the extra guard")

        async def mark(response: Response[Any]) -> Response[Any]:
            response.headers["x-after-request"] = "yes"
            return response

        app_config.guards.append(deny)
        app_config.after_request = mark
        return app_config


@pytest.fixture
def gated(db_path):
    with TestClient(create_app(Settings(database=db_path), plugins=[Gatekeeper()])) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [("GET", "/status"), ("POST", "/update"),
                                              ("GET", "/logs"), ("HEAD", "/status")])
def test_a_guard_added_to_the_app_applies_to_every_route(gated, method, path):
    """A guard given to create_app refuses requests on the busiest routes too, and writes nothing."""
    response = gated.request(method, path, content=b'{"counter": 1}',
                             headers={**JSON, "x-deny": "1"})
    assert 403 == response.status_code
    assert 0 == gated.get("/status").json()["version"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/status"), ("POST", "/update"),
                                              ("GET", "/logs"), ("HEAD", "/status")])
def test_an_after_request_hook_applies_to_the_busiest_routes(gated, method, path):
    """An after_request hook given to create_app sees /status, /update and /logs responses."""
    response = gated.request(method, path, content=b'{"counter": 1}', headers=JSON)
    assert 200 == response.status_code
    assert "yes" == response.headers["x-after-request"]


@pytest.mark.parametrize("protect_reads", [False, True])
def test_an_oversized_unauthenticated_body_gets_one_status(make_client, protect_reads):
    """Without a key, an oversized body is 401 whatever the route and settings: the guard runs first."""
    client = make_client(api_keys=(KEY,), protect_reads=protect_reads)
    body = b'{"message": "' + b"x" * 70_000 + b'"}'
    statuses = {client.post("/update", content=body, headers=JSON).status_code,
                client.post("/update", content=body).status_code,
                client.post("/update", content=body, headers={**JSON, "x-api-key": "wrong" * 4})
                .status_code}
    assert {401} == statuses


def test_a_client_that_leaves_before_its_body_is_not_a_server_error(db_path):
    """A client disconnecting before sending its body is a 4xx in the metrics, never a 500."""
    app = create_app(Settings(database=db_path))
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        started = asyncio.Event()

        async def lifespan_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        lifespan = asyncio.Queue[dict[str, Any]]()
        await lifespan.put({"type": "lifespan.startup"})
        lifespan_task = asyncio.create_task(app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan.get, lifespan_send))
        try:
            await asyncio.wait_for(started.wait(), 10)
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "POST", "path": "/update", "raw_path": b"/update",
                     "query_string": b"", "root_path": "", "scheme": "http",
                     "server": ("test", 80), "client": ("test", 1),
                     "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")]}

            async def receive() -> dict[str, Any]:
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
        finally:
            await lifespan.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(lifespan_task, 10)

    asyncio.run(run())
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses
    assert all(400 <= s < 500 for s in statuses)
    assert 0 == _version_of(db_path)


def _version_of(db_path) -> int:
    with TestClient(create_app(Settings(database=db_path))) as client:
        return int(client.get("/status").json()["version"])
