"""Days of the pipeline (SPEC §7): which days a run must compute, undoing for late data, and
one day's scoring, lifecycle and marketing steps over a single scan of the lake.

Stages, marketing status and demotions depend on the path of days, so every change is stamped
with its day. Running a day D at or before the latest day already run first undoes every change
stamped after D − 1, then replays D up to that latest day: the state always reflects the latest
day, as if the late data had arrived on time. Admins' changes (`stage set`, `marketing set`)
undone that way are made again on their day during the replay.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from time import perf_counter
from typing import TypeVar

from sqlalchemy import Date, bindparam, func, text
from sqlmodel import select

from leadflow.lake import duckdb_connection
from leadflow.lifecycle import LifecycleSummary, StageError, lifecycle_step
from leadflow.lifecycle import set_stage as admin_set_stage
from leadflow.marketing import (
    MarketingError,
    MarketingSummary,
    marketing_step,
    set_marketing_status,
    stages_by_email,
)
from leadflow.pipeline.mirror import day_inputs, record_day
from leadflow.pipeline.runcache import attached
from leadflow.scoring.query import property_names
from leadflow.scoring.scores import ScoringSummary, prepare_day, score_step
from leadflow.store.db import bump_state_version, session_scope
from leadflow.workspace import Workspace
from models import DayRun

T = TypeVar("T")
UNDONE = "undone"  # the model version of a stored score to be rewritten by the replay


@dataclass(frozen=True)
class DaySummary:
    day: date
    scoring: ScoringSummary
    lifecycle: LifecycleSummary
    marketing: MarketingSummary
    seconds: dict[str, float]  # step -> wall seconds: read+scan, score, lifecycle, marketing
    reads: dict[str, str]  # how the run cache supplied the contacts and the state


@dataclass(frozen=True)
class Plan:
    """What a run does: undo the changes stamped after `undo_after` (if set), then run `days`."""

    undo_after: date | None
    days: list[date]
    latest: date | None  # the latest day run before this run

    def describe(self) -> str:
        if not self.days:
            return "nothing to run"
        span = f"{self.days[0]}" if len(self.days) == 1 else f"{self.days[0]}..{self.days[-1]}"
        undo = f"undo the changes after {self.undo_after}, then " if self.undo_after else ""
        return f"{undo}run {len(self.days)} day(s): {span}"


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def latest_day(workspace: Workspace) -> date | None:
    with session_scope(workspace.engine) as session:
        return session.exec(select(func.max(DayRun.day))).one()


def plan_daily(workspace: Workspace, as_of: date) -> Plan:
    """The daily run of `as_of`: catch up on missed days after the latest day run; at or
    before it (late data), undo from `as_of` and replay up to the latest day."""
    latest = latest_day(workspace)
    if latest is None:
        return Plan(None, [as_of], latest)
    if as_of > latest:
        return Plan(None, day_range(latest + timedelta(days=1), as_of), latest)
    return Plan(as_of - timedelta(days=1), day_range(as_of, latest), latest)


def plan_backfill(workspace: Workspace, start: date, end: date) -> Plan:
    """Replay `start`..`end` in order, and on up to the latest day run if that is later."""
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    latest = latest_day(workspace)
    if latest is None or start > latest:
        return Plan(None, day_range(start, end), latest)
    return Plan(start - timedelta(days=1), day_range(start, max(end, latest)), latest)


def run_day(workspace: Workspace, day: date) -> DaySummary:
    """Score, move stages and update marketing for every contact as of `day`, over one scan.
    The run cache supplies the events' aggregates and the state (`ledger`, `mirror`)."""
    seconds: dict[str, float] = {}
    started = datetime.now(UTC)
    clock = perf_counter()
    with duckdb_connection() as connection, attached(connection, workspace.cache_path):
        inputs = day_inputs(connection, workspace, property_names(workspace.config))
        prepare_day(
            workspace,
            connection,
            day,
            inputs.state,
            stages_by_email(connection, inputs.state, inputs.stages),
            lifecycle=True,
            marketing=True,
            ledger=True,
            properties=inputs.properties,
        )
        seconds["read and scan"] = perf_counter() - clock
        clock = perf_counter()
        scoring = score_step(workspace, connection, day, started, inputs.scores)
        seconds["score"] = perf_counter() - clock
        clock = perf_counter()
        lifecycle = lifecycle_step(workspace, connection, day, inputs.stages)
        seconds["lifecycle"] = perf_counter() - clock
        clock = perf_counter()
        marketing = marketing_step(workspace, connection, day, inputs.state)
        seconds["marketing"] = perf_counter() - clock
        clock = perf_counter()
        record_day(connection, workspace, day, workspace.config.model_version)
        seconds["cache"] = perf_counter() - clock
    with session_scope(workspace.engine) as session:
        record = session.get(DayRun, day) or DayRun(day=day, model_version="", finished_at=started)
        record.model_version = workspace.config.model_version
        record.finished_at = datetime.now(UTC)
        session.add(record)
    return DaySummary(day, scoring, lifecycle, marketing, seconds, inputs.reads)


