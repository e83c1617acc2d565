"""Ingest tasks: one task run per file (batch), never per row or per contact."""

from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from leadflow.ingest.load import Kind
from leadflow.pipeline.runs import ingest_outcome
from leadflow.workspace import Workspace


def retry_on_io_error(_task, _task_run, state) -> bool:
    """Retry only what a second try can fix: I/O errors, not bad data."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, OSError)


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_on_io_error)
def ingest_file_task(path: Path, kind: Kind | None = None) -> dict:
    """Load one file; a rejected batch or an unreadable file is reported, not raised, so the
    other files still load (nothing of it was written)."""
    logger = get_run_logger()
    outcome = ingest_outcome(Workspace.from_settings(), path, kind)
    if outcome["status"] == "rejected":
        logger.warning(outcome["reason"])
        return outcome
    logger.info(
        "%s: %s, %d rows: %d loaded, %d already known, %d quarantined, %d contacts created",
        path,
        outcome["status"],
        outcome["rows_total"],
        outcome["rows_loaded"],
        outcome["rows_duplicate"],
        outcome["rows_quarantined"],
        outcome["contacts_created"],
    )
    return outcome
