"""Settings: one frozen value, read from the environment once at the entry point and passed in."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

import attrs

from eventstate.adapters import database_setting
from eventstate.ports import StoreError

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
MIN_API_KEY_LENGTH = 16
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A setting has a value eventstate cannot run with."""


def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, not {text!r}")


def _int(name: str, text: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {text!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


_UNITS = ("second", "minute", "hour", "day")


def _rate(name: str, text: str) -> tuple[str, int]:
    count, _, unit = text.strip().partition("/")
    unit = unit.strip().lower().removesuffix("s")
    if unit not in _UNITS or not count.strip().isdigit() or int(count) < 1:
        raise SettingsError(f"{name} must look like 100/second (units: {', '.join(_UNITS)}), not {text!r}")
    return unit, int(count)


def _keys(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.replace("\n", ",").split(",") if k.strip())


def _database(value: str | os.PathLike[str]) -> Path | str:
    try:
        return database_setting(value)
    except StoreError as e:
        raise SettingsError(str(e)) from None
def _replica_values(get: Callable[[str], str | None]) -> dict[str, object]:
    values: dict[str, object] = {}
    if (v := get("REPLICA_URL")) is not None and v.strip():
        values["replica_url"] = v.strip()
    if (v := get("REPLICA_ENDPOINT")) is not None and v.strip():
        values["replica_endpoint"] = v.strip()
    if (v := get("REPLICA_SYNC_INTERVAL_MS")) is not None:
        ms = _int("EVENTSTATE_REPLICA_SYNC_INTERVAL_MS", v, 100, 600_000)
        values["replica_sync_interval_s"] = ms / 1000
    if (v := get("REPLICA_MAX_LAG_SECONDS")) is not None:
        values["replica_max_lag_s"] = _int("EVENTSTATE_REPLICA_MAX_LAG_SECONDS", v, 0, 86400)
    if (v := get("REPLICA_ANCHOR_INTERVAL_SECONDS")) is not None:
        values["replica_anchor_interval_s"] = _int("EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS",
                                                   v, 1, 86400)
    return values


@attrs.frozen(repr=False)
class Settings:
    """Everything eventstate can be configured with; see the README's configuration table."""

    # A Path for SQLite (a plain path or sqlite:///PATH); the URL itself for PostgreSQL.
    database: Path | str = attrs.field(default=Path("eventstate.db"), converter=_database)
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    synchronous: Synchronous = "FULL"
    busy_timeout_ms: int = 5000
    api_keys: tuple[str, ...] = ()
    protect_reads: bool = False
    idempotency_ttl: timedelta = timedelta(hours=24)
    max_batch: int = 256
    max_pending: int = 4096
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    access_log: bool = False
    write_rate_limit: tuple[str, int] | None = None
    max_header_bytes: int = 16 * 1024
    body_timeout_seconds: float = 10.0
    signing_key_file: Path | None = attrs.field(
        default=None, converter=attrs.converters.optional(Path))
    # Off-host replication with Litestream (SQLite only); see replication.py.
    replica_url: str | None = None
    replica_endpoint: str | None = None
    replica_sync_interval_s: float = 1.0
    replica_max_lag_s: int = 60
    replica_anchor_interval_s: int = 60

    def __attrs_post_init__(self) -> None:
        short = [k for k in self.api_keys if len(k) < MIN_API_KEY_LENGTH]
        if short:
            raise SettingsError(
                f"{len(short)} API key(s) shorter than {MIN_API_KEY_LENGTH} characters; "
                "use long random keys (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if self.synchronous not in SYNCHRONOUS_LEVELS:
            raise SettingsError(f"EVENTSTATE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_LEVELS)}, "
                                f"not {self.synchronous!r}")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"EVENTSTATE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                                f"not {self.log_level!r}")
        if self.protect_reads and not self.api_keys:
            # Protecting reads with no key would serve everything to everyone: refuse to start.
            raise SettingsError("EVENTSTATE_PROTECT_READS=true needs at least one key in "
                                "EVENTSTATE_API_KEYS or EVENTSTATE_API_KEYS_FILE; none is set")
        self._check_replica()

    def _check_replica(self) -> None:
        if self.replica_url is None:
            if self.replica_endpoint is not None:
                raise SettingsError("EVENTSTATE_REPLICA_ENDPOINT is set but EVENTSTATE_REPLICA_URL is not")
            return
        from eventstate.replication import ReplicaError, ReplicaTarget

        try:
            ReplicaTarget.parse(self.replica_url, self.replica_endpoint)
        except ReplicaError as e:
            raise SettingsError(f"EVENTSTATE_REPLICA_URL: {e}") from None
        if not isinstance(self.database, Path):
            raise SettingsError("EVENTSTATE_REPLICA_URL replicates a SQLite log with Litestream; "
                                "a PostgreSQL log is replicated by PostgreSQL itself")
        if self.workers != 1:
            raise SettingsError("replication (EVENTSTATE_REPLICA_URL) needs EVENTSTATE_WORKERS=1")

    @property
    def shown_database(self) -> str:
        """The database setting for logs and messages: a URL's password is never shown."""
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", str(self.database))

    def __repr__(self) -> str:  # never print the keys (or a database password) themselves
        fields = attrs.asdict(self, recurse=False)
        fields["api_keys"] = f"<{len(self.api_keys)} keys>"
        fields["database"] = self.shown_database
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @classmethod
    def from_env(  # noqa: PLR0912, PLR0915 - one branch per documented variable reads best
        cls, env: Mapping[str, str] | None = None, **overrides: object
    ) -> Settings:
        """Settings from `EVENTSTATE_*` variables, then explicit overrides (e.g. CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}

        def get(name: str) -> str | None:
            return env.get(f"EVENTSTATE_{name}")

        if (v := get("DATABASE")) is not None:
            values["database"] = v
        if (v := get("HOST")) is not None:
            values["host"] = v
        if (v := get("PORT")) is not None:
            values["port"] = _int("EVENTSTATE_PORT", v, 0, 65535)
        if (v := get("WORKERS")) is not None:
            values["workers"] = _int("EVENTSTATE_WORKERS", v, 1, 64)
        if (v := get("SYNCHRONOUS")) is not None:
            values["synchronous"] = v.strip().upper()
        if (v := get("BUSY_TIMEOUT_MS")) is not None:
            values["busy_timeout_ms"] = _int("EVENTSTATE_BUSY_TIMEOUT_MS", v, 0, 600_000)
        keys: tuple[str, ...] = ()
        if (v := get("API_KEYS")) is not None:
            if v.strip() and not _keys(v):
                raise SettingsError(f"EVENTSTATE_API_KEYS holds no key after trimming: {v!r}")
            keys += _keys(v)
        if (v := get("API_KEYS_FILE")) is not None:
            try:
                from_file = _keys(Path(v).read_text(encoding="utf-8"))
            except OSError as e:
                raise SettingsError(f"cannot read EVENTSTATE_API_KEYS_FILE {v}: {e.strerror}") from None
            if not from_file:
                raise SettingsError(f"EVENTSTATE_API_KEYS_FILE {v} holds no key")
            keys += from_file
        if keys:
            values["api_keys"] = keys
        if (v := get("PROTECT_READS")) is not None:
            values["protect_reads"] = _bool("EVENTSTATE_PROTECT_READS", v)
        if (v := get("IDEMPOTENCY_TTL_SECONDS")) is not None:
            values["idempotency_ttl"] = timedelta(
                seconds=_int("EVENTSTATE_IDEMPOTENCY_TTL_SECONDS", v, 1, 10 * 365 * 86400)
            )
        if (v := get("MAX_BATCH")) is not None:
            values["max_batch"] = _int("EVENTSTATE_MAX_BATCH", v, 1, 10_000)
        if (v := get("MAX_PENDING")) is not None:
            values["max_pending"] = _int("EVENTSTATE_MAX_PENDING", v, 1, 1_000_000)
        if (v := get("LOG_LEVEL")) is not None:
            values["log_level"] = v.strip().upper()
        if (v := get("WRITE_RATE_LIMIT")) is not None and v.strip():
            values["write_rate_limit"] = _rate("EVENTSTATE_WRITE_RATE_LIMIT", v)
        if (v := get("MAX_HEADER_BYTES")) is not None:
            values["max_header_bytes"] = _int("EVENTSTATE_MAX_HEADER_BYTES", v, 1024, 1024 * 1024)
        if (v := get("BODY_TIMEOUT_SECONDS")) is not None:
            values["body_timeout_seconds"] = float(_int("EVENTSTATE_BODY_TIMEOUT_SECONDS", v, 1, 3600))
        if (v := get("ACCESS_LOG")) is not None:
            values["access_log"] = _bool("EVENTSTATE_ACCESS_LOG", v)
        if (v := get("SIGNING_KEY_FILE")) is not None and v.strip():
            values["signing_key_file"] = Path(v)
        values.update(_replica_values(get))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a worker process."""
        env = {
            "EVENTSTATE_DATABASE": str(self.database),
            "EVENTSTATE_HOST": self.host,
            "EVENTSTATE_PORT": str(self.port),
            "EVENTSTATE_WORKERS": str(self.workers),
            "EVENTSTATE_SYNCHRONOUS": self.synchronous,
            "EVENTSTATE_BUSY_TIMEOUT_MS": str(self.busy_timeout_ms),
            "EVENTSTATE_PROTECT_READS": str(self.protect_reads).lower(),
            "EVENTSTATE_IDEMPOTENCY_TTL_SECONDS": str(int(self.idempotency_ttl.total_seconds())),
            "EVENTSTATE_MAX_BATCH": str(self.max_batch),
            "EVENTSTATE_MAX_PENDING": str(self.max_pending),
            "EVENTSTATE_LOG_LEVEL": self.log_level,
            "EVENTSTATE_ACCESS_LOG": str(self.access_log).lower(),
            "EVENTSTATE_MAX_HEADER_BYTES": str(self.max_header_bytes),
            "EVENTSTATE_BODY_TIMEOUT_SECONDS": str(int(self.body_timeout_seconds)),
            "EVENTSTATE_WRITE_RATE_LIMIT": (
                f"{self.write_rate_limit[1]}/{self.write_rate_limit[0]}" if self.write_rate_limit else ""
            ),
        }
        if self.signing_key_file is not None:
            env["EVENTSTATE_SIGNING_KEY_FILE"] = str(self.signing_key_file)
        if self.replica_url is not None:
            env["EVENTSTATE_REPLICA_URL"] = self.replica_url
            env["EVENTSTATE_REPLICA_ENDPOINT"] = self.replica_endpoint or ""
            env["EVENTSTATE_REPLICA_SYNC_INTERVAL_MS"] = str(int(self.replica_sync_interval_s * 1000))
            env["EVENTSTATE_REPLICA_MAX_LAG_SECONDS"] = str(self.replica_max_lag_s)
            env["EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS"] = str(self.replica_anchor_interval_s)
        return env  # API keys are not copied: workers inherit EVENTSTATE_API_KEYS(_FILE) as given


SETTINGS_HELP = """settings (environment variables; flags above override them):
  EVENTSTATE_DATABASE                 SQLite file or postgresql:// URL (default ./eventstate.db)
  EVENTSTATE_HOST                     address to bind (default 127.0.0.1)
  EVENTSTATE_PORT                     port (default 5000)
  EVENTSTATE_WORKERS                  worker processes sharing the log (default 1)
  EVENTSTATE_SYNCHRONOUS              FULL, EXTRA, NORMAL or OFF (default FULL)
  EVENTSTATE_BUSY_TIMEOUT_MS          wait for another process's write lock (default 5000)
  EVENTSTATE_API_KEYS                 comma-separated keys, 16+ characters each (default: none)
  EVENTSTATE_API_KEYS_FILE            a file with one key per line (default: none)
  EVENTSTATE_PROTECT_READS            also require a key for reads (default false; needs a key)
  EVENTSTATE_IDEMPOTENCY_TTL_SECONDS  how long an Idempotency-Key is remembered (default 86400)
  EVENTSTATE_MAX_BATCH                most updates per commit (default 256)
  EVENTSTATE_MAX_PENDING              most queued updates; more get 503 (default 4096)
  EVENTSTATE_WRITE_RATE_LIMIT         per-client write limit, e.g. 100/second (default: none)
  EVENTSTATE_MAX_HEADER_BYTES         request-header limit; more get 431 (default 16384)
  EVENTSTATE_BODY_TIMEOUT_SECONDS     deadline for a request body to arrive; then 408 (default 10)
  EVENTSTATE_LOG_LEVEL                DEBUG, INFO, WARNING or ERROR (default INFO)
  EVENTSTATE_ACCESS_LOG               one JSON line per request (default false)
  EVENTSTATE_SIGNING_KEY_FILE         Ed25519 key that signs checkpoints (default: none, no /checkpoint)
  EVENTSTATE_REPLICA_URL              s3://BUCKET/PREFIX: replicate the SQLite log there with Litestream
  EVENTSTATE_REPLICA_ENDPOINT         http(s)://HOST:PORT of an S3-compatible store (default: AWS)
  EVENTSTATE_REPLICA_SYNC_INTERVAL_MS how often Litestream ships new pages (default 1000)
  EVENTSTATE_REPLICA_MAX_LAG_SECONDS  replica lag that fails readiness; 0 = never (default 60)
  EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS  how often the replicated head is anchored (default 60)
"""
