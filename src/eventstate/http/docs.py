"""The interactive API documentation, served entirely from this server: Swagger UI's files come from
the pinned `swagger-ui-py` package, so `/schema` renders on a host with no internet access."""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from importlib.resources import files
from typing import Annotated, Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import PathParameter
from litestar.response.base import ASGIResponse

_PACKAGE = "swagger-ui-py"
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain; charset=utf-8",
}


def assets_path() -> str:
    """Where the assets are served: the package version is in the path, so they never change there."""
    return f"/schema/assets/{version(_PACKAGE)}"


@cache
def _asset(name: str) -> bytes:
    return files("swagger_ui").joinpath("static", name).read_bytes()


class _OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI without its one default call out: the public validator badge."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        return page.replace(b"deepLinking: true,", b"deepLinking: true, validatorUrl: null,", 1)


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI, at /schema and /schema/swagger, loading only this server's copies of its files."""
    base = assets_path()
    return _OfflineSwagger(
        js_url=f"{base}/swagger-ui-bundle.js", css_url=f"{base}/swagger-ui.css",
        standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )


@get("/schema/assets/{release:str}/{name:str}", include_in_schema=False, sync_to_thread=False)
def swagger_asset(release: Annotated[str, PathParameter()],
                  name: Annotated[str, PathParameter()]) -> ASGIResponse:
    """One of Swagger UI's files, cacheable for a year (its URL names the release)."""
    media_type = _TYPES.get(name)
    if media_type is None or release != version(_PACKAGE):
        raise NotFoundException(f"no documentation asset {release}/{name}")
    return ASGIResponse(body=_asset(name), media_type=media_type,
                        headers={"cache-control": "public, max-age=31536000, immutable"})
