"""The console's routes through the real app: its files, its policy, and the API's policy unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from eventstate.http.console import CONSOLE_CSP

API_CSP = "default-src 'none'; frame-ancestors 'none'"


def test_the_root_redirects_to_the_console(client: Any) -> None:
    """`/` answers with a redirect to `/console`."""
    response = client.get("/", follow_redirects=False)

    assert (302, "/console") == (response.status_code, response.headers["location"])


@pytest.mark.parametrize(("path", "media_type"), [
    ("/console", "text/html"), ("/console/console.js", "text/javascript"),
    ("/console/api.js", "text/javascript"), ("/console/chain.js", "text/javascript"),
    ("/console/checkpoint.js", "text/javascript"), ("/console/console.css", "text/css"),
    ("/console/favicon.svg", "image/svg+xml"),
])
def test_console_files_carry_only_the_console_policy(client: Any, path: str, media_type: str) -> None:
    """Each file of the page is served with exactly one CSP: the console's, which allows only 'self'."""
    response = client.get(path)

    assert 200 == response.status_code
    assert response.headers["content-type"].startswith(media_type)
    assert [CONSOLE_CSP] == response.headers.get_list("content-security-policy")
    assert "nosniff" == response.headers["x-content-type-options"]


@pytest.mark.parametrize("path", ["/console/index.html", "/console/missing.js", "/console/..%2Fapp.py",
                                  "/consolex", "/console/" + "a" * 65])
def test_anything_else_near_the_console_is_a_404_with_a_policy(client: Any, path: str) -> None:
    """Unknown names are not looked up on disk; the 404 still carries a CSP, and only one."""
    response = client.get(path)

    assert response.status_code in (400, 404)
    assert 1 == len(response.headers.get_list("content-security-policy"))


def test_the_api_keeps_its_own_policy(client: Any) -> None:
    """JSON endpoints keep the API's deny-all policy, not the console's."""
    assert [API_CSP] == client.get("/logs").headers.get_list("content-security-policy")
    assert [API_CSP] == client.get("/status?as_of=0").headers.get_list("content-security-policy")


def test_the_console_itself_is_not_behind_the_read_key(make_client: Any) -> None:
    """With reads protected, the page still loads (it asks for the key); the data stays protected."""
    client = make_client(api_keys=("k" * 16,), protect_reads=True)

    assert 200 == client.get("/console").status_code
    assert 401 == client.get("/logs").status_code
