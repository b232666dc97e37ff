"""The write use case: apply a batch of update commands inside one log transaction.

Each command keeps its own semantics inside a group commit: its own `old` (the head as left by the
command before it), its own `If-Match` check and its own idempotency-key outcome, in arrival order.
A command refused by a rule yields its error without affecting the others and writes nothing; a
key used twice in one batch is answered, the second time, as a replay of the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from eventstate.domain import DomainError, Event, Update, check_precondition, decide, format_timestamp, record
from eventstate.ports import WriteTransaction


class IdempotencyKeyReused(DomainError):
    """The idempotency key was already used for a different request body."""


class IdempotencyKeyInFlight(DomainError):
    """A request with the same idempotency key is still being processed."""


@attrs.frozen
class Command:
    """An update as received: the change, an optional `If-Match` set and an optional idempotency key."""

    update: Update
    if_match: frozenset[int] | None = None
    idempotency_key: str | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of what the request asks for, to tell a retry from a different request."""
        u = self.update
        text = f"{u.counter!r}\n{'' if u.message is None else len(u.message)}:{u.message!r}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class Recorded:
    """The outcome of an accepted command: its event, and whether it was a replay of an earlier one."""

    event: Event
    replayed: bool = False


Outcome = Recorded | DomainError


def apply_batch(
    tx: WriteTransaction, commands: Sequence[Command], now: datetime, key_ttl: timedelta
) -> list[Outcome]:
    """Decide every command against the head left by the previous one; append the accepted ones."""
    expired_before = format_timestamp(now - key_ttl)
    stamp = format_timestamp(now)  # one clock reading for the whole batch
    outcomes: list[Outcome] = []
    for command in commands:
        try:
            outcomes.append(_apply(tx, command, stamp, expired_before))
        except DomainError as e:
            outcomes.append(e)
    return outcomes


def _apply(tx: WriteTransaction, command: Command, now: str, expired_before: str) -> Recorded:
    key = command.idempotency_key
    fingerprint = ""
    if key is not None:
        fingerprint = command.fingerprint
        # Decided earlier in this batch or committed within the TTL; an expired record is
        # replaced only if this command is accepted, so a refused one writes nothing at all.
        stored = tx.decided(key, not_before=expired_before)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different request body"
                )
            return Recorded(tx.event(stored.seq), replayed=True)
    check_precondition(tx.head, command.if_match)
    event = record(tx.head, decide(tx.head.state, command.update), now)
    tx.append(event, key, fingerprint)
    return Recorded(event)