@dataclass(frozen=True)
class AdminChange:
    """An admin's change undone by a replay, to be made again on its day."""

    day: date
    kind: str  # stage | marketing
    email: str
    value: str  # the stage, or marketing | non_marketing
    reason: str
    recorded_at: datetime


def execute(
    workspace: Workspace,
    plan: Plan,
    run: Callable[[date], T] | None = None,
    undo: Callable[[date], object] | None = None,
    on_day: Callable[[date, T], None] | None = None,
) -> list[T]:
    """Carry out a plan: undo, then each day in order, admins' changes made again on theirs.
    `run` and `undo` default to `run_day` and `undo_after` (flows pass their tasks)."""
    run = run or (lambda day: run_day(workspace, day))
    undo = undo or (lambda day: undo_after(workspace, day))
    admin: list[AdminChange] = []
    if plan.undo_after is not None:
        admin = admin_changes_after(workspace, plan.undo_after)
        undo(plan.undo_after)
    results = []
    for day in plan.days:
        result = run(day)
        for change in (item for item in admin if item.day == day):
            redo_admin_change(workspace, change)
        results.append(result)
        if on_day:
            on_day(day, result)
    return results


def admin_changes_after(workspace: Workspace, day: date) -> list[AdminChange]:
    """Admins' changes stamped after `day`, in the order they were made."""
    with workspace.engine.connect() as connection:
        stage_rows = connection.execute(
            text(
                """SELECT m.day, c.email, m.to_stage, m.reason, m.recorded_at FROM stage_move m
                   JOIN contact c ON c.id = m.contact_id
                   WHERE m.rule = 'admin' AND m.day > :day"""
            ).bindparams(bindparam("day", type_=Date())),
            {"day": day},
        ).all()
        marketing_rows = connection.execute(
            text(
                """SELECT m.day, c.email,
                          CASE WHEN m.kind = 'demotion' AND m.from_value IS NULL
                               THEN 'non_marketing' ELSE 'marketing' END,
                          m.reason, max(m.recorded_at)
                   FROM marketing_change m JOIN contact c ON c.id = m.contact_id
                   WHERE m.actor = 'admin' AND m.day > :day
                   GROUP BY m.day, c.email, 3, m.reason, m.recorded_at"""
            ).bindparams(bindparam("day", type_=Date())),
            {"day": day},
        ).all()
    changes = [AdminChange(_as_date(d), "stage", *rest) for d, *rest in stage_rows]
    changes += [AdminChange(_as_date(d), "marketing", *rest) for d, *rest in marketing_rows]
    return sorted(changes, key=lambda change: (change.day, str(change.recorded_at)))


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def redo_admin_change(workspace: Workspace, change: AdminChange) -> bool:
    """Make an undone admin change again; False if the replayed state already has it."""
    try:
        if change.kind == "stage":
            admin_set_stage(workspace, change.email, change.value, change.reason, change.day)
        else:
            set_marketing_status(workspace, change.email, change.value, change.reason, change.day)
    except (StageError, MarketingError):
        return False
    return True


