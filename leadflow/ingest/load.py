"""Ingest one file: read, normalise, validate with Great Expectations, then load all-or-nothing.

The steps, for a contacts or an events file:

1. read it (`readers`), refusing files that cannot be trusted as a whole;
2. detect its kind from its columns and map a HubSpot export to leadflow's columns;
3. normalise it in DuckDB (trimmed lower-case emails, parsed timestamps, JSON checks);
4. validate every row with the GX suite of its kind; failing rows are quarantined with reasons;
5. if more than `ingest.max_bad_fraction` of the rows are bad, reject the batch: nothing is
   written (a CSV report goes to the rejects folder instead);
6. otherwise, in one database transaction: the batch row, its quarantined rows, the contacts
   (created or upserted, property changes appended to their history), and the new events
   published to the lake just before the commit (removed again if the commit fails).

The same file twice is recognised by its checksum and skipped; an overlapping file loads only
what is new: events are deduplicated on (source, event_id) against the lake, and a contact
property only gets a history row when its value changes.
"""

import csv
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    text,
)
from sqlmodel import select
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow import domain
from leadflow.errors import UserError
from leadflow.ingest.readers import ROW, RawFile, read_input
from leadflow.ingest.validation import ValidationResult, load_suite, validate_batches
from leadflow.lake import EVENT_SCHEMA, StagedBatch, duckdb_connection
from leadflow.store.db import bulk_load, session_scope
from leadflow.workspace import Workspace
from models import Contact, IngestBatch, QuarantinedRow

log = logging.getLogger(__name__)
Kind = Literal["contacts", "events"]
CLOCK_SKEW = timedelta(minutes=5)

# HubSpot contacts export header -> leadflow column. Unlisted headers become snake_case properties.
HUBSPOT_COLUMNS = {
    "Record ID": "hubspot_record_id",
    "Email": "email",
    "First Name": "first_name",
    "Last Name": "last_name",
    "Phone Number": "phone",
    "Mobile Phone Number": "mobile_phone",
    "Company Name": "company",
    "Job Title": "job_title",
    "Persona": "persona",
    "Industry": "industry",
    "Country/Region": "country",
    "Lifecycle Stage": "initial_stage",
    "Marketing contact status": "initial_marketing_status",
    "Create Date": "created_at",
    "Last Modified Date": "updated_at",
}
CONTACT_STATE_COLUMNS = ("initial_stage", "initial_marketing_status")


class BatchRejected(UserError):
    """Too many bad rows: the batch was not applied. The message is one line."""

    def __init__(self, message: str, report: Path, again: bool = False):
        super().__init__(message)
        self.report = report
        self.again = again  # the same content was rejected before (no new report)


class InputColumnsError(UserError, ValueError):
    """The file lacks a column its kind requires, or its kind cannot be told."""


@dataclass
class IngestResult:
    file: str
    kind: Kind
    status: Literal["loaded", "already_ingested", "nothing_new"]
    batch_id: str | None = None
    rows_total: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    contacts_created: int = 0
    validation: ValidationResult | None = field(default=None, repr=False)


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def snake_case(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()).strip("_")


def detect_kind(path: Path, columns: list[str], kind: Kind | None) -> tuple[Kind, dict[str, str]]:
    """The file's kind and the renaming of its columns to leadflow's names."""
    is_hubspot = "Record ID" in columns or ("Email" in columns and "email" not in columns)
    if kind is None:
        if "event_id" in columns or {"type", "occurred_at"} <= set(columns):
            kind = "events"
        elif "email" in columns or is_hubspot:
            kind = "contacts"
        else:
            raise InputColumnsError(
                f"{path}: cannot tell contacts from events (no email or event_id column); "
                "pass --kind"
            )
    if kind == "contacts" and is_hubspot:
        renames = {name: HUBSPOT_COLUMNS.get(name, snake_case(name)) for name in columns}
    else:
        renames = {name: name for name in columns}
    required = domain.EVENT_REQUIRED_COLUMNS if kind == "events" else ("email",)
    missing = [name for name in required if name not in renames.values()]
    if missing:
        raise InputColumnsError(f"{path}: missing column(s) {', '.join(missing)} for {kind}")
    return kind, renames


