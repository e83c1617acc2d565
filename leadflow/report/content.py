"""A run's report: built once at the end of the run from its outcome, kept in the state store,
and rendered both as the Prefect artifacts ops read in the UI and as the page `leadflow report`
writes. Either way the same tables and charts, with or without Prefect.
"""

import json
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import text

from leadflow.store.db import connected
from leadflow.workspace import Workspace

QUEUE_ROWS_SHOWN = 50
TIER_DAYS = 90
REPORTS_KEPT = 100


def build(workspace: Workspace, title: str, outcome: dict) -> dict:
    """The report of a run (`leadflow.pipeline.runs`' outcome): JSON-able."""
    from leadflow.marketing import demotion_queue

    days = outcome["days"]
    report = {
        "title": title,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": outcome["plan"],
        "changes": outcome.get("changes", {}),
        "ingest": [_ingested(item) for item in outcome["ingest"]],
        "quality": quality_rows(outcome["ingest"]),
        "days": len(days),
        "last": None,
        "hubspot": {
            direction: sync_summary(direction, result)
            for direction, result in outcome.get("hubspot", {}).items()
        },
    }
    if not days:
        return report
    last = days[-1]
    scoring, lifecycle, marketing = last["scoring"], last["lifecycle"], last["marketing"]
    queue = demotion_queue(workspace)
    report["last"] = {
        "day": str(last["day"]),
        "contacts": scoring["contacts"],
        "model_version": scoring["model_version"],
        "model_changed": scoring["model_changed"],
        "bands": scoring["bands"],
        "histogram": scoring["histogram"],
        "funnel": lifecycle["funnel"],
        "entered": lifecycle["moves_by_stage"],
        "tier": {
            key: str(value) if isinstance(value, date) else value
            for key, value in marketing["tier"].items()
        },  # fmt: skip
        "tier_history": _tier_history(workspace, last["day"]),
        "queue": queue.slice(0, QUEUE_ROWS_SHOWN).to_pylist(),
        "queue_total": queue.num_rows,
    }
    return report


# What a report keeps of a HubSpot pull or push (`leadflow.hubspot.sync`'s outcome).
SYNC_KEYS = {
    "pull": ("status", "error", "contacts", "events", "contacts_until", "events_until"),
    "push": ("status", "error", "sent", "failed", "skipped", "requests", "without_record_id",
             "failures", "refused"),
}  # fmt: skip


def sync_summary(direction: str, result: dict) -> dict:
    """What a report keeps of one HubSpot direction of a run."""
    kept = {key: result[key] for key in SYNC_KEYS[direction] if result.get(key) is not None}
    if direction == "pull":
        kept["batches"] = len(result.get("batches", []))
    return kept


def _ingested(item: dict) -> dict:
    keys = ("file", "status", "reason", "again", "rows_total", "rows_loaded", "rows_duplicate")
    keys += ("rows_quarantined", "contacts_created", "filed_to")
    return {key: item[key] for key in keys if key in item}


def quality_rows(ingested: list[dict]) -> list[dict]:
    """One row per file and expectation: the data-quality results of the run."""
    return [
        {
            "file": Path(item["file"]).name,
            "column": outcome["column"],
            "expectation": outcome["expectation"],
            "failed_rows": outcome["failed_rows"],
        }
        for item in ingested
        for outcome in item.get("quality", [])
    ]


def _tier_history(workspace: Workspace, day) -> list[tuple[str, int]]:
    """Marketing contacts at the end of each day run of the last TIER_DAYS days."""
    with connected(workspace.engine) as connection:
        rows = connection.execute(
            text(
                "SELECT CAST(day AS TEXT), marketing_contacts FROM day_run "
                "WHERE marketing_contacts IS NOT NULL ORDER BY day DESC LIMIT :days"
            ),
            {"days": TIER_DAYS},
        ).all()
    return [(str(day), count) for day, count in reversed(rows)]


# --- Kept in the state store -------------------------------------------------------------------


def save(workspace: Workspace, report: dict) -> None:
    """Keep the report (the latest REPORTS_KEPT of them)."""
    with workspace.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO run_report (title, created_at, content) VALUES (:title, :at, :json)"),
            {
                "title": report["title"],
                "at": datetime.now(UTC).replace(tzinfo=None),
                "json": json.dumps(report, default=str),
            },
        )
        connection.execute(
            text("DELETE FROM run_report WHERE id <= (SELECT max(id) FROM run_report) - :kept"),
            {"kept": REPORTS_KEPT},
        )


def latest(workspace: Workspace) -> dict | None:
    with connected(workspace.engine) as connection:
        content = connection.execute(
            text("SELECT content FROM run_report ORDER BY id DESC LIMIT 1")
        ).scalar()
    return json.loads(content) if content else None


# --- As markdown (the Prefect artifacts) -------------------------------------------------------


def changes_line(report: dict) -> str:
    changes = report["changes"]
    if not changes:
        return ""
    if changes.get("nothing"):
        return f"**Nothing changed** (ran: {report['plan']})"
    return f"**Changed**: {changes['summary']}"


