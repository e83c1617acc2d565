"""Scoring services over a workspace: the daily scoring with write-back, explain, history,
exports and the impact of a rule change. The SQL is built by `leadflow.scoring.query`."""

import itertools
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    text,
)
from sqlmodel import select

from leadflow.companies.scores import day_columns as company_day_columns
from leadflow.config import ConditionRule, EventRule, LeadflowConfig, ValueRule
from leadflow.domain import RECORD_KEY_PREFIX
from leadflow.errors import DayRangeError, UserError
from leadflow.lake import EventLake, LakePartition
from leadflow.scoring.conditions import grid_column, property_column, quote, score_column
from leadflow.scoring.ledger import aggregates_as_of
from leadflow.scoring.partitions import (
    PartitionJob,
    PartitionResult,
    PartitionRunner,
    create_by_partition,
    exchange_folder,
    ledger_folder,
    partition_count,
    remove_stale_ledgers,
    run_in_process,
    write_inputs,
)
from leadflow.scoring.query import (
    as_of_end,
    band_column,
    compile_model,
    compute_scores,
    group_column,
    load_properties,
    prepare_inputs,
    reset_column,
    rule_column,
    targets_table,
)
from leadflow.sql import identifier, literal
from leadflow.store.db import (
    BULK_CHUNK_ROWS,
    bulk_load,
    bump_state_version,
    connected,
    read_arrow,
    session_scope,
)
from leadflow.workspace import Workspace
from models import ScoringRun

DECIMALS = 4
TOP_MOVERS = 10
# Contact ids the write-back sorts at once (`_changed_in_order`): a first day at 10M is 20M rows.
SORT_IDS = 1_000_000


class UnknownContact(UserError, LookupError):
    """No contact has this email."""


def yesterday(workspace: Workspace) -> date:
    """The default day of a run: yesterday in the account time zone."""
    return datetime.now(workspace.config.account.tz).date() - timedelta(days=1)


CONTACTS_SCHEMA = pa.schema(
    [("contact_id", pa.int64()), ("email", pa.string()), ("created_at", pa.string())]
)
STORED_SCHEMA = pa.schema(
    [
        ("contact_id", pa.int64()),
        ("score", pa.string()),
        ("value", pa.float64()),
        ("band", pa.string()),
        ("model_version", pa.string()),
    ]
)


def check_contact(workspace: Workspace, email: str, db: Connection | None = None) -> list[str]:
    """`[email]` if a contact has it, else UnknownContact (read in `db` if given)."""
    with connected(db if db is not None else workspace.engine) as connection:
        found = connection.execute(
            text("SELECT email FROM contact WHERE email = :email"), {"email": email}
        ).first()
    if found is None:
        raise UnknownContact(f"no contact with email {email!r}")
    return [email]


def read_contacts(workspace: Workspace) -> pa.Table:
    return read_arrow(
        workspace.engine,
        "SELECT id, email, CAST(created_at AS TEXT) FROM contact",
        CONTACTS_SCHEMA,
    )


def scored_relation(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    days: list[date],
    email: str | None = None,
    explain: bool = False,
    contacts: pa.Table | None = None,
    lifecycle: bool = False,
    marketing: bool = False,
    stages: pa.Table | None = None,
    ledger: bool = False,
    properties: pa.Table | str | None = None,
    companies: bool = False,
) -> duckdb.DuckDBPyRelation:
    """Register the targets (one contact, or every contact: `contacts` if already read) for
    `days` and their properties (`properties`: the history, if already read, or the name of a
    relation holding it, such as the run cache's mirror), and return the
    scored relation (see `compile_model`). With `ledger` (every contact, one day, a ledger
    attached as `cache`), the events' aggregates come from the aggregate ledger, not a full
    pass. With `companies` (every contact), also the company scores (`leadflow.companies`)."""
    companies = companies and email is None
    if properties is None:
        names = scored_property_names(workspace.config, lifecycle, marketing, companies)
        properties = load_properties(workspace.engine, names, email)
    register_targets(workspace, connection, days, properties, email, contacts, stages)
    return score_registered(
        connection,
        workspace.config,
        workspace.lake,
        workspace.committed_event_batches(),
        days if email is None else None,
        explain,
        lifecycle,
        marketing,
        companies,
        ledger,
    )


