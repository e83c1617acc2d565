"""Marketing contacts: who counts against the paid tier, and when that may change.

Each run, as of its day D, set-based in DuckDB:

1. a contact existing on D (created, or with an event, by then) without a status gets one:
   the HubSpot record's, else always `non_marketing` for the fixed sources, else its
   integration's override, else the creation default of its source;
2. suppression (unsubscribe, hard bounce, spam report) follows the events at once;
3. an open demotion is `cancelled` when no demote rule holds any more, `applied` once D reaches
   its renewal date (the contact becomes non-marketing), `scheduled` once D is inside the
   window `[renewal − demotion_window_days, renewal)`, else stays `queued`;
4. a marketing contact meeting a demote rule without an open demotion gets one, for the next
   renewal after D;
5. a non-marketing contact for whom `marketing.promote` holds and no demote rule does becomes
   marketing at once (demotion wins: no flip-flop).

Every change is a `marketing_change` row stamped with D. The contract's renewals follow
`contract.renewal_date` by whole billing periods, both ways: the renewal for day D is the first
one after D, so a backfill of an earlier year sees the renewals of that year.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    text,
)
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow.config import Contract, LeadflowConfig
from leadflow.domain import NON_MARKETING_SOURCES
from leadflow.errors import UserError
from leadflow.lifecycle import current_stages
from leadflow.scoring.conditions import quote
from leadflow.scoring.partitions import create_by_partition, partition_count
from leadflow.scoring.scores import check_contact, prepare_day
from leadflow.store.db import (
    BULK_CHUNK_ROWS,
    bulk_load,
    bump_state_version,
    connected,
    read_arrow,
)
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)
BILLING_MONTHS = {"annual": 12, "monthly": 1}
OPEN_STATES = ("queued", "scheduled")
DEMOTION_STATES = ("queued", "scheduled", "applied", "cancelled")
# A status set by an admin is not overridden by the promote rule (only by another admin).
ADMIN_RULES = ("admin", "demotion:admin")
WARNING_PCT = 75.0
ALERT_PCT = 100.0


class MarketingError(UserError, ValueError):
    """An admin marketing change that cannot be made (the message says why)."""


# --- The contract calendar ---------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the end of a shorter month (31 Jan + 1 -> 28 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for day_of_month in range(day.day, 27, -1):
        try:
            return date(year, month + 1, day_of_month)
        except ValueError:
            continue
    return date(year, month + 1, min(day.day, 28))


def renewal_after(day: date, contract: Contract) -> date:
    """The first renewal strictly after `day`: renewal_date moved by whole billing periods."""
    step = BILLING_MONTHS[contract.billing]
    anchor = contract.renewal_date
    months = (day.year - anchor.year) * 12 + day.month - anchor.month
    periods = months // step - 1  # a renewal at least one period before `day`
    while (renewal := add_months(anchor, periods * step)) <= day:
        periods += 1
    return renewal


def renewal_on_or_before(day: date, contract: Contract) -> date:
    """The last renewal on or before `day`."""
    step = BILLING_MONTHS[contract.billing]
    next_renewal = renewal_after(day, contract)
    anchor = contract.renewal_date
    months = (next_renewal.year - anchor.year) * 12 + next_renewal.month - anchor.month
    return add_months(anchor, months - step)


def window_start(renewal: date, contract: Contract) -> date:
    """The first day on which a demotion for `renewal` is scheduled."""
    return renewal - timedelta(days=contract.demotion_window_days)


# --- The daily step ----------------------------------------------------------------------------

STATE_SCHEMA = pa.schema(
    [
        ("contact_id", pa.int64()),
        ("email", pa.string()),
        ("created_at", pa.string()),
        ("creation_source", pa.string()),
        ("integration", pa.string()),
        ("initial_status", pa.string()),
        ("status", pa.string()),
        ("status_rule", pa.string()),
        ("status_day", pa.string()),
        ("suppressed", pa.int64()),
        ("suppressed_day", pa.string()),
        ("demotion_id", pa.int64()),
        ("demotion_state", pa.string()),
        ("demotion_rule", pa.string()),
        ("demotion_renewal", pa.string()),
    ]
)


def read_state(workspace: Workspace) -> pa.Table:
    """Every contact with its record, current marketing state and open demotion (if any)."""
    return read_arrow(
        workspace.engine,
        f"""SELECT c.id, c.email, CAST(c.created_at AS TEXT), c.creation_source, c.integration,
                   c.initial_marketing_status, m.status, m.status_rule,
                   CAST(m.status_day AS TEXT), CAST(m.suppressed AS INTEGER),
                   CAST(m.suppressed_day AS TEXT), d.id, d.state, d.rule,
                   CAST(d.renewal_date AS TEXT)
            FROM contact c
            LEFT JOIN contact_marketing m ON m.contact_id = c.id
            LEFT JOIN demotion d ON d.contact_id = c.id AND d.state IN {OPEN_STATES}""",
        STATE_SCHEMA,
    )


def initial_status_sql(config: LeadflowConfig) -> tuple[str, str]:
    """SQL for a new contact's status and the rule behind it, over `state` columns."""
    marketing = config.marketing
    fixed = ", ".join(quote(source) for source in NON_MARKETING_SOURCES)
    overrides = [
        (quote(name), quote(status)) for name, status in marketing.integration_overrides.items()
    ]
    defaults = [
        (quote(source), quote(status)) for source, status in marketing.creation_defaults.items()
    ]
    override_status = (
        "CASE integration " + " ".join(f"WHEN {n} THEN {s}" for n, s in overrides) + " END"
        if overrides
        else "NULL::VARCHAR"
    )
    default_status = (
        "CASE creation_source " + " ".join(f"WHEN {n} THEN {s}" for n, s in defaults) + " END"
    )
    status = f"""CASE WHEN initial_status IS NOT NULL THEN initial_status
                      WHEN creation_source IN ({fixed}) THEN 'non_marketing'
                      ELSE COALESCE({override_status}, {default_status}, 'non_marketing') END"""
    rule = f"""CASE WHEN initial_status IS NOT NULL THEN 'record'
                    WHEN creation_source IN ({fixed}) THEN 'fixed:' || creation_source
                    WHEN {override_status} IS NOT NULL THEN 'integration_override:' || integration
                    ELSE 'creation_default:' || creation_source END"""
    return status, rule


