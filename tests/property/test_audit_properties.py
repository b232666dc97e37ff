"""Properties of the audit tooling: tampering is always found where it happened, replay is a fold,
export and import lose nothing, and the fast row fold agrees with `evolve` on every input."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

# The helpers are shared with the integration tests, which live beside this directory.
sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from _audit_support import (
    append,
    delete,
    edit,
    insert,
    moment,
    row,
    run_main,
    swap,
)

from eventstate.domain import (
    COUNTER_MAX,
    COUNTER_MIN,
    GENESIS_HASH,
    ChainBroken,
    Head,
    State,
    Update,
    chain_hash,
    decide,
    fold,
    fold_rows,
    format_timestamp,
    record,
)
from eventstate.eventlog import row_to_event

counters = st.integers(COUNTER_MIN, COUNTER_MAX)
messages = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
update_lists = st.lists(
    st.one_of(
        st.builds(Update, counter=counters),
        st.builds(Update, message=messages),
        st.builds(Update, counter=counters, message=messages),
    ),
    min_size=1,
    max_size=10,
)


@contextmanager
def logged(items: list[Update]) -> Iterator[Path]:
    """A fresh log in a temporary directory holding `items`, one event per commit."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.db"
        append(path, items)
        yield path


def _forged(path: Path, seq: int, new: State, timestamp: str) -> dict[str, Any]:
    """A row at `seq` whose old state and hash continue correctly from the row before it."""
    if seq == 1:
        before = Head()
    else:
        r = row(path, seq - 1)
        before = Head(seq - 1, State(r["new_counter"], r["new_message"]), r["timestamp"], r["hash"])
    return {
        "seq": seq,
        "timestamp": timestamp,
        "old_counter": before.state.counter,
        "old_message": before.state.message,
        "new_counter": new.counter,
        "new_message": new.message,
        "hash": chain_hash(seq, timestamp, before.state, new, before.hash),
    }


COLUMN_VALUES = {
    "timestamp": st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ).map(format_timestamp),
    "old_counter": counters,
    "new_counter": counters,
    "old_message": messages,
    "new_message": messages,
    "hash": st.text("0123456789abcdef", min_size=64, max_size=64),
}


def tamper_once(data: st.DataObject, path: Path, n: int) -> int:
    """Apply one drawn change to the log at `path` (of `n` events); the seq it must break at."""
    kind = data.draw(
        st.sampled_from(["change", "forge", "delete", "swap", "insert copy", "insert forged", "before seq 1"])
    )
    k = data.draw(st.integers(1, n), label="seq")
    if kind == "change":
        column = data.draw(st.sampled_from(sorted(COLUMN_VALUES)), label="column")
        current = row(path, k)[column]
        value = data.draw(COLUMN_VALUES[column].filter(lambda v: v != current), label="value")
        edit(path, k, **{column: value})
        return k
    if kind == "forge":  # rewrite event k and re-hash it; the break shows at the next link
        stored = row(path, k)
        new = data.draw(
            st.builds(State, counters, messages).filter(
                lambda s: s != State(stored["new_counter"], stored["new_message"])
            )
        )
        values = _forged(path, k, new, stored["timestamp"])
        edit(path, k, **{c: v for c, v in values.items() if c != "seq"})
        return k + 1 if k < n else n
    if kind == "delete":
        delete(path, k)
        return k
    if kind == "swap":
        if n == 1:
            delete(path, k)
            return k
        j = data.draw(st.integers(1, n).filter(lambda j: j != k), label="other seq")
        swap(path, k, j)
        return min(k, j)
    position = data.draw(st.integers(1, n + 1), label="position")
    if kind == "insert copy":
        source = row(path, k)
        insert(path, dict(source, seq=position), shift=position <= n)
        return position + 1 if k == position else position  # a copy of itself in place is valid
    if kind == "insert forged":
        new = data.draw(st.builds(State, counters, messages))
        stamp = format_timestamp(moment(position - 1 if position > 1 else 1))
        insert(path, _forged(path, position, new, stamp), shift=position <= n)
        # Valid itself: the break is the next event, or past the recorded head when appended.
        return position + 1 if position <= n else position
    stray = data.draw(st.integers(-(2**63), 0), label="stray seq")
    insert(path, dict(row(path, k), seq=stray), shift=False)
    return 1


