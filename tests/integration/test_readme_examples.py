"""The README's API examples work when pasted in order into a shell against a fresh server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def api_examples() -> str:
    """The shell block of the README's API section (the one starting with the current state)."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    return next(b for b in blocks if b.startswith("# current state"))


def test_the_readme_api_examples_work_when_pasted_in_order(server_factory, db_path):
    """Each curl example, run in order, gets the answer the README shows (a 304 included)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server = server_factory(db_path).start()
    script = api_examples().replace("http://127.0.0.1:5000", server.url)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            check=False)
    assert "urn:eventstate:problem" not in result.stdout, result.stdout
    assert "HTTP/1.1 304 Not Modified" in result.stdout
    assert 'etag: "1"' in result.stdout.lower()
    assert "Idempotent-Replayed" not in result.stdout
    assert '"message":"once"' in result.stdout
    assert "id: 1\nevent: event\ndata: {" in result.stdout
    # the update, the If-Match update, the keyed update and the one with an X-API-KEY
    assert 4 == httpx.get(f"{server.url}/status").json()["version"]