def register_targets(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    days: list[date],
    properties: pa.Table | str,
    email: str | None = None,
    contacts: pa.Table | None = None,
    stages: pa.Table | None = None,
    buckets: pa.ChunkedArray | None = None,
) -> None:
    """The scoring query's inputs, `targets` and `props` (`prepare_inputs`), for one contact
    or every contact (`contacts` if already read; `buckets`: their buckets, row by row, if
    at hand) on `days`; `properties` as `prepare_inputs` takes them."""
    created = None
    if email is not None:
        emails = pa.array(check_contact(workspace, email), pa.string())
    else:
        contacts = contacts if contacts is not None else read_contacts(workspace)
        emails = contacts.column("email")
        if workspace.config.companies is not None:  # company members exist on the day
            created = contacts.select(["email", "created_at"])
    targets = targets_table(emails, days, workspace.config, buckets)
    prepare_inputs(connection, workspace.config, targets, properties, stages, created)


def scored_property_names(
    config: LeadflowConfig, lifecycle: bool, marketing: bool, companies: bool
) -> set[str]:
    """The properties the scoring query reads with these steps."""
    model = compile_model(config, "events", False, None, lifecycle, marketing, companies)
    return model.features.properties


def score_registered(
    connection: duckdb.DuckDBPyConnection,
    config: LeadflowConfig,
    lake: EventLake | LakePartition,
    committed: set[str],
    whole_base_days: list[date] | None,
    explain: bool = False,
    lifecycle: bool = False,
    marketing: bool = False,
    companies: bool = False,
    ledger: bool = False,
) -> duckdb.DuckDBPyRelation:
    """The scored relation of the registered targets over `lake`'s events (a partition of
    it: a partition's targets). `whole_base_days`: the days, when the targets are every
    contact (of the partition): one day is then one scan of the lake, no join."""
    whole_base_at = (
        as_of_end(whole_base_days[0], config)
        if whole_base_days is not None and len(whole_base_days) == 1
        else None
    )
    model = compile_model(
        config, lake.events_sql(committed), explain, whole_base_at, lifecycle, marketing, companies
    )
    sql = model.sql
    if ledger and whole_base_at is not None:
        ledger_table = aggregates_as_of(connection, lake, committed, model, whole_base_at)
        sql = model.over_aggregates(ledger_table)
    return compute_scores(connection, config, model, sql)


def _long_scores_sql(workspace: Workspace, relation: str, keys: str = "email, day") -> str:
    """One row per (keys, score): value rounded to DECIMALS, band."""
    parts = [
        f"SELECT {keys}, '{name}' AS score, round(\"score:{name}\", {DECIMALS}) AS value, "
        f"{band_column(name)} AS band FROM {relation}"
        for name in workspace.config.scores
    ]
    return " UNION ALL ".join(parts)


def scores_as_of(workspace: Workspace, day: date) -> pa.Table:
    """Every contact's scores and bands as of `day` (`export scores`' columns)."""
    names = list(workspace.config.scores)
    with workspace.lake.connection() as connection:
        prepare_day(workspace, connection, day, read_contacts(workspace))
        columns = [
            f"round({score_column(name)}, {DECIMALS}) AS {identifier(name)}" for name in names
        ]
        columns += [
            f'{band_column(name)} AS "band_{name}"'
            for name in names
            if name in workspace.config.bands
        ]
        columns += [
            f"{grid_column(name)} AS {identifier('grid_' + name)}"
            for name in workspace.config.grids
        ]
        connection.register(
            "record_ids",
            read_arrow(
                workspace.engine,
                "SELECT id, hubspot_record_id FROM contact WHERE hubspot_record_id IS NOT NULL",
                pa.schema([("contact_id", pa.int64()), ("hubspot_record_id", pa.string())]),
            ),
        )
        # A contact known by its HubSpot Record ID only: no email, its record id.
        return connection.sql(
            f"""SELECT CASE WHEN starts_with(email, {literal(RECORD_KEY_PREFIX)}) THEN ''
                            ELSE email END AS email,
                       {", ".join(columns)}, r.hubspot_record_id
                FROM day_scored LEFT JOIN record_ids r USING (contact_id)
                ORDER BY email, r.hubspot_record_id"""
        ).to_arrow_table()


