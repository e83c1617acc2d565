"""The Parquet event lake: immutable files, one per ingested batch and event day, read by DuckDB.

Layout: `<lake>/events/day=YYYY-MM-DD/batch-<batch id>.parquet`, the day being the UTC date of
`occurred_at`. `<lake>` is a local folder (`EventLake`) or a prefix in S3-compatible object
storage, `s3://bucket/prefix` (`S3EventLake`, through s3fs). Either way a local folder holds
what never leaves this machine: the staging area and the run cache (`local`).

Atomicity rests on one rule: readers only count files whose batch the state database has
committed (`committed_batches`). A batch's files are written to `<local>/_staging/` first,
then published under their final names just before the database commits the batch. A crash
between the two leaves orphans that nobody reads and the next ingest sweeps away (ingests run
under the state lock, so no batch in flight is swept).

Locally, publishing is a rename (atomic per file on one file system). S3 has no rename: each
file is uploaded under its final key, and an object appears whole or not at all (a PUT, or a
multipart upload's completion, is atomic). Uploading under the final key before the commit is
safe for the same reason the rename is: until the commit the key's batch id is unknown to the
state store, so no reader counts the object, and if the commit never comes it is an orphan to
sweep. After the commit every object of the batch is there: all were uploaded before it, and
S3 lists are strongly consistent with the writes before them.

Each file also stores its events' contact bucket (`bucket_sql` of the email, 0..BUCKETS-1), its
rows ordered by it: a contact-hash partition (`LakePartition`) is a range of buckets, so DuckDB
skips the row groups of the other partitions' contacts instead of reading every event. A local
lake begun before the buckets (no `LAKE_FORMAT` file at its root) is read with the bucket
computed from the email: the same partitions, without the skipping (`db upgrade` adds them).
"""

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from leadflow.errors import UserError
from leadflow.sql import literal

if TYPE_CHECKING:
    import s3fs

BATCH_FILE = re.compile(r"day=(\d{4}-\d{2}-\d{2})/batch-([0-9a-f]{32})\.parquet$")

# Schema of the lake, in DuckDB types; `properties` is the event's JSON object as text.
EVENT_SCHEMA = {
    "event_id": "VARCHAR",
    "source": "VARCHAR",
    "email": "VARCHAR",
    "type": "VARCHAR",
    "occurred_at": "TIMESTAMPTZ",
    "url": "VARCHAR",
    "form_id": "VARCHAR",
    "campaign_id": "VARCHAR",
    "properties": "VARCHAR",
    # Made by a machine (a mail-privacy proxy's open, a link scanner's click): counts for no
    # rule unless it says `machine: include`. Missing in files written before it (false).
    "machine": "BOOLEAN",
    "batch_id": "VARCHAR",
}


# Contact buckets of the lake files: partitions are ranges of them (at most BUCKETS partitions).
BUCKETS = 1024
# Rows per Parquet row group: small enough that a day's file has many, each a narrow range of
# buckets whose statistics let a partition's scan skip it.
ROW_GROUP_ROWS = 4096
LAKE_FORMAT = "_format"  # at a local lake's root: "2" when every file has `contact_bucket`
BUCKETED = "2"

DUCKDB_MEMORY_LIMIT = "512MB"


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC whose working set spills to disk past DUCKDB_MEMORY_LIMIT."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    connection.execute("SET preserve_insertion_order = false")  # less memory; we ORDER BY
    # No progress bar of DuckDB's own on the terminal: the command line draws its own, and a
    # Dask worker's would land on the terminal of the command that started the cluster.
    connection.execute("SET enable_progress_bar = false")
    spill = Path(tempfile.gettempdir()) / "leadflow-duckdb"
    connection.execute(f"SET temp_directory = {literal(spill.as_posix())}")
    return connection


class LakeError(UserError):
    """The remote lake cannot be used (a bucket missing, access denied, the endpoint down)."""


@dataclass(frozen=True)
class StagedBatch:
    """Files of one batch written to staging, ready to be published under `targets`."""

    batch_id: str
    staged: list[Path]
    targets: list[str]


