"""The Parquet event lake: immutable files, one per ingested batch and event day, read by DuckDB.

Layout: `<lake>/events/day=YYYY-MM-DD/batch-<batch id>.parquet`, the day being the UTC date of
`occurred_at`. A batch's files are written into `<lake>/_staging/` first and renamed into place
just before the state database commits the batch. Readers only count files whose batch the
database knows (`committed_batches`), so a crash between the rename and the commit leaves
orphans that nobody reads and the next ingest sweeps away.

Each file also stores its events' contact bucket (`bucket_sql` of the email, 0..BUCKETS-1), its
rows ordered by it: a contact-hash partition (`LakePartition`) is a range of buckets, so DuckDB
skips the row groups of the other partitions' contacts instead of reading every event. A lake
begun before the buckets (no `LAKE_FORMAT` file at its root) is read with the bucket computed
from the email: the same partitions, without the skipping.
"""

import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from leadflow.sql import literal

BATCH_FILE = re.compile(r"batch-([0-9a-f]{32})\.parquet$")

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
LAKE_FORMAT = "_format"  # at the lake's root: "2" when every file has `contact_bucket`
BUCKETED = "2"

DUCKDB_MEMORY_LIMIT = "512MB"


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC whose working set spills to disk past DUCKDB_MEMORY_LIMIT."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    connection.execute("SET preserve_insertion_order = false")  # less memory; we ORDER BY
    spill = Path(tempfile.gettempdir()) / "leadflow-duckdb"
    connection.execute(f"SET temp_directory = {literal(spill.as_posix())}")
    return connection


@dataclass(frozen=True)
class StagedBatch:
    """Files of one batch written to staging, ready to be published."""

    batch_id: str
    staged: list[Path]
    targets: list[Path]


class EventLake:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.events_dir = self.root / "events"
        self.staging_dir = self.root / "_staging"

    def files(self, committed_batches: set[str]) -> list[Path]:
        """The lake files that belong to committed batches, in a stable order."""
        if not self.events_dir.exists():
            return []
        return sorted(
            path
            for path in self.events_dir.glob("day=*/batch-*.parquet")
            if (match := BATCH_FILE.search(path.name)) and match.group(1) in committed_batches
        )

    @staticmethod
    def file_day(path: Path) -> date:
        """The UTC day of a lake file's events (its partition)."""
        return date.fromisoformat(path.parent.name.removeprefix("day="))

    @staticmethod
    def file_batch(path: Path) -> str:
        return BATCH_FILE.search(path.name).group(1)

    def events_sql(self, committed_batches: set[str]) -> str:
        """A DuckDB relation (SQL text) over the committed events; empty if there are none."""
        return self.relation(self.files(committed_batches))

    @staticmethod
    def relation(files: list[Path], where: str = "true") -> str:
        """A DuckDB relation (SQL text) over these lake files' events (those `where` holds
        of, pushed into the scan); empty if there are none."""
        if not files:
            columns = ", ".join(f"NULL::{kind} AS {name}" for name, kind in EVENT_SCHEMA.items())
            return f"(SELECT {columns} WHERE false)"
        listing = ", ".join(literal(path.as_posix()) for path in files)
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
        """Write `relation` (columns of EVENT_SCHEMA) to staging, one file per event day."""
        staging = self.staging_dir / batch_id
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        columns = ", ".join(EVENT_SCHEMA)
        connection.execute(
            f"""COPY (SELECT {columns}, {bucket_sql("email")} AS contact_bucket,
                             strftime(occurred_at, '%Y-%m-%d') AS day
                      FROM {relation} ORDER BY contact_bucket)
                TO {literal(staging.as_posix())} (FORMAT parquet, PARTITION_BY (day),
                    FILENAME_PATTERN 'part{{i}}', COMPRESSION zstd,
                    ROW_GROUP_SIZE {ROW_GROUP_ROWS})"""
        )
        staged = sorted(staging.glob("day=*/*.parquet"))
        for day_dir in {path.parent for path in staged}:
            if len(list(day_dir.glob("*.parquet"))) != 1:
                raise RuntimeError(f"lake: expected one file per day in {day_dir}")
        targets = [
            self.events_dir / path.parent.name / f"batch-{batch_id}.parquet" for path in staged
        ]
        return StagedBatch(batch_id=batch_id, staged=staged, targets=targets)

    @property
    def bucketed(self) -> bool:
        """Whether every file stores its contact buckets (a lake begun by this version)."""
        marker = self.root / LAKE_FORMAT
        return marker.exists() and marker.read_text().strip() == BUCKETED

    def publish(self, batch: StagedBatch) -> None:
        """Rename staged files into place (atomic per file on one file system). The first
        batch of an empty lake marks it bucketed."""
        if not self.bucketed and not any(self.events_dir.glob("day=*/*.parquet")):
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / LAKE_FORMAT).write_text(BUCKETED + "\n")
        for source, target in zip(batch.staged, batch.targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
        shutil.rmtree(self.staging_dir / batch.batch_id, ignore_errors=True)

    def discard(self, batch: StagedBatch) -> None:
        """Undo `stage` or `publish`: remove every file of the batch."""
        for target in batch.targets:
            target.unlink(missing_ok=True)
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

    def sweep_orphans(self, committed_batches: set[str]) -> list[Path]:
        """Delete files of batches the database never committed (left by a crash)."""
        orphans = []
        if self.events_dir.exists():
            for path in self.events_dir.glob("day=*/batch-*.parquet"):
                match = BATCH_FILE.search(path.name)
                if match and match.group(1) not in committed_batches:
                    path.unlink()
                    orphans.append(path)
        shutil.rmtree(self.staging_dir, ignore_errors=True)
        return orphans


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

    def files(self, committed_batches: set[str]) -> list[Path]:
        return self.lake.files(committed_batches)

    file_day = staticmethod(EventLake.file_day)
    file_batch = staticmethod(EventLake.file_batch)

    def relation(self, files: list[Path]) -> str:
        if self.partitions == 1:
            return EventLake.relation(files)
        low, high = bucket_range(self.partition, self.partitions)
        bucket = "contact_bucket" if self.lake.bucketed else bucket_sql("email")
        return EventLake.relation(files, f"{bucket} >= {low} AND {bucket} < {high}")

    def events_sql(self, committed_batches: set[str]) -> str:
        return self.relation(self.files(committed_batches))
