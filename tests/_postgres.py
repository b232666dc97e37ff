"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, a temp dir, a free port.

The server refuses to run as root, so as root the cluster belongs to the `postgres` user (`runuser`).
Without the binaries the tests that need it skip with the reason, unless EVENTSTATE_REQUIRE_POSTGRES=1
(CI), where that is a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import attrs
import pytest

REQUIRE_POSTGRES = "EVENTSTATE_REQUIRE_POSTGRES"
_counter = itertools.count(1)


def find_binaries() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres of the newest installed PostgreSQL, if any."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class Cluster:
    """A running throwaway cluster: start/stop it (to test outages), make databases in it."""

    bin: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, check=check,
                              timeout=120)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """A URL for `database` over TCP on loopback."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=200", "start")

    def running(self) -> bool:
        """Whether the server is up."""
        return 0 == self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status",
                              check=False).returncode

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate` is a crash)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser, in autocommit."""
        import psycopg

        with psycopg.connect(self.url(database).replace("postgresql://", "postgresql://", 1),
                             autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb and start a cluster in a new temp dir; the caller destroys it."""
    binaries = find_binaries()
    if binaries is None:
        reason = "PostgreSQL binaries (initdb) not found; install Debian's postgresql package"
        if os.environ.get(REQUIRE_POSTGRES) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES}=1 but {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="eventstate-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster = Cluster(binaries, root, _free_port(), as_user)
    try:
        cluster._run(str(binaries / "initdb"), "-D", str(cluster.data), "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        cluster.start()
    except subprocess.CalledProcessError as e:
        cluster.destroy()
        pytest.fail(f"cannot start a PostgreSQL cluster: {e.stderr or e.stdout}")
    return cluster


def fresh_database(cluster: Cluster, *, initialise: bool = True) -> str:
    """A new, empty database in `cluster` (with the log's schema unless told not to); its URL."""
    name = f"es_{os.getpid()}_{next(_counter)}_{int(time.time() * 1000) % 100000}"
    cluster.sql(f"CREATE DATABASE {name}")
    url = cluster.url(name)
    if initialise:
        from eventstate.adapters.postgresql import PostgresStore

        store, _ = PostgresStore.init(url)
        store.close()
    return url


def raw_sql(url: str):
    """A function that runs one statement on `url` directly (autocommit), raising what psycopg raises."""
    import psycopg

    def run(statement: str) -> object:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else None

    return run
