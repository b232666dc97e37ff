"""The API document and its interactive page: generated from the wire types, usable offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

KEY = "k" * 32
REQUIRE_BROWSER = "EVENTSTATE_REQUIRE_BROWSER"  # as the browser tests; CI sets it


def _walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


@pytest.fixture
def document(make_client):
    return make_client(api_keys=(KEY,)).get("/schema/openapi.json").json()


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
def test_the_docs_pages_load_only_this_servers_files(client, page):
    """Every script, style and icon of the docs page is served by eventstate itself (no CDN)."""
    response = client.get(page)
    assert 200 == response.status_code
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", response.text)
    assert urls
    assert [] == [u for u in urls if not u.startswith("/")]
    assert "https://" not in response.text.replace("https://spec.openapis.org", "")
    for url in urls:
        asset = client.get(url)
        assert 200 == asset.status_code, url
        assert "immutable" in asset.headers["cache-control"]


def test_unknown_doc_assets_are_404(client):
    """Only the listed assets of the pinned release are served."""
    assert 404 == client.get("/schema/assets/0.0.0/swagger-ui-bundle.js").status_code
    assert 404 == client.get("/schema/assets/25.7.1/../../pyproject.toml").status_code


def test_integer_bounds_are_exact_integers(document):
    """No bound in the document is a float: 2**63 - 1 is written exactly, not 9.223372036854776e18."""
    floats = [(p, k) for p, node in _walk(document) for k in ("minimum", "maximum")
              if isinstance(node.get(k), float)]
    assert [] == floats
    counter = document["components"]["schemas"]["StateBody"]["properties"]["counter"]
    assert (-(2**63), 2**63 - 1) == (counter["minimum"], counter["maximum"])


def test_timestamps_are_date_time(document):
    """Event timestamps and updated_at declare format: date-time."""
    schemas = document["components"]["schemas"]
    assert "date-time" == schemas["EventBody"]["properties"]["timestamp"]["format"]
    assert ["date-time"] == [s.get("format") for s in
                             schemas["StatusBody"]["properties"]["updated_at"]["anyOf"] if "format" in s]


def test_every_operation_has_a_readable_id_a_tag_and_an_example(document):
    """Operation ids are camelCase verbs and unique; every operation has a tag; bodies have examples."""
    ids = []
    for path, item in document["paths"].items():
        for operation in item.values():
            ids.append(operation["operationId"])
            assert operation["tags"], path
            assert {t["name"] for t in document["tags"]} >= set(operation["tags"])
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(get|post|stream)[A-Z][A-Za-z]+", i) for i in ids), ids
    for name in ("StatusBody", "EventBody", "LogPage", "ProblemBody", "HealthBody", "UpdateBody"):
        assert document["components"]["schemas"][name]["examples"], name
    body = document["paths"]["/update"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["examples"]


def test_the_api_key_scheme_is_declared_and_required_for_updates(document):
    """X-API-KEY is an apiKey scheme in the header, required by POST /update when keys are set."""
    assert {"type": "apiKey", "name": "X-API-KEY", "in": "header"}.items() <= (
        document["components"]["securitySchemes"]["apiKey"].items())
    assert [{"apiKey": []}] == document["paths"]["/update"]["post"]["security"]
    assert "security" not in document["paths"]["/status"]["get"]


def test_every_problem_type_follows_one_scheme(document):
    """The problem schema pins `type` to urn:eventstate:problem:<kind>."""
    pattern = document["components"]["schemas"]["ProblemBody"]["properties"]["type"]["pattern"]
    assert re.fullmatch(pattern, "urn:eventstate:problem:version-mismatch")
    assert not re.fullmatch(pattern, "about:blank")


def _chromium() -> str | None:
    return os.environ.get("EVENTSTATE_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")


def test_swagger_renders_in_a_real_browser_without_internet(server_factory, db_path):
    """Headless Chromium, with background networking off, renders every operation of /schema."""
    browser = _chromium()
    if browser is None:
        if os.environ.get(REQUIRE_BROWSER):
            pytest.fail(f"{REQUIRE_BROWSER} is set but no chromium is installed")
        pytest.skip(f"no chromium (set {REQUIRE_BROWSER}=1 to make this a failure)")
    server = server_factory(db_path).start()
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000",
         "--dump-dom", f"{server.url}/schema"],
        capture_output=True, text=True, timeout=120, check=False).stdout
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert {"/status", "/update", "/logs", "/logs/{seq}", "/logs/stream"} <= rendered




def test_every_status_the_body_reader_answers_is_documented_for_updates(client):
    """POST /update documents what the one body reader refuses with: 408, 413 and 415."""
    documented = client.get("/schema/openapi.json").json()["paths"]["/update"]["post"]["responses"]
    assert {"408", "413", "415"} <= set(documented)
    refused = client.post("/update", content=b"counter=1", headers={"content-type": "text/plain"})
    assert str(refused.status_code) in documented
