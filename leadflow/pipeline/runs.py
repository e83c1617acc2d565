"""The runs: the daily run, a backfill, a rescore and the demo, each under the run lock.

They are plain functions over a workspace and a `Steps`, which says how each step is carried
out. The command line passes `LocalSteps`: direct calls, no Prefect server to wait for. The
Prefect flows (`flows/`) pass their own steps, Prefect tasks with retries, logging and
artifacts around the same functions. So a run is the same whether Prefect orchestrates it or
not; only the reporting around it differs.
"""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from leadflow.errors import UserError
from leadflow.ingest.inbox import file_away, pending_files
from leadflow.pipeline.changes import StateChanges, day_changes, net_changes, snapshot
from leadflow.pipeline.days import execute, run_day
from leadflow.pipeline.plans import Plan, plan_backfill, plan_daily, plan_rescore
from leadflow.pipeline.replay import begin_replay
from leadflow.scoring.partitions import PartitionRunner, run_in_process
from leadflow.store.lock import state_lock
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)


class NothingToRescore(UserError, RuntimeError):
    """No day has been run yet."""


class Steps(Protocol):
    """How a run's steps are carried out."""

    def holder(self, run: str) -> str:
        """The name the run lock shows to anyone refused while this run holds it."""

    def ingest_file(self, path: Path, kind: str | None) -> dict: ...

    def ingested(self, results: list[dict]) -> None:
        """Publish what a run's ingest did (all files)."""

    def undo(self, after: date, through: date) -> dict[str, int]: ...

    def run_day(self, day: date) -> dict: ...

    def day_done(self, plan: Plan, day: date, done: int) -> None:
        """After each day of `plan` (progress)."""

    def generate(self, out_dir: Path, contacts: int, days: int, seed: int): ...

    def report(self, report: dict) -> None:
        """Publish the run's report (`leadflow.report.content`)."""

    def hubspot_pull(self) -> dict:
        """Pull contacts and email events from HubSpot (`leadflow.hubspot.pull`)."""

    def hubspot_push(self, dry_run: bool) -> dict:
        """Push what changed to HubSpot (`leadflow.hubspot.push`)."""

    def log(self, message: str) -> None: ...


def ingest_outcome(
    workspace: Workspace, path: Path, kind: str | None = None, format: str | None = None
) -> dict:
    """Load one file and say what happened; a rejected batch or an unreadable file is an
    outcome (`status: rejected` with the reason), not an error: the other files still load."""
    from leadflow.ingest.load import BatchRejected, InputColumnsError, ingest_file
    from leadflow.ingest.readers import InputFileError

    try:
        result = ingest_file(workspace, path, kind=kind, format=format)
    except (BatchRejected, InputFileError, InputColumnsError) as rejection:
        again = getattr(rejection, "again", False)
        return {"file": str(path), "status": "rejected", "reason": str(rejection), "again": again}
    return result.summary()


@dataclass
class LocalSteps:
    """Steps called directly, in this process: the command line without a Prefect API."""

    workspace: Workspace
    on_day: Callable[[date, int, int], None] | None = None  # (day, done, planned)
    on_file: Callable[[Path], None] | None = None  # before each file
    on_generated: Callable[[str, int, int], None] | None = None  # (step, done, steps)
    on_pulled: Callable[[dict], None] | None = None  # after each pulled batch (its outcome)
    on_pushed: Callable[[int, int], None] | None = None  # (contacts done, contacts to push)
    run_partitions: PartitionRunner = run_in_process  # or on a Dask cluster (leadflow.cluster)

    def holder(self, run: str) -> str:
        return "leadflow run" if run == "daily" else f"leadflow {run}"

    def ingest_file(self, path: Path, kind: str | None) -> dict:
        if self.on_file:
            self.on_file(path)
        outcome = ingest_outcome(self.workspace, path, kind)
        self.log(f"{Path(path).name}: {outcome['status']}")
        return outcome

    def log(self, message: str) -> None:
        log.info(message)

    def ingested(self, results: list[dict]) -> None:
        pass

    def undo(self, after: date, through: date) -> dict[str, int]:
        touched = begin_replay(self.workspace, after, through)
        self.log(f"undid the changes stamped after {after}")
        return touched

    def run_day(self, day: date) -> dict:
        summary = run_day(self.workspace, day, self.run_partitions)
        timing = ", ".join(f"{step} {seconds:.2f}s" for step, seconds in summary.seconds.items())
        self.log(f"{day}: {timing}")
        return asdict(summary)

    def day_done(self, plan: Plan, day: date, done: int) -> None:
        if self.on_day:
            self.on_day(day, done, len(plan.days))

    def generate(self, out_dir: Path, contacts: int, days: int, seed: int):
        from leadflow.demo_data import generate_demo_data

        return generate_demo_data(
            out_dir, contacts=contacts, days=days, seed=seed, on_step=self.on_generated
        )

    def report(self, report: dict) -> None:
        pass

    def hubspot_pull(self) -> dict:
        from leadflow.hubspot.sync import run_pull

        def said(batch: dict) -> None:
            self.log(f"HubSpot {batch['kind']}: {batch['status']}, {batch['rows_total']} rows")
            if self.on_pulled:
                self.on_pulled(batch)

        return run_pull(self.workspace, on_batch=said)

    def hubspot_push(self, dry_run: bool) -> dict:
        from leadflow.hubspot.sync import run_push

        return run_push(self.workspace, dry_run=dry_run, on_batch=self.on_pushed)


def _ingest_files(steps: Steps, paths: list[Path], kind: str | None = None) -> list[dict]:
    results = [steps.ingest_file(Path(path), kind) for path in paths]
    steps.ingested(results)
    return results


