"""Lifecycle stages: forward-only promotion by rule, audited; back only by an admin.

Each run computes, set-based with the scores' query, the highest stage whose `lifecycle.promote`
condition holds as of the day (`target_stage`), and moves a contact there only if it is ahead
of where the contact stands. A contact's first stage may come from its record (a HubSpot
export's `Lifecycle Stage`); `other` stands outside the order and is left to admins.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

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

from leadflow.domain import OTHER_STAGE, STAGES
from leadflow.errors import UserError
from leadflow.scoring.query import moves_forward_sql, stage_rank
from leadflow.scoring.scores import check_contact, prepare_day, read_contacts
from leadflow.store.db import bulk_load, bump_state_version, read_arrow
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)
CURRENT_SCHEMA = pa.schema([("contact_id", pa.int64()), ("stage", pa.string())])

STAGE_MOVES = Table(
    "stage_moves",
    MetaData(),
    Column("contact_id", Integer),
    Column("from_stage", String),
    Column("to_stage", String),
    prefixes=["TEMPORARY"],
)
STAGE_ENTRIES = Table(
    "stage_entries",
    MetaData(),
    Column("contact_id", Integer),
    Column("stage", String),
    prefixes=["TEMPORARY"],
)


class StageError(UserError, ValueError):
    """An admin stage change that cannot be made (the message says why)."""


@dataclass(frozen=True)
class LifecycleSummary:
    day: date
    moves: int
    moves_by_stage: dict[str, int]  # stage entered -> contacts
    funnel: dict[str, int]  # stage -> contacts there after the run


def current_stages(source: Engine | Connection) -> pa.Table:
    """(contact_id, stage) for every contact with a stage: set by a run, else from its record."""
    return read_arrow(
        source,
        "SELECT c.id, COALESCE(s.stage, c.initial_stage) FROM contact c "
        "LEFT JOIN contact_stage s ON s.contact_id = c.id "
        "WHERE s.stage IS NOT NULL OR c.initial_stage IS NOT NULL",
        CURRENT_SCHEMA,
    )


def advance_stages(workspace: Workspace, day: date) -> LifecycleSummary:
    """Move every contact forward to its target stage as of `day`; never backward."""
    with workspace.lake.connection() as connection:
        prepare_day(workspace, connection, day, read_contacts(workspace), lifecycle=True)
        with workspace.engine.begin() as db:
            return lifecycle_step(workspace, connection, day, current_stages(db), db)


def lifecycle_step(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    day: date,
    current: pa.Table,
    db: Connection,
) -> LifecycleSummary:
    """The lifecycle step over a prepared day (`prepare_day` with lifecycle), in the day's
    transaction `db`: `current` is where each contact stood before it."""
    connection.register("current", current)
    moves = connection.sql(
        f"""SELECT s.contact_id, cur.stage AS from_stage, s.target_stage AS to_stage
            FROM day_scored s LEFT JOIN current cur ON cur.contact_id = s.contact_id
            WHERE {moves_forward_sql("cur.stage", "s.target_stage")}
            ORDER BY s.contact_id"""
    ).to_arrow_table()
    connection.register("moves", moves)
    entries = connection.sql(
        f"""SELECT m.contact_id, stage.name AS stage
            FROM moves m, (SELECT unnest($stages) AS name) stage
            WHERE {stage_rank("stage.name")} <= {stage_rank("m.to_stage")}""",
        params={"stages": list(STAGES)},
    ).to_arrow_table()
    _record_moves(db, workspace, moves, entries, day, "rule")
    by_stage = {stage: 0 for stage in STAGES}
    for stage in moves.column("to_stage").to_pylist():
        by_stage[stage] += 1
    # Where everyone stands now: `current` with the moves applied (no second read of the state).
    after = dict(
        connection.sql(
            """SELECT COALESCE(m.to_stage, c.stage) AS stage, count(*)
               FROM current c FULL OUTER JOIN moves m ON m.contact_id = c.contact_id
               GROUP BY 1"""
        ).fetchall()
    )
    counts = {stage: after.get(stage, 0) for stage in (*STAGES, OTHER_STAGE)}
    return LifecycleSummary(day, moves.num_rows, by_stage, counts)


def _record_moves(
    db: Connection,
    workspace: Workspace,
    moves: pa.Table,
    entries: pa.Table,
    day: date,
    by: str,
    reason: str | None = None,
    recorded_at: datetime | None = None,
) -> None:
    """Write the moves, their audit rows and the stage entry dates in the transaction `db`."""
    if moves.num_rows == 0:
        return
    params = {
        "day": day,
        "version": workspace.config.model_version,
        "now": recorded_at or datetime.now(UTC),
        "reason": reason,
    }
    day_param = bindparam("day", type_=Date())
    bump_state_version(db)
    STAGE_MOVES.create(db)
    STAGE_ENTRIES.create(db)
    bulk_load(db, STAGE_MOVES, moves)
    bulk_load(db, STAGE_ENTRIES, entries)
    rule = "'lifecycle.promote.' || to_stage" if by == "rule" else "'admin'"
    db.execute(
        text(
            f"""INSERT INTO stage_move (contact_id, from_stage, to_stage, day, rule,
                                    model_version, reason, recorded_at)
            SELECT contact_id, from_stage, to_stage, :day, {rule}, :version, :reason, :now
            FROM stage_moves"""
        ).bindparams(day_param, bindparam("now", type_=UTCDateTime())),
        params,
    )
    db.execute(
        text(
            """INSERT INTO contact_stage (contact_id, stage, day)
           SELECT contact_id, to_stage, :day FROM stage_moves WHERE true
           ON CONFLICT (contact_id) DO UPDATE SET stage = excluded.stage, day = excluded.day"""
        ).bindparams(day_param),
        params,
    )
    db.execute(
        text(
            """INSERT INTO stage_entry (contact_id, stage, day)
           SELECT contact_id, stage, :day FROM stage_entries WHERE true
           ON CONFLICT (contact_id, stage) DO NOTHING"""
        ).bindparams(day_param),
        params,
    )
    STAGE_MOVES.drop(db)
    STAGE_ENTRIES.drop(db)


def set_stage(
    workspace: Workspace,
    email: str,
    stage: str,
    reason: str,
    day: date,
    db: Connection | None = None,
    recorded_at: datetime | None = None,
) -> str:
    """The admin move, in any direction, audited with its reason; returns the previous stage.
    In the transaction `db` if given (a replayed day), else in a transaction of its own."""
    if stage not in (*STAGES, OTHER_STAGE):
        raise StageError(f"unknown stage {stage!r} (one of: {', '.join((*STAGES, OTHER_STAGE))})")
    if not reason.strip():
        raise StageError("a stage change by hand needs a --reason")
    if db is None:
        with workspace.engine.begin() as own:
            previous = set_stage(workspace, email, stage, reason, day, own, recorded_at)
            log.info("stage of %s set to %s: written, committing", email, stage)
            return previous
    email = email.strip().lower()
    check_contact(workspace, email, db)
    contact_id, current = db.execute(
        text(
            "SELECT c.id, COALESCE(s.stage, c.initial_stage) FROM contact c "
            "LEFT JOIN contact_stage s ON s.contact_id = c.id WHERE c.email = :email"
        ),
        {"email": email},
    ).one()
    if current == stage:
        raise StageError(f"{email} is already at stage {stage}")
    moves = pa.table(
        {
            "contact_id": pa.array([contact_id], pa.int64()),
            "from_stage": pa.array([current], pa.string()),
            "to_stage": pa.array([stage], pa.string()),
        }
    )
    lower = STAGES[: STAGES.index(stage) + 1] if stage in STAGES else ()
    entries = pa.table(
        {
            "contact_id": pa.array([contact_id] * len(lower), pa.int64()),
            "stage": pa.array(list(lower), pa.string()),
        }
    )
    _record_moves(db, workspace, moves, entries, day, "admin", reason.strip(), recorded_at)
    return current
