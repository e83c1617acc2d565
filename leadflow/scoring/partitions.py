"""Contact-hash partitions of a day's scoring (README: Scaling out).

A contact's score depends on its own events, properties and stage only, so the whole base can
be scored partition by partition: the events' per-contact aggregation, DuckDB's one large
operator, then holds one partition's contacts, under the memory limit however large the base.
The coordinator (`prepare_day`) writes each partition's inputs (its targets and their property
values) as Parquet files to the day's exchange folder; each partition, in a DuckDB of its own,
reads them and its contacts' events from the lake, brings its aggregate ledger (a run-cache
file of its own) to the day, and writes its scored rows back; the coordinator then reads them
all into `day_scored`, and the day's steps (write-back, lifecycle, marketing, tier counts) go
on over the whole base in the day's one transaction.

A partition is a plain function of files (`score_partition`): in process, one after the other,
or as Prefect tasks on a Dask cluster's workers, which see the same folders. Company scores sum
over contacts of any partition: a day that computes them is one partition.
"""

import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from math import ceil
from pathlib import Path
from time import perf_counter

import duckdb

from leadflow.config import LeadflowConfig
from leadflow.lake import EventLake, LakePartition, bucket_range, partition_sql
from leadflow.pipeline.runcache import attached, get_meta
from leadflow.sql import literal

# With `engine.partitions: auto`. A full pass spills past about 350k contacts a partition
# (BENCHMARKS: Growth), but each partition costs a fixed part, and the daily run, which reads a
# few days of the lake, is faster in one partition at a million contacts (BENCHMARKS:
# Partitions). At most leadflow.lake.BUCKETS partitions.
CONTACTS_PER_PARTITION = 1_000_000
INPUTS = ("targets", "props")


def partition_count(config: LeadflowConfig, contacts: int) -> int:
    """How many partitions score a base of `contacts` (`engine.partitions`)."""
    setting = config.engine.partitions
    if setting == "auto":
        return max(1, ceil(contacts / CONTACTS_PER_PARTITION))
    return setting


@dataclass(frozen=True)
class PartitionJob:
    """Everything one partition's scoring needs, picklable: a Dask worker runs it as is."""

    config: LeadflowConfig
    lake: EventLake
    committed: frozenset[str]
    day: date
    partition: int
    partitions: int
    folder: Path  # the day's exchange folder: every partition's inputs and outputs
    ledger: Path | None  # the partition's run-cache file with its ledger; None: a full pass
    lifecycle: bool
    marketing: bool
    companies: bool
    columns: tuple[str, ...]  # the scored columns the day's steps read

    def input(self, name: str) -> Path:
        return self.folder / f"{name}-{self.partition}.parquet"

    @property
    def output(self) -> Path:
        return self.folder / f"scored-{self.partition}.parquet"


@dataclass(frozen=True)
class PartitionResult:
    partition: int
    contacts: int
    seconds: float
    ledger: str | None  # how its ledger got to the day: rebuilt | advanced … | unchanged


PartitionRunner = Callable[[list[PartitionJob]], list[PartitionResult]]


def score_partition(job: PartitionJob) -> PartitionResult:
    """Score one partition's contacts from its input files into its output file (written
    whole, then renamed: a partition run again, after a crash, replaces it)."""
    from leadflow.scoring.scores import score_registered

    clock = perf_counter()
    lake = LakePartition(job.lake, job.partition, job.partitions)
    with lake.connection() as connection:
        for name in INPUTS:
            source = literal(str(job.input(name)))
            connection.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM read_parquet({source})")
        how = None
        with _ledger(connection, job.ledger):
            scored = score_registered(
                connection,
                job.config,
                lake,
                set(job.committed),
                [job.day],
                lifecycle=job.lifecycle,
                marketing=job.marketing,
                companies=job.companies,
                ledger=job.ledger is not None,
            )
            connection.register("partition_scored", scored)
            partial = job.output.with_suffix(".partial")
            connection.execute(
                f"""COPY (SELECT email, events_seen, {", ".join(job.columns)}
                          FROM partition_scored)
                    TO {literal(str(partial))} (FORMAT parquet, COMPRESSION uncompressed)"""
            )
            if job.ledger is not None:
                how = get_meta(connection, "ledger_update")
        [(contacts,)] = connection.execute(
            f"SELECT count(*) FROM read_parquet({literal(str(partial))})"
        ).fetchall()
    os.replace(partial, job.output)
    return PartitionResult(job.partition, contacts, perf_counter() - clock, how)


