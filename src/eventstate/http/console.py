"""The audit console: `GET /console` and its files, served from the package with a strict CSP.

The page is plain HTML, CSS and JavaScript modules (no build step, no framework, nothing fetched from
another origin); it calls the public API (`/status`, `/logs`, `/logs/stream`, `/checkpoint`,
`/proofs/...`) like any other client, so it needs no route of its own beyond its files.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from litestar import Router, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter
from litestar.response import Redirect
from litestar.response.base import ASGIResponse

# Only this origin: scripts, styles and fetches all come from the server itself; no inline script,
# no inline style, no frames, no plugins, forms post nowhere. `connect-src 'self'` covers fetch/SSE.
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The files the page is made of; anything else under /console is a 404 (no directory walking).
_FILES = ("index.html", "console.css", "console.js", "api.js", "chain.js", "checkpoint.js",
          "favicon.svg")


@cache
def _asset(name: str) -> bytes:
    return (resources.files("eventstate") / "console" / name).read_bytes()


def _serve(name: str) -> ASGIResponse:
    suffix = name[name.rfind("."):]
    return ASGIResponse(body=_asset(name), media_type=_TYPES[suffix],
                        headers={"content-security-policy": CONSOLE_CSP,
                                 # The page and its modules must stay in step after an upgrade.
                                 "cache-control": "no-cache"})


@get("/", include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    """The root of the service is the console."""
    return Redirect("/console", status_code=302)


@get("/console", include_in_schema=False, sync_to_thread=False)
def console_page() -> ASGIResponse:
    """The console page itself."""
    return _serve("index.html")


@get("/console/{name:path}", include_in_schema=False, sync_to_thread=False)
def console_file(name: Annotated[str, PathParameter(description="A file of the page")]) -> ASGIResponse:
    """One of the page's own files (its scripts, styles and icon); anything else under /console/ is a
    404 that still carries the console's policy (the edge leaves /console/ to this module)."""
    name = name.lstrip("/")
    if name not in _FILES or name == "index.html":
        raise NotFoundException("no such console file", headers={"content-security-policy": CONSOLE_CSP})
    return _serve(name)


console_router = Router("/", route_handlers=[root, console_page, console_file])
