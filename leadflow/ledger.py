"""The aggregate ledger: every contact's event aggregates as of the latest day run, kept in the
run cache (a DuckDB file beside the lake), so that a day re-reads the events of few contacts.

From one day's end to a later one, a contact's aggregates change only by half-life decay (the
same multiplication for everyone) unless one of its events entered (it occurred in between, or
its batch is new) or crossed a boundary (it left a rule's window, or a step decay stepped). Those
contacts are re-aggregated from all their events; the others are decayed. The result is what a
full pass over the lake computes, to floating-point rounding (tested against it).

The ledger is a pure function of the lake and the rules: it is keyed by the aggregate SQL, its
day's end and the batches it holds. Anything else (other rules, an earlier day, a batch gone)
rebuilds it from a full pass.
"""

import hashlib
from datetime import UTC, date, datetime, timedelta
from math import floor
from pathlib import Path

import duckdb
import pyarrow as pa

from leadflow.conditions import DAY_SECONDS, quote
from leadflow.lake import EventLake
from leadflow.runcache import get_meta, set_meta, transaction
from leadflow.scoring import CompiledModel, whole_base_events_sql

LEDGER_TABLE = "cache.aggregates"


def model_key(model: CompiledModel) -> str:
    """What the ledger's rows depend on besides the events: the aggregates and how they age."""
    text = "\n".join([model.aggregates, repr(sorted(model.decaying.items())), *model.boundaries])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seconds(end: datetime) -> str:
    return f"epoch({quote(end.isoformat())}::TIMESTAMPTZ)"


def _files_by_day(lake: EventLake, batches: set[str]) -> list[tuple[date, Path]]:
    return [(lake.file_day(path), path) for path in lake.files(batches)]


def _may_cross(day: date, before: datetime, end: datetime, periods: list[float]) -> bool:
    """Whether an event of UTC `day` may cross a boundary at `period` days of age, or at any
    whole multiple of a step `period`, between the ends `before` and `end` (with a day's
    margin: a superset is safe, the predicate decides)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    low = (before - start).total_seconds() / DAY_SECONDS - 2  # ages crossed: (low, high]
    high = (end - start).total_seconds() / DAY_SECONDS + 1
    return any(floor(low / period) < floor(high / period) for period in periods)


def aggregates_as_of(
    connection: duckdb.DuckDBPyConnection,
    lake: EventLake,
    committed: set[str],
    model: CompiledModel,
    end: datetime,
) -> str:
    """Bring the ledger to `end` (incrementally if it can) and return its table's name."""
    key = model_key(model)
    held = {
        row[0] for row in connection.execute("SELECT batch_id FROM cache.ledger_batches").fetchall()
    }
    before = get_meta(connection, "ledger_end")
    previous = datetime.fromisoformat(before) if before else None
    if (
        get_meta(connection, "ledger_key") != key
        or previous is None
        or previous > end
        or not held <= committed
    ):
        _rebuild(connection, lake, committed, model, end, key)
        return LEDGER_TABLE
    new = committed - held
    if not new and previous == end:
        set_meta(connection, "ledger_update", "unchanged")
        return LEDGER_TABLE
    _advance(connection, lake, committed, new, model, previous, end)
    return LEDGER_TABLE


def _rebuild(
    connection: duckdb.DuckDBPyConnection,
    lake: EventLake,
    committed: set[str],
    model: CompiledModel,
    end: datetime,
    key: str,
) -> None:
    events = whole_base_events_sql(lake.events_sql(committed), end)
    connection.execute(
        f"""CREATE OR REPLACE TABLE cache.ledger_next AS
            SELECT e.email, {model.aggregates} FROM ({events}) e GROUP BY e.email"""
    )
    _commit(connection, committed, end, key, "rebuilt")


def _advance(
    connection: duckdb.DuckDBPyConnection,
    lake: EventLake,
    committed: set[str],
    new: set[str],
    model: CompiledModel,
    previous: datetime,
    end: datetime,
) -> None:
    files = _files_by_day(lake, committed)
    first_day, last_day = previous.date() - timedelta(days=1), end.date() + timedelta(days=1)
    entering = [
        path for day, path in files if lake.file_batch(path) in new or first_day <= day <= last_day
    ]
    periods = model.boundary_periods
    crossing = [
        path
        for day, path in files
        if lake.file_batch(path) not in new and _may_cross(day, previous, end, periods)
    ]
    new_batches = ", ".join(quote(batch) for batch in sorted(new)) or "NULL"
    boundary = " OR ".join(f"({predicate})" for predicate in model.boundaries) or "false"
    parts = [
        f"""SELECT email FROM {lake.relation(entering)} ev
            WHERE ev.occurred_at < {quote(end.isoformat())}::TIMESTAMPTZ
              AND (ev.batch_id IN ({new_batches})
                   OR ev.occurred_at >= {quote(previous.isoformat())}::TIMESTAMPTZ)"""
    ]
    if crossing and model.boundaries:
        parts.append(
            f"""SELECT e.email FROM (
                    SELECT ev.*, ({_seconds(end)} - epoch(ev.occurred_at)) / {DAY_SECONDS} AS age,
                           ({_seconds(previous)} - epoch(ev.occurred_at)) / {DAY_SECONDS}
                               AS age_before
                    FROM {lake.relation(crossing)} ev
                    WHERE ev.occurred_at < {quote(previous.isoformat())}::TIMESTAMPTZ) e
                WHERE {boundary}"""
        )
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE affected AS SELECT DISTINCT email FROM "
        f"({' UNION ALL '.join(parts)})"
    )
    events = whole_base_events_sql(
        lake.events_sql(committed), end, "ev.email IN (SELECT email FROM affected)"
    )
    elapsed = (end - previous).total_seconds() / DAY_SECONDS
    decayed = ", ".join(
        f"{column} * {0.5 ** (elapsed / half_life)!r} AS {column}"
        for column, half_life in model.decaying.items()
    )
    replace = f" REPLACE ({decayed})" if decayed else ""
    connection.execute(
        f"""CREATE OR REPLACE TABLE cache.ledger_next AS
            SELECT *{replace} FROM {LEDGER_TABLE}
            WHERE email NOT IN (SELECT email FROM affected)
            UNION ALL BY NAME
            SELECT e.email, {model.aggregates} FROM ({events}) e GROUP BY e.email"""
    )
    [(affected,)] = connection.execute("SELECT count(*) FROM affected").fetchall()
    _commit(
        connection, committed, end, get_meta(connection, "ledger_key"),
        f"advanced ({affected} contacts re-aggregated)",
    )  # fmt: skip


def _commit(
    connection: duckdb.DuckDBPyConnection,
    committed: set[str],
    end: datetime,
    key: str,
    how: str,
) -> None:
    """Replace the ledger by `cache.ledger_next` (built in the cache file: a million contacts'
    aggregates need not fit in memory), with its key, end and batches, in one transaction."""
    connection.register("ledger_batch_ids", pa.table({"batch_id": pa.array(sorted(committed))}))
    with transaction(connection):
        connection.execute(f"DROP TABLE {LEDGER_TABLE}")
        connection.execute("ALTER TABLE cache.ledger_next RENAME TO aggregates")
        connection.execute("DELETE FROM cache.ledger_batches")
        connection.execute("INSERT INTO cache.ledger_batches SELECT * FROM ledger_batch_ids")
        set_meta(connection, "ledger_key", key)
        set_meta(connection, "ledger_end", end.isoformat())
        set_meta(connection, "ledger_update", how)
    connection.unregister("ledger_batch_ids")
