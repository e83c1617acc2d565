"""One day of the pipeline, atomic, and a plan's days carried out in order.

A day's scoring, lifecycle and marketing steps read one scan of the lake (through the run
cache), then write in **one transaction** of the state store: the changed scores, band changes
and the scoring run, the stage moves and entry dates, the marketing changes, demotions and
renewal, the admins' changes a replay makes again, and the `day_run` row. A kill at any point
leaves the day whole or absent. The run cache is folded after the commit, so it never runs
ahead of the state store (it may lag behind; it then rebuilds what it misses).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from time import perf_counter
from typing import TypeVar

from sqlalchemy import Connection, Date, bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow.lifecycle import LifecycleSummary, lifecycle_step
from leadflow.marketing import MarketingSummary, marketing_step, stages_by_email, tier_report
from leadflow.pipeline.mirror import day_inputs, record_day
from leadflow.pipeline.plans import Plan
from leadflow.pipeline.replay import begin_replay, end_replay_if_reached, redo_admin_changes
from leadflow.pipeline.runcache import attached
from leadflow.scoring.partitions import PartitionRunner, run_in_process
from leadflow.scoring.query import property_names
from leadflow.scoring.scores import ScoringSummary, prepare_day, score_step
from leadflow.workspace import Workspace

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaySummary:
    day: date
    scoring: ScoringSummary
    lifecycle: LifecycleSummary
    marketing: MarketingSummary
    admin_changes: int  # admins' changes a replay made again on this day
    seconds: dict[str, float]  # step -> wall seconds: read+scan, score, lifecycle, marketing
    reads: dict[str, str]  # how the run cache supplied the contacts, the state and the ledgers


def run_day(
    workspace: Workspace, day: date, run_partitions: PartitionRunner = run_in_process
) -> DaySummary:
    """Score, move stages and update marketing for every contact as of `day`, over one scan,
    committed in one transaction. The run cache supplies the state (`mirror`), each partition's
    ledger the events' aggregates (`run_partitions` runs the partitions: in process, or on a
    Dask cluster)."""
    seconds: dict[str, float] = {}
    started = datetime.now(UTC)
    clock = perf_counter()
    with workspace.lake.connection() as connection, attached(connection, workspace.cache_path):
        inputs = day_inputs(connection, workspace, property_names(workspace.config))
        partitions = prepare_day(
            workspace,
            connection,
            day,
            inputs.state,
            stages_by_email(connection, inputs.state, inputs.stages),
            lifecycle=True,
            marketing=True,
            ledger=True,
            properties=inputs.properties,
            run_partitions=run_partitions,
            buckets=inputs.buckets,
        )
        seconds["read and scan"] = perf_counter() - clock
        log.info("%s: read and scanned", day)
        with workspace.engine.begin() as db:
            clock = perf_counter()
            scoring = score_step(workspace, connection, day, started, db, inputs.scores)
            seconds["score"] = perf_counter() - clock
            log.info("%s: scores written (%d changed)", day, scoring.scores_changed)
            clock = perf_counter()
            lifecycle = lifecycle_step(workspace, connection, day, inputs.stages, db)
            seconds["lifecycle"] = perf_counter() - clock
            log.info("%s: stage moves written (%d)", day, lifecycle.moves)
            clock = perf_counter()
            marketing = marketing_step(workspace, connection, day, inputs.state, db)
            seconds["marketing"] = perf_counter() - clock
            log.info("%s: marketing changes written", day)
            clock = perf_counter()
            admin_changes = redo_admin_changes(workspace, db, day)
            tier = marketing.tier
            if admin_changes:  # an admin may have made a contact marketing
                tier = tier_report(workspace, day, current=True, source=db)
            _record_day_run(db, workspace, day, tier.marketing_contacts)
            end_replay_if_reached(db, day)
            log.info("%s: admin changes made again (%d); committing", day, admin_changes)
        seconds["commit"] = perf_counter() - clock
        log.info("%s: committed", day)
        clock = perf_counter()
        if not admin_changes:  # the fold knows the rules' changes only: else the mirror re-reads
            record_day(connection, workspace, day, workspace.config.model_version)
        seconds["cache"] = perf_counter() - clock
        log.info("%s: run cache folded", day)
    hows = sorted({(result.ledger or "").split(" (")[0] for result in partitions})
    reads = inputs.reads | {"ledger": f"{len(partitions)} partition(s): {', '.join(hows)}"}
    return DaySummary(day, scoring, lifecycle, marketing, admin_changes, seconds, reads)


def _record_day_run(
    db: Connection, workspace: Workspace, day: date, marketing_contacts: int
) -> None:
    db.execute(
        text(
            """INSERT INTO day_run (day, model_version, finished_at, marketing_contacts)
               VALUES (:day, :version, :now, :marketing)
               ON CONFLICT (day) DO UPDATE SET model_version = excluded.model_version,
                                               finished_at = excluded.finished_at,
                                               marketing_contacts = excluded.marketing_contacts"""
        ).bindparams(bindparam("day", type_=Date()), bindparam("now", type_=UTCDateTime())),
        {
            "day": day,
            "version": workspace.config.model_version,
            "now": datetime.now(UTC),
            "marketing": marketing_contacts,
        },
    )


def execute(
    workspace: Workspace,
    plan: Plan,
    run: Callable[[date], T] | None = None,
    undo: Callable[[date, date], object] | None = None,
    on_day: Callable[[date, T], None] | None = None,
) -> list[T]:
    """Carry out a plan: the undo (recording the replay it begins), then each day in order.
    `run` and `undo` default to `run_day` and `begin_replay` (flows pass their tasks)."""
    run = run or (lambda day: run_day(workspace, day))
    undo = undo or (lambda after, through: begin_replay(workspace, after, through))
    if plan.undo_after is not None:
        undo(plan.undo_after, plan.days[-1])
    results = []
    for day in plan.days:
        result = run(day)
        results.append(result)
        if on_day:
            on_day(day, result)
    return results