@dataclass(frozen=True)
class TierReport:
    as_of: date
    marketing_contacts: int
    tier: int
    used_pct: float | None  # None when the tier is 0
    level: str  # ok | warning | alert
    queued_demotions: int
    scheduled_demotions: int
    projected_after_renewal: int  # marketing contacts minus every open demotion
    saving: int
    renewal_date: date

    def as_json(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "marketing_contacts": self.marketing_contacts,
            "tier": self.tier,
            "used_pct": self.used_pct,
            "level": self.level,
            "queued_demotions": self.queued_demotions,
            "scheduled_demotions": self.scheduled_demotions,
            "projected_after_renewal": self.projected_after_renewal,
            "saving": self.saving,
            "renewal_date": self.renewal_date.isoformat(),
        }


@dataclass(frozen=True)
class MarketingSummary:
    day: date
    new_contacts: int  # contacts given their first status
    promoted: int
    demotions: dict[str, int]  # state -> demotions that entered it on the day (opened included)
    suppressed: int  # contacts suppressed on the day
    renewal: date | None  # the renewal this run went through, if any
    tier: TierReport


def decide_sql(config: LeadflowConfig) -> str:
    """The contacts whose marketing state day $day changes (a first status, a suppression, a
    demotion opened or moved on, a promotion), with their state after it, from `state` and
    `day_scored` (see the module), of partition $partition of $partitions of the contact ids
    (`create_by_partition`). The others, most of the base on most days, are left out."""
    status, rule = initial_status_sql(config)
    window = config.contract.demotion_window_days
    admin = ", ".join(quote(rule) for rule in ADMIN_RULES)
    return f"""
    WITH base AS (
        SELECT s.*, e.promote, e.demote_rule, COALESCE(e.suppressed, false) AS now_suppressed,
               e.suppression_reason, s.demotion_renewal::DATE AS renewal
        FROM state s JOIN day_scored e ON e.contact_id = s.contact_id
        WHERE s.contact_id % $partitions = $partition
          AND e.contact_id % $partitions = $partition
    ),
    step1 AS (
        SELECT *, COALESCE(status, {status}) AS status0, COALESCE(status_rule, {rule}) AS rule0,
               CASE WHEN demotion_id IS NULL THEN NULL
                    WHEN demote_rule IS NULL AND demotion_rule <> 'admin' THEN 'cancelled'
                    WHEN $day >= renewal THEN 'applied'
                    WHEN $day >= renewal - INTERVAL {window} DAY THEN 'scheduled'
                    ELSE demotion_state END AS demotion_next
        FROM base
    ),
    step2 AS (
        SELECT *,
               CASE WHEN demotion_next = 'applied' THEN 'non_marketing' ELSE status0 END
                   AS status1,
               CASE WHEN demotion_next = 'applied' THEN 'demotion:' || demotion_rule
                    ELSE rule0 END AS rule1
        FROM step1
    ),
    step3 AS (
        SELECT *,
               CASE WHEN status1 = 'marketing' AND demote_rule IS NOT NULL
                         AND COALESCE(demotion_next NOT IN {OPEN_STATES}, true)
                    THEN CASE WHEN $day >= $window_start THEN 'scheduled' ELSE 'queued' END
               END AS opened,
               status1 = 'non_marketing' AND COALESCE(promote, false) AND demote_rule IS NULL
                   AND rule1 NOT IN ({admin}) AS promoted
        FROM step2
    )
    SELECT *,
           CASE WHEN promoted THEN 'marketing' ELSE status1 END AS new_status,
           CASE WHEN promoted THEN 'marketing.promote' ELSE rule1 END AS new_rule
    FROM step3
    WHERE status IS NULL OR now_suppressed <> (COALESCE(suppressed, 0) = 1)
       OR demotion_next IS DISTINCT FROM demotion_state OR opened IS NOT NULL OR promoted"""