@given(items=update_lists, data=st.data())
def test_any_single_tampering_is_detected_and_located(items: list[Update], data: st.DataObject) -> None:
    """Any one changed, forged, deleted, swapped or inserted row fails verify where it breaks."""
    with logged(items) as path:
        broken = tamper_once(data, path, len(items))

        result = run_main("verify", "--database", path, "--json")

    assert 1 == result.code
    assert (False, broken) == (result.json()["ok"], result.json()["seq"])
    assert f"FAILED at seq {broken}:" in result.err


@given(items=update_lists, data=st.data())
def test_replay_until_seq_equals_folding_the_first_n_events(items: list[Update], data: st.DataObject) -> None:
    """`replay --until-seq n` prints the state that applying the first n updates produces."""
    n = data.draw(st.integers(0, len(items)), label="n")
    state = State()
    for item in items[:n]:
        state = decide(state, item)
    with logged(items) as path:
        result = run_main("replay", "--database", path, "--until-seq", str(n), "--json")

    assert 0 == result.code
    assert {
        "counter": state.counter,
        "message": state.message,
        "version": n,
        "updated_at": format_timestamp(moment(n)) if n else None,
    } == result.json()


@given(items=update_lists, data=st.data())
def test_replay_at_is_the_state_after_the_last_event_at_or_before_that_time(
    items: list[Update], data: st.DataObject
) -> None:
    """`replay --at T` folds up to the last event stamped at or before T, ties included."""
    per_batch = data.draw(st.integers(1, 3), label="events per commit")  # a commit shares one time
    second = data.draw(st.integers(0, len(items) + 1), label="second")
    at = moment(second, data.draw(st.sampled_from([0.0, 0.5]), label="fraction"))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.db"
        append(path, items, per_batch=per_batch)
        with closing(sqlite3.connect(path)) as conn:
            stamps = [r[0] for r in conn.execute("SELECT timestamp FROM events ORDER BY seq")]

        result = run_main("replay", "--database", path, "--at", at.isoformat(), "--json")

    n = sum(1 for stamp in stamps if stamp <= format_timestamp(at))
    state = State()
    for item in items[:n]:
        state = decide(state, item)
    assert 0 == result.code
    assert {
        "counter": state.counter,
        "message": state.message,
        "version": n,
        "updated_at": stamps[n - 1] if n else None,
    } == result.json()


@given(items=update_lists)
def test_export_import_round_trip_keeps_every_hash(items: list[Update]) -> None:
    """Export, import into a new database, export again: the same bytes and the same hashes."""
    with logged(items) as path:
        first, second, rebuilt = (path.with_name(n) for n in ("1.jsonl", "2.jsonl", "copy.db"))
        assert 0 == run_main("export", "--database", path, "--output", first).code
        assert 0 == run_main("import", "--database", rebuilt, first).code
        assert 0 == run_main("export", "--database", rebuilt, "--output", second).code

        assert first.read_bytes() == second.read_bytes()
        assert _hashes(path) == _hashes(rebuilt)


