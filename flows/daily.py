"""The daily flow: ingest the inbox, then score, lifecycle and marketing as of a day, report."""

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.days import run_plan
from flows.ingest import ingest_files
from leadflow.ingest.inbox import file_away, pending_files
from leadflow.pipeline.days import plan_daily
from leadflow.scoring.scores import yesterday
from leadflow.settings import get_settings
from leadflow.store.lock import state_lock
from leadflow.workspace import Workspace
from tasks.report import report_task


def ingest_inbox(inbox: Path) -> list[dict]:
    """Ingest the inbox's files (one task each), then file each away by its outcome."""
    files = pending_files(inbox)
    if not files:
        get_run_logger().info("inbox %s: no new file", inbox)
        return []
    results = ingest_files(files)
    for path, result in zip(files, results, strict=True):
        result["filed_to"] = str(file_away(path, result["status"]))
    return results


@flow(name="daily")
def daily_flow(as_of: date | None = None) -> dict:
    """Ingest new files from the inbox, then run `as_of` (default: yesterday in the account
    zone), catching up on missed days, or replaying from `as_of` if it was already run."""
    settings = get_settings()
    space = Workspace.from_settings(settings)
    day = as_of or yesterday(space)
    with state_lock(space.engine, f"daily flow run {flow_run.get_name() or ''}".strip()):
        ingested = ingest_inbox(settings.inbox)
        plan = plan_daily(space, day)
        get_run_logger().info("daily run of %s: %s", day, plan.describe())
        days = run_plan(space, plan)
        report_task(f"Daily run of {day}", plan.describe(), ingested, days)
    return {"plan": plan.describe(), "ingest": ingested, "days": days}