class EventLake:
    """A lake in a local folder, which also holds its by-products (staging, the run cache)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = str(self.root)
        self.local = self.root
        self.events_dir = self.root / "events"
        self.staging_dir = self.local / "_staging"

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection (`duckdb_connection`) that can read this lake's files."""
        return duckdb_connection()

    def absolute(self) -> "EventLake":
        """The same lake by absolute paths (for a process started in another folder)."""
        return EventLake(self.root.absolute())

    def files(self, committed_batches: set[str]) -> list[str]:
        """The lake files that belong to committed batches, in a stable order."""
        return sorted(path for path in self._stored() if self.file_batch(path) in committed_batches)

    @staticmethod
    def file_day(path: str) -> date:
        """The UTC day of a lake file's events (its partition)."""
        return date.fromisoformat(BATCH_FILE.search(path).group(1))

    @staticmethod
    def file_batch(path: str) -> str:
        return BATCH_FILE.search(path).group(2)

    def events_sql(self, committed_batches: set[str]) -> str:
        """A DuckDB relation (SQL text) over the committed events; empty if there are none."""
        return self.relation(self.files(committed_batches))

    @staticmethod
    def relation(files: list[str], where: str = "true") -> str:
        """A DuckDB relation (SQL text) over these lake files' events (those `where` holds
        of, pushed into the scan); empty if there are none."""
        if not files:
            columns = ", ".join(f"NULL::{kind} AS {name}" for name, kind in EVENT_SCHEMA.items())
            return f"(SELECT {columns} WHERE false)"
        listing = ", ".join(literal(str(path)) for path in files)
        columns = ", ".join(
            "COALESCE(machine, false) AS machine" if name == "machine" else name
            for name in EVENT_SCHEMA
        )
        return (
            f"(SELECT {columns} FROM read_parquet([{listing}], union_by_name = true) WHERE {where})"
        )

    def stage(
        self, connection: duckdb.DuckDBPyConnection, relation: str, batch_id: str
    ) -> StagedBatch:
        """Write `relation` (columns of EVENT_SCHEMA) to staging, one file per event day,
        written day by day: one partitioned COPY of a month's 17M events passed DuckDB's
        512 MB (BENCHMARKS: Scale), a day's sort stays within it."""
        staging = self.staging_dir / batch_id
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        columns = ", ".join(EVENT_SCHEMA)
        connection.execute(
            f"""CREATE OR REPLACE TEMP TABLE staged_events AS
                SELECT {columns}, {bucket_sql("email")} AS contact_bucket FROM {relation}"""
        )
        days = connection.execute(  # UTC days: the connection's time zone
            "SELECT DISTINCT occurred_at::DATE FROM staged_events ORDER BY 1"
        ).fetchall()
        staged = []
        for (day,) in days:
            path = staging / f"day={day.isoformat()}" / "part0.parquet"
            path.parent.mkdir()
            connection.execute(
                f"""COPY (SELECT * FROM staged_events
                          WHERE occurred_at >= $start AND occurred_at < $end
                          ORDER BY contact_bucket)
                    TO {literal(path.as_posix())} (FORMAT parquet, COMPRESSION zstd,
                        ROW_GROUP_SIZE {ROW_GROUP_ROWS})""",
                {"start": _utc_midnight(day), "end": _utc_midnight(day + timedelta(days=1))},
            )
            staged.append(path)
        connection.execute("DROP TABLE staged_events")
        targets = [
            f"{self._events_location()}/{path.parent.name}/batch-{batch_id}.parquet"
            for path in staged
        ]
        return StagedBatch(batch_id=batch_id, staged=staged, targets=targets)

    @property
    def bucketed(self) -> bool:
        """Whether every file stores its contact buckets (a lake begun by this version)."""
        marker = self.root / LAKE_FORMAT
        return marker.exists() and marker.read_text().strip() == BUCKETED

    def publish(self, batch: StagedBatch) -> None:
        """Put the staged files under their final names (see the module's docstring). The
        first batch of an empty local lake marks it bucketed."""
        if not self.bucketed and not self._stored():
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / LAKE_FORMAT).write_text(BUCKETED + "\n")
        self._put(batch.staged, batch.targets)
        shutil.rmtree(self.staging_dir / batch.batch_id, ignore_errors=True)

    def discard(self, batch: StagedBatch) -> None:
        """Undo `stage` or `publish`: remove every file of the batch."""
        self._remove(batch.targets)
        shutil.rmtree(self.staging_dir / batch.batch_id, ignore_errors=True)

    def add_buckets(self, connection: duckdb.DuckDBPyConnection) -> int:
        """Rewrite each file without `contact_bucket` with it (rows ordered by it; each file
        replaced whole), then mark the lake bucketed. Readers meanwhile compute the buckets
        from the emails; an interrupted upgrade goes on where it stopped. Returns how many
        files were rewritten."""
        rewritten = 0
        for path in sorted(self.events_dir.glob("day=*/batch-*.parquet")):
            source = literal(path.as_posix())
            names = {row[0] for row in connection.execute(
                f"SELECT name FROM parquet_schema({source})").fetchall()}  # fmt: skip
            if "contact_bucket" in names:
                continue
            partial = path.with_suffix(".partial")
            connection.execute(
                f"""COPY (SELECT *, {bucket_sql("email")} AS contact_bucket
                          FROM read_parquet({source}) ORDER BY contact_bucket)
                    TO {literal(partial.as_posix())} (FORMAT parquet, COMPRESSION zstd,
                        ROW_GROUP_SIZE {ROW_GROUP_ROWS})"""
            )
            partial.replace(path)
            rewritten += 1
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / LAKE_FORMAT).write_text(BUCKETED + "\n")
        return rewritten

    def sweep_orphans(self, committed_batches: set[str]) -> list[str]:
        """Delete files of batches the database never committed (left by a crash)."""
        orphans = [
            path for path in self._stored() if self.file_batch(path) not in committed_batches
        ]
        self._remove(orphans)
        shutil.rmtree(self.staging_dir, ignore_errors=True)
        return orphans

    def _events_location(self) -> str:
        return self.events_dir.as_posix()

    def _stored(self) -> list[str]:
        """Every batch file of the lake, committed or not."""
        if not self.events_dir.exists():
            return []
        return [
            path.as_posix()
            for path in self.events_dir.glob("day=*/batch-*.parquet")
            if BATCH_FILE.search(path.as_posix())
        ]

    def _put(self, sources: list[Path], targets: list[str]) -> None:
        for source, target in zip(sources, targets, strict=True):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)

    def _remove(self, files: list[str]) -> None:
        for path in files:
            Path(path).unlink(missing_ok=True)


