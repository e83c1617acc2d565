"""Ingest one file: read, tell what it is, normalise, validate with Great Expectations, then
load all-or-nothing.

The steps, for a contacts or an events file:

1. read it (`readers`), refusing files that cannot be trusted as a whole;
2. tell its format and kind (`sources`: leadflow's columns, a HubSpot contacts export, a
   vendor's email events), and map its columns to leadflow's;
3. normalise it in DuckDB (trimmed lower-case emails, parsed timestamps, JSON checks), the
   file's columns named by position so that no header ever reaches the SQL; a vendor's events
   it does not model are counted, per type, as ignored;
4. validate every row with the GX suite of its kind (and, for contacts, check each row's email
   and HubSpot Record ID against the state store); failing rows are quarantined with reasons;
5. if more than `ingest.max_bad_fraction` of the rows are bad, reject the batch: nothing is
   written (a CSV report goes to the rejects folder instead);
6. otherwise, in one database transaction: the batch row, its quarantined rows, the contacts
   (created or upserted, property changes appended to their history, stage entry dates), and
   the new events (machine clicks flagged) published to the lake just before the commit
   (removed again if the commit fails).

The same file twice is recognised by its checksum and skipped; an overlapping file loads only
what is new: events are deduplicated on (source, event_id) against the lake, and a contact
property only gets a history row when its value changes.
"""

import csv
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import Connection
from sqlmodel import select

from leadflow.errors import UserError
from leadflow.ingest.contacts import identity_conflicts, load_contacts
from leadflow.ingest.events import create_event_contacts, flag_machine_clicks, stage_new_events
from leadflow.ingest.readers import ROW, RawFile, read_input
from leadflow.ingest.sources import (
    InputColumnsError,
    Kind,
    Source,
    normalise_contacts_sql,
    normalise_events_sql,
    source_of,
    unwrap_for,
    vendor_sql,
)
from leadflow.ingest.validation import ValidationResult, load_suite, validate_batches
from leadflow.lake import StagedBatch
from leadflow.sql import identifier, literal
from leadflow.store.db import bulk_load, session_scope
from leadflow.workspace import Workspace
from models import IngestBatch, QuarantinedRow

log = logging.getLogger(__name__)
CLOCK_SKEW = timedelta(minutes=5)
__all__ = ["BatchRejected", "IngestResult", "InputColumnsError", "Kind", "ingest_file"]


class BatchRejected(UserError):
    """Too many bad rows: the batch was not applied. The message is one line."""

    def __init__(self, message: str, report: Path, again: bool = False):
        super().__init__(message)
        self.report = report
        self.again = again  # the same content was rejected before (no new report)


@dataclass
class IngestResult:
    file: str
    kind: Kind
    status: str  # loaded | already_ingested | nothing_new
    format: str = "leadflow"
    batch_id: str | None = None
    rows_total: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    rows_ignored: int = 0  # a vendor's events leadflow does not model (per type in `ignored`)
    contacts_created: int = 0
    machine_clicks: int = 0  # clicks flagged as a machine's (right after their delivery)
    ignored: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what reading and mapping changed
    validation: ValidationResult | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """As plain data (tables, artifacts, JSON), with each expectation's outcome."""
        summary = asdict(self)
        summary.pop("validation")
        if self.validation:
            summary["quality"] = [asdict(outcome) for outcome in self.validation.outcomes]
        return summary


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# What the GX suites see: the values they check, plus facts that need the whole file (copies of a
# key) or a parse (timestamps, JSON), computed by DuckDB. No row conditions: a derived column is
# NULL where a check does not apply, and GX's column-map expectations skip NULLs.
EVENT_CHECKS_SQL = f"""
    SELECT {ROW}, event_id, source, email, type, occurred_at,
           CASE WHEN occurred_at_ts IS NULL THEN occurred_at END AS occurred_at_unparsable,
           epoch(occurred_at_ts) AS occurred_at_epoch,
           CASE WHEN event_id IS NOT NULL AND source IS NOT NULL
                THEN count(*) OVER (PARTITION BY source, event_id) END AS copies_in_file,
           properties_is_object,
           CASE WHEN type = 'email_bounce' THEN COALESCE(bounce_type, '') END AS bounce_type,
           CASE WHEN type = 'nps_response' THEN COALESCE(nps_score, -1) END AS nps_score
    FROM norm ORDER BY {ROW}
"""
CONTACT_CHECKS_SQL = f"""
    SELECT {ROW}, email, contact_key,
           CASE WHEN contact_key IS NOT NULL THEN count(*) OVER (PARTITION BY contact_key) END
               AS copies_in_file,
           CASE WHEN hubspot_record_id IS NOT NULL
                THEN count(*) OVER (PARTITION BY hubspot_record_id) END AS record_copies_in_file,
           CASE WHEN created_at_ts IS NULL THEN created_at END AS created_at_unparsable,
           CASE WHEN updated_at_ts IS NULL THEN updated_at END AS updated_at_unparsable,
           epoch(updated_at_ts) AS updated_at_epoch, entered_unparsable,
           creation_source, initial_stage, initial_marketing_status
    FROM norm ORDER BY {ROW}
"""
LOW_CARDINALITY_COLUMNS = (
    "source",
    "type",
    "bounce_type",
    "creation_source",
    "initial_stage",
    "initial_marketing_status",
)
VALIDATION_CHUNK_ROWS = 400_000


