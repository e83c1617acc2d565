"""Lifecycle task: one task run moves every contact for one day (never one task per contact)."""

from dataclasses import asdict
from datetime import date

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from leadflow.lifecycle import advance_stages
from leadflow.workspace import Workspace


@task
def advance_stages_task(day: date) -> dict:
    """Promote contacts as of `day` and publish the lifecycle funnel."""
    summary = advance_stages(Workspace.from_settings(), day)
    get_run_logger().info("lifecycle as of %s: %d contacts moved forward", day, summary.moves)
    create_table_artifact(
        key="lifecycle-funnel",
        table=[
            {
                "stage": stage,
                "contacts": count,
                "entered today": summary.moves_by_stage.get(stage, 0),
            }
            for stage, count in summary.funnel.items()
        ],
        description=f"Contacts per lifecycle stage after the run of {day}",
    )
    return asdict(summary)
