"""Ingest tasks: one task run per file (batch), never per row or per contact."""

from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from leadflow.ingest.load import BatchRejected, IngestResult, InputColumnsError, Kind, ingest_file
from leadflow.ingest.readers import InputFileError
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
    try:
        result: IngestResult = ingest_file(Workspace.from_settings(), path, kind=kind)
    except (BatchRejected, InputFileError, InputColumnsError) as rejection:
        logger.error(str(rejection))
        return {"file": str(path), "status": "rejected", "reason": str(rejection)}
    logger.info(
        "%s: %s, %d rows: %d loaded, %d already known, %d quarantined, %d contacts created",
        path,
        result.status,
        result.rows_total,
        result.rows_loaded,
        result.rows_duplicate,
        result.rows_quarantined,
        result.contacts_created,
    )
    summary = asdict(result)
    summary.pop("validation")
    if result.validation:
        summary["quality"] = [asdict(outcome) for outcome in result.validation.outcomes]
    return summary
