"""The report of a run: the artifacts ops read in the Prefect UI, keyed so they version."""

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from leadflow.marketing import demotion_queue
from leadflow.workspace import Workspace

QUEUE_ROWS_SHOWN = 50


def summary_markdown(title: str, plan: str, ingested: list[dict], days: list[dict]) -> str:
    """Ingested, quarantined, rejected, scored, band moves, stage moves, promotions, demotions
    by state and tier use, over the days of the run."""
    loaded = sum(item.get("rows_loaded", 0) for item in ingested)
    quarantined = sum(item.get("rows_quarantined", 0) for item in ingested)
    rejected = [item for item in ingested if item["status"] == "rejected"]
    lines = [f"# {title}", "", f"Plan: {plan}.", ""]
    lines += [
        f"- **Ingested** {len(ingested)} file(s): {loaded} rows loaded, {quarantined} rows "
        f"quarantined, {len(rejected)} batch(es) rejected whole",
        *(f"  - rejected: {item['reason']}" for item in rejected),
    ]
    if days:
        last = days[-1]
        demotions: dict[str, int] = {}
        for day in days:
            for state, count in day["marketing"]["demotions"].items():
                demotions[state] = demotions.get(state, 0) + count
        tier = last["marketing"]["tier"]
        used = "n/a" if tier["used_pct"] is None else f"{tier['used_pct']:.1f}%"
        scoring = last["scoring"]
        model = " (model changed: everyone rescored)" if scoring["model_changed"] else ""
        lines += [
            f"- **Scored** {scoring['contacts']} contacts as of {last['day']}{model}; over the "
            f"run: {sum(d['scoring']['scores_changed'] for d in days)} score changes, "
            f"{sum(d['scoring']['band_changes'] for d in days)} band moves",
            f"- **Stage moves**: {sum(d['lifecycle']['moves'] for d in days)}",
            f"- **Marketing**: {sum(d['marketing']['promoted'] for d in days)} promoted, "
            f"{sum(d['marketing']['suppressed'] for d in days)} suppressed; demotions "
            + ", ".join(f"{count} {state}" for state, count in demotions.items()),
            f"- **Tier use**: {tier['marketing_contacts']} of {tier['tier']} ({used}, "
            f"**{tier['level']}**); {tier['queued_demotions']} queued and "
            f"{tier['scheduled_demotions']} scheduled demotions; "
            f"{tier['projected_after_renewal']} after the renewal of {tier['renewal_date']}",
        ]
    return "\n".join(lines)


def bands_markdown(scoring: dict) -> str:
    lines = [
        f"Contacts per band as of **{scoring['day']}** (model `{scoring['model_version']}`).",
        "",
        "| score | band | contacts |",
        "|---|---|---:|",
    ]
    for score, bands in scoring["bands"].items():
        lines += [f"| {score} | {band} | {count} |" for band, count in bands.items()]
    return "\n".join(lines)


def tier_markdown(tier: dict) -> str:
    used = "n/a" if tier["used_pct"] is None else f"{tier['used_pct']:.1f}%"
    return (
        f"# Marketing-contact tier as of {tier['as_of']}: **{tier['level']}**\n\n"
        "| marketing contacts | tier | used | queued | scheduled | after renewal | saving | "
        "renewal |\n|---|---|---|---|---|---|---|---|\n"
        f"| {tier['marketing_contacts']} | {tier['tier']} | {used} | {tier['queued_demotions']} "
        f"| {tier['scheduled_demotions']} | {tier['projected_after_renewal']} | "
        f"{tier['saving']} | {tier['renewal_date']} |\n"
    )


@task
def report_task(title: str, plan: str, ingested: list[dict], days: list[dict]) -> str:
    """Publish the run's artifacts; returns the summary markdown."""
    space = Workspace.from_settings()
    summary = summary_markdown(title, plan, ingested, days)
    create_markdown_artifact(key="run-summary", markdown=summary, description=title)
    if not days:
        return summary
    last = days[-1]
    create_table_artifact(
        key="top-movers",
        table=[
            {"email": email, "score": score, "before": before, "after": after}
            for email, score, before, after in last["scoring"]["movers"]
        ]
        or [{"email": "-", "score": "-", "before": 0, "after": 0}],
        description=f"Largest score moves on {last['day']}",
    )
    create_markdown_artifact(
        key="score-bands", markdown=bands_markdown(last["scoring"]), description="Score bands"
    )
    moved = last["lifecycle"]["moves_by_stage"]
    create_table_artifact(
        key="lifecycle-funnel",
        table=[
            {"stage": stage, "contacts": count, "entered that day": moved.get(stage, 0)}
            for stage, count in last["lifecycle"]["funnel"].items()
        ],
        description=f"Contacts per lifecycle stage after {last['day']}",
    )
    tier = last["marketing"]["tier"]
    create_markdown_artifact(
        key="tier-use", markdown=tier_markdown(tier), description=f"Tier use after {last['day']}"
    )
    create_table_artifact(
        key="demotion-queue",
        table=demotion_queue(space, QUEUE_ROWS_SHOWN).to_pylist()
        or [{"email": "-", "state": "-", "rule": "-"}],
        description=f"{tier['queued_demotions'] + tier['scheduled_demotions']} open demotions "
        f"after {last['day']} (first {QUEUE_ROWS_SHOWN} shown)",
    )
    return summary
