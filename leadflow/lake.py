"""The Parquet event lake: immutable files, one per ingested batch and event day, read by DuckDB.

Layout: `<lake>/events/day=YYYY-MM-DD/batch-<batch id>.parquet`, the day being the UTC date of
`occurred_at`. A batch's files are written into `<lake>/_staging/` first and renamed into place
just before the state database commits the batch. Readers only count files whose batch the
database knows (`committed_batches`), so a crash between the rename and the commit leaves
orphans that nobody reads and the next ingest sweeps away.
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
    def relation(files: list[Path]) -> str:
        """A DuckDB relation (SQL text) over these lake files; empty if there are none."""
        if not files:
            columns = ", ".join(f"NULL::{kind} AS {name}" for name, kind in EVENT_SCHEMA.items())
            return f"(SELECT {columns} WHERE false)"
        listing = ", ".join(literal(path.as_posix()) for path in files)
        columns = ", ".join(
            "COALESCE(machine, false) AS machine" if name == "machine" else name
            for name in EVENT_SCHEMA
        )
        return f"(SELECT {columns} FROM read_parquet([{listing}], union_by_name = true))"

    def stage(
        self, connection: duckdb.DuckDBPyConnection, relation: str, batch_id: str
    ) -> StagedBatch:
        """Write `relation` (columns of EVENT_SCHEMA) to staging, one file per event day."""
        staging = self.staging_dir / batch_id
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        columns = ", ".join(EVENT_SCHEMA)
        connection.execute(
            f"""COPY (SELECT {columns}, strftime(occurred_at, '%Y-%m-%d') AS day FROM {relation})
                TO {literal(staging.as_posix())} (FORMAT parquet, PARTITION_BY (day),
                                           FILENAME_PATTERN 'part{{i}}', COMPRESSION zstd)"""
        )
        staged = sorted(staging.glob("day=*/*.parquet"))
        for day_dir in {path.parent for path in staged}:
            if len(list(day_dir.glob("*.parquet"))) != 1:
                raise RuntimeError(f"lake: expected one file per day in {day_dir}")
        targets = [
            self.events_dir / path.parent.name / f"batch-{batch_id}.parquet" for path in staged
        ]
        return StagedBatch(batch_id=batch_id, staged=staged, targets=targets)

    def publish(self, batch: StagedBatch) -> None:
        """Rename staged files into place (atomic per file on one file system)."""
        for source, target in zip(batch.staged, batch.targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
        shutil.rmtree(self.staging_dir / batch.batch_id, ignore_errors=True)

    def discard(self, batch: StagedBatch) -> None:
        """Undo `stage` or `publish`: remove every file of the batch."""
        for target in batch.targets:
            target.unlink(missing_ok=True)
        shutil.rmtree(self.staging_dir / batch.batch_id, ignore_errors=True)

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


def partition_sql(key: str, partitions: int) -> str:
    """The contact-hash partition (0..partitions-1) of a contact key: DuckDB's `hash`, fast
    enough to filter every event of a full pass (md5 costs 40× more). It may change with
    DuckDB's version, so whatever is kept per partition records that version."""
    return f"(hash({key}) % {int(partitions)})"


@dataclass(frozen=True)
class LakePartition:
    """The lake seen by one contact-hash partition: the same files, only the events of its
    contacts (`partition_sql` of their email). Reads like an `EventLake`."""

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
        where = f"{partition_sql('email', self.partitions)} = {int(self.partition)}"
        return f"(SELECT * FROM {EventLake.relation(files)} WHERE {where})"

    def events_sql(self, committed_batches: set[str]) -> str:
        return self.relation(self.files(committed_batches))