def _raw_json_sql(source: Source) -> str:
    """A row of `raw` as the JSON object of its fields, under the file's own names."""
    if not source.columns:
        return "'{}'"
    pairs = ", ".join(
        f"{literal(name)}, {identifier(source.physical[name])}" for name in source.columns
    )
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def ingest_file(
    workspace: Workspace,
    path: Path,
    *,
    kind: Kind | None = None,
    format: str | None = None,
    now: datetime | None = None,
    commit_with: Callable[[Connection], None] | None = None,
) -> IngestResult:
    """Load one file. Raises InputFileError/InputColumnsError/BatchRejected leaving no trace.
    `kind` and `format` force what the file is (else it is told from the file);
    `commit_with` writes more in the batch's own transaction (a pull's cursor moves with the
    batch it pulled), and is not called when nothing loads."""
    path = Path(path)
    now = now or datetime.now(UTC)
    checksum = file_checksum(path) if path.is_file() else ""
    raw = read_input(path, unwrap_for(format))
    source = source_of(path, raw, kind, format)
    with session_scope(workspace.engine) as session:
        if session.exec(select(IngestBatch.id).where(IngestBatch.checksum == checksum)).first():
            return IngestResult(
                str(path), source.kind, "already_ingested", source.format,
                rows_total=raw.rows_total,
            )  # fmt: skip
    threshold = workspace.config.ingest.max_bad_fraction
    report = reject_report_path(workspace.rejects_dir, path, checksum)
    earlier = _earlier_rejection(report, threshold)
    if earlier:
        raise BatchRejected(
            f"{path}: already rejected with the same content ({earlier}); nothing was loaded; "
            f"report: {report}",
            report,
            again=True,
        )
    with workspace.lake.connection() as connection:
        return _ingest(workspace, connection, path, raw, source, checksum, now, commit_with)


