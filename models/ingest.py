"""The ingest log: one row per loaded file, and the rows it quarantined."""

from datetime import datetime

from sqlmodel import Field, SQLModel


class IngestBatch(SQLModel, table=True):
    """A file that was loaded. A rejected file leaves no row: the database stays as it was."""

    __tablename__ = "ingest_batch"

    id: str = Field(primary_key=True)
    file: str
    checksum: str = Field(index=True)  # sha256 of the file's bytes: the same file loads once
    kind: str  # contacts | events
    status: str = "loaded"
    rows_total: int
    rows_loaded: int
    rows_duplicate: int  # already known (same event in the lake / same contact values)
    rows_quarantined: int
    contacts_created: int
    lake_files: int
    started_at: datetime
    finished_at: datetime


class QuarantinedRow(SQLModel, table=True):
    """A rejected row of a loaded file, kept whole with the reason, to be fixed and re-sent."""

    __tablename__ = "quarantined_row"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="ingest_batch.id", index=True)
    file: str
    row: int  # 1-based data record number (the header line is not counted)
    reason: str
    raw: str  # the record as read: a JSON object of its fields, or the line text if unparsable
