"""A day's partitions on a Dask cluster (README: A Dask cluster).

A partition is a plain function of files (`leadflow.scoring.partitions.score_partition`), so
any worker that sees the lake at the same path runs it. The command line, without a Prefect
server, submits it with a `distributed.Client` (`on_cluster`); the flows submit it as a Prefect
task through prefect-dask's `DaskTaskRunner` (`tasks.partitions`). Either way the workers never
open the state store: the coordinator reads it, and commits the day in one transaction.

dask and distributed are imported inside the functions that use them (`leadflow --help`).
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from leadflow.errors import UserError
from leadflow.scoring.partitions import (
    PartitionJob,
    PartitionResult,
    PartitionRunner,
    score_partition,
)

if TYPE_CHECKING:
    from distributed import Client, KilledWorker

ADDRESS_SETTING = "LEADFLOW_DASK_ADDRESS"
# A scheduler that does not answer in this time is taken as down (distributed's own is 30 s).
CONNECT_SECONDS = 5
LOCAL_WORKERS = 2


class DaskUnreachable(UserError, RuntimeError):
    """No Dask scheduler answers at the address (not an OSError: the day task does not retry)."""


class PartitionLost(UserError, RuntimeError):
    """Dask gave up on a partition: the workers running it died again and again."""


@contextmanager
def local_cluster() -> Iterator[str]:
    """A Dask cluster of this machine for the block (`--dask`): its scheduler's address.
    Worker processes, one thread each: DuckDB in each partition uses the cores it has."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(
        n_workers=LOCAL_WORKERS,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # its own free port: never a clash
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster.scheduler_address


def unreachable(address: str, error: BaseException) -> DaskUnreachable:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DaskUnreachable(
        f"no Dask scheduler answers at {ADDRESS_SETTING}={address} ({reason}); start one "
        f"(`dask scheduler`, then `dask worker {address}` on each machine), or unset "
        f"{ADDRESS_SETTING} to score in this process"
    )


@contextmanager
def connected(address: str) -> Iterator["Client"]:
    """A client of the scheduler at `address`, or one line saying it does not answer."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, ValueError, TypeError) as error:  # refused, timed out, malformed
        raise unreachable(address, error) from None
    with client:
        yield client


def shared(job: PartitionJob) -> PartitionJob:
    """The job with absolute paths: a worker started in another folder finds the same files
    (on a shared file system, mounted at the same path)."""
    return replace(
        job,
        lake=job.lake.absolute(),
        folder=job.folder.absolute(),
        ledger=job.ledger.absolute() if job.ledger else None,
    )


def task_key(job: PartitionJob) -> str:
    """A key of the partition's own for the scheduler (its dashboard, its logs)."""
    return f"partition-{job.partition}-of-{job.partitions}-{job.day}-{uuid.uuid4().hex[:8]}"


def lost(error: "KilledWorker") -> PartitionLost:
    return PartitionLost(
        f"{error.task}: {error.allowed_failures + 1} Dask workers died running it (the last "
        f"{error.last_worker.address}); the day was not committed: check the workers' memory "
        "and logs, then run again"
    )


def on_cluster(client: "Client") -> PartitionRunner:
    """Run the partitions on the client's cluster, all at once. A worker that dies takes its
    partitions with it: the scheduler runs them again on another worker (a partition is safe
    to run again); a partition that fails stops the day before its commit."""
    from distributed import KilledWorker

    def run(jobs: list[PartitionJob]) -> list[PartitionResult]:
        futures = client.map(
            score_partition, [shared(job) for job in jobs], key=[task_key(job) for job in jobs]
        )
        try:
            return client.gather(futures)
        except KilledWorker as error:
            raise lost(error) from None
        finally:
            client.cancel(futures)

    return run