def _text(column: str) -> str:
    return f"NULLIF(trim(CAST(\"{column}\" AS VARCHAR)), '')"


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
    SELECT {ROW}, email,
           CASE WHEN email IS NOT NULL THEN count(*) OVER (PARTITION BY email) END
               AS copies_in_file,
           CASE WHEN created_at_ts IS NULL THEN created_at END AS created_at_unparsable,
           CASE WHEN updated_at_ts IS NULL THEN updated_at END AS updated_at_unparsable,
           epoch(updated_at_ts) AS updated_at_epoch,
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


def _normalise_events_sql(renames: dict[str, str]) -> str:
    by_name = {target: source for source, target in renames.items()}

    def col(name: str) -> str:
        return _text(by_name[name]) if name in by_name else "NULL::VARCHAR"

    return f"""
        SELECT {ROW}, event_id, source, lower(email) AS email, type, occurred_at,
               occurred_at_ts, epoch(occurred_at_ts) AS occurred_at_epoch, url, form_id,
               campaign_id, properties,
               CASE WHEN properties IS NULL THEN true
                    ELSE COALESCE(json_type(json_properties) = 'OBJECT', false)
                    END AS properties_is_object,
               CASE WHEN json_type(json_properties) = 'OBJECT'
                    THEN json_extract_string(json_properties, '$.bounce_type') END AS bounce_type,
               CASE WHEN json_type(json_properties) = 'OBJECT'
                    THEN TRY_CAST(json_extract_string(json_properties, '$.score') AS DOUBLE)
                    END AS nps_score
        FROM (SELECT {ROW}, {col("event_id")} AS event_id, {col("source")} AS source,
                     {col("email")} AS email, {col("type")} AS type,
                     {col("occurred_at")} AS occurred_at,
                     TRY_CAST({col("occurred_at")} AS TIMESTAMPTZ) AS occurred_at_ts,
                     {col("url")} AS url, {col("form_id")} AS form_id,
                     {col("campaign_id")} AS campaign_id, {col("properties")} AS properties,
                     CASE WHEN json_valid({col("properties")}) THEN {col("properties")} END
                         AS json_properties
              FROM raw)
    """


def _normalise_contacts_sql(renames: dict[str, str]) -> tuple[str, list[str]]:
    """SQL over `raw` giving leadflow's contact columns, and the list of property columns."""
    by_name = {target: source for source, target in renames.items()}

    def col(name: str) -> str:
        return _text(by_name[name]) if name in by_name else "NULL::VARCHAR"

    identity = set(domain.CONTACT_IDENTITY_COLUMNS) | set(CONTACT_STATE_COLUMNS)
    properties = [target for target in by_name if target not in identity and target != ROW]
    stage = col("initial_stage")
    status = col("initial_marketing_status")
    property_sql = "".join(f', {_text(by_name[name])} AS "{name}"' for name in properties)
    sql = f"""
        SELECT *, epoch(updated_at_ts) AS updated_at_epoch FROM (
        SELECT {ROW}, lower({col("email")}) AS email,
               {col("created_at")} AS created_at,
               TRY_CAST({col("created_at")} AS TIMESTAMPTZ) AS created_at_ts,
               {col("updated_at")} AS updated_at,
               TRY_CAST({col("updated_at")} AS TIMESTAMPTZ) AS updated_at_ts,
               lower({col("creation_source")}) AS creation_source,
               {col("integration")} AS integration,
               lower(replace(replace(replace({stage}, ' ', ''), '_', ''), '-', ''))
                   AS initial_stage,
               CASE WHEN lower({status}) LIKE 'non%' THEN 'non_marketing'
                    WHEN lower({status}) LIKE 'marketing%' THEN 'marketing'
                    ELSE lower({status}) END AS initial_marketing_status
               {property_sql}
        FROM raw)
    """
    return sql, properties


