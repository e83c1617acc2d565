"""The report of a run as the artifacts ops read in the Prefect UI, keyed so they version
(the content is `leadflow.report.content`'s, the same `leadflow report` shows)."""

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from leadflow.report import content


@task
def report_task(report: dict) -> str:
    """Publish the run's artifacts; returns the summary markdown."""
    summary = content.summary_markdown(report)
    create_markdown_artifact(key="run-summary", markdown=summary, description=report["title"])
    if report.get("hubspot"):
        create_markdown_artifact(
            key="hubspot-sync",
            markdown=content.hubspot_markdown(report),
            description="What the run pulled from and pushed to HubSpot",
        )
    last = report["last"]
    if not last:
        return summary
    day = last["day"]
    rows, why = content.movers(report)
    if rows:
        create_table_artifact(
            key="top-movers", table=rows, description=f"Largest score moves of the run ({day})"
        )
    else:
        create_markdown_artifact(
            key="top-movers", markdown=why, description=f"Largest score moves of the run ({day})"
        )
    create_markdown_artifact(
        key="score-bands", markdown=content.bands_markdown(report), description="Score bands"
    )
    create_markdown_artifact(
        key="lifecycle-funnel",
        markdown=content.funnel_markdown(report),
        description=f"Contacts per lifecycle stage after {day}",
    )
    create_markdown_artifact(
        key="tier-use",
        markdown=content.tier_markdown(report),
        description=f"Tier use after {day}",
    )
    description = (
        f"{last['queue_total']} open demotions after {day} (first {content.QUEUE_ROWS_SHOWN} shown)"
    )
    if last["queue"]:
        create_table_artifact(key="demotion-queue", table=last["queue"], description=description)
    else:
        create_markdown_artifact(
            key="demotion-queue", markdown=f"No open demotion after {day}.", description=description
        )
    return summary