# The audit rows of a day, in order (a new contact's first status comes before its promotion).
CHANGES_SQL = """
    SELECT contact_id, 1 AS seq, 'status' AS kind, NULL::BIGINT AS demotion_id,
           NULL::VARCHAR AS from_value, status0 AS to_value, rule0 AS rule,
           NULL::VARCHAR AS reason, NULL::DATE AS renewal_date
    FROM decided WHERE status IS NULL
    UNION ALL
    SELECT contact_id, 2, 'suppression', NULL,
           CASE WHEN COALESCE(suppressed, 0) = 1 THEN 'true' ELSE 'false' END,
           CASE WHEN now_suppressed THEN 'true' ELSE 'false' END,
           -- no suppressing event: the contact's record says it unsubscribed
           CASE WHEN suppression_reason IS NULL AND now_suppressed THEN 'record'
                ELSE 'suppression' END,
           CASE WHEN suppression_reason IS NULL AND now_suppressed THEN 'unsubscribed'
                ELSE suppression_reason END, NULL
    FROM decided WHERE now_suppressed <> (COALESCE(suppressed, 0) = 1)
    UNION ALL
    SELECT contact_id, 3, 'demotion', demotion_id, demotion_state, demotion_next,
           demotion_rule,
           CASE demotion_next WHEN 'cancelled' THEN 'no demote rule holds any more'
                              WHEN 'applied' THEN 'renewal ' || demotion_renewal
                              ELSE 'demotion window opened' END, NULL
    FROM decided WHERE demotion_next <> demotion_state
    UNION ALL
    SELECT contact_id, 4, 'status', NULL, status0, 'non_marketing', rule1, NULL, NULL
    FROM decided WHERE demotion_next = 'applied'
    UNION ALL
    SELECT contact_id, 5, 'demotion', NULL, NULL, opened, demote_rule, NULL, $renewal
    FROM decided WHERE opened IS NOT NULL
    UNION ALL
    SELECT contact_id, 6, 'status', NULL, status1, 'marketing', 'marketing.promote', NULL,
           NULL
    FROM decided WHERE promoted"""

