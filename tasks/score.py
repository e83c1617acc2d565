"""Scoring task: one task run scores every contact for one day (never one task per contact)."""

from dataclasses import asdict
from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from leadflow.scores import ScoringSummary, score_day
from leadflow.workspace import Workspace


def bands_markdown(summary: ScoringSummary) -> str:
    changed = ", changed: everyone rescored" if summary.model_changed else ""
    lines = [
        f"Scored **{summary.contacts}** contacts as of **{summary.day}** "
        f"(model `{summary.model_version}`{changed}): "
        f"{summary.scores_changed} scores changed, {summary.band_changes} band changes.",
        "",
        "| score | band | contacts |",
        "|---|---|---:|",
    ]
    for score, bands in summary.bands.items():
        lines += [f"| {score} | {band} | {count} |" for band, count in bands.items()]
    return "\n".join(lines)


@task
def score_day_task(day: date) -> dict:
    """Score every contact as of `day`, write back what changed, publish the band counts."""
    summary = score_day(Workspace.from_settings(), day)
    get_run_logger().info(
        "scored %d contacts as of %s: %d scores changed, %d band changes",
        summary.contacts,
        summary.day,
        summary.scores_changed,
        summary.band_changes,
    )
    create_markdown_artifact(
        key="score-bands",
        markdown=bands_markdown(summary),
        description="Contacts per band after scoring",
    )
    return asdict(summary)
