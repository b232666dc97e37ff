"""The database setting: a path or sqlite:/// URL is a SQLite file, a postgresql:// URL stays a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstate.settings import Settings, SettingsError


@pytest.mark.parametrize(("given", "expected"), [
    ("events.db", Path("events.db")),
    ("/var/lib/es/events.db", Path("/var/lib/es/events.db")),
    ("sqlite:////var/lib/es/events.db", Path("/var/lib/es/events.db")),
    ("postgresql://app@db/es", "postgresql://app@db/es"),
    ("postgresql://app:pw@db:5433/es?sslmode=require", "postgresql://app:pw@db:5433/es?sslmode=require"),
])
def test_the_database_setting_keeps_urls_and_makes_paths(given: str, expected: Path | str) -> None:
    """From the environment and from code alike, a URL is never turned into a Path."""
    assert expected == Settings.from_env({"EVENTSTATE_DATABASE": given}).database
    assert expected == Settings(database=given).database


def test_an_unknown_scheme_is_refused_in_one_line() -> None:
    """mysql:// is not a file name with a colon in it: it is refused, naming what is supported."""
    with pytest.raises(SettingsError, match="unsupported database URL scheme 'mysql'"):
        Settings.from_env({"EVENTSTATE_DATABASE": "mysql://x@y/z"})


def test_a_password_in_the_url_is_never_shown() -> None:
    """Logs and reprs show the URL with its password masked."""
    settings = Settings(database="postgresql://app:s3cret@db/es")
    assert "s3cret" not in repr(settings)
    assert "postgresql://app:***@db/es" == settings.shown_database