def _normalise(
    workspace: Workspace, connection: duckdb.DuckDBPyConnection, source: Source, now: datetime
) -> dict[str, int]:
    """`norm`: the rows to validate, as leadflow's columns. Returns the vendor's events
    ignored, per type."""
    config = workspace.config
    if source.kind == "contacts":
        first_values_at = config.ingest.first_values_at or (
            "created_at" if source.format == "hubspot-contacts" else "updated_at"
        )
        connection.execute(
            f"CREATE TEMP TABLE norm AS {normalise_contacts_sql(source, config, first_values_at)}",
            {"now": now},
        )
        unknown = connection.execute(
            "SELECT stage_label, count(*) FROM norm WHERE stage_label IS NOT NULL "
            "AND initial_stage IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        if unknown:
            shown = ", ".join(f"{label!r} ({count})" for label, count in unknown[:5])
            source.notes.append(f"lifecycle stages leadflow does not know, left out: {shown}")
        return {}
    if source.vendor is None:
        connection.execute(f"CREATE TEMP TABLE norm AS {normalise_events_sql(source)}")
        return {}
    connection.execute(f"CREATE TEMP TABLE mapped AS {vendor_sql(source, config)}")
    ignored = dict(
        connection.execute(
            "SELECT COALESCE(vendor_type, '(none)'), count(*) FROM mapped WHERE ignored "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    connection.execute(f"CREATE TEMP TABLE norm AS {normalise_events_sql(source, 'mapped')}")
    return ignored


def _ingest(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    raw: RawFile,
    source: Source,
    checksum: str,
    now: datetime,
    commit_with: Callable[[Connection], None] | None,
) -> IngestResult:
    physical = source.physical
    names = [physical.get(name, name) for name in raw.table.column_names]
    connection.register("raw", raw.table.rename_columns(names))
    ignored = _normalise(workspace, connection, source, now)
    kind = source.kind
    checks = connection.sql(EVENT_CHECKS_SQL if kind == "events" else CONTACT_CHECKS_SQL)
    validation = validate_batches(
        checks.to_arrow_reader(),
        load_suite(workspace.expectations_dir, kind),
        {
            "max_occurred_at_epoch": (now + CLOCK_SKEW).timestamp(),
            "event_types": list(workspace.config.event_types),
        },
        categorical=LOW_CARDINALITY_COLUMNS,
        chunk_rows=VALIDATION_CHUNK_ROWS,
    )
    if kind == "contacts":
        for row, reason in identity_conflicts(workspace, connection).items():
            validation.reasons_by_row.setdefault(row, []).append(reason)

    log.info("%s: rows validated (%d)", path.name, raw.rows_total)
    quarantine = _quarantine_rows(connection, path, raw, source, validation)
    rows_total = raw.rows_total
    rows_ignored = sum(ignored.values())
    connection.unregister("raw")
    raw.release()  # `norm` has what loads from here on
    counted = max(rows_total - rows_ignored, 1)
    bad_fraction = len(quarantine) / counted
    threshold = workspace.config.ingest.max_bad_fraction
    if bad_fraction > threshold:
        first = quarantine[0]
        reason = (
            f"batch rejected, {len(quarantine)} of {counted} rows bad "
            f"({bad_fraction:.1%} > {threshold:.1%}); first: row {first['row']}: "
            f"{first['reason']}"
        )
        report = reject_report_path(workspace.rejects_dir, path, checksum)
        _write_reject_report(report, path, quarantine, reason, threshold)
        raise BatchRejected(f"{path}: {reason}; nothing was loaded; report: {report}", report)
    bad = pa.table({ROW: pa.array(sorted({item["row"] for item in quarantine}), pa.int64())})
    connection.register("bad_rows", bad)
    connection.execute(f"DELETE FROM norm WHERE {ROW} IN (SELECT {ROW} FROM bad_rows)")
    connection.execute("ALTER TABLE norm RENAME TO good")

    result = IngestResult(
        str(path),
        kind,
        "loaded",
        source.format,
        batch_id=uuid.uuid4().hex,
        rows_total=rows_total,
        rows_quarantined=len(quarantine),
        rows_ignored=rows_ignored,
        ignored=ignored,
        notes=source.notes,
        validation=validation,
    )
    return _load(
        workspace, connection, path, source, result, checksum, quarantine, now, commit_with
    )


def _load(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    source: Source,
    result: IngestResult,
    checksum: str,
    quarantine: list[dict],
    now: datetime,
    commit_with: Callable[[Connection], None] | None,
) -> IngestResult:
    """The batch in one transaction of the state store, its events published just before."""
    batch_row = IngestBatch(
        id=result.batch_id,
        file=str(path),
        checksum=checksum,
        kind=result.kind,
        rows_total=result.rows_total,
        rows_loaded=0,
        rows_duplicate=0,
        rows_quarantined=len(quarantine),
        contacts_created=0,
        lake_files=0,
        started_at=now,
        finished_at=now,
    )
    staged: StagedBatch | None = None
    try:
        if result.kind == "events":
            committed = workspace.committed_event_batches()
            workspace.lake.sweep_orphans(committed)
            result.machine_clicks = flag_machine_clicks(workspace, connection, committed)
            staged, result.rows_loaded, result.rows_duplicate = stage_new_events(
                workspace, connection, committed, result.batch_id
            )
            batch_row.lake_files = len(staged.targets)
            log.info("%s: events staged in the lake (%d)", path.name, result.rows_loaded)
        with session_scope(workspace.engine) as session:
            session.add(batch_row)
            session.flush()
            db = session.connection()
            if quarantine:
                rows = pa.Table.from_pylist(quarantine)
                batch_ids = pa.array([result.batch_id] * len(rows), pa.string())
                bulk_load(db, QuarantinedRow.__table__, rows.append_column("batch_id", batch_ids))
            if result.kind == "events":
                result.contacts_created = create_event_contacts(connection, db, result.batch_id)
            else:
                result.rows_loaded, result.rows_duplicate, result.contacts_created = load_contacts(
                    connection,
                    db,
                    source,
                    workspace.config.account.timezone,
                    result.batch_id,
                    now,
                )
            if not (result.rows_loaded or result.rows_quarantined or result.contacts_created):
                session.rollback()
                if staged:
                    workspace.lake.discard(staged)
                result.status, result.batch_id = "nothing_new", None
                return result
            batch_row.rows_loaded = result.rows_loaded
            batch_row.rows_duplicate = result.rows_duplicate
            batch_row.contacts_created = result.contacts_created
            batch_row.finished_at = datetime.now(UTC)
            session.add(batch_row)
            if commit_with:
                commit_with(db)
            if staged:
                workspace.lake.publish(staged)
                log.info("%s: published in the lake, committing", path.name)
        log.info("%s: committed", path.name)
    except BaseException:
        if staged:
            workspace.lake.discard(staged)
        raise
    return result


def _quarantine_rows(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    raw: RawFile,
    source: Source,
    validation: ValidationResult,
) -> list[dict]:
    """Every bad row of the file, in row order, with its reasons and raw content."""
    rows: list[dict] = [
        {"file": str(path), "row": item.row, "reason": item.reason, "raw": item.raw}
        for item in raw.unreadable
    ]
    if validation.reasons_by_row:
        failing = pa.table({ROW: pa.array(sorted(validation.reasons_by_row), pa.int64())})
        connection.register("failing_rows", failing)
        raw_text = connection.execute(
            f"SELECT {ROW}, {_raw_json_sql(source)} FROM raw SEMI JOIN failing_rows USING ({ROW})"
            f" ORDER BY {ROW}"
        ).fetchall()
        rows.extend(
            {
                "file": str(path),
                "row": row,
                "reason": "; ".join(validation.reasons_by_row[row]),
                "raw": text_,
            }
            for row, text_ in raw_text
        )
    return sorted(rows, key=lambda item: item["row"])


def reject_report_path(rejects_dir: Path, path: Path, checksum: str) -> Path:
    """One report per rejected content: the same file rejected again writes no new one."""
    return rejects_dir / f"{path.stem}-{checksum[:12]}.csv"


def _earlier_rejection(report: Path, threshold: float) -> str | None:
    """The reason an earlier ingest rejected this content, if it did under the same threshold
    (a changed `ingest.max_bad_fraction` validates the file again)."""
    try:
        earlier = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not report.exists() or earlier.get("max_bad_fraction") != threshold:
        return None
    return earlier.get("reason")


def _write_reject_report(
    report: Path, path: Path, rows: list[dict], reason: str, threshold: float
) -> None:
    """The bad rows (`file, row, reason, raw`), and beside them why the batch was rejected.
    Written to a temporary name, then renamed: never a half-written report."""
    report.parent.mkdir(parents=True, exist_ok=True)
    partial = report.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "row", "reason", "raw"])
        writer.writerows([str(path), item["row"], item["reason"], item["raw"]] for item in rows)
    partial.replace(report)
    report.with_suffix(".json").write_text(
        json.dumps({"file": str(path), "reason": reason, "max_bad_fraction": threshold}),
        encoding="utf-8",
    )