def summary_markdown(report: dict) -> str:
    """Files ingested, what changed, scored, stage moves, tier use."""
    ingested = report["ingest"]
    loaded = sum(item.get("rows_loaded", 0) for item in ingested)
    quarantined = sum(item.get("rows_quarantined", 0) for item in ingested)
    rejected = [item for item in ingested if item["status"] == "rejected"]
    already = [item for item in rejected if item.get("again")]
    lines = [f"# {report['title']}", "", f"Plan: {report['plan']}.", ""]
    if report["changes"]:
        lines += [f"- {changes_line(report)}"]
    lines += [
        f"- **Ingested** {len(ingested)} file(s): {loaded} rows loaded, {quarantined} rows "
        f"quarantined, {len(rejected)} batch(es) rejected whole"
        + (f" ({len(already)} already rejected before, same content)" if already else ""),
        *(f"  - rejected: {item['reason']}" for item in rejected),
    ]
    lines += [f"- {line}" for line in hubspot_lines(report.get("hubspot", {}))]
    last = report["last"]
    if last:
        tier = last["tier"]
        used = "n/a" if tier["used_pct"] is None else f"{tier['used_pct']:.1f}%"
        model = " (model changed: everyone rescored)" if last["model_changed"] else ""
        lines += [
            f"- **Scored** {last['contacts']} contacts as of {last['day']}{model}, "
            f"over {report['days']} day(s) run",
            f"- **Tier use**: {tier['marketing_contacts']} of {tier['tier']} ({used}, "
            f"**{tier['level']}**); {tier['queued_demotions']} queued and "
            f"{tier['scheduled_demotions']} scheduled demotions; "
            f"{tier['projected_after_renewal']} after the renewal of {tier['renewal_date']}",
        ]
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in counts.items()) or "nothing"


def hubspot_lines(synced: dict) -> list[str]:
    """One line per HubSpot direction of the run (markdown)."""
    lines = []
    pull = synced.get("pull")
    if pull and pull["status"] == "failed":
        lines.append(f"**HubSpot pull failed**: {pull['error']}")
    elif pull:
        lines.append(
            f"**HubSpot pull**: {pull['contacts']} contacts and {pull['events']} email events "
            f"in {pull['batches']} batch(es)"
        )
    push = synced.get("push")
    if push and push["status"] == "failed":
        lines.append(f"**HubSpot push failed**: {push['error']} (the next run sends it)")
    elif push:
        verb = "would send" if push["status"] == "dry_run" else "sent"
        line = f"**HubSpot push**: {verb} {_counts(push['sent'])}"
        if push["failed"]:
            line += f"; **failed** {_counts(push['failed'])} (sent again by the next push)"
        if push["skipped"]:
            line += f"; left out {_counts(push['skipped'])} (already so in HubSpot, or not in it)"
        lines.append(line)
    return lines


def hubspot_markdown(report: dict) -> str:
    """The `hubspot-sync` artifact: what the run pulled from and pushed to HubSpot."""
    synced = report["hubspot"]
    lines = [f"# HubSpot sync of the {report['title'].lower()}", ""]
    lines += [f"- {line}" for line in hubspot_lines(synced)]
    pull = synced.get("pull", {})
    if pull.get("status") == "ok":
        lines += [
            "",
            "| pulled | count | up to |",
            "|---|---:|---|",
            f"| contacts | {pull['contacts']} | {pull.get('contacts_until') or ''} |",
            f"| email events | {pull['events']} | {pull.get('events_until') or ''} |",
        ]
    push = synced.get("push", {})
    if push.get("status") in ("ok", "dry_run"):
        kinds = sorted({*push["sent"], *push["failed"], *push["skipped"]})
        lines += ["", "| pushed | sent | failed | left out |", "|---|---:|---:|---:|"]
        lines += [
            f"| {kind} | {push['sent'].get(kind, 0)} | {push['failed'].get(kind, 0)} "
            f"| {push['skipped'].get(kind, 0)} |"
            for kind in kinds
        ]
        lines += [
            "",
            f"{push['requests']} batch update request(s); {push['without_record_id']} contacts "
            "have no HubSpot Record ID (not pushed).",
        ]
        if push.get("failures"):
            lines += ["", "First failures:", ""] + [f"- {line}" for line in push["failures"]]
    return "\n".join(lines)


def movers(report: dict) -> tuple[list[dict], str]:
    """The largest score moves of the run (rows), or why there are none."""
    changes = report["changes"]
    rows = [
        {"email": email, "score": score, "before": before, "after": after}
        for email, score, before, after in changes.get("movers", [])
    ]
    if rows:
        return rows, ""
    if not report["last"]:
        return [], "No day was run."
    if changes.get("nothing"):
        return [], "No score moved: the run left every score as it was."
    if changes.get("scores"):
        return [], "Every score changed was a first score: no earlier value to move from."
    return [], "No score moved."