CHANGES = Table(
    "marketing_changes",
    MetaData(),
    Column("contact_id", Integer),
    Column("seq", Integer),
    Column("kind", String),
    Column("demotion_id", Integer),
    Column("from_value", String),
    Column("to_value", String),
    Column("rule", String),
    Column("reason", String),
    Column("renewal_date", Date),
    prefixes=["TEMPORARY"],
)


def update_marketing(workspace: Workspace, day: date) -> MarketingSummary:
    """Run the marketing step of `day` for every contact (after the lifecycle step)."""
    with workspace.lake.connection() as connection:
        state = read_state(workspace)
        stages = stages_by_email(connection, state, current_stages(workspace.engine))
        prepare_day(workspace, connection, day, state, stages, lifecycle=True, marketing=True)
        with workspace.engine.begin() as db:
            return marketing_step(workspace, connection, day, state, db)


def stages_by_email(
    connection: duckdb.DuckDBPyConnection, contacts: pa.Table, stages: pa.Table
) -> pa.Table:
    """(email, stage) from `current_stages`' (contact_id, stage)."""
    connection.register("stage_contacts", contacts.select(["contact_id", "email"]))
    connection.register("stage_rows", stages)
    return connection.sql(
        "SELECT c.email, s.stage FROM stage_rows s JOIN stage_contacts c USING (contact_id)"
    ).to_arrow_table()


def marketing_step(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    day: date,
    state: pa.Table,
    db: Connection,
) -> MarketingSummary:
    """The marketing step over a prepared day (`prepare_day` with lifecycle and marketing), in
    the day's transaction `db`: `state` is `read_state` as it was before the day."""
    config = workspace.config
    renewal = renewal_after(day, config.contract)
    connection.register("state", state)
    create_by_partition(
        connection,
        "decided",
        decide_sql(config),
        partition_count(config, state.num_rows),
        {"day": day, "window_start": window_start(renewal, config.contract)},
    )
    # Streamed to the state store: on a first day every contact has a change (5M rows of
    # them, held whole, passed DuckDB's memory limit: BENCHMARKS, Scale).
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE day_changes AS {CHANGES_SQL}", {"renewal": renewal}
    )
    [(promoted, new_contacts, suppressed, applied)] = connection.execute(
        """SELECT count(*) FILTER (WHERE promoted), count(*) FILTER (WHERE status IS NULL),
                  count(*) FILTER (WHERE now_suppressed AND COALESCE(suppressed, 0) = 0),
                  count(*) FILTER (WHERE demotion_next = 'applied')
           FROM decided"""
    ).fetchall()
    [(change_count,)] = connection.execute("SELECT count(*) FROM day_changes").fetchall()
    demotions = {state_name: 0 for state_name in DEMOTION_STATES}
    demotions |= dict(
        connection.execute(
            "SELECT to_value, count(*) FROM day_changes WHERE kind = 'demotion' GROUP BY 1"
        ).fetchall()
    )
    last_renewal = renewal_on_or_before(day, config.contract)
    went_through = last_renewal if applied or last_renewal == day else None
    changes = connection.sql("SELECT * FROM day_changes").to_arrow_reader(BULK_CHUNK_ROWS)
    record_changes(
        db,
        workspace,
        changes,
        day,
        renewal_passed=(went_through, applied, renewal),
        count=change_count,
    )
    connection.execute("DROP TABLE day_changes")
    return MarketingSummary(
        day,
        new_contacts,
        promoted,
        demotions,
        suppressed,
        went_through,
        tier_report(workspace, day, current=True, source=db),
    )


