"""The backfill flow: replay a range of days in order, with a progress artifact."""

from datetime import date

from prefect import flow

from flows.steps import PrefectSteps
from leadflow.pipeline import runs
from leadflow.workspace import Workspace


@flow(name="backfill")
def backfill_flow(start: date, end: date) -> dict:
    """Run every day from `start` to `end`; if days after `start` were already run, their
    changes are undone first and the replay goes on up to the latest of them."""
    return runs.backfill(
        Workspace.from_settings(), PrefectSteps(progress_key="backfill-progress"), start, end
    )
