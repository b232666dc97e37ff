"""Replication settings, replica URLs and the Litestream configuration eventstate renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstate.replication import ReplicaError, ReplicaTarget, litestream_env, render_config
from eventstate.settings import Settings, SettingsError


def test_replica_settings_are_read_from_the_environment() -> None:
    """The documented variables become settings and round-trip through a worker's environment."""
    env = {"EVENTSTATE_REPLICA_URL": "s3://bucket/prefix/log", "EVENTSTATE_REPLICA_ENDPOINT": "http://s3:9000",
           "EVENTSTATE_REPLICA_SYNC_INTERVAL_MS": "250", "EVENTSTATE_REPLICA_MAX_LAG_SECONDS": "0",
           "EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS": "5"}
    settings = Settings.from_env(env)

    assert (settings.replica_url, settings.replica_endpoint, settings.replica_sync_interval_s,
            settings.replica_max_lag_s, settings.replica_anchor_interval_s) == (
        "s3://bucket/prefix/log", "http://s3:9000", 0.25, 0, 5)
    assert settings == Settings.from_env(settings.to_env())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EVENTSTATE_REPLICA_URL": "https://bucket/prefix"}, "s3://BUCKET/PREFIX"),
        ({"EVENTSTATE_REPLICA_URL": "s3://bucket"}, "needs a prefix"),
        ({"EVENTSTATE_REPLICA_URL": "s3://bucket/p?x=1"}, "s3://BUCKET/PREFIX"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_REPLICA_ENDPOINT": "s3.local:9000"},
         "http(s)://HOST[:PORT]"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_REPLICA_ENDPOINT": "http://h:1/path"},
         "http(s)://HOST[:PORT]"),
        ({"EVENTSTATE_REPLICA_ENDPOINT": "http://s3:9000"}, "EVENTSTATE_REPLICA_URL is not"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_WORKERS": "2"}, "EVENTSTATE_WORKERS=1"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_DATABASE": "postgresql://u@h/db"},
         "replicated by PostgreSQL itself"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_REPLICA_SYNC_INTERVAL_MS": "10"}, "between"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_REPLICA_MAX_LAG_SECONDS": "-1"}, "between"),
        ({"EVENTSTATE_REPLICA_URL": "s3://b/p", "EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS": "x"},
         "integer"),
    ],
)
def test_bad_replica_settings_fail_closed(env: dict[str, str], message: str) -> None:
    """A replica setting eventstate cannot honour stops it from starting, with the reason."""
    with pytest.raises(SettingsError, match=None) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_litestream_config_disables_retention_and_names_the_replica(tmp_path: Path) -> None:
    """Litestream never deletes from the replica, replicates the absolute path, and gets the
    endpoint with path-style addressing for S3-compatible stores."""
    target = ReplicaTarget.parse("s3://bucket/a/b", "http://127.0.0.1:9000/")
    config = json.loads(render_config(tmp_path / "x.db", target, sync_interval=0.5))
    (db,) = config["dbs"]

    assert config["retention"] == {"enabled": False}
    assert db["path"] == str((tmp_path / "x.db").resolve())
    assert db["replica"]["url"] == "s3://bucket/a/b"
    assert (db["replica"]["endpoint"], db["replica"]["force-path-style"]) == ("http://127.0.0.1:9000", True)
    assert db["replica"]["sync-interval"] == "500ms"


def test_aws_ca_bundle_moves_to_ssl_cert_file() -> None:
    """Litestream cannot use AWS_CA_BUNDLE; the same bundle reaches it as SSL_CERT_FILE."""
    assert litestream_env({"AWS_CA_BUNDLE": "/ca.pem", "X": "1"}) == {"SSL_CERT_FILE": "/ca.pem", "X": "1"}
    assert litestream_env({"AWS_CA_BUNDLE": "/a", "SSL_CERT_FILE": "/b"}) == {"SSL_CERT_FILE": "/b"}


def test_replica_url_parts() -> None:
    """The bucket, prefix and key layout Litestream and the anchors use."""
    target = ReplicaTarget.parse(" s3://bucket/prod/log/ ")

    assert (target.bucket, target.prefix, target.endpoint) == ("bucket", "prod/log", None)
    assert target.level_prefix(0) == "prod/log/0000/"
    assert target.anchor_prefix() == "prod/log/eventstate-anchors/"
    with pytest.raises(ReplicaError):
        ReplicaTarget.parse("s3:///prefix")