def _raw_json_sql(columns: list[str]) -> str:
    fields = ", ".join(f"'{name.replace(chr(39), chr(39) * 2)}': \"{name}\"" for name in columns)
    return f"to_json({{{fields}}})"


def ingest_file(
    workspace: Workspace, path: Path, *, kind: Kind | None = None, now: datetime | None = None
) -> IngestResult:
    """Load one file. Raises InputFileError/InputColumnsError/BatchRejected leaving no trace."""
    path = Path(path)
    now = now or datetime.now(UTC)
    checksum = file_checksum(path) if path.is_file() else ""
    raw = read_input(path)
    columns = [name for name in raw.table.column_names if name != ROW]
    kind, renames = detect_kind(path, columns, kind)
    with session_scope(workspace.engine) as session:
        if session.exec(select(IngestBatch.id).where(IngestBatch.checksum == checksum)).first():
            return IngestResult(str(path), kind, "already_ingested", rows_total=raw.rows_total)
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
    with duckdb_connection() as connection:
        return _ingest(workspace, connection, path, raw, kind, renames, checksum, now)


def _ingest(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    raw: RawFile,
    kind: Kind,
    renames: dict[str, str],
    checksum: str,
    now: datetime,
) -> IngestResult:
    columns = [name for name in raw.table.column_names if name != ROW]
    connection.register("raw", raw.table)
    if kind == "events":
        normalise_sql, property_columns = _normalise_events_sql(renames), []
    else:
        normalise_sql, property_columns = _normalise_contacts_sql(renames)
    connection.execute(f"CREATE TEMP TABLE norm AS {normalise_sql}")
    checks = connection.sql(EVENT_CHECKS_SQL if kind == "events" else CONTACT_CHECKS_SQL)
    validation = validate_batches(
        checks.to_arrow_reader(),
        load_suite(workspace.expectations_dir, kind),
        {"max_occurred_at_epoch": (now + CLOCK_SKEW).timestamp()},
        categorical=LOW_CARDINALITY_COLUMNS,
        chunk_rows=VALIDATION_CHUNK_ROWS,
    )

    log.info("%s: rows validated (%d)", path.name, raw.rows_total)
    quarantine = _quarantine_rows(connection, path, raw, columns, validation)
    rows_total = raw.rows_total
    connection.unregister("raw")
    raw.release()  # `norm` has what loads from here on
    bad_fraction = len(quarantine) / rows_total
    threshold = workspace.config.ingest.max_bad_fraction
    if bad_fraction > threshold:
        first = quarantine[0]
        reason = (
            f"batch rejected, {len(quarantine)} of {rows_total} rows bad "
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
        batch_id=uuid.uuid4().hex,
        rows_total=rows_total,
        rows_quarantined=len(quarantine),
        validation=validation,
    )
    batch_row = IngestBatch(
        id=result.batch_id,
        file=str(path),
        checksum=checksum,
        kind=kind,
        rows_total=rows_total,
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
        if kind == "events":
            staged = _stage_events(workspace, connection, result)
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
            if kind == "events":
                _create_event_contacts(connection, db, result)
            else:
                _load_contacts(connection, db, result, property_columns, now)
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
    columns: list[str],
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
            f"SELECT {ROW}, {_raw_json_sql(columns)} FROM raw SEMI JOIN failing_rows USING ({ROW})"
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


def _temp_table(name: str, *columns: Column) -> Table:
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])


