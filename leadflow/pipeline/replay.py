"""The undo of late data and the replay after it, made to survive a kill at any point.

`begin_replay` puts the state back as it stood after a day D − 1, and in the same transaction
records what the run intends (`replay`: replay up to a day) and sets the admins' changes it
undid aside (`replay_admin_change`), so nothing of them lives only in memory. Each replayed day
then makes its admins' changes again in the day's own transaction (`redo_admin_changes`) and
deletes them from the side table; the day reaching the replay's end deletes the intent. A
kill leaves a consistent state at the last committed day, with the intent and the admins'
changes still to make: the next run finishes the replay (`leadflow.pipeline.plans`).
"""

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Date, Engine, bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow.errors import UserError
from leadflow.lifecycle import StageError
from leadflow.lifecycle import set_stage as admin_set_stage
from leadflow.marketing import MarketingError, set_marketing_status
from leadflow.store.db import bump_state_version, connected
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)
UNDONE = "undone"  # the model version of a stored score to be rewritten by the replay


@dataclass(frozen=True)
class PendingReplay:
    undo_after: date
    through: date
    model_version: str
    batches: int


class ReplayPending(UserError, RuntimeError):
    """An admin change was asked for while a replay is unfinished (the message says what to do)."""


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def pending_replay(source: Engine | Connection) -> PendingReplay | None:
    """The replay a killed run left unfinished, if any."""
    with connected(source) as connection:
        row = connection.execute(
            text("SELECT undo_after, through, model_version, batches FROM replay")
        ).first()
    if row is None:
        return None
    return PendingReplay(_as_date(row[0]), _as_date(row[1]), row[2], row[3])


def refuse_during_replay(workspace: Workspace) -> None:
    """Admin commands wait for an interrupted replay to finish: made now, on a day the replay
    has not reached yet, they would be overwritten or applied out of order."""
    replay = pending_replay(workspace.engine)
    if replay is not None:
        raise ReplayPending(
            f"a replay of the days after {replay.undo_after} up to {replay.through} was "
            "interrupted; finish it first with `leadflow run` (or the same backfill again), "
            "then make the change"
        )


# The admins' changes stamped after :day, set aside in the order they were made: stage moves by
# hand, and marketing changes by hand (a demotion opened by an admin is a request for
# non-marketing; anything else an admin does sets marketing).
SET_ASIDE = """
    INSERT INTO replay_admin_change (day, kind, contact_id, value, reason, recorded_at)
    SELECT day, kind, contact_id, value, reason, recorded_at FROM (
        SELECT day, 'stage' AS kind, contact_id, to_stage AS value, reason, recorded_at
        FROM stage_move WHERE rule = 'admin' AND day > :day
        UNION ALL
        SELECT day, 'marketing', contact_id,
               max(CASE WHEN kind = 'demotion' AND from_value IS NULL
                        THEN 'non_marketing' ELSE 'marketing' END),
               reason, recorded_at
        FROM marketing_change WHERE actor = 'admin' AND day > :day
        GROUP BY day, contact_id, reason, recorded_at) admin
    ORDER BY day, recorded_at"""

# Statements that put the state back as it stood after day :day, in order.
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


def begin_replay(workspace: Workspace, after: date, through: date) -> dict[str, int]:
    """Put the state back as it stood after `after`, set the admins' changes undone aside and
    record the replay up to `through`, all in one transaction; rows touched per step."""
    touched = {}
    day = {"day": after}
    with workspace.engine.begin() as db:
        bump_state_version(db)
        previous = pending_replay(db)
        if previous is not None:
            through = max(through, previous.through)
        touched["admin changes set aside"] = db.execute(
            text(SET_ASIDE).bindparams(bindparam("day", type_=Date())), day
        ).rowcount
        for name, statement in UNDO_STATEMENTS.items():
            query = text(statement)
            if ":day" in statement:
                query = query.bindparams(bindparam("day", type_=Date()))
            touched[name] = db.execute(query, day).rowcount
        db.execute(text("DELETE FROM replay"))
        db.execute(
            text(
                """INSERT INTO replay (id, undo_after, through, model_version, batches,
                                       started_at)
                   SELECT 1, :after, :through, :version, count(*), :now FROM ingest_batch"""
            ).bindparams(
                bindparam("after", type_=Date()),
                bindparam("through", type_=Date()),
                bindparam("now", type_=UTCDateTime()),
            ),
            {
                "after": after,
                "through": through,
                "version": workspace.config.model_version,
                "now": datetime.now(UTC),
            },
        )
    log.info("undo after %s committed: replay up to %s", after, through)
    return touched


def redo_admin_changes(workspace: Workspace, db: Connection, day: date) -> int:
    """Make the admins' changes set aside for `day` (or before it) again, after the day's
    rules, in the day's transaction; delete them from the side table. One that the replayed
    state makes redundant is dropped. Returns how many were made again."""
    rows = db.execute(
        text(
            """SELECT r.day, r.kind, c.email, r.value, r.reason, r.recorded_at
               FROM replay_admin_change r JOIN contact c ON c.id = r.contact_id
               WHERE r.day <= :day ORDER BY r.day, r.recorded_at, r.id"""
        )
        .bindparams(bindparam("day", type_=Date()))
        .columns(day=Date(), recorded_at=UTCDateTime()),
        {"day": day},
    ).all()
    made = 0
    for change_day, kind, email, value, reason, recorded_at in rows:
        try:
            if kind == "stage":
                admin_set_stage(workspace, email, value, reason, change_day, db, recorded_at)
            else:
                set_marketing_status(workspace, email, value, reason, change_day, db, recorded_at)
        except (StageError, MarketingError):
            continue
        made += 1
    db.execute(
        text("DELETE FROM replay_admin_change WHERE day <= :day").bindparams(
            bindparam("day", type_=Date())
        ),
        {"day": day},
    )
    return made


def end_replay_if_reached(db: Connection, day: date) -> None:
    """In the transaction of `day`: the replay is over once its last day commits."""
    db.execute(
        text("DELETE FROM replay WHERE through <= :day").bindparams(bindparam("day", type_=Date())),
        {"day": day},
    )
