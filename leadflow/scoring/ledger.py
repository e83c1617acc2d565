"""The aggregate ledger: every contact's event aggregates as of the latest day run, kept in the
run cache (a DuckDB file beside the lake), so that a day reads a few days of the lake, not all.

From one day's end to a later one, an event's part in an aggregate changes only by half-life
decay (the same multiplication for every contact) unless the event entered (it occurred in
between, or its batch is new) or crossed a boundary (it left a rule's window, or a step decay
stepped). Entering events fall on the days in between; crossing ones on the days a window or a
step length before them. So the ledger is carried forward (sums multiplied where they decay),
and corrected by the events of those few days of the lake: sums by each event's part now minus
its part carried, the first/last/newest aggregates by the entering events. The result is what a
full pass over the lake computes, to floating-point rounding (tested against it).

The ledger is a pure function of the lake and the rules: it is keyed by the aggregate SQL, its
day's end and the batches it holds. Anything else (other rules, an earlier day, a batch gone)
rebuilds it from a full pass.
"""

import hashlib
from datetime import UTC, date, datetime, timedelta
from math import floor

import duckdb
import pyarrow as pa

from leadflow.lake import EventLake
from leadflow.pipeline.runcache import get_meta, set_meta, transaction
from leadflow.scoring.conditions import DAY_SECONDS, quote
from leadflow.scoring.query import (
    GRAYMAIL_SENDS_ENGAGED,
    CompiledModel,
    reset_at_column,
    reset_column,
    whole_base_events_sql,
)

LEDGER_TABLE = "cache.aggregates"
MARGIN_DAYS = 0.01  # reading a day's file too many is harmless; one too few is not


def model_key(model: CompiledModel) -> str:
    """What the ledger's rows depend on besides the events: the aggregates and how they age."""
    text = "\n".join([model.aggregates, *(repr(item) for item in model.sums)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seconds(end: datetime) -> str:
    return f"epoch({quote(end.isoformat())}::TIMESTAMPTZ)"


def _files_by_day(lake: EventLake, batches: set[str]) -> list[tuple[date, str]]:
    return [(lake.file_day(path), path) for path in lake.files(batches)]


def _may_cross(
    day: date, before: datetime, end: datetime, windows: list[float], steps: list[float]
) -> bool:
    """Whether an event of UTC `day` may leave a window, or pass a whole number of steps of a
    step decay, between the ends `before` and `end`: the ages crossed are in (low, high]."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    low = (before - start).total_seconds() / DAY_SECONDS - 1 - MARGIN_DAYS
    high = (end - start).total_seconds() / DAY_SECONDS + MARGIN_DAYS
    return any(low < window <= high for window in windows) or any(
        floor(high / step) >= 1 and floor(high / step) * step > low for step in steps
    )


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
    events = model.events_with_resets(whole_base_events_sql(lake.events_sql(committed), end))
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
    read = [
        path
        for day, path in files
        if lake.file_batch(path) in new
        or first_day <= day <= last_day
        or _may_cross(day, previous, end, model.windows, model.steps)
    ]
    old_batch = (
        f"ev.batch_id NOT IN ({', '.join(quote(batch) for batch in sorted(new))})"
        if new
        else "true"
    )
    at_end, at_previous = quote(end.isoformat()), quote(previous.isoformat())
    # The events read, each with its contact's reset times as the ledger holds them.
    held_resets = "".join(
        f", o.{reset_column(score)} AS {reset_at_column(score)}" for score, _ in model.resets
    )
    events = f"""SELECT ev.*{held_resets},
                         ({_seconds(end)} - epoch(ev.occurred_at)) / {DAY_SECONDS} AS age,
                         ({_seconds(previous)} - epoch(ev.occurred_at)) / {DAY_SECONDS}
                             AS age_before,
                         ev.occurred_at < {at_end}::TIMESTAMPTZ AS counted,
                         {old_batch} AND ev.occurred_at < {at_previous}::TIMESTAMPTZ
                             AS carried
                  FROM {lake.relation(read)} ev
                  {f"LEFT JOIN {LEDGER_TABLE} o ON o.email = ev.email" if model.resets else ""}"""
    _reset_contacts(connection, model, events)
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE ledger_delta AS
            SELECT e.email, {_delta_sql(model)}
            FROM ({events}) e
            WHERE (e.counted OR e.carried) AND e.email NOT IN (SELECT email FROM ledger_reset)
            GROUP BY e.email"""
    )
    elapsed = (end - previous).total_seconds() / DAY_SECONDS
    # Contacts whose reset moved: all their events, from the lake (the only full read).
    recomputed = ""
    if model.resets:
        reset = model.events_with_resets(
            whole_base_events_sql(
                lake.events_sql(committed), end, "ev.email IN (SELECT email FROM ledger_reset)"
            )
        )
        recomputed = f"""
            UNION ALL BY NAME
            SELECT e.email, {model.aggregates} FROM ({reset}) e GROUP BY e.email"""
    connection.execute(
        f"""CREATE OR REPLACE TABLE cache.ledger_next AS
            SELECT COALESCE(o.email, d.email) AS email, {_merge_sql(model, elapsed)}
            FROM {LEDGER_TABLE} o FULL OUTER JOIN ledger_delta d ON d.email = o.email
            WHERE COALESCE(o.email, d.email) NOT IN (SELECT email FROM ledger_reset){recomputed}"""
    )
    [(corrected,)] = connection.execute(
        "SELECT (SELECT count(*) FROM ledger_delta) + (SELECT count(*) FROM ledger_reset)"
    ).fetchall()
    connection.execute("DROP TABLE ledger_delta")
    connection.execute("DROP TABLE ledger_reset")
    _commit(
        connection, committed, end, get_meta(connection, "ledger_key"),
        f"advanced ({corrected} contacts corrected)",
    )  # fmt: skip


def _reset_contacts(
    connection: duckdb.DuckDBPyConnection, model: CompiledModel, events: str
) -> None:
    """Table `ledger_reset(email)`: the contacts with a reset event newer than the ledger's
    (or a first one). An event rule's part of every event before it changes, and those events
    lie anywhere in the lake: such contacts are recomputed whole, not corrected."""
    if not model.resets:
        connection.execute("CREATE OR REPLACE TEMP TABLE ledger_reset (email VARCHAR)")
        return
    newer = " OR ".join(
        f"(({match}) AND (e.{reset_at_column(score)} IS NULL "
        f"OR e.occurred_at > e.{reset_at_column(score)}))"
        for score, match in model.resets
    )
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE ledger_reset AS
            SELECT DISTINCT e.email FROM ({events}) e WHERE e.counted AND ({newer})"""
    )


def _delta_sql(model: CompiledModel) -> str:
    """Per contact, over the events read: each sum's change (the events' parts now minus their
    parts carried) and the entering events' first/last/newest."""
    parts = []
    for item in model.sums:
        now = f"e.counted AND ({item.when})"
        before = f"e.carried AND ({item.when_before or item.when})"
        parts.append(
            f"sum(({now})::INTEGER - ({before})::INTEGER) AS "
            f"{item.matched if item.weight else item.column}"
        )
        if item.weight is not None:
            parts.append(
                f"sum(COALESCE(CASE WHEN {now} THEN {item.weight} END, 0) - "
                f"COALESCE(CASE WHEN {before} THEN {item.weight_before} END, 0)) AS {item.column}"
            )
    entering = "e.counted AND NOT e.carried"
    parts += [
        f"{item.template.format(f'{entering} AND ({item.when})')} AS {item.column}"
        for item in model.latest
    ]
    return ",\n                   ".join(parts)