class S3EventLake(EventLake):
    """A lake under `s3://bucket/prefix`, through s3fs (the fsspec project's S3 file system):
    DuckDB reads it through the same file system, registered on each connection. Staging and
    the run cache stay in the local folder `local`."""

    def __init__(self, url: str, local: Path):
        self.location = url.rstrip("/")
        self.local = Path(local)
        self.staging_dir = self.local / "_staging"
        self.filesystem = s3_filesystem()

    def connection(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb_connection()
        connection.register_filesystem(self.filesystem)
        return connection

    def absolute(self) -> "S3EventLake":
        return S3EventLake(self.location, self.local.absolute())

    @property
    def bucketed(self) -> bool:
        """Always: S3 lakes were begun by a version that stores the buckets."""
        return True

    def _events_location(self) -> str:
        return f"{self.location}/events"

    def _stored(self) -> list[str]:
        with self._failures():
            self.filesystem.invalidate_cache()  # see `s3_filesystem`
            keys = self.filesystem.find(self._events_location())
        return [f"s3://{key}" for key in keys if BATCH_FILE.search(key)]

    def _put(self, sources: list[Path], targets: list[str]) -> None:
        """All of a batch's uploads at once (s3fs runs them concurrently)."""
        if sources:
            with self._failures():
                self.filesystem.put([source.as_posix() for source in sources], targets)

    def _remove(self, files: list[str]) -> None:
        if files:
            with self._failures():
                self.filesystem.rm(files)

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """S3's errors as one line naming the lake (never the credentials)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (OSError, BotoCoreError, ClientError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise LakeError(
                f"the lake {self.location} cannot be used: {reason or type(error).__name__}; "
                "check LEADFLOW_LAKE, AWS_ENDPOINT_URL and the AWS credentials"
            ) from None


def s3_filesystem() -> "s3fs.S3FileSystem":
    """An s3fs file system from the usual AWS variables: the endpoint (AWS_ENDPOINT_URL) and
    region (AWS_DEFAULT_REGION) passed on, so that a changed variable is a new file system; the
    credentials found by botocore's usual chain (variables, ~/.aws, an instance's role).
    Listings are cached, but each listing of the lake starts afresh (`_stored`: another process
    may have published since): DuckDB's reads then take the objects' sizes from it, where they
    would otherwise send several HEAD requests per file and read (8x slower, measured)."""
    import s3fs

    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    return s3fs.S3FileSystem(
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        client_kwargs={"region_name": region} if region else {},
        use_listings_cache=True,
    )


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def open_lake(location: str | Path, local: Path) -> EventLake:
    """The lake at a folder or an `s3://` URL; `local` holds a remote lake's staging and cache."""
    if str(location).startswith("s3://"):
        return S3EventLake(str(location), local)
    return EventLake(Path(location))


def bucket_sql(email: str) -> str:
    """A contact's bucket, 0..BUCKETS-1: md5 (stable across DuckDB versions, unlike `hash`)
    of its email, computed once per event at ingest and stored."""
    return f"(md5_number_lower({email}) % {BUCKETS})::INTEGER"


def partition_sql(email: str, partitions: int) -> str:
    """The contact-hash partition (0..partitions-1) of an email: the range of its bucket."""
    return f"({bucket_sql(email)} * {int(partitions)} // {BUCKETS})"


def bucket_range(partition: int, partitions: int) -> tuple[int, int]:
    """The buckets [low, high) of a partition: those b with b * partitions // BUCKETS = it."""
    return (
        -(-partition * BUCKETS // partitions),
        -(-(partition + 1) * BUCKETS // partitions),
    )


@dataclass(frozen=True)
class LakePartition:
    """The lake seen by one contact-hash partition: the same files, only the events of its
    contacts (its range of buckets: `bucket_range`). Reads like an `EventLake`."""

    lake: EventLake
    partition: int
    partitions: int

    def connection(self) -> duckdb.DuckDBPyConnection:
        return self.lake.connection()

    def files(self, committed_batches: set[str]) -> list[str]:
        return self.lake.files(committed_batches)

    file_day = staticmethod(EventLake.file_day)
    file_batch = staticmethod(EventLake.file_batch)

    def relation(self, files: list[str]) -> str:
        if self.partitions == 1:
            return EventLake.relation(files)
        low, high = bucket_range(self.partition, self.partitions)
        bucket = "contact_bucket" if self.lake.bucketed else bucket_sql("email")
        return EventLake.relation(files, f"{bucket} >= {low} AND {bucket} < {high}")

    def events_sql(self, committed_batches: set[str]) -> str:
        return self.relation(self.files(committed_batches))
