"""Ingest inside a flow: load files batch by batch and publish what happened as Prefect
artifacts."""

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from leadflow.ingest.load import Kind
from tasks.ingest import ingest_file_task


def ingest_summary_markdown(results: list[dict]) -> str:
    lines = [
        "| file | status | rows | loaded | already known | quarantined | contacts created |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for item in results:
        if item["status"] == "rejected":
            lines.append(f"| {Path(item['file']).name} | **rejected** | | | | | |")
            continue
        lines.append(
            f"| {Path(item['file']).name} | {item['status']} | {item['rows_total']} "
            f"| {item['rows_loaded']} | {item['rows_duplicate']} | {item['rows_quarantined']} "
            f"| {item['contacts_created']} |"
        )
    rejected = [item["reason"] for item in results if item["status"] == "rejected"]
    if rejected:
        lines += ["", "**Rejected batches** (nothing of them was loaded):", ""]
        lines += [f"- {reason}" for reason in rejected]
    return "\n".join(lines)


def quality_rows(results: list[dict]) -> list[dict]:
    """One row per file and expectation: the data-quality results of the run."""
    return [
        {
            "file": Path(item["file"]).name,
            "column": outcome["column"],
            "expectation": outcome["expectation"],
            "failed_rows": outcome["failed_rows"],
        }
        for item in results
        for outcome in item.get("quality", [])
    ]


def ingest_files(paths: list[Path], kind: Kind | None = None) -> list[dict]:
    """Inside a flow: load each file in order (contacts before the events that mention them),
    one task per file, then publish the ingest artifacts on that flow run. Not a sub-flow: its
    own run would cost the daily flow about half a second (the run, and joining its heartbeat
    thread) and split the run's artifacts over two runs in the UI."""
    results = [ingest_file_task(Path(path), kind) for path in paths]
    create_markdown_artifact(
        key="ingest-summary",
        markdown=ingest_summary_markdown(results),
        description="Files ingested by this run",
    )
    create_table_artifact(
        key="data-quality",
        table=quality_rows(results) or [{"file": "-", "failed_rows": 0}],
        description="Great Expectations results per file and expectation",
    )
    return results