def _hashes(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT hash FROM events ORDER BY seq")]


# ---- the fast fold agrees with evolve ------------------------------------------------------


def _chain(items: list[Update]) -> list[tuple[Any, ...]]:
    """Stored rows of a valid log of `items`."""
    head, rows = Head(), []
    for i, item in enumerate(items):
        event = record(
            head,
            decide(head.state, item),
            datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i // 2),
        )
        rows.append(
            (
                event.seq,
                event.timestamp,
                event.old.counter,
                event.old.message,
                event.new.counter,
                event.new.message,
                event.hash,
            )
        )
        head = Head.after(event)
    return rows


def _mutate(data: st.DataObject, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows with up to two drawn edits: a field changed (and maybe re-hashed, as a forger
    would), a row dropped, moved, duplicated or renumbered."""
    rows = list(rows)
    near = st.datetimes(datetime(2025, 12, 31, 23, 59, 58), datetime(2026, 1, 1, 0, 0, 8))
    values = [
        None,
        near.map(lambda d: format_timestamp(d.replace(tzinfo=UTC))),
        counters,
        messages,
        counters,
        messages,
        COLUMN_VALUES["hash"],
    ]
    for _ in range(data.draw(st.integers(1, 2), label="edits")):
        if not rows:
            break
        i = data.draw(st.integers(0, len(rows) - 1), label="row")
        match data.draw(st.sampled_from(["field", "forge", "drop", "move", "duplicate", "renumber"])):
            case "field" | "forge" as kind:
                column = data.draw(st.integers(1, 6), label="column")
                changed = list(rows[i])
                changed[column] = data.draw(values[column], label="value")
                if kind == "forge":
                    seq, stamp, old_c, old_m, new_c, new_m, _ = changed
                    previous = rows[i - 1][6] if i else GENESIS_HASH
                    changed[6] = chain_hash(seq, stamp, State(old_c, old_m), State(new_c, new_m), previous)
                rows[i] = tuple(changed)
            case "drop":
                del rows[i]
            case "move":
                rows.insert(data.draw(st.integers(0, len(rows) - 1)), rows.pop(i))
            case "duplicate":
                rows.insert(i, rows[i])
            case _:
                rows[i] = (data.draw(st.integers(-3, len(rows) + 3)), *rows[i][1:])
    return rows


def _outcome(fold_: Any, rows: Any) -> Head | tuple[int, str]:
    try:
        result: Head = fold_(rows)
    except ChainBroken as e:
        return (e.seq, e.reason)
    return result


@given(items=st.lists(update_lists.flatmap(st.sampled_from), max_size=12), data=st.data())
def test_fold_rows_agrees_with_evolve(items: list[Update], data: st.DataObject) -> None:
    """On any rows, intact or not, `fold_rows` returns the head or the error `fold` does."""
    rows = _mutate(data, _chain(items))

    expected = _outcome(lambda rs: fold(map(row_to_event, rs)), rows)
    actual = _outcome(fold_rows, rows)

    assert expected == actual


# ---- the same properties on PostgreSQL (fewer examples: a fresh database per example) ---------

PG_EXAMPLES = settings(max_examples=10, deadline=None)


def _pg_log(cluster: Any, items: list[Update]) -> str:
    """A fresh PostgreSQL log holding `items`, one event per commit, stamped like `append`'s."""
    from _audit_support import _commit

    from _postgres import fresh_database
    from eventstate.adapters import open_store
    from eventstate.commands import Command

    url = fresh_database(cluster)
    store = open_store(url)
    try:
        for item in items:
            _commit(store, [Command(item)])  # type: ignore[arg-type]
    finally:
        store.close()
    return url


def _pg_hashes(url: str) -> list[str]:
    from eventstate.adapters import open_store

    store = open_store(url)
    try:
        with store.snapshot() as snap:
            return [e.hash for e in snap.events()]
    finally:
        store.close()


def test_replay_until_seq_equals_folding_on_postgresql(postgres_cluster: Any) -> None:
    """`replay --database URL --until-seq n` prints the state the first n updates produce."""

    @PG_EXAMPLES
    @given(items=update_lists, data=st.data())
    def check(items: list[Update], data: st.DataObject) -> None:
        n = data.draw(st.integers(0, len(items)), label="n")
        state = State()
        for item in items[:n]:
            state = decide(state, item)
        url = _pg_log(postgres_cluster, items)
        result = run_main("replay", "--database", url, "--until-seq", str(n), "--json")
        assert 0 == result.code, result.err
        assert (state.counter, state.message, n) == (
            result.json()["counter"], result.json()["message"], result.json()["version"])

    check()


def test_export_import_round_trip_on_postgresql(postgres_cluster: Any) -> None:
    """Export a PostgreSQL log, import it into an empty one, export again: same bytes, same hashes."""
    from _postgres import fresh_database

    @PG_EXAMPLES
    @given(items=update_lists)
    def check(items: list[Update]) -> None:
        url = _pg_log(postgres_cluster, items)
        rebuilt = fresh_database(postgres_cluster)
        with tempfile.TemporaryDirectory() as directory:
            first, second = Path(directory) / "1.jsonl", Path(directory) / "2.jsonl"
            assert 0 == run_main("export", "--database", url, "--output", first).code
            assert 0 == run_main("import", "--database", rebuilt, first).code
            assert 0 == run_main("export", "--database", rebuilt, "--output", second).code
            assert first.read_bytes() == second.read_bytes()
        assert _pg_hashes(url) == _pg_hashes(rebuilt)
        assert len(items) == len(_pg_hashes(url))

    check()


def test_any_changed_column_on_postgresql_is_detected_and_located(postgres_cluster: Any) -> None:
    """A column of one event rewritten behind the triggers' back fails verify at that seq."""
    import psycopg

    @PG_EXAMPLES
    @given(items=update_lists, data=st.data())
    def check(items: list[Update], data: st.DataObject) -> None:
        url = _pg_log(postgres_cluster, items)
        k = data.draw(st.integers(1, len(items)), label="seq")
        column = data.draw(st.sampled_from(sorted(COLUMN_VALUES)), label="column")
        with psycopg.connect(url, autocommit=True) as conn:
            current = conn.execute(f"SELECT {column} FROM events WHERE seq = %s", (k,)).fetchone()
            assert current is not None
            value = data.draw(COLUMN_VALUES[column].filter(lambda v: v != current[0]), label="value")
            # As the superuser an attacker would need to be: user triggers off for this session.
            conn.execute("SET session_replication_role = replica")
            conn.execute(f"UPDATE events SET {column} = %s WHERE seq = %s", (value, k))
        result = run_main("verify", "--database", url, "--json")
        assert 1 == result.code
        assert (False, k) == (result.json()["ok"], result.json()["seq"])

    check()


_PG_EVENT_COLUMNS = "timestamp, old_counter, old_message, new_counter, new_message, hash"


def test_a_deleted_swapped_or_stray_event_on_postgresql_is_detected_and_located(
    postgres_cluster: Any,
) -> None:
    """A row deleted, two rows swapped, or a stray row before seq 1 (behind the triggers' back) fails
    verify at the seq where the log breaks, as on SQLite."""
    import psycopg

    @PG_EXAMPLES
    @given(items=update_lists, data=st.data())
    def check(items: list[Update], data: st.DataObject) -> None:
        url = _pg_log(postgres_cluster, items)
        n = len(items)
        kind = data.draw(st.sampled_from(["delete", "swap", "before seq 1"]), label="kind")
        k = data.draw(st.integers(1, n), label="seq")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            if kind == "delete" or (kind == "swap" and n == 1):
                conn.execute("DELETE FROM events WHERE seq = %s", (k,))
                broken = k
            elif kind == "swap":
                j = data.draw(st.integers(1, n).filter(lambda j: j != k), label="other seq")
                # One statement: its subquery reads the rows as they were before it.
                conn.execute(
                    f"UPDATE events AS a SET ({_PG_EVENT_COLUMNS}) = (SELECT {_PG_EVENT_COLUMNS} "
                    "FROM events AS b WHERE b.seq = CASE WHEN a.seq = %s THEN %s ELSE %s END) "
                    "WHERE a.seq IN (%s, %s)",
                    (k, j, k, k, j),
                )
                broken = min(k, j)
            else:
                stray = data.draw(st.integers(-(2**63), 0), label="stray seq")
                conn.execute(
                    f"INSERT INTO events (seq, {_PG_EVENT_COLUMNS}) "
                    f"SELECT %s, {_PG_EVENT_COLUMNS} FROM events WHERE seq = %s",
                    (stray, k),
                )
                broken = 1
        result = run_main("verify", "--database", url, "--json")
        assert 1 == result.code
        assert (False, broken) == (result.json()["ok"], result.json()["seq"])

    check()


def test_replay_at_on_postgresql_is_the_state_after_the_last_event_at_or_before_that_time(
    postgres_cluster: Any,
) -> None:
    """`replay --database URL --at T` folds up to the last event stamped at or before T."""

    @PG_EXAMPLES
    @given(items=update_lists, data=st.data())
    def check(items: list[Update], data: st.DataObject) -> None:
        second = data.draw(st.integers(0, len(items) + 1), label="second")
        at = moment(second, data.draw(st.sampled_from([0.0, 0.5]), label="fraction"))
        url = _pg_log(postgres_cluster, items)  # event seq is stamped moment(seq)
        n = min(second, len(items))
        state = State()
        for item in items[:n]:
            state = decide(state, item)
        result = run_main("replay", "--database", url, "--at", at.isoformat(), "--json")
        assert 0 == result.code, result.err
        assert (state.counter, state.message, n) == (
            result.json()["counter"], result.json()["message"], result.json()["version"])

    check()