def bands_markdown(report: dict) -> str:
    from leadflow.report.charts import chart_markdown, score_distribution_chart

    last = report["last"]
    lines = [
        f"Contacts per band as of **{last['day']}** (model `{last['model_version']}`).",
        "",
        "| score | band | contacts |",
        "|---|---|---:|",
    ]
    for score, bands in last["bands"].items():
        lines += [f"| {score} | {band} | {count} |" for band, count in bands.items()]
    for score, buckets in last["histogram"].items():
        chart = score_distribution_chart(score, buckets)
        lines += ["", chart_markdown(chart, f"distribution of {score} by band")]
    return "\n".join(lines)


def funnel_markdown(report: dict) -> str:
    from leadflow.report.charts import chart_markdown, funnel_chart

    last = report["last"]
    lines = [
        chart_markdown(funnel_chart(last["funnel"]), "lifecycle funnel"),
        "",
        "| stage | contacts | entered that day |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {stage} | {count} | {last['entered'].get(stage, 0)} |"
        for stage, count in last["funnel"].items()
    ]
    return "\n".join(lines)


def tier_markdown(report: dict) -> str:
    from leadflow.report.charts import chart_markdown, tier_use_chart

    tier = report["last"]["tier"]
    points = [(date.fromisoformat(day), count) for day, count in report["last"]["tier_history"]]
    used = "n/a" if tier["used_pct"] is None else f"{tier['used_pct']:.1f}%"
    return (
        f"# Marketing-contact tier as of {tier['as_of']}: **{tier['level']}**\n\n"
        "| marketing contacts | tier | used | queued | scheduled | after renewal | saving | "
        "renewal |\n|---|---|---|---|---|---|---|---|\n"
        f"| {tier['marketing_contacts']} | {tier['tier']} | {used} | {tier['queued_demotions']} "
        f"| {tier['scheduled_demotions']} | {tier['projected_after_renewal']} | "
        f"{tier['saving']} | {tier['renewal_date']} |\n\n"
        + chart_markdown(tier_use_chart(points, tier["tier"]), "marketing contacts per day")
    )


# --- As one page (`leadflow report`) -----------------------------------------------------------


def page(report: dict) -> str:
    """The report as one self-contained HTML page: the artifacts' tables and charts."""
    from leadflow.report.charts import funnel_chart, score_distribution_chart, tier_use_chart
    from leadflow.report.page import Section, Table, render_page

    summary = [
        line.lstrip("-# ").replace("**", "") for line in summary_markdown(report).split("\n")
    ]
    sections = [Section(report["title"], paragraphs=[line for line in summary[1:] if line])]
    if report["ingest"]:
        sections.append(
            Section(
                "Ingest",
                tables=[
                    [
                        {
                            key: item.get(key, "")
                            for key in (
                                "file",
                                "status",
                                "rows_total",
                                "rows_loaded",
                                "rows_duplicate",
                                "rows_quarantined",
                            )
                        }
                        for item in report["ingest"]
                    ]
                ]  # fmt: skip
                + ([report["quality"]] if report["quality"] else []),
            )
        )
    if report.get("hubspot"):
        lines = [line.replace("**", "") for line in hubspot_lines(report["hubspot"])]
        sections.append(Section("HubSpot", paragraphs=lines))
    last = report["last"]
    rows, why = movers(report)
    sections.append(
        Section("Top movers", paragraphs=[why] if why else [], tables=[rows] if rows else [])
    )
    if last:
        sections.append(
            Section(
                f"Score bands as of {last['day']}",
                tables=[
                    Table(
                        ("score", "band", "contacts"),
                        [
                            (score, band, count)
                            for score, bands in last["bands"].items()
                            for band, count in bands.items()
                        ],
                    )
                ],
                charts=[
                    score_distribution_chart(score, buckets)
                    for score, buckets in last["histogram"].items()
                ],
            )
        )
        sections.append(
            Section(
                "Lifecycle funnel",
                tables=[
                    Table(
                        ("stage", "contacts", "entered that day"),
                        [
                            (stage, count, last["entered"].get(stage, 0))
                            for stage, count in last["funnel"].items()
                        ],
                    )
                ],
                charts=[funnel_chart(last["funnel"])],
            )
        )
        points = [(date.fromisoformat(day), count) for day, count in last["tier_history"]]
        tier = last["tier"]
        sections.append(
            Section(
                f"Marketing-contact tier: {tier['level']}",
                tables=[[{key: value for key, value in tier.items()}]],
                charts=[tier_use_chart(points, tier["tier"])],
            )
        )
        sections.append(
            Section(
                f"Demotion queue: {last['queue_total']} open demotions",
                paragraphs=[f"The first {QUEUE_ROWS_SHOWN} shown."]
                if last["queue_total"] > QUEUE_ROWS_SHOWN
                else [],
                tables=[last["queue"]] if last["queue"] else [],
            )
        )
    return render_page(report["title"], sections)