def _stage_events(
    workspace: Workspace, connection: duckdb.DuckDBPyConnection, result: IngestResult
) -> StagedBatch:
    """Write the batch's events that the lake does not have yet to the lake's staging area."""
    committed = workspace.committed_event_batches()
    workspace.lake.sweep_orphans(committed)
    good = connection.execute("SELECT count(*) FROM good").fetchone()[0]
    # The lake's copies of the batch's events first (a semi join: the batch is the hash table,
    # the lake is only scanned), then deleted from the batch: twice as fast as DELETE … USING
    # the lake, which hashes the lake.
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE known_events AS
            SELECT lake.source, lake.event_id FROM {workspace.lake.events_sql(committed)} AS lake
            SEMI JOIN good ON good.source = lake.source AND good.event_id = lake.event_id"""
    )
    connection.execute(
        """DELETE FROM good USING known_events known
           WHERE good.source = known.source AND good.event_id = known.event_id"""
    )
    connection.execute("ALTER TABLE good RENAME TO new_events")
    result.rows_loaded = connection.execute("SELECT count(*) FROM new_events").fetchone()[0]
    result.rows_duplicate = good - result.rows_loaded
    columns = ", ".join(
        f"'{result.batch_id}' AS batch_id"
        if name == "batch_id"
        else "occurred_at_ts AS occurred_at"
        if name == "occurred_at"
        else name
        for name in EVENT_SCHEMA
    )
    return workspace.lake.stage(connection, f"(SELECT {columns} FROM new_events)", result.batch_id)


def _create_event_contacts(
    connection: duckdb.DuckDBPyConnection, db: Connection, result: IngestResult
) -> None:
    """Create the contacts of unknown emails, their creation source taken from the first event."""
    sources = " ".join(
        f"WHEN '{event_type}' THEN '{source}'"
        for event_type, source in domain.EVENT_CREATION_SOURCE.items()
    )
    first_seen = connection.sql(
        f"""SELECT email,
                   CASE arg_min(type, occurred_at_ts) {sources}
                        ELSE '{domain.DEFAULT_EVENT_CREATION_SOURCE}' END AS creation_source,
                   min(occurred_at_ts) AS created_at
            FROM new_events GROUP BY email ORDER BY email"""
    ).to_arrow_table()
    stage = _temp_table(
        "stage_event_contact",
        Column("email", String),
        Column("creation_source", String),
        Column("created_at", UTCDateTime()),
    )
    stage.create(db)
    bulk_load(db, stage, first_seen)
    before = db.execute(select(func.count()).select_from(Contact)).scalar_one()
    db.execute(
        text(
            """INSERT INTO contact (email, creation_source, creation_source_inferred, created_at,
                                first_batch_id)
           SELECT email, creation_source, true, created_at, :batch FROM stage_event_contact
           WHERE true ON CONFLICT (email) DO NOTHING"""
        ),
        {"batch": result.batch_id},
    )
    result.contacts_created = (
        db.execute(select(func.count()).select_from(Contact)).scalar_one() - before
    )
    stage.drop(db)


def _load_contacts(
    connection: duckdb.DuckDBPyConnection,
    db: Connection,
    result: IngestResult,
    property_columns: list[str],
    now: datetime,
) -> None:
    """Upsert the batch's contacts and append each changed property value to its history."""
    records = connection.sql(
        # No creation date: the record's own update time says it existed by then.
        "SELECT email, creation_source, integration, COALESCE(created_at_ts, updated_at_ts)"
        " AS created_at, initial_stage, initial_marketing_status FROM good ORDER BY email"
    ).to_arrow_table()
    stage_contact = _temp_table(
        "stage_contact",
        Column("email", String),
        Column("creation_source", String),
        Column("integration", String),
        Column("created_at", UTCDateTime()),
        Column("initial_stage", String),
        Column("initial_marketing_status", String),
    )
    stage_contact.create(db)
    bulk_load(db, stage_contact, records)
    touched = _temp_table("stage_touched", Column("contact_id", Integer))
    touched.create(db)
    db.execute(
        text(
            """INSERT INTO stage_touched (contact_id)
           SELECT c.id FROM stage_contact s JOIN contact c ON c.email = s.email
           WHERE (c.creation_source_inferred AND s.creation_source IS NOT NULL)
              OR s.created_at < c.created_at
              OR (c.initial_stage IS NULL AND s.initial_stage IS NOT NULL)
              OR (c.initial_marketing_status IS NULL AND s.initial_marketing_status IS NOT NULL)"""
        )
    )
    before = db.execute(select(func.count()).select_from(Contact)).scalar_one()
    db.execute(
        text(
            """INSERT INTO contact (email, creation_source, creation_source_inferred, integration,
                                created_at, initial_stage, initial_marketing_status,
                                first_batch_id)
           SELECT email, COALESCE(creation_source, :default_source), creation_source IS NULL,
                  integration, COALESCE(created_at, :now), initial_stage,
                  initial_marketing_status, :batch
           FROM stage_contact WHERE true
           ON CONFLICT (email) DO UPDATE SET
             creation_source = CASE WHEN contact.creation_source_inferred
                                     AND NOT excluded.creation_source_inferred
                                    THEN excluded.creation_source
                                    ELSE contact.creation_source END,
             integration = CASE WHEN contact.creation_source_inferred
                                 AND NOT excluded.creation_source_inferred
                                THEN excluded.integration ELSE contact.integration END,
             creation_source_inferred = contact.creation_source_inferred
                                        AND excluded.creation_source_inferred,
             created_at = CASE WHEN excluded.created_at < contact.created_at
                               THEN excluded.created_at ELSE contact.created_at END,
             initial_stage = COALESCE(contact.initial_stage, excluded.initial_stage),
             initial_marketing_status = COALESCE(contact.initial_marketing_status,
                                                 excluded.initial_marketing_status)"""
        ).bindparams(bindparam("now", type_=UTCDateTime())),
        {
            "default_source": domain.DEFAULT_RECORD_CREATION_SOURCE,
            "now": now,
            "batch": result.batch_id,
        },
    )
    result.contacts_created = (
        db.execute(select(func.count()).select_from(Contact)).scalar_one() - before
    )

    if property_columns:
        names = ", ".join(f'"{name}"' for name in property_columns)
        changes = connection.sql(
            f"""SELECT email, name, value, COALESCE(updated_at_ts, $now) AS valid_from
                FROM (UNPIVOT (SELECT email, updated_at_ts, {names} FROM good)
                      ON {names} INTO NAME name VALUE value)
                ORDER BY email, name""",
            params={"now": now},
        ).to_arrow_table()
    else:
        changes = pa.table({"email": [], "name": [], "value": [], "valid_from": []})
    stage_property = _temp_table(
        "stage_property",
        Column("email", String),
        Column("name", String),
        Column("value", String),
        Column("valid_from", UTCDateTime()),
    )
    stage_property.create(db)
    bulk_load(db, stage_property, changes)
    new_history = _temp_table(
        "stage_new_history",
        Column("contact_id", Integer),
        Column("name", String),
        Column("value", String),
        Column("valid_from", UTCDateTime()),
    )
    new_history.create(db)
    db.execute(
        text(
            """INSERT INTO stage_new_history (contact_id, name, value, valid_from)
           SELECT c.id, s.name, s.value, s.valid_from
           FROM stage_property s JOIN contact c ON c.email = s.email
           WHERE COALESCE((SELECT h.value FROM contact_property_history h
                           WHERE h.contact_id = c.id AND h.name = s.name
                             AND h.valid_from <= s.valid_from
                           ORDER BY h.valid_from DESC LIMIT 1), '') <> s.value
             AND NOT EXISTS (SELECT 1 FROM contact_property_history h
                             WHERE h.contact_id = c.id AND h.name = s.name
                               AND h.valid_from = s.valid_from)"""
        )
    )
    db.execute(
        text(
            """INSERT INTO contact_property_history (contact_id, name, valid_from, value, batch_id)
           SELECT contact_id, name, valid_from, value, :batch FROM stage_new_history"""
        ),
        {"batch": result.batch_id},
    )
    db.execute(text("INSERT INTO stage_touched SELECT contact_id FROM stage_new_history"))
    # A row "loads" when it creates its contact or changes something about it.
    result.rows_loaded = db.execute(
        text(
            """SELECT count(*) FROM contact c JOIN stage_contact s ON s.email = c.email
           WHERE c.first_batch_id = :batch OR c.id IN (SELECT contact_id FROM stage_touched)"""
        ),
        {"batch": result.batch_id},
    ).scalar_one()
    result.rows_duplicate = len(records) - result.rows_loaded
    for table in (stage_contact, stage_property, new_history, touched):
        table.drop(db)
