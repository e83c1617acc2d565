"""Who is evaluated, and whether each converted (README: Evaluate a score).

The cohort: the contacts scored as of D (as a run of D scores them: created by the end of D,
or with an event before it) that had not reached the outcome stage by D. A contact has reached
a stage once it entered it or any later stage of the forward order (`stage_entry`, dated by
the run that moved it, and `contact_initial_stage_entry`, the record's own dates). It
converted if it reached the stage within (D, D + N days]. Both are one query over the state
store; the scores are computed from the lake as of D, in memory, writing nothing.
"""

from dataclasses import replace
from datetime import date, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import text

from leadflow.config import LeadflowConfig
from leadflow.domain import OTHER_STAGE, STAGES
from leadflow.errors import UserError
from leadflow.pipeline.plans import latest_day
from leadflow.scoring.query import as_of_end, band_column, rule_column
from leadflow.scoring.scores import scored_relation
from leadflow.sql import literal
from leadflow.store.db import read_arrow
from leadflow.workspace import Workspace

OUTCOME_SCHEMA = pa.schema([("contact_id", pa.int64()), ("converted", pa.int64())])  # 1 or 0


class EvaluationError(UserError, ValueError):
    """An evaluation that cannot be made: the message says why and what to do."""


def stages_from(stage: str) -> list[str]:
    """The stage and every later one of the forward order (reaching any is reaching it)."""
    if stage not in STAGES:
        hint = " (it stands outside the order of stages)" if stage == OTHER_STAGE else ""
        raise EvaluationError(f"unknown outcome stage {stage!r}{hint}: one of {', '.join(STAGES)}")
    return list(STAGES[STAGES.index(stage) :])


def check_window(workspace: Workspace, as_of: date, horizon_days: int) -> date:
    """The last day of the horizon, once D was run (`day_run`: its scoring, lifecycle and
    marketing steps committed, not undone) and so was a day at or after D + N: the outcomes
    after the last day run are not known yet, so such a horizon is refused (it would count
    every later conversion as none)."""
    if horizon_days < 1:
        raise EvaluationError(f"--horizon-days must be at least 1, got {horizon_days}")
    with workspace.engine.connect() as db:
        ran = db.execute(text("SELECT count(*) FROM day_run WHERE day = :day"), {"day": as_of})
        ran = ran.scalar()
    last = latest_day(workspace)
    if not ran:
        raise EvaluationError(
            f"--as-of {as_of} was never run: evaluate a day `leadflow run` or `backfill` ran "
            f"(the last one: {last or 'none yet'})"
        )
    until = as_of + timedelta(days=horizon_days)
    if until > last:
        raise EvaluationError(
            f"--as-of {as_of} + {horizon_days} days = {until} is after the last day run "
            f"({last}): its outcomes are not known yet; choose an --as-of up to "
            f"{last - timedelta(days=horizon_days)} or fewer --horizon-days"
        )
    return until


def outcomes(workspace: Workspace, stage: str, as_of: date, until: date) -> pa.Table:
    """(contact_id, converted) of every contact that had not reached `stage` by `as_of`
    (`until`: the horizon's last day). A contact whose record puts it at or past the stage
    without a date is left out: when it got there is unknown."""
    reached = ", ".join(literal(name) for name in stages_from(stage))
    day, last = literal(as_of.isoformat()), literal(until.isoformat())
    return read_arrow(
        workspace.engine,
        f"""WITH entries AS (
                SELECT contact_id, day FROM stage_entry WHERE stage IN ({reached})
                UNION ALL
                SELECT contact_id, day FROM contact_initial_stage_entry
                WHERE stage IN ({reached})),
            reached AS (SELECT contact_id, min(day) AS day FROM entries GROUP BY contact_id)
            SELECT c.id, CASE WHEN r.day IS NOT NULL AND r.day <= {last}
                              THEN 1 ELSE 0 END
            FROM contact c LEFT JOIN reached r ON r.contact_id = c.id
            WHERE CASE WHEN r.day IS NULL THEN COALESCE(c.initial_stage, '') NOT IN ({reached})
                       ELSE r.day > {day} END""",
        OUTCOME_SCHEMA,
    )


def scored(
    workspace: Workspace,
    config: LeadflowConfig,
    connection: duckdb.DuckDBPyConnection,
    day: date,
    contacts: pa.Table,
    names: list[str],
    properties: pa.Table,
    rules: bool = False,
) -> pa.Table:
    """Every contact scored as of `day` by the rules of `config` (the workspace's or another
    rule set: nothing is written): contact_id, then per score in `names` its value, band (the
    config's bands) and, with `rules`, each rule's contribution (`rule:<score>:<index>`).
    `properties`: the property history the rules read, read once for both rule sets."""
    relation = scored_relation(
        replace(workspace, config=config),
        connection,
        [day],
        contacts=contacts,
        properties=properties,
    )
    connection.register("evaluated_scores", relation)
    connection.register("evaluated_contacts", contacts)
    columns = []
    for name in names:
        columns += [f'"score:{name}"', band_column(name)]
        if rules:
            columns += [rule_column(name, index) for index in range(len(config.scores[name].rules))]
    try:
        return connection.sql(
            f"""SELECT c.contact_id, {", ".join("s." + column for column in columns)}
                FROM evaluated_scores s JOIN evaluated_contacts c USING (email)
                WHERE c.created_at::TIMESTAMPTZ < $end OR s.events_seen > 0
                ORDER BY c.contact_id""",
            params={"end": as_of_end(day, config)},
        ).to_arrow_table()
    finally:
        connection.unregister("evaluated_scores")
        connection.unregister("evaluated_contacts")
