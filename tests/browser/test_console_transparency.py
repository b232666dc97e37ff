"""End to end: the console checks a real server's signed checkpoint and inclusion proofs
(`eventstate keygen`, `EVENTSTATE_SIGNING_KEY_FILE`, `GET /checkpoint`, `GET /proofs/inclusion/{seq}`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests_support import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORIGIN = "console.test/eventstate"


@pytest.fixture
def signed(server_factory: type[ServerProcess], db_path: Path, tmp_path: Path) -> tuple[ServerProcess, str]:
    """A server signing checkpoints with a fresh key, 30 events in; and its verifier key."""
    key_file = tmp_path / "signing.key"
    made = subprocess.run([sys.executable, "-m", "eventstate.cli", "keygen", "--origin", ORIGIN,
                           "--out", str(key_file)], capture_output=True, text=True, check=True)
    verifier_key = made.stdout.strip().splitlines()[-1]
    server = server_factory(db_path, env={"EVENTSTATE_SIGNING_KEY_FILE": str(key_file)}).start()
    with httpx.Client(base_url=server.url) as client:
        for i in range(30):
            assert 200 == client.post("/update", json={"counter": i, "message": f"m{i}"}).status_code
    return server, verifier_key


def test_the_servers_checkpoint_and_proofs_verify_in_the_page(signed: tuple[ServerProcess, str],
                                                              open_page: Any) -> None:
    """With the server's verifier key pasted, its checkpoint and every shown event's proof verify."""
    server, verifier_key = signed
    watched = open_page(f"{server.url}/console")
    page = watched.page
    page.wait_for_selector("#checkpoint-form:not([hidden])")
    page.fill("#vkey", verifier_key)
    page.press("#vkey", "Enter")
    page.wait_for_selector("#checkpoint-verdict.good")

    size = int(httpx.get(f"{server.url}/checkpoint").text.splitlines()[1])
    verdict = page.inner_text("#checkpoint-verdict")
    assert f"Checkpoint signed by {ORIGIN} verified: {size} events." in verdict
    assert f"Inclusion proofs verified for seq 6 to {size}" in verdict
    assert [] == [u for u in watched.requests if not u.startswith(f"{server.url}/")]
    assert [] == watched.errors


def test_a_key_for_another_log_is_refused(signed: tuple[ServerProcess, str], open_page: Any,
                                          tmp_path: Path) -> None:
    """A verifier key of another origin does not verify this server's checkpoint, and says why."""
    server, _ = signed
    other = subprocess.run([sys.executable, "-m", "eventstate.cli", "keygen", "--origin", "other.test/log",
                            "--out", str(tmp_path / "other.key")], capture_output=True, text=True, check=True)
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#checkpoint-form:not([hidden])")
    page.fill("#vkey", other.stdout.strip().splitlines()[-1])
    page.press("#vkey", "Enter")
    page.wait_for_selector("#checkpoint-verdict.bad")
    assert "carries no signature by the key other.test/log" in page.inner_text("#checkpoint-verdict")