def record_changes(
    db: Connection,
    workspace: Workspace,
    changes: pa.Table | pa.RecordBatchReader,
    day: date,
    renewal_passed: tuple[date | None, int, date] = (None, 0, date.min),
    reason: str | None = None,
    actor: str = "run",
    recorded_at: datetime | None = None,
    count: int | None = None,
) -> None:
    """Write a day's changes (CHANGES_SQL rows, in any order; `count` of them if a reader)
    to the audit, the demotions and the current state, in the transaction `db`; record the
    renewal the day went through, if any."""
    went_through, applied, next_renewal = renewal_passed
    count = changes.num_rows if isinstance(changes, pa.Table) else count
    if count == 0 and went_through is None:
        return
    params = {
        "day": day,
        "version": workspace.config.model_version,
        "now": recorded_at or datetime.now(UTC),
        "reason": reason,
        "actor": actor,
    }
    day_param = bindparam("day", type_=Date())
    bump_state_version(db)
    CHANGES.create(db)
    bulk_load(db, CHANGES, changes)
    # The statements below look rows up by contact and by demotion: without these indexes
    # they are quadratic in the day's changes (a first run gives every contact a status).
    db.exec_driver_sql(
        "CREATE INDEX marketing_changes_by_contact ON marketing_changes (contact_id, kind, seq)"
    )
    db.exec_driver_sql(
        "CREATE INDEX marketing_changes_by_demotion ON marketing_changes (demotion_id)"
    )
    # New demotions first, so that their audit rows can point at them.
    db.execute(
        text(
            """INSERT INTO demotion (contact_id, rule, state, opened_day, state_day,
                                     renewal_date, model_version)
               SELECT contact_id, rule, to_value, :day, :day, renewal_date, :version
               FROM marketing_changes WHERE kind = 'demotion' AND demotion_id IS NULL"""
        ).bindparams(day_param),
        params,
    )
    db.execute(
        text(
            """UPDATE demotion SET
                 state = (SELECT m.to_value FROM marketing_changes m
                          WHERE m.demotion_id = demotion.id),
                 state_day = :day
               WHERE id IN (SELECT demotion_id FROM marketing_changes
                            WHERE demotion_id IS NOT NULL)"""
        ).bindparams(day_param),
        params,
    )
    db.execute(
        text(
            f"""INSERT INTO marketing_change (contact_id, day, kind, demotion_id, from_value,
                                              to_value, rule, reason, actor,
                                              model_version, recorded_at)
               SELECT m.contact_id, :day, m.kind,
                      CASE WHEN m.kind = 'demotion' THEN COALESCE(m.demotion_id,
                          (SELECT d.id FROM demotion d WHERE d.contact_id = m.contact_id
                             AND d.state IN {OPEN_STATES})) END,
                      m.from_value, m.to_value, m.rule, COALESCE(:reason, m.reason),
                      :actor, :version, :now
               FROM marketing_changes m ORDER BY m.contact_id, m.seq"""
        ).bindparams(day_param, bindparam("now", type_=UTCDateTime())),
        params,
    )
    _refresh_current_state(db, day_param, params)
    if went_through is not None:
        db.execute(
            text(
                """INSERT INTO contract_renewal (renewal_date, day, demotions_applied,
                                                 next_renewal_date)
                   VALUES (:renewal, :day, :applied, :next)
                   ON CONFLICT (renewal_date) DO NOTHING"""
            ).bindparams(
                day_param,
                bindparam("renewal", type_=Date()),
                bindparam("next", type_=Date()),
            ),
            {**params, "renewal": went_through, "applied": applied, "next": next_renewal},
        )
    CHANGES.drop(db)


