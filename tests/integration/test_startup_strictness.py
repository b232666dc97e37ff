"""Misconfiguration fails closed: one line naming the setting and the value, exit 2, no file created."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from eventstate.settings import Settings, SettingsError

KEY = "k" * 32


def serve(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSTATE_")}
    return subprocess.run(
        [sys.executable, "-m", "eventstate.cli", "serve", "--database", str(tmp_path / "e.db"), *args],
        capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path,
        env={**clean, **(env or {})})


def one_line_refusal(result: subprocess.CompletedProcess[str], tmp_path) -> str:
    assert 2 == result.returncode, result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines), result.stderr
    assert "serving" not in result.stderr
    assert "Traceback" not in result.stderr
    assert [] == sorted(p.name for p in tmp_path.iterdir())  # nothing written
    return lines[0]


@pytest.mark.parametrize("env", [
    {"EVENTSTATE_PROTECT_READS": "true"},
    {"EVENTSTATE_PROTECT_READS": "true", "EVENTSTATE_API_KEYS": ""},
    {"EVENTSTATE_PROTECT_READS": "true", "EVENTSTATE_API_KEYS": " , \n ,"},
])
def test_protected_reads_without_a_key_refuse_to_start(tmp_path, env):
    """EVENTSTATE_PROTECT_READS=true with no key (or only blanks) is one line and no server."""
    line = one_line_refusal(serve(tmp_path, env=env), tmp_path)
    assert "EVENTSTATE_API_KEYS" in line


def test_an_empty_key_file_refuses_to_start(tmp_path):
    """An EVENTSTATE_API_KEYS_FILE with no key in it is refused, not read as "no protection"."""
    keys = tmp_path.parent / f"{tmp_path.name}-keys"
    keys.write_text("\n  \n")
    line = one_line_refusal(serve(tmp_path, env={"EVENTSTATE_API_KEYS_FILE": str(keys)}), tmp_path)
    assert "EVENTSTATE_API_KEYS_FILE" in line


@pytest.mark.parametrize(("name", "value"), [
    ("EVENTSTATE_SYNCHRONOUS", "SOMETIMES"), ("EVENTSTATE_LOG_LEVEL", "LOUD"),
    ("EVENTSTATE_PORT", "http"), ("EVENTSTATE_WORKERS", "0"), ("EVENTSTATE_MAX_BATCH", "-1"),
    ("EVENTSTATE_BODY_TIMEOUT_SECONDS", "0"), ("EVENTSTATE_ACCESS_LOG", "perhaps"),
])
def test_every_bad_setting_names_the_variable_and_the_value(name, value):
    """The error names the variable and the value it refused."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert value in str(info.value)


def test_a_port_in_use_is_one_line_before_serving_and_creates_nothing(tmp_path):
    """Serving on a port another process holds: one line, exit 2, and no database file."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = one_line_refusal(serve(tmp_path, "--port", str(port)), tmp_path)
    assert str(port) in line


@pytest.mark.parametrize("host", ["no-such-host.invalid", "999.1.1.1"])
def test_a_bad_host_is_one_line_before_serving_and_creates_nothing(tmp_path, host):
    """Serving on an address that cannot be bound: one line naming it, exit 2, nothing written."""
    line = one_line_refusal(serve(tmp_path, "--host", host, "--port", "0"), tmp_path)
    assert host in line


def test_version_is_printed():
    """`eventstate --version` prints the installed version."""
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "eventstate.cli", "--version"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert 0 == result.returncode
    assert version("eventstate") in result.stdout


def test_serve_help_lists_every_setting():
    """`eventstate serve --help` names every EVENTSTATE_* variable that Settings reads."""
    import inspect

    from eventstate import settings

    names = set(__import__("re").findall(r'get\("([A-Z_]+)"\)', inspect.getsource(settings)))
    result = subprocess.run([sys.executable, "-m", "eventstate.cli", "serve", "--help"],
                            capture_output=True, text=True, timeout=30, check=False,
                            env={**os.environ, "COLUMNS": "200"})
    missing = sorted(n for n in names if f"EVENTSTATE_{n}" not in result.stdout)
    assert [] == missing
