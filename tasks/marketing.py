"""Marketing task: one task run updates every contact's marketing state for one day."""

from dataclasses import asdict
from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from leadflow.marketing import demotion_queue, update_marketing
from leadflow.workspace import Workspace

QUEUE_ROWS_SHOWN = 50


@task
def update_marketing_task(day: date) -> dict:
    """Statuses, suppression and demotions as of `day`; publishes the tier use and the queue."""
    space = Workspace.from_settings()
    summary = update_marketing(space, day)
    tier = summary.tier
    get_run_logger().info(
        "marketing as of %s: %d promoted, demotions %s; %d marketing contacts (%s)",
        day,
        summary.promoted,
        summary.demotions,
        tier.marketing_contacts,
        tier.level,
    )
    used = "n/a" if tier.used_pct is None else f"{tier.used_pct:.1f}%"
    create_markdown_artifact(
        key="tier-use",
        markdown=(
            f"# Marketing-contact tier as of {day}: **{tier.level}**\n\n"
            f"| marketing contacts | tier | used | queued | scheduled | after renewal "
            f"({tier.renewal_date}) | saving |\n|---|---|---|---|---|---|---|\n"
            f"| {tier.marketing_contacts} | {tier.tier} | {used} | {tier.queued_demotions} | "
            f"{tier.scheduled_demotions} | {tier.projected_after_renewal} | {tier.saving} |\n"
        ),
        description=f"Tier use after the run of {day}",
    )
    queue = demotion_queue(space)
    create_table_artifact(
        key="demotion-queue",
        table=queue.slice(0, QUEUE_ROWS_SHOWN).to_pylist(),
        description=f"{queue.num_rows} open demotions after the run of {day} "
        f"(first {QUEUE_ROWS_SHOWN} shown)",
    )
    return asdict(summary)
