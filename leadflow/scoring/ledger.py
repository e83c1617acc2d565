"""The aggregate ledger: every contact's event aggregates as of the latest day run, kept in the
run cache (a DuckDB file beside the lake), so that a day reads a few days of the lake, not all.

From one day's end to a later one, an event's part in an aggregate changes only by half-life
decay (the same multiplication for every contact) unless the event entered (it occurred in
between, or its batch is new) or crossed a boundary (it left a rule's window, or a step decay
stepped). Entering events fall on the days in between; crossing ones on the days a window or a
step length before them. So the ledger is carried forward and corrected by the events of those
few days of the lake: sums by each event's part now minus its part carried, the
first/last/newest aggregates by the entering events. The result is what a full pass over the
lake computes, to floating-point rounding (tested against it).

The decaying sums are kept as of the ledger's base (the end it was built for): carrying them to
a later end is one multiplication per half-life, made when they are read (`_as_of`), so a day
rewrites only the rows of the contacts it corrects, not every contact's (BENCHMARKS: Daily run).

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
# Rebuilt once its base is this many half-lives behind: the sums kept then reach 2^60 times
# their value (float64 keeps 53 bits of each, whatever its size).
REBASE_HALF_LIVES = 60


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
    # A ledger of before the base was kept has its sums as of its end.
    base = datetime.fromisoformat(get_meta(connection, "ledger_base") or before or end.isoformat())
    if (
        get_meta(connection, "ledger_key") != key
        or previous is None
        or previous > end
        or not held <= committed
        or any(value < 0.5**REBASE_HALF_LIVES for value in _factors(model, base, end).values())
    ):
        _rebuild(connection, lake, committed, model, end, key)
        return LEDGER_TABLE
    new = committed - held
    if not new and previous == end:
        set_meta(connection, "ledger_update", "unchanged")
        return _as_of(model, base, end)
    _advance(connection, lake, committed, new, model, previous, end, base)
    return _as_of(model, base, end)


def _factors(model: CompiledModel, base: datetime, end: datetime) -> dict[str, float]:
    """Each half-life sum's decay from the ledger's base to `end`, by column."""
    days = (end - base).total_seconds() / DAY_SECONDS
    return {
        item.column: 0.5 ** (days / item.half_life)
        for item in model.sums
        if item.weight is not None and item.half_life is not None
    }


def _scaled(model: CompiledModel, factors: dict[str, float], relation: str, inverse: bool) -> str:
    """`relation`'s rows with each half-life sum multiplied by its factor (or divided)."""
    replaced = [
        f"{column} {'/' if inverse else '*'} {factor!r} AS {column}"
        for column, factor in factors.items()
        if factor != 1.0
    ]
    if not replaced:
        return relation
    return f"(SELECT * REPLACE ({', '.join(replaced)}) FROM {relation})"


def _as_of(model: CompiledModel, base: datetime, end: datetime) -> str:
    """The ledger's aggregates as of `end`, its sums kept as of `base`."""
    return _scaled(model, _factors(model, base, end), LEDGER_TABLE, inverse=False)


def held_aggregates(connection: duckdb.DuckDBPyConnection, model: CompiledModel) -> str:
    """The relation of the ledger's aggregates as of its end (what `aggregates_as_of` last
    returned)."""
    end = datetime.fromisoformat(get_meta(connection, "ledger_end"))
    base = get_meta(connection, "ledger_base")
    return _as_of(model, datetime.fromisoformat(base) if base else end, end)


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
    with transaction(connection):
        connection.execute(f"DROP TABLE IF EXISTS {LEDGER_TABLE}")
        connection.execute("ALTER TABLE cache.ledger_next RENAME TO aggregates")
        _commit(connection, committed, end, key, "rebuilt", end)


def _advance(
    connection: duckdb.DuckDBPyConnection,
    lake: EventLake,
    committed: set[str],
    new: set[str],
    model: CompiledModel,
    previous: datetime,
    end: datetime,
    base: datetime,
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
    factors = _factors(model, base, end)
    # Contacts whose reset moved: all their events, from the lake (the only full read).
    recomputed = ""
    if model.resets:
        reset = model.events_with_resets(
            whole_base_events_sql(
                lake.events_sql(committed), end, "ev.email IN (SELECT email FROM ledger_reset)"
            )
        )
        whole = f"(SELECT e.email, {model.aggregates} FROM ({reset}) e GROUP BY e.email)"
        recomputed = f"""
            UNION ALL BY NAME
            SELECT * FROM {_scaled(model, factors, whole, inverse=True)}"""
    # The corrected contacts' rows as of the base; the others' stay as they are.
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE ledger_corrected AS
            SELECT d.email, {_merge_sql(model, factors)}
            FROM ledger_delta d LEFT JOIN {LEDGER_TABLE} o ON o.email = d.email
            WHERE d.email NOT IN (SELECT email FROM ledger_reset){recomputed}"""
    )
    [(corrected,)] = connection.execute("SELECT count(*) FROM ledger_corrected").fetchall()
    with transaction(connection):
        connection.execute(
            f"DELETE FROM {LEDGER_TABLE} WHERE email IN (SELECT email FROM ledger_corrected)"
        )
        connection.execute(f"INSERT INTO {LEDGER_TABLE} BY NAME SELECT * FROM ledger_corrected")
        _commit(
            connection, committed, end, get_meta(connection, "ledger_key"),
            f"advanced ({corrected} contacts corrected)", base,
        )  # fmt: skip
    for table in ("ledger_delta", "ledger_reset", "ledger_corrected"):
        connection.execute(f"DROP TABLE {table}")


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


def _merge_sql(model: CompiledModel, factors: dict[str, float]) -> str:
    """The ledger row after the day, as of its base: `o`, the row kept, corrected by `d` (as of
    the day's end: its half-life sums are divided by their decay since the base)."""
    parts = []
    for item in model.sums:
        if item.weight is None:
            parts.append(
                f"(COALESCE(o.{item.column}, 0) + COALESCE(d.{item.column}, 0))::BIGINT "
                f"AS {item.column}"
            )
            continue
        matched = f"(COALESCE(o.{item.matched}, 0) + COALESCE(d.{item.matched}, 0))::BIGINT"
        correction = f"COALESCE(d.{item.column}, 0)"
        if factors.get(item.column, 1.0) != 1.0:
            correction += f" / {factors[item.column]!r}"
        parts.append(
            f"CASE WHEN {matched} = 0 THEN NULL ELSE COALESCE(o.{item.column}, 0) + "
            f"{correction} END AS {item.column}"
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
    base: datetime,
) -> None:
    """Record the ledger's key, end, base and batches, in the caller's transaction (the one
    that wrote its rows: built in the cache file, a million contacts' aggregates need not fit
    in memory)."""
    connection.register(
        "ledger_batch_ids", pa.table({"batch_id": pa.array(sorted(committed), pa.string())})
    )
    connection.execute("DELETE FROM cache.ledger_batches")
    connection.execute("INSERT INTO cache.ledger_batches SELECT * FROM ledger_batch_ids")
    set_meta(connection, "ledger_key", key)
    set_meta(connection, "ledger_end", end.isoformat())
    set_meta(connection, "ledger_base", base.isoformat())
    set_meta(connection, "ledger_update", how)
    connection.unregister("ledger_batch_ids")
