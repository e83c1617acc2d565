"""The steps of a run as Prefect tasks, with the artifacts ops read in the UI (`PrefectSteps`,
handed to `leadflow.pipeline.runs` by the flows)."""

from collections.abc import Callable
from datetime import date
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from leadflow.pipeline.plans import Plan
from leadflow.report.content import quality_rows
from tasks.day import run_day_task, undo_task
from tasks.demo import generate_task
from tasks.hubspot import hubspot_pull_task, hubspot_push_task
from tasks.ingest import ingest_file_task
from tasks.report import report_task

# Called after each day with (day, days done, days planned): the CLI hangs its progress bar here
# when it runs a flow on a Prefect server.
day_listeners: list[Callable[[date, int, int], None]] = []


def ingest_summary_markdown(results: list[dict]) -> str:
    lines = [
        "| file | format | status | rows | loaded | already known | ignored | quarantined "
        "| contacts created |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for item in results:
        if item["status"] == "rejected":
            again = " (again)" if item.get("again") else ""
            lines.append(f"| {Path(item['file']).name} | | **rejected**{again} | | | | | | |")
            continue
        ignored = ", ".join(f"{kind} {count}" for kind, count in item["ignored"].items())
        lines.append(
            f"| {Path(item['file']).name} | {item['format']} | {item['status']} "
            f"| {item['rows_total']} | {item['rows_loaded']} | {item['rows_duplicate']} "
            f"| {item['rows_ignored']}{f' ({ignored})' if ignored else ''} "
            f"| {item['rows_quarantined']} | {item['contacts_created']} |"
        )
    rejected = [item["reason"] for item in results if item["status"] == "rejected"]
    if rejected:
        lines += ["", "**Rejected batches** (nothing of them was loaded):", ""]
        lines += [f"- {reason}" for reason in rejected]
    return "\n".join(lines)


class PrefectSteps:
    """One task per file, per day and for the undo; artifacts on the flow run. The ingest
    tasks run in the flow itself, not a sub-flow: its own run would cost the daily flow about
    half a second and split the run's artifacts over two runs in the UI."""

    def __init__(self, progress_key: str | None = None):
        self.progress_key = progress_key
        self._progress = None

    def holder(self, run: str) -> str:
        return f"{run} flow run {flow_run.get_name() or ''}".strip()

    def ingest_file(self, path: Path, kind: str | None) -> dict:
        return ingest_file_task(path, kind)

    def ingested(self, results: list[dict]) -> None:
        create_markdown_artifact(
            key="ingest-summary",
            markdown=ingest_summary_markdown(results),
            description="Files ingested by this run",
        )
        quality = quality_rows(results)
        description = "Great Expectations results per file and expectation"
        if quality:
            create_table_artifact(key="data-quality", table=quality, description=description)
        else:
            create_markdown_artifact(
                key="data-quality", markdown="No file was validated.", description=description
            )

    def undo(self, after: date, through: date) -> dict[str, int]:
        return undo_task(after, through)

    def run_day(self, day: date) -> dict:
        return run_day_task(day)

    def day_done(self, plan: Plan, day: date, done: int) -> None:
        if self.progress_key:
            percent = 100.0 * done / len(plan.days)
            if self._progress is None:
                self._progress = create_progress_artifact(
                    percent, key=self.progress_key, description=plan.describe()
                )
            else:
                update_progress_artifact(self._progress, percent)
        for listener in day_listeners:
            listener(day, done, len(plan.days))

    def generate(self, out_dir: Path, contacts: int, days: int, seed: int):
        return generate_task(out_dir, contacts, days, seed)

    def report(self, report: dict) -> None:
        report_task(report)

    def hubspot_pull(self) -> dict:
        return hubspot_pull_task()

    def hubspot_push(self, dry_run: bool) -> dict:
        return hubspot_push_task(dry_run)

    def log(self, message: str) -> None:
        get_run_logger().info(message)