def _carry_out(workspace: Workspace, steps: Steps, plan: Plan) -> tuple[list[dict], dict]:
    """The plan's days, and the net change of the state they made (see `changes`)."""
    done = 0

    def after_day(day: date, _summary: dict) -> None:
        nonlocal done
        done += 1
        steps.day_done(plan, day, done)

    before = snapshot(workspace) if plan.undo_after or len(plan.days) > 1 else None
    days = execute(workspace, plan, run=steps.run_day, undo=steps.undo, on_day=after_day)
    if before is not None:
        changes = net_changes(before, snapshot(workspace))
    elif days:
        changes = day_changes(days[0])
    else:
        changes = StateChanges()
    return days, {**asdict(changes), "nothing": changes.nothing, "summary": changes.describe()}


def _outcome(plan: Plan, ingested: list[dict], ran: tuple[list[dict], dict]) -> dict:
    days, changes = ran
    return {"plan": plan.describe(), "ingest": ingested, "days": days, "changes": changes}


def _report(workspace: Workspace, steps: Steps, title: str, outcome: dict) -> None:
    """Build the run's report, keep it in the state store, publish it."""
    from leadflow.report import content

    report = content.build(workspace, title, outcome)
    content.save(workspace, report)
    steps.report(report)


def _synced(steps: Steps, step: Callable[[], dict]) -> dict:
    """A HubSpot step of a run: its failure is reported (`status: failed`), and what the run
    computed stays; the next run pulls or pushes from where this one stopped."""
    try:
        return step()
    except Exception as error:  # the run goes on: scores and stages do not wait for HubSpot
        message = str(error) if isinstance(error, UserError) else f"unexpected {error!r}"
        log.warning("HubSpot: %s", message, exc_info=not isinstance(error, UserError))
        steps.log(f"HubSpot: {message}")
        return {"status": "failed", "error": message}


def daily(
    workspace: Workspace, steps: Steps, as_of: date | None = None, inbox: Path | None = None
) -> dict:
    """Pull from HubSpot (if `hubspot.pull` is set), ingest the inbox's files (each filed away
    by its outcome), then run `as_of` (default: yesterday in the account zone), catching up on
    missed days or replaying from `as_of`, and push to HubSpot (if `hubspot.push` is set)."""
    from leadflow.scoring.scores import yesterday

    day = as_of or yesterday(workspace)
    hubspot = workspace.config.hubspot
    with state_lock(workspace.engine, steps.holder("daily")):
        synced = {}
        if hubspot.pull:
            synced["pull"] = _synced(steps, steps.hubspot_pull)
        ingested = []
        files = pending_files(inbox) if inbox else []
        if files:
            ingested = _ingest_files(steps, files)
            for path, result in zip(files, ingested, strict=True):
                result["filed_to"] = str(file_away(path, result["status"]))
        plan = plan_daily(workspace, day)
        steps.log(f"daily run of {day}: {plan.describe()}")
        ran = _carry_out(workspace, steps, plan)
        if hubspot.push:
            synced["push"] = _synced(steps, lambda: steps.hubspot_push(False))
        outcome = _outcome(plan, ingested, ran)
        if synced:
            outcome["hubspot"] = synced
        _report(workspace, steps, f"Daily run of {day}", outcome)
    return outcome


def hubspot_pull(workspace: Workspace, steps: Steps) -> dict:
    """`leadflow hubspot pull`, under the run lock (it writes the state store)."""
    with state_lock(workspace.engine, steps.holder("hubspot pull")):
        return steps.hubspot_pull()


def hubspot_push(workspace: Workspace, steps: Steps, dry_run: bool) -> dict:
    """`leadflow hubspot push`, under the run lock (the state must not move while it sends)."""
    with state_lock(workspace.engine, steps.holder("hubspot push")):
        return steps.hubspot_push(dry_run)


def backfill(workspace: Workspace, steps: Steps, start: date, end: date) -> dict:
    """Run every day from `start` to `end`; days already run after `start` are undone first
    and the replay goes on up to the latest of them."""
    with state_lock(workspace.engine, steps.holder("backfill")):
        plan = plan_backfill(workspace, start, end)
        steps.log(f"backfill {start}..{end}: {plan.describe()}")
        outcome = _outcome(plan, [], _carry_out(workspace, steps, plan))
        _report(workspace, steps, f"Backfill {start}..{end}", outcome)
    return outcome


def rescore(workspace: Workspace, steps: Steps) -> dict:
    """Rescore every contact as of the latest day run, and move stages and marketing status
    by the current rules."""
    with state_lock(workspace.engine, steps.holder("rescore")):
        plan = plan_rescore(workspace)
        if plan is None:
            raise NothingToRescore("nothing to rescore: no day has been run yet (leadflow run)")
        outcome = _outcome(plan, [], _carry_out(workspace, steps, plan))
        _report(workspace, steps, f"Rescore as of {plan.days[-1]}", outcome)
    return outcome


def demo(
    workspace: Workspace, steps: Steps, out_dir: Path, contacts: int, days: int, seed: int
) -> dict:
    """Generate the sample files, ingest them (contacts first, the broken batch last), then
    run the pipeline as of the last day of the sample (yesterday), as the daily run does."""
    from leadflow.scoring.scores import yesterday

    with state_lock(workspace.engine, steps.holder("demo")):
        dataset = steps.generate(out_dir, contacts, days, seed)
        files = [
            dataset.contacts_file,
            dataset.hubspot_file,
            *dataset.event_files,
            *dataset.source_files,
            dataset.rejected_file,
        ]
        ingested = _ingest_files(steps, files)
        day = yesterday(workspace)
        plan = plan_daily(workspace, day)
        outcome = _outcome(plan, ingested, _carry_out(workspace, steps, plan))
        _report(workspace, steps, f"Demo run of {day}", outcome)
    return outcome
