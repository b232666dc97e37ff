"""Developer and operator tasks for eventstate: `nox -l` lists them.

Sessions that touch a cloud are `default=False`, so a plain `nox` never creates anything that costs money.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12", "3.13"]

# ---- core sessions ---------------------------------------------------------------------------


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff and mypy (strict) over the code."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py")
    session.run("mypy")


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


# ---- deployment with Terraform (section owned by the deploy work) ----------------------------
