"""Write the audit console's screenshots (desktop and phone width) into a directory.

Run by `nox -s screenshots`: starts `eventstate serve` on a fresh log in a temporary directory,
records a short, plausible history, and photographs /console in the system Chromium (headless, via
Playwright's Python package; Playwright's own browser download is not used).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HISTORY = [
    {"counter": 1, "message": "invoice 2026-0413 opened"},
    {"counter": 2},
    {"message": "invoice 2026-0413: line items agreed"},
    {"counter": 5, "message": "three deliveries booked"},
    {"counter": 4, "message": "delivery 2 cancelled: pallet damaged\nreplacement ordered"},
    {"counter": 5},
    {"message": "paid in full — €1 240,00"},
    {"counter": 6, "message": "audit note: reconciled with ledger ✓"},
    {"counter": 7},
    {"message": "closing period Q4"},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, object]) -> None:
    httpx.post(f"{url}/update", json=body, timeout=10).raise_for_status()


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"eventstate serve exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit("eventstate serve did not become ready in 30 s")


def main(out: Path) -> None:
    """Photograph /console at 1280 px and 390 px into `out`."""
    browser_path = os.environ.get("EVENTSTATE_CHROMIUM") or shutil.which("chromium")
    if browser_path is None:
        sys.exit("no Chromium found: apt-get install chromium, or set EVENTSTATE_CHROMIUM")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "eventstate.cli", "serve", "--port", str(port),
             "--database", str(Path(tmp) / "events.db")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_ready(url, server)
            for body in HISTORY:
                _post(url, body)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
                for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
                    page = browser.new_page(viewport={"width": width, "height": height},
                                            device_scale_factor=1 if width > 600 else 2)
                    page.goto(f"{url}/console")
                    page.wait_for_selector("#chain-all.good >> text=from seq 1")
                    page.wait_for_selector("#connection.live")
                    # On a phone, show the timeline too: the top 1,500 px of the page.
                    clip = None if width > 600 else {"x": 0, "y": 0, "width": width, "height": 1500}
                    page.screenshot(path=str(out / f"console-{name}.png"), full_page=clip is not None,
                                    clip=clip)
                    print(f"wrote {out / f'console-{name}.png'}")
                    page.close()
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
