"""Which days a run computes (README: Daily runs).

Stages, marketing status and demotions depend on the path of days, so every change is stamped
with its day. Running a day D at or before the latest day already run first undoes every change
stamped after D − 1, then replays D up to that latest day: the state always reflects the latest
day, as if the late data had arrived on time.

A replay killed half-way leaves its intent in the state store (`leadflow.pipeline.replay`): the
days it still has to run. Every plan made after that finishes it: its days start right after
the last day committed, and its undo is skipped when it would only undo what the interrupted
replay already redid (the same undo, with the same rules and no batch loaded since).
"""

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import text

from leadflow.errors import DayRangeError
from leadflow.pipeline.replay import PendingReplay, pending_replay
from leadflow.store.db import connected
from leadflow.workspace import Workspace


@dataclass(frozen=True)
class Plan:
    """What a run does: undo the changes stamped after `undo_after` (if set), then run `days`."""

    undo_after: date | None
    days: list[date]
    latest: date | None  # the latest day the state stands at (or must reach) before this run
    resumes: date | None = None  # the last day of an interrupted replay this plan finishes

    def describe(self) -> str:
        if not self.days:
            return "nothing to run"
        span = f"{self.days[0]}" if len(self.days) == 1 else f"{self.days[0]}..{self.days[-1]}"
        resume = f"finish the interrupted replay up to {self.resumes}: " if self.resumes else ""
        undo = f"undo the changes after {self.undo_after}, then " if self.undo_after else ""
        return f"{resume}{undo}run {len(self.days)} day(s): {span}"


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def latest_day(workspace: Workspace) -> date | None:
    """The latest day whose run committed."""
    with connected(workspace.engine) as connection:
        value = connection.execute(text("SELECT max(day) FROM day_run")).scalar()
    return date.fromisoformat(value) if isinstance(value, str) else value


def _stand(workspace: Workspace) -> tuple[date | None, PendingReplay | None, date | None]:
    """The latest committed day, the interrupted replay if any, and the day the state must
    reach (the later of the two)."""
    committed = latest_day(workspace)
    replay = pending_replay(workspace.engine)
    target = committed
    if replay is not None and (committed is None or replay.through > committed):
        target = replay.through
    return committed, replay, target


def plan_daily(workspace: Workspace, as_of: date) -> Plan:
    """The daily run of `as_of`: catch up on missed days after the latest day run; at or
    before it (late data), undo from `as_of` and replay up to the latest day."""
    committed, replay, latest = _stand(workspace)
    if latest is None:
        plan = Plan(None, [as_of], latest)
    elif as_of > latest:
        plan = Plan(None, day_range(latest + timedelta(days=1), as_of), latest)
    else:
        plan = Plan(as_of - timedelta(days=1), day_range(as_of, latest), latest)
    return _finishing(workspace, plan, committed, replay)


def plan_backfill(workspace: Workspace, start: date, end: date) -> Plan:
    """Replay `start`..`end` in order, and on up to the latest day run if that is later."""
    if end < start:
        raise DayRangeError(f"--end {end} is before --start {start}")
    committed, replay, latest = _stand(workspace)
    if latest is None or start > latest:
        plan = Plan(None, day_range(start, end), latest)
    else:
        plan = Plan(start - timedelta(days=1), day_range(start, max(end, latest)), latest)
    return _finishing(workspace, plan, committed, replay)


def plan_rescore(workspace: Workspace) -> Plan | None:
    """Run the latest day again with the current rules (None: no day has been run yet)."""
    committed, replay, latest = _stand(workspace)
    if latest is None:
        return None
    return _finishing(workspace, Plan(None, [latest], latest), committed, replay)


def _finishing(
    workspace: Workspace, plan: Plan, committed: date | None, replay: PendingReplay | None
) -> Plan:
    """`plan`, made to finish an interrupted replay first (unchanged if there is none).

    The days after the last committed one up to the replay's end have not been run (again):
    they are run first, in the same order. The plan's own undo is kept only if it reaches
    before the last committed day and is not the one the interrupted replay began with
    (same rules, no batch since), whose days up to there are already replayed."""
    if replay is None:
        return plan
    committed_day = committed or replay.undo_after
    resume_from = committed_day + timedelta(days=1)
    same_undo = (
        plan.undo_after == replay.undo_after
        and replay.model_version == workspace.config.model_version
        and replay.batches == committed_batches(workspace)
    )
    if plan.undo_after is not None and not same_undo and plan.undo_after < committed_day:
        return Plan(plan.undo_after, plan.days, plan.latest, replay.through)
    if plan.undo_after is None:
        gap = [day for day in day_range(resume_from, replay.through) if day < plan.days[0]]
        return Plan(None, gap + plan.days, plan.latest, replay.through)
    last = max(plan.days[-1], replay.through)
    return Plan(None, day_range(resume_from, last), plan.latest, replay.through)


def committed_batches(workspace: Workspace) -> int:
    """How many batches the state store has committed (a replay records it when it starts)."""
    with connected(workspace.engine) as connection:
        return connection.execute(text("SELECT count(*) FROM ingest_batch")).scalar_one()


def coverage_note(workspace: Workspace, day: date) -> str | None:
    """None if day runs cover `day`; else one line saying why figures as of `day` are what
    they are (no run yet, before the first day run, after the latest)."""
    with connected(workspace.engine) as connection:
        first, last = connection.execute(text("SELECT min(day), max(day) FROM day_run")).one()
    if first is None:
        return f"no day has been run yet: nothing is decided as of {day} (`leadflow run`)"
    first, last = (value if isinstance(value, date) else date.fromisoformat(value)
                   for value in (first, last))  # fmt: skip
    if day < first:
        return f"no run covers {day}: the first day run is {first}; nothing was decided by then"
    if day > last:
        return f"no run covers {day}: the latest day run is {last}; this is the state it left"
    return None