def create_by_partition(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    query: str,
    partitions: int,
    params: dict | None = None,
) -> None:
    """`CREATE TEMP TABLE table AS query`, the query run once per partition of contact ids
    (it keeps the rows of `contact_id % $partitions = $partition`): a join over the whole base,
    such as the stored state beside the day's scores, then holds one partition's rows at a
    time. In one query, 5M contacts' state and scores passed DuckDB's memory limit (BENCHMARKS:
    Scale)."""
    for partition in range(partitions):
        statement = (
            f"CREATE OR REPLACE TEMP TABLE {table} AS {query}"
            if partition == 0
            else f"INSERT INTO {table} {query}"
        )
        values = {**(params or {}), "partition": partition, "partitions": partitions}
        connection.execute(statement, values)


def _ledger(connection: duckdb.DuckDBPyConnection, path: Path | None):
    """The partition's ledger file attached as `cache` (what `leadflow.scoring.ledger` reads)."""
    return attached(connection, path) if path is not None else nullcontext()


def run_in_process(jobs: list[PartitionJob]) -> list[PartitionResult]:
    """The partitions one after the other in this process (each bounded on its own)."""
    return [score_partition(job) for job in jobs]


def ledger_folder(cache_path: Path, partitions: int) -> Path:
    """Where the partitions' ledgers live: one run-cache file each, per partition count (a
    ledger of another count holds other contacts)."""
    return cache_path.parent / "ledgers" / str(partitions)


def write_inputs(connection: duckdb.DuckDBPyConnection, folder: Path, partitions: int) -> None:
    """Each partition's share of the registered `targets` and `props`, one file each (an
    empty one for a partition without contacts: its job reads the columns from it). A row's
    partition comes from its `bucket` column where the inputs have one (the run cache's
    mirror stores each contact's), else from the email's md5 (each target's computed once, the
    properties' by a join): at two million contacts the hash and the join took 2.7 s a day,
    the stored buckets nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = {
        name: "bucket" in connection.sql(f"SELECT * FROM {name} LIMIT 0").columns for name in INPUTS
    }
    # Without stored buckets: each target's md5 once, the properties' partition by a join.
    hashed = [name for name in INPUTS if partitions > 1 and not stored[name]]
    if hashed:
        connection.execute(
            f"""CREATE OR REPLACE TEMP TABLE targets_partitioned AS
                SELECT *, {partition_sql("email", partitions)} AS partition FROM targets"""
        )
    if "props" in hashed:
        connection.execute(
            """CREATE OR REPLACE TEMP TABLE props_partitioned AS
               SELECT p.*, t.partition FROM props p
               JOIN (SELECT DISTINCT email, partition FROM targets_partitioned) t USING (email)"""
        )
    for name in INPUTS:
        source = f"{name}_partitioned" if name in hashed else name
        excluded = ["bucket"] * stored[name] + ["partition"] * (name in hashed)
        columns = f"* EXCLUDE ({', '.join(excluded)})" if excluded else "*"
        for partition in range(partitions):
            low, high = bucket_range(partition, partitions)
            where = f"bucket >= {low} AND bucket < {high}" if stored[name] else "true"
            if name in hashed:
                where = f"partition = {partition}"
            target = literal(str(folder / f"{name}-{partition}.parquet"))
            connection.execute(
                f"""COPY (SELECT {columns} FROM {source} WHERE {where})
                    TO {target} (FORMAT parquet, COMPRESSION uncompressed)"""
            )
    if hashed:
        connection.execute("DROP TABLE targets_partitioned")
    if "props" in hashed:
        connection.execute("DROP TABLE props_partitioned")


def exchange_folder(cache_path: Path, day: date) -> Path:
    """A folder of the day's own (concurrent read-only commands each get theirs)."""
    return cache_path.parent / "exchange" / f"{day}-{uuid.uuid4().hex[:12]}"


def remove_stale_ledgers(cache_path: Path, keep: Path) -> None:
    """Ledgers of other partition counts or DuckDB versions: never read again."""
    root = cache_path.parent / "ledgers"
    if root.exists():
        for folder in root.iterdir():
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)
