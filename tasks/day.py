"""Day tasks: one task run per day (scoring, lifecycle and marketing of every contact over one
scan of the lake), and the undo that late data needs. Never one task per contact."""

from dataclasses import asdict
from datetime import date

from prefect import task
from prefect.logging import get_run_logger

from leadflow.pipeline.days import run_day
from leadflow.pipeline.replay import begin_replay
from leadflow.scoring.partitions import run_in_process
from leadflow.settings import get_settings
from leadflow.workspace import Workspace
from tasks.ingest import retry_on_io_error
from tasks.partitions import on_dask


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io_error)
def run_day_task(day: date) -> dict:
    """Run every step of `day`; a re-run of the same day converges (each step is idempotent).
    With LEADFLOW_DASK_ADDRESS, its partitions are task runs of their own on that cluster."""
    settings = get_settings()
    address = settings.dask_address
    run_partitions = on_dask(address) if address else run_in_process
    logger = get_run_logger()
    if address:
        logger.info("%s: the partitions run on the Dask cluster at %s", day, address)
    summary = run_day(Workspace.from_settings(settings), day, run_partitions)
    scoring, lifecycle, marketing = summary.scoring, summary.lifecycle, summary.marketing
    timing = ", ".join(f"{step} {seconds:.2f}s" for step, seconds in summary.seconds.items())
    logger.info("%s: %s", day, timing)
    logger.info(
        "%s scored %d contacts: %d scores changed, %d band changes%s",
        day,
        scoring.contacts,
        scoring.scores_changed,
        scoring.band_changes,
        " (model changed: everyone rescored)" if scoring.model_changed else "",
    )
    logger.info("%s lifecycle: %d contacts moved forward", day, lifecycle.moves)
    logger.info(
        "%s marketing: %d new, %d promoted, %d suppressed, demotions %s; tier %d/%d (%s)",
        day,
        marketing.new_contacts,
        marketing.promoted,
        marketing.suppressed,
        marketing.demotions,
        marketing.tier.marketing_contacts,
        marketing.tier.tier,
        marketing.tier.level,
    )
    return asdict(summary)


@task
def undo_task(after: date, through: date) -> dict[str, int]:
    """Put the state back as it stood after `after` (late data or a backfill before it),
    recording the replay up to `through` in the same transaction."""
    touched = begin_replay(Workspace.from_settings(), after, through)
    get_run_logger().info("undid the changes stamped after %s: %s", after, touched)
    return touched