def _merge_sql(model: CompiledModel, elapsed: float) -> str:
    """The ledger row after the day: `o`, the row carried (sums decayed), corrected by `d`."""
    parts = []
    for item in model.sums:
        if item.weight is None:
            parts.append(
                f"(COALESCE(o.{item.column}, 0) + COALESCE(d.{item.column}, 0))::BIGINT "
                f"AS {item.column}"
            )
            continue
        matched = f"(COALESCE(o.{item.matched}, 0) + COALESCE(d.{item.matched}, 0))::BIGINT"
        carried = f"o.{item.column}"
        if item.half_life is not None:
            carried += f" * {0.5 ** (elapsed / item.half_life)!r}"
        parts.append(
            f"CASE WHEN {matched} = 0 THEN NULL ELSE COALESCE({carried}, 0) + "
            f"COALESCE(d.{item.column}, 0) END AS {item.column}"
        )
        parts.append(f"{matched} AS {item.matched}")
    for item in model.latest:
        new, old = f"d.{item.column}", f"o.{item.column}"
        if item.keeps == "newest":
            merged = (
                f"list_slice(list_reverse_sort(list_concat(COALESCE({old}, []), {new})), "
                f"1, {GRAYMAIL_SENDS_ENGAGED})"
            )
            parts.append(f"CASE WHEN {new} IS NULL THEN {old} ELSE {merged} END AS {item.column}")
            continue
        time = f"{item.by or item.column}"
        newer = ">" if item.keeps == "last" else "<"
        replaces = f"d.{time} IS NOT NULL AND (o.{time} IS NULL OR d.{time} {newer} o.{time})"
        parts.append(f"CASE WHEN {replaces} THEN {new} ELSE {old} END AS {item.column}")
    return ",\n                   ".join(parts)


def _commit(
    connection: duckdb.DuckDBPyConnection,
    committed: set[str],
    end: datetime,
    key: str,
    how: str,
) -> None:
    """Replace the ledger by `cache.ledger_next` (built in the cache file: a million contacts'
    aggregates need not fit in memory), with its key, end and batches, in one transaction."""
    connection.register(
        "ledger_batch_ids", pa.table({"batch_id": pa.array(sorted(committed), pa.string())})
    )
    with transaction(connection):
        connection.execute(f"DROP TABLE IF EXISTS {LEDGER_TABLE}")
        connection.execute("ALTER TABLE cache.ledger_next RENAME TO aggregates")
        connection.execute("DELETE FROM cache.ledger_batches")
        connection.execute("INSERT INTO cache.ledger_batches SELECT * FROM ledger_batch_ids")
        set_meta(connection, "ledger_key", key)
        set_meta(connection, "ledger_end", end.isoformat())
        set_meta(connection, "ledger_update", how)
    connection.unregister("ledger_batch_ids")
