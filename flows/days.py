"""Running a plan of days inside a flow: one task per day, progress, the CLI's progress bar."""

from collections.abc import Callable
from datetime import date

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from leadflow.pipeline.days import Plan, execute
from leadflow.workspace import Workspace
from tasks.day import run_day_task, undo_task

# Called after each day with (day, days done, days planned): the CLI hangs its progress bar here.
day_listeners: list[Callable[[date, int, int], None]] = []


def run_plan(space: Workspace, plan: Plan, progress_key: str | None = None) -> list[dict]:
    """Undo if the plan says so, then one `run_day_task` per day, in order."""
    progress = (
        create_progress_artifact(0.0, key=progress_key, description=plan.describe())
        if progress_key and plan.days
        else None
    )
    done = 0

    def after_day(day: date, _summary: dict) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            update_progress_artifact(progress, 100.0 * done / len(plan.days))
        for listener in day_listeners:
            listener(day, done, len(plan.days))

    return execute(space, plan, run=run_day_task, undo=undo_task, on_day=after_day)
