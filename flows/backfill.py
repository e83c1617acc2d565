"""The backfill flow: replay a range of days in order, with a progress artifact."""

from datetime import date

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.days import run_plan
from leadflow.pipeline.days import plan_backfill
from leadflow.store.lock import state_lock
from leadflow.workspace import Workspace
from tasks.report import report_task


@flow(name="backfill")
def backfill_flow(start: date, end: date) -> dict:
    """Run every day from `start` to `end`; if days after `start` were already run, their
    changes are undone first and the replay goes on up to the latest of them."""
    space = Workspace.from_settings()
    with state_lock(space.engine, f"backfill flow run {flow_run.get_name() or ''}".strip()):
        plan = plan_backfill(space, start, end)
        get_run_logger().info("backfill %s..%s: %s", start, end, plan.describe())
        days = run_plan(space, plan, progress_key="backfill-progress")
        report_task(f"Backfill {start}..{end}", plan.describe(), [], days)
    return {"plan": plan.describe(), "ingest": [], "days": days}