def _refresh_current_state(db, day_param, params: dict) -> None:
    """Fold the day's status and suppression changes into `contact_marketing`."""
    db.execute(
        text(
            """INSERT INTO contact_marketing (contact_id, status, status_rule, status_day,
                                              suppressed, suppressed_day)
               SELECT m.contact_id, m.to_value, m.rule, :day, false, NULL
               FROM marketing_changes m
               WHERE m.kind = 'status' AND m.seq = (
                   SELECT max(l.seq) FROM marketing_changes l
                   WHERE l.contact_id = m.contact_id AND l.kind = 'status')
               ON CONFLICT (contact_id) DO UPDATE SET
                 status = excluded.status, status_rule = excluded.status_rule,
                 status_day = excluded.status_day"""
        ).bindparams(day_param),
        params,
    )
    db.execute(
        text(
            """UPDATE contact_marketing SET
                 suppressed = (SELECT m.to_value = 'true' FROM marketing_changes m
                               WHERE m.contact_id = contact_marketing.contact_id
                                 AND m.kind = 'suppression'),
                 suppressed_day = :day
               WHERE contact_id IN (SELECT contact_id FROM marketing_changes
                                    WHERE kind = 'suppression')"""
        ).bindparams(day_param),
        params,
    )


# --- Reading the state as of a day -------------------------------------------------------------


def latest_per_contact_sql(table: str, column: str, day: date, where: str = "true") -> str:
    """(contact_id, value): each contact's `column` in its latest `table` row (audit rows
    stamped with their day) on or before `day`."""
    return f"""SELECT contact_id, {column} AS value FROM (
                   SELECT contact_id, {column},
                          row_number() OVER (PARTITION BY contact_id
                                             ORDER BY day DESC, id DESC) AS n
                   FROM {table} WHERE {where} AND day <= '{day}') latest
               WHERE n = 1"""


def latest_sql(kind: str, day: date) -> str:
    """(contact_id, value): each contact's latest `kind` change on or before `day`."""
    return latest_per_contact_sql("marketing_change", "to_value", day, f"kind = {quote(kind)}")


def tier_report(
    workspace: Workspace,
    day: date,
    current: bool = False,
    source: Engine | Connection | None = None,
) -> TierReport:
    """The tier use as of `day`, from the audit (what the runs up to `day` decided); with
    `current`, from the current state (the same figures right after the run of `day`, read
    without a window over the whole audit). Read in `source` if given (a day's transaction)."""
    contract = workspace.config.contract
    if current:
        status_sql = "SELECT status AS value FROM contact_marketing"
        demotion_sql = f"SELECT state AS value FROM demotion WHERE state IN {OPEN_STATES}"
    else:
        status_sql, demotion_sql = latest_sql("status", day), latest_sql("demotion", day)
    with connected(source if source is not None else workspace.engine) as connection:
        marketing = connection.execute(
            text(f"SELECT count(*) FROM ({status_sql}) s WHERE value = 'marketing'")
        ).scalar_one()
        by_state = dict(
            connection.execute(
                text(f"SELECT value, count(*) FROM ({demotion_sql}) d GROUP BY value")
            ).all()
        )
    tier = contract.marketing_contact_tier
    used = round(100.0 * marketing / tier, 2) if tier else None
    if used is None:
        level = "alert" if marketing else "ok"
    else:
        level = "alert" if used > ALERT_PCT else "warning" if used >= WARNING_PCT else "ok"
    queued, scheduled = by_state.get("queued", 0), by_state.get("scheduled", 0)
    return TierReport(
        as_of=day,
        marketing_contacts=marketing,
        tier=tier,
        used_pct=used,
        level=level,
        queued_demotions=queued,
        scheduled_demotions=scheduled,
        projected_after_renewal=marketing - queued - scheduled,
        saving=queued + scheduled,
        renewal_date=renewal_after(day, contract),
    )


DEMOTION_QUEUE_SCHEMA = pa.schema(
    [
        ("email", pa.string()),
        ("state", pa.string()),
        ("rule", pa.string()),
        ("opened_day", pa.string()),
        ("renewal_date", pa.string()),
    ]
)