@dataclass(frozen=True)
class ScoringSummary:
    day: date
    model_version: str
    model_changed: bool
    contacts: int
    scores_changed: int
    band_changes: int
    bands: dict[str, dict[str, int]]  # score -> band -> contacts
    compute_seconds: float  # reading state, scoring, diffing against the stored scores
    write_seconds: float  # writing the changed scores and band changes
    movers: list[tuple[str, str, float, float]]  # email, score, before, after: the largest moves
    histogram: dict[str, list[dict]]  # score -> buckets {low, high, band, contacts}, low to high


def prepare_day(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    day: date,
    contacts: pa.Table,
    stages: pa.Table | None = None,
    lifecycle: bool = False,
    marketing: bool = False,
    ledger: bool = False,
    properties: pa.Table | str | None = None,
    companies: bool = False,
    run_partitions: PartitionRunner = run_in_process,
    buckets: pa.ChunkedArray | None = None,
) -> list[PartitionResult]:
    """Materialise `day_scored` (every contact that existed on `day`, by email and contact id:
    scores, bands, and with the flags the lifecycle target and marketing conditions). One scan
    of the lake serves the day's scoring, lifecycle and marketing steps; it is made partition
    by partition of the contacts (`leadflow.scoring.partitions`, by `run_partitions`), each
    with its own aggregate ledger if `ledger`.

    A contact exists on `day` once created (`created_at` before the end of the day) or once it
    has an event: so a contact created by late data changes nothing before its first event, and
    a contact loaded today without a creation date still counts on the days of its events.
    `buckets`: the contacts' lake buckets, row by row, if at hand (the run cache's mirror).
    """
    config = workspace.config
    model = compile_model(config, "events", False, None, lifecycle, marketing, companies)
    with_companies = config.companies is not None and (
        companies or model.features.needs_company_scores
    )
    if properties is None:
        properties = load_properties(workspace.engine, model.features.properties, None)
    register_targets(
        workspace, connection, [day], properties, contacts=contacts, stages=stages, buckets=buckets
    )
    # Only what the steps read: not the aggregates, properties and rule columns of the query.
    columns = [
        column for name in config.scores for column in (score_column(name), band_column(name))
    ]
    columns += [grid_column(name) for name in config.grids]
    if lifecycle:
        columns.append("target_stage")
    if marketing:
        columns += ["promote", "demote_rule", "suppressed", "suppression_reason"]
    if companies:  # `company` and the company scores and bands (leadflow.companies.scores)
        columns += company_day_columns(config)
    # Company scores sum over members of any partition: computed in one.
    partitions = 1 if with_companies else partition_count(config, contacts.num_rows)
    ledgers = ledger_folder(workspace.cache_path, partitions) if ledger else None
    folder = exchange_folder(workspace.cache_path, day)
    try:
        write_inputs(connection, folder, partitions)
        jobs = [
            PartitionJob(
                config,
                workspace.lake,
                frozenset(workspace.committed_event_batches()),
                day,
                partition,
                partitions,
                folder,
                ledgers / f"{partition}.duckdb" if ledgers else None,
                lifecycle,
                marketing,
                with_companies,
                tuple(columns),
            )  # fmt: skip
            for partition in range(partitions)
        ]
        results = run_partitions(jobs)
        connection.register("all_contacts", contacts)
        outputs = ", ".join(literal(str(job.output)) for job in jobs)
        connection.execute(
            f"""CREATE OR REPLACE TEMP TABLE day_scored AS
               SELECT s.email, {", ".join("s." + column for column in columns)}, c.contact_id
               FROM read_parquet([{outputs}]) s JOIN all_contacts c USING (email)
               WHERE c.created_at::TIMESTAMPTZ < $end OR s.events_seen > 0""",
            {"end": as_of_end(day, config)},
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if ledgers is not None:
        remove_stale_ledgers(workspace.cache_path, ledgers)
    return results


def _compare_with_stored(
    workspace: Workspace, connection: duckdb.DuckDBPyConnection, stored: str | None = None
) -> str:
    """Table `score_diff(contact_id, email, score, value, band, old_value, old_band,
    old_version)`: each score of `day_scored` beside the one the state store has. `stored`
    names a relation of the stored scores (STORED_SCHEMA) already at hand, such as the run
    cache's mirror; without it they are read. Returns the relation of the stored scores. Made
    partition by partition of the contacts: the join of every score, old and new, at once
    passes DuckDB's memory limit at millions of contacts."""
    if stored is None:
        connection.register(
            "stored_scores",
            read_arrow(
                workspace.engine,
                "SELECT contact_id, score, value, band, model_version FROM contact_score",
                STORED_SCHEMA,
            ),
        )
        stored = "stored_scores"
    [(contacts,)] = connection.execute("SELECT count(*) FROM day_scored").fetchall()
    create_by_partition(
        connection,
        "score_diff",
        f"""SELECT n.*, s.value AS old_value, s.band AS old_band, s.model_version AS old_version
            FROM ({_long_scores_sql(workspace, "day_scored", "contact_id, email")}) n
            LEFT JOIN (SELECT * FROM {stored} WHERE contact_id % $partitions = $partition) s
              USING (contact_id, score)
            WHERE n.contact_id % $partitions = $partition""",
        partition_count(workspace.config, contacts),
    )
    return stored


def score_day(workspace: Workspace, day: date) -> ScoringSummary:
    """Score every contact as of `day` and write back only what changed (README: Scores)."""
    with workspace.lake.connection() as connection:
        started = datetime.now(UTC)
        prepare_day(workspace, connection, day, read_contacts(workspace))
        with workspace.engine.begin() as db:
            return score_step(workspace, connection, day, started, db)


def score_step(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    day: date,
    started: datetime,
    db: Connection,
    stored: str | None = None,
) -> ScoringSummary:
    """The scoring step over a prepared day (`prepare_day`): write back what changed (left in
    `changed_scores`) in the day's transaction `db`. `stored`: a relation of the stored
    scores, if at hand."""
    version = workspace.config.model_version
    last_version = db.execute(
        text("SELECT model_version FROM scoring_run ORDER BY id DESC LIMIT 1")
    ).scalar()
    model_changed = last_version is not None and last_version != version
    _compare_with_stored(workspace, connection, stored)
    # A DuckDB table (it may spill), not Python's: the write-back streams it in batches.
    connection.execute(
        """CREATE OR REPLACE TEMP TABLE changed_scores AS
           SELECT contact_id, email, score, value, band, old_value, old_band FROM score_diff
           WHERE old_value IS NULL OR old_value <> value OR old_band IS DISTINCT FROM band
              OR old_version <> $version""",
        {"version": version},
    )
    [(changed,)] = connection.execute("SELECT count(*) FROM changed_scores").fetchall()
    [(contacts,)] = connection.execute("SELECT count(*) FROM day_scored").fetchall()
    bands: dict[str, dict[str, int]] = {name: {} for name in workspace.config.scores}
    for name, band, count in connection.execute(
        "SELECT score, COALESCE(band, '-'), count(*) FROM score_diff GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall():
        bands[name][band] = count
    movers = connection.execute(
        f"""SELECT email, score, old_value, value FROM changed_scores
            WHERE old_value <> value
            ORDER BY abs(value - old_value) DESC, email LIMIT {TOP_MOVERS}"""
    ).fetchall()
    computed = datetime.now(UTC)
    band_changes = _write_back(db, connection, changed, day, version)
    written = datetime.now(UTC)
    db.execute(
        ScoringRun.__table__.insert().values(
            day=day,
            model_version=version,
            contacts=contacts,
            scores_changed=changed,
            band_changes=band_changes,
            model_changed=model_changed,
            started_at=started,
            finished_at=written,
        )
    )
    return ScoringSummary(
        day,
        version,
        model_changed,
        contacts,
        changed,
        band_changes,
        bands,
        (computed - started).total_seconds(),
        (written - computed).total_seconds(),
        [tuple(row) for row in movers],
        score_histogram(connection, "score_diff", workspace.config),
    )


HISTOGRAM_BUCKETS = 20


def _nice_width(span: float, buckets: int = HISTOGRAM_BUCKETS) -> float:
    """A bucket width of 1, 2 or 5 times a power of ten giving about `buckets` buckets."""
    raw = max(span / buckets, 1e-9)
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def score_histogram(
    connection: duckdb.DuckDBPyConnection, relation: str, config
) -> dict[str, list[dict]]:
    """Contacts per value bucket and band of each score, from `relation(score, value, band)`:
    buckets of a round width, split where a band threshold falls inside one, so that each
    bucket has one band (one GROUP BY; the buckets, a few dozen, are shaped in Python)."""
    histogram: dict[str, list[dict]] = {name: [] for name in config.scores}
    spans = connection.execute(
        f"SELECT score, min(value), max(value) FROM {relation} GROUP BY score"
    ).fetchall()
    widths = {score: _nice_width(high - low) for score, low, high in spans}
    if not widths:
        return histogram
    cases = " ".join(f"WHEN {quote(score)} THEN {width!r}" for score, width in widths.items())
    rows = connection.execute(
        f"""SELECT score, floor(value / (CASE score {cases} END)) AS k, band, count(*),
                   min(value) FROM {relation} GROUP BY ALL ORDER BY score, k, min(value)"""
    ).fetchall()
    for (score, k), group in itertools.groupby(rows, key=lambda row: (row[0], row[1])):
        group = list(group)  # bands of one bucket, lowest values first
        width = widths[score]
        low, high = k * width, (k + 1) * width
        inside = sorted(
            band.gte
            for band in config.bands.get(score, [])
            if band.gte is not None and low < band.gte < high
        )
        if len(inside) < len(group) - 1:  # not split by thresholds: share the width evenly
            inside = [low + width * i / len(group) for i in range(1, len(group))]
        bounds = [low, *inside[: len(group) - 1], high]
        for i, (_, _, band, count, _) in enumerate(group):
            histogram[score].append(
                {"low": bounds[i], "high": bounds[i + 1], "band": band, "contacts": count}
            )
    return histogram


STAGE = Table(
    "stage_score",
    MetaData(),
    Column("contact_id", Integer),
    Column("score", String),
    Column("value", Float),
    Column("band", String),
    Column("old_band", String),
    prefixes=["TEMPORARY"],
)


def _write_back(
    db: Connection, connection: duckdb.DuckDBPyConnection, changed: int, day: date, version: str
) -> int:
    """Upsert the `changed` rows of `changed_scores` and record their band changes, in the day's
    transaction; read from DuckDB BULK_CHUNK_ROWS at a time (bounded memory at any base).

    By score, then contact: the first write of a score table (SQLite) then lays each score's
    rows out together, in contact order, and a day's decay, which moves one score of many
    contacts, rewrites that score's pages only, walking them in order."""
    if changed == 0:
        return 0
    bump_state_version(db)
    STAGE.create(db)
    bulk_load(db, STAGE, _changed_in_order(connection))
    params = {"day": day, "version": version}
    result = db.execute(
        text(
            """INSERT INTO band_change (contact_id, score, day, value, old_band, new_band,
                                        model_version)
               SELECT contact_id, score, :day, value, old_band, band, :version
               FROM stage_score WHERE COALESCE(old_band, '') <> COALESCE(band, '')"""
        ).bindparams(bindparam("day", type_=Date())),
        params,
    )
    band_changes = result.rowcount
    db.execute(
        text(
            """INSERT INTO contact_score (contact_id, score, value, band, day, model_version)
               SELECT contact_id, score, value, band, :day, :version FROM stage_score
               WHERE true
               ON CONFLICT (contact_id, score) DO UPDATE SET
                 value = excluded.value, band = excluded.band, day = excluded.day,
                 model_version = excluded.model_version"""
        ).bindparams(bindparam("day", type_=Date())),
        params,
    )
    STAGE.drop(db)
    return band_changes


def _changed_in_order(connection: duckdb.DuckDBPyConnection) -> pa.RecordBatchReader:
    """`changed_scores` by score, then contact id, streamed: sorted SORT_IDS contact ids at a
    time (one sort of a first day's 20M rows at 10M contacts passed DuckDB's 512 MB)."""
    [(low, high)] = connection.execute(
        "SELECT COALESCE(min(contact_id), 0), COALESCE(max(contact_id), 0) FROM changed_scores"
    ).fetchall()
    scores = connection.execute("SELECT DISTINCT score FROM changed_scores ORDER BY 1").fetchall()
    query = """SELECT contact_id, score, value, band, old_band FROM changed_scores
               WHERE score = $score AND contact_id >= $start AND contact_id < $stop
               ORDER BY contact_id"""

    def batches() -> Iterator[pa.RecordBatch]:
        for (score,) in scores:
            for start in range(low, high + 1, SORT_IDS):
                params = {"score": score, "start": start, "stop": start + SORT_IDS}
                yield from connection.sql(query, params=params).to_arrow_reader(BULK_CHUNK_ROWS)

    empty = {"score": "", "start": 0, "stop": 0}
    schema = connection.sql(query, params=empty).to_arrow_table().schema
    return pa.RecordBatchReader.from_batches(schema, batches())


@dataclass(frozen=True)
class RuleContribution:
    rule: str
    kind: str  # event | ranges | value | condition
    points: float | None  # per event, or once; None: by range or by value (see `detail`)
    contribution: float
    events: int | None = None
    newest: datetime | None = None
    oldest: datetime | None = None
    machine_left_out: int | None = None  # opens or clicks made by machines, not counted
    group: str | None = None
    detail: str | None = None  # the range the count fell in, or the property's value


@dataclass(frozen=True)
class GroupSubtotal:
    group: str
    subtotal: float  # its rules' contributions
    min: float | None
    max: float | None
    capped: float  # the subtotal within the group's limit: what the total adds
    limited: bool  # the limit changed the subtotal


@dataclass(frozen=True)
class Explanation:
    email: str
    day: date
    score: str
    value: float
    band: str | None
    total_before_limit: float  # ungrouped contributions plus the groups' capped subtotals
    limit: tuple[float, float]
    rules: list[RuleContribution]
    groups: list[GroupSubtotal] = field(default_factory=list)
    reset_at: datetime | None = None  # event rules count the events from then on


@dataclass(frozen=True)
class GridPlacement:
    grid: str
    email: str
    day: date
    label: str | None  # None if either score is below its axis' last band
    rows: tuple[str, float, str | None]  # score, value, band label
    columns: tuple[str, float, str | None]


@dataclass(frozen=True)
class ContactExplanation:
    scores: list[Explanation]
    grids: list[GridPlacement]


def explain(workspace: Workspace, email: str, day: date) -> list[Explanation]:
    """Each score of one contact as of `day`, rule by rule (see `explain_contact`)."""
    return explain_contact(workspace, email, day).scores


def _range_detail(count: int, rule: EventRule) -> str:
    for item in rule.ranges:
        low, high = item.bounds
        if low <= count <= high:
            upper = "+" if high == math.inf else f"-{high:g}"
            return f"{count} events: range {low:g}{upper}"
    return f"{count} events: in no range"


def _rule_contribution(row: dict, name: str, index: int, rule) -> RuleContribution:
    contribution = float(row[rule_column(name, index).strip('"')] or 0.0)
    if isinstance(rule, EventRule):
        events = int(row[f"count:{name}:{index}"] or 0)
        return RuleContribution(
            rule.id,
            "event" if rule.ranges is None else "ranges",
            rule.points,
            contribution,
            events=events,
            newest=row[f"newest:{name}:{index}"],
            oldest=row[f"oldest:{name}:{index}"],
            machine_left_out=int(row[f"machine:{name}:{index}"] or 0),
            group=rule.group,
            detail=None if rule.ranges is None else _range_detail(events, rule),
        )
    if isinstance(rule, ValueRule):
        value = row[property_column(rule.property).strip('"')]
        detail = f"{rule.property} = {value!r}" if value is not None else f"{rule.property}: none"
        return RuleContribution(
            rule.id, "value", None, contribution, group=rule.group, detail=detail
        )
    assert isinstance(rule, ConditionRule)
    return RuleContribution(rule.id, "condition", rule.points, contribution, group=rule.group)


def explain_contact(workspace: Workspace, email: str, day: date) -> ContactExplanation:
    """Each score of one contact as of `day`, rule by rule: the ungrouped contributions and
    each group's subtotal within its limit sum to the total, which the score's limit clamps
    into the score; and the contact's cell of each grid."""
    email = email.strip().lower()
    check_contact(workspace, email)
    with workspace.lake.connection() as connection:
        row = scored_relation(workspace, connection, [day], email=email, explain=True)
        row = row.to_arrow_table()
        row = {name: values[0] for name, values in row.to_pydict().items()}
    explanations = []
    for name, score in workspace.config.scores.items():
        rules = [
            _rule_contribution(row, name, index, rule) for index, rule in enumerate(score.rules)
        ]
        groups = []
        for index, (group, declared) in enumerate(score.groups.items()):
            subtotal = float(row[group_column(name, index).strip('"')])
            low, high = declared.limit.min, declared.limit.max
            capped = subtotal if low is None else max(subtotal, low)
            capped = capped if high is None else min(capped, high)
            groups.append(GroupSubtotal(group, subtotal, low, high, capped, capped != subtotal))
        ungrouped = sum(item.contribution for item in rules if item.group is None)
        reset_at = row.get(reset_column(name).strip('"'))
        explanations.append(
            Explanation(
                email,
                day,
                name,
                round(float(row[f"score:{name}"]), DECIMALS),
                row[f"band_{name}"],
                ungrouped + sum(group.capped for group in groups),
                (score.limit.min, score.limit.max),
                rules,
                groups,
                reset_at,
            )
        )
    grids = []
    for name, grid in workspace.config.grids.items():
        axes = []
        for axis in (grid.rows, grid.columns):
            value = float(row[f"score:{axis.score}"])
            band = next(
                (band.label for band in axis.bands if band.gte is None or value >= band.gte),
                None,
            )
            axes.append((axis.score, round(value, DECIMALS), band))
        grids.append(GridPlacement(name, email, day, row[f"grid:{name}"], axes[0], axes[1]))
    return ContactExplanation(explanations, grids)


def history(workspace: Workspace, email: str, start: date, end: date) -> pa.Table:
    """One contact's daily path, one row per day and score, with its band changes: recomputed
    from the lake for each day (no row per contact per day is stored)."""
    if end < start:
        raise DayRangeError(f"--end {end} is before --start {start}")
    email = email.strip().lower()
    check_contact(workspace, email)
    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    with workspace.lake.connection() as connection:
        scored = scored_relation(workspace, connection, days, email=email)
        connection.register("scored", scored)
        return connection.sql(
            f"""SELECT day, score, value, band,
                       lag(band) OVER (PARTITION BY score ORDER BY day) AS previous_band
                FROM ({_long_scores_sql(workspace, "scored")})
                ORDER BY day, score"""
        ).to_arrow_table()


def last_scored_day(workspace: Workspace) -> date | None:
    with session_scope(workspace.engine) as session:
        return session.exec(select(ScoringRun.day).order_by(ScoringRun.id.desc())).first()


@dataclass(frozen=True)
class RescoreImpact:
    bands: list[tuple[str, str, int, int]]  # score, band, contacts now, after
    movers: list[tuple[str, str, float, float, float]]  # email, score, now, after, change
    band_changes: int


def rescore_impact(workspace: Workspace, day: date, movers: int = 10) -> RescoreImpact:
    """What rescoring as of `day` with the current rules would change; writes nothing."""
    with workspace.lake.connection() as connection:
        prepare_day(workspace, connection, day, read_contacts(workspace))
        stored = _compare_with_stored(workspace, connection)
        bands = connection.execute(
            f"""SELECT score, band, sum(now)::INT, sum(after)::INT FROM (
                    SELECT score, COALESCE(band, '-') AS band, 1 AS now, 0 AS after
                    FROM {stored} SEMI JOIN day_scored USING (contact_id)
                    UNION ALL
                    SELECT score, COALESCE(band, '-'), 0, 1 FROM score_diff)
                GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        top = connection.execute(
            f"""SELECT email, score, COALESCE(old_value, 0), value,
                       value - COALESCE(old_value, 0) AS change
                FROM score_diff ORDER BY abs(change) DESC, email LIMIT {int(movers)}"""
        ).fetchall()
        changes = connection.execute(
            """SELECT count(DISTINCT email) FROM score_diff
               WHERE old_band IS DISTINCT FROM band"""
        ).fetchone()[0]
    return RescoreImpact(bands, top, changes)