# Statements that put the state back as it stood after day :day, in order (one transaction).
UNDO_STATEMENTS = {
    "band changes": "DELETE FROM band_change WHERE day > :day",
    "scoring runs": "DELETE FROM scoring_run WHERE day > :day",
    # The band as of :day comes from the band changes; the value and its day are rewritten by
    # the replay's first day (a row whose model_version differs is always rewritten).
    "scores": f"""UPDATE contact_score SET
                   band = (SELECT b.new_band FROM band_change b
                           WHERE b.contact_id = contact_score.contact_id
                             AND b.score = contact_score.score
                           ORDER BY b.day DESC, b.id DESC LIMIT 1),
                   model_version = '{UNDONE}'
                 WHERE day > :day""",
    "stage moves": "DELETE FROM stage_move WHERE day > :day",
    "stage entries": "DELETE FROM stage_entry WHERE day > :day",
    "stages": """DELETE FROM contact_stage WHERE day > :day AND NOT EXISTS (
                   SELECT 1 FROM stage_move m WHERE m.contact_id = contact_stage.contact_id)""",
    "stages restored": """UPDATE contact_stage SET
                   stage = (SELECT m.to_stage FROM stage_move m
                            WHERE m.contact_id = contact_stage.contact_id
                            ORDER BY m.day DESC, m.id DESC LIMIT 1),
                   day = (SELECT max(m.day) FROM stage_move m
                          WHERE m.contact_id = contact_stage.contact_id)
                 WHERE day > :day""",
    "marketing changes": "DELETE FROM marketing_change WHERE day > :day",
    "demotions": "DELETE FROM demotion WHERE opened_day > :day",
    "demotions restored": """UPDATE demotion SET
                   state = (SELECT m.to_value FROM marketing_change m
                            WHERE m.demotion_id = demotion.id AND m.kind = 'demotion'
                            ORDER BY m.day DESC, m.id DESC LIMIT 1),
                   state_day = (SELECT max(m.day) FROM marketing_change m
                                WHERE m.demotion_id = demotion.id AND m.kind = 'demotion')
                 WHERE state_day > :day""",
    "marketing statuses": """DELETE FROM contact_marketing WHERE NOT EXISTS (
                   SELECT 1 FROM marketing_change m
                   WHERE m.contact_id = contact_marketing.contact_id AND m.kind = 'status')""",
    "marketing statuses restored": """UPDATE contact_marketing SET
                   status = (SELECT m.to_value FROM marketing_change m
                             WHERE m.contact_id = contact_marketing.contact_id
                               AND m.kind = 'status' ORDER BY m.day DESC, m.id DESC LIMIT 1),
                   status_rule = (SELECT m.rule FROM marketing_change m
                                  WHERE m.contact_id = contact_marketing.contact_id
                                    AND m.kind = 'status' ORDER BY m.day DESC, m.id DESC LIMIT 1),
                   status_day = (SELECT max(m.day) FROM marketing_change m
                                 WHERE m.contact_id = contact_marketing.contact_id
                                   AND m.kind = 'status')
                 WHERE status_day > :day""",
    "suppressions restored": """UPDATE contact_marketing SET
                   suppressed = COALESCE((SELECT m.to_value = 'true' FROM marketing_change m
                                          WHERE m.contact_id = contact_marketing.contact_id
                                            AND m.kind = 'suppression'
                                          ORDER BY m.day DESC, m.id DESC LIMIT 1), false),
                   suppressed_day = (SELECT max(m.day) FROM marketing_change m
                                     WHERE m.contact_id = contact_marketing.contact_id
                                       AND m.kind = 'suppression')
                 WHERE suppressed_day > :day""",
    "renewals": "DELETE FROM contract_renewal WHERE day > :day",
    "days": "DELETE FROM day_run WHERE day > :day",
}


def undo_after(workspace: Workspace, day: date) -> dict[str, int]:
    """Put the state back as it stood after `day`, in one transaction; rows touched per step."""
    touched = {}
    with session_scope(workspace.engine) as session:
        db = session.connection()
        bump_state_version(db)
        for name, statement in UNDO_STATEMENTS.items():
            query = text(statement)
            if ":day" in statement:
                query = query.bindparams(bindparam("day", type_=Date()))
            result = db.execute(query, {"day": day})
            touched[name] = result.rowcount
    return touched