def demotion_queue(workspace: Workspace, limit: int | None = None) -> pa.Table:
    """The open demotions, soonest renewal first (the first `limit` of them)."""
    return read_arrow(
        workspace.engine,
        f"""SELECT c.email, d.state, d.rule, CAST(d.opened_day AS TEXT),
                   CAST(d.renewal_date AS TEXT)
            FROM demotion d JOIN contact c ON c.id = d.contact_id
            WHERE d.state IN {OPEN_STATES}
            ORDER BY d.renewal_date, d.opened_day, c.email
            {"" if limit is None else f"LIMIT {int(limit)}"}""",
        DEMOTION_QUEUE_SCHEMA,
    )


# --- The admin command -------------------------------------------------------------------------


def set_marketing_status(
    workspace: Workspace,
    email: str,
    status: str,
    reason: str,
    day: date,
    db: Connection | None = None,
    recorded_at: datetime | None = None,
) -> str:
    """`leadflow marketing set`: to marketing at once (cancelling any open demotion); to
    non-marketing only as a demotion request, applied at the next renewal. Returns what was
    done. In the transaction `db` if given (a replayed day), else in a transaction of its own.
    """
    if status not in ("marketing", "non_marketing"):
        raise MarketingError(f"unknown marketing status {status!r} (marketing or non_marketing)")
    if not reason.strip():
        raise MarketingError("a marketing status change by hand needs a --reason")
    if db is None:
        with workspace.engine.begin() as own:
            done = set_marketing_status(workspace, email, status, reason, day, own, recorded_at)
            log.info("marketing status of %s: %s: written, committing", email, done)
            return done
    email = email.strip().lower()
    check_contact(workspace, email, db)
    contract = workspace.config.contract
    contact_id, current, demotion_id, demotion_state, demotion_renewal = db.execute(
        text(
            f"""SELECT c.id, m.status, d.id, d.state, d.renewal_date FROM contact c
                LEFT JOIN contact_marketing m ON m.contact_id = c.id
                LEFT JOIN demotion d ON d.contact_id = c.id AND d.state IN {OPEN_STATES}
                WHERE c.email = :email"""
        ),
        {"email": email},
    ).one()
    if current is None:
        raise MarketingError(f"{email} has no marketing status yet: run `leadflow run` first")
    rows: list[tuple] = []  # CHANGES_SQL rows
    if status == "marketing":
        if demotion_id is not None:
            rows.append(
                (contact_id, 3, "demotion", demotion_id, demotion_state, "cancelled", "admin")
            )
        if current != "marketing":
            rows.append((contact_id, 6, "status", None, current, "marketing", "admin"))
        if not rows:
            raise MarketingError(f"{email} is already marketing, with no pending demotion")
        done = "marketing now" + (f" ({demotion_state} demotion cancelled)" if demotion_id else "")
    else:
        if current == "non_marketing":
            raise MarketingError(f"{email} is already non-marketing")
        if demotion_id is not None:
            raise MarketingError(
                f"{email} already has a {demotion_state} demotion, applied at the renewal of "
                f"{demotion_renewal}"
            )
        renewal = renewal_after(day, contract)
        opened = "scheduled" if day >= window_start(renewal, contract) else "queued"
        rows.append((contact_id, 5, "demotion", None, None, opened, "admin", None, renewal))
        done = (
            f"demotion {opened}: stays marketing until the renewal of {renewal}, then non-marketing"
        )
    columns = list(zip(*[row + (None,) * (9 - len(row)) for row in rows], strict=True))
    changes = pa.table(
        {
            "contact_id": pa.array(columns[0], pa.int64()),
            "seq": pa.array(columns[1], pa.int64()),
            "kind": pa.array(columns[2], pa.string()),
            "demotion_id": pa.array(columns[3], pa.int64()),
            "from_value": pa.array(columns[4], pa.string()),
            "to_value": pa.array(columns[5], pa.string()),
            "rule": pa.array(columns[6], pa.string()),
            "reason": pa.array(columns[7], pa.string()),
            "renewal_date": pa.array(columns[8], pa.date32()),
        }
    )
    record_changes(
        db, workspace, changes, day, reason=reason.strip(), actor="admin", recorded_at=recorded_at
    )
    return done
