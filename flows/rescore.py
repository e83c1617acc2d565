"""The rescore flow: after a rule change, run the latest day again with the current rules."""

from prefect import flow
from prefect.runtime import flow_run

from flows.days import run_plan
from leadflow.pipeline.days import Plan, latest_day
from leadflow.store.lock import state_lock
from leadflow.workspace import Workspace
from tasks.report import report_task


class NothingToRescore(RuntimeError):
    """No day has been run yet."""


@flow(name="rescore")
def rescore_flow() -> dict:
    """Rescore every contact as of the latest day run, and move stages and marketing status
    by the current rules; the summary reports how many contacts changed band and stage."""
    space = Workspace.from_settings()
    with state_lock(space.engine, f"rescore flow run {flow_run.get_name() or ''}".strip()):
        latest = latest_day(space)
        if latest is None:
            raise NothingToRescore("nothing to rescore: no day has been run yet (leadflow run)")
        plan = Plan(None, [latest], latest)
        days = run_plan(space, plan)
        report_task(f"Rescore as of {latest}", plan.describe(), [], days)
    return {"plan": plan.describe(), "ingest": [], "days": days}
