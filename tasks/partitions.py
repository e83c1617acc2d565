"""Partition tasks: a day's partitions as Prefect task runs on a Dask cluster's workers (one
task run per partition, never per contact), inside the day's task, which commits the day."""

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from leadflow.cluster import CONNECT_SECONDS, lost, shared, unreachable
from leadflow.scoring.partitions import (
    PartitionJob,
    PartitionResult,
    PartitionRunner,
    score_partition,
)
from tasks.ingest import retry_on_io_error


@task(
    task_run_name="partition {job.partition} of {job.partitions}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io_error,
    cache_policy=NO_CACHE,  # each day's inputs are new files: nothing to reuse
)
def score_partition_task(job: PartitionJob) -> PartitionResult:
    """Score one partition on a worker: files in, a file out; never the state store."""
    result = score_partition(job)
    get_run_logger().info(
        "%s partition %d of %d: %d contacts in %.2fs, ledger %s",
        job.day,
        job.partition,
        job.partitions,
        result.contacts,
        result.seconds,
        result.ledger or "none (a full pass)",
    )
    return result


def on_dask(address: str) -> PartitionRunner:
    """Run the partitions as Prefect tasks on the cluster at `address` (prefect-dask's
    `DaskTaskRunner`, entered for the day's partitions only). A worker that dies takes its
    partitions with it: the scheduler runs them again elsewhere; Prefect retries I/O errors."""

    def run(jobs: list[PartitionJob]) -> list[PartitionResult]:
        from distributed import KilledWorker
        from prefect_dask import DaskTaskRunner

        with DaskTaskRunner(address=address, client_kwargs={"timeout": CONNECT_SECONDS}) as runner:
            try:
                runner.client  # noqa: B018 (connects now: a scheduler down is one line)
            except (OSError, ValueError, TypeError) as error:
                raise unreachable(address, error) from None
            futures = [
                runner.submit(score_partition_task, parameters={"job": shared(job)}) for job in jobs
            ]
            try:
                return [future.result() for future in futures]
            except KilledWorker as error:
                raise lost(error) from None

    return run
