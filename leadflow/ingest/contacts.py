"""Contacts into the state store: who each row is, the upsert, the property history, the stage
entry dates a record carries. Set-based: the batch is bulk-loaded into temporary tables and
joined, in the ingest's transaction.

Identity. A contact's key is its email (trimmed, lower-cased); a HubSpot contact without one is
keyed `hubspot:<Record ID>`, matched by its record id and simply gets no email events. A row
with both attaches the record id to the contact of the email, or gives the contact of the record
id its email. leadflow does not merge contacts nor follow an email change: a row whose email
and Record ID name two different contacts (or a record id known with another email) is
quarantined, with both named (`identity_conflicts`).
"""

from datetime import datetime

import duckdb
import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    text,
)
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow import domain
from leadflow.ingest.readers import ROW
from leadflow.ingest.sources import RECORD_KEY_PREFIX, Source, entry_stages, property_columns
from leadflow.sql import identifier, literal
from leadflow.store.db import BULK_CHUNK_ROWS, bulk_load
from leadflow.workspace import Workspace


def _temp_table(name: str, *columns: Column) -> Table:
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])


def _index(db: Connection, table: Table, *columns: str) -> None:
    """Index a loaded staging table (after the load: cheaper than row by row), for the
    correlated lookups that would otherwise scan the batch once per contact."""
    for column in columns:
        db.execute(
            text(
                f"CREATE INDEX {identifier(f'{table.name}_{column}')} "
                f"ON {identifier(table.name)} ({identifier(column)})"
            )
        )


IDENTITIES = _temp_table(
    "stage_identity",
    Column("row", Integer),
    Column("email", String),
    Column("hubspot_record_id", String),
)
CONFLICTS_SQL = """
    SELECT s.row, s.email, s.hubspot_record_id, by_record.email, by_email.hubspot_record_id,
           by_record.id <> by_email.id
    FROM stage_identity s
    LEFT JOIN contact by_record ON by_record.hubspot_record_id = s.hubspot_record_id
    LEFT JOIN contact by_email ON by_email.email = s.email
    WHERE (by_record.id IS NOT NULL AND by_email.id IS NOT NULL AND by_record.id <> by_email.id)
       OR (by_record.id IS NOT NULL AND s.email IS NOT NULL AND by_email.id IS NULL
           AND by_record.email NOT LIKE :prefix)
       OR (by_email.id IS NOT NULL AND by_email.hubspot_record_id IS NOT NULL
           AND by_email.hubspot_record_id <> s.hubspot_record_id)"""


def identity_conflicts(workspace: Workspace, connection: duckdb.DuckDBPyConnection) -> dict:
    """Row -> reason, for the rows whose email and Record ID disagree with the state store."""
    identities = connection.sql(
        f"SELECT {ROW} AS row, email, hubspot_record_id FROM norm "
        "WHERE hubspot_record_id IS NOT NULL"
    )
    if not identities.limit(1).fetchall():
        return {}
    with workspace.engine.begin() as db:
        IDENTITIES.create(db)
        bulk_load(db, IDENTITIES, identities.to_arrow_reader(BULK_CHUNK_ROWS))
        found = db.execute(text(CONFLICTS_SQL), {"prefix": f"{RECORD_KEY_PREFIX}%"}).all()
        IDENTITIES.drop(db)
    reasons = {}
    for row, email, record_id, record_email, email_record, two_contacts in found:
        if two_contacts:
            reason = (
                f"Record ID {record_id} is the contact {record_email} and {email} another one "
                "(leadflow does not merge contacts: merge them in HubSpot, or load one)"
            )
        elif email_record is not None:
            reason = f"{email} has Record ID {email_record}, not {record_id}"
        else:
            reason = (
                f"Record ID {record_id} is {record_email}, not {email} (an email change: "
                "leadflow keys contacts by email)"
            )
        reasons[row] = f"email: {reason} [contact identity]"
    return reasons


STAGE_CONTACT = _temp_table(
    "stage_contact",
    Column("contact_key", String),
    Column("email", String),
    Column("hubspot_record_id", String),
    Column("creation_source", String),
    Column("integration", String),
    Column("created_at", UTCDateTime()),
    Column("initial_stage", String),
    Column("initial_marketing_status", String),
)
STAGE_PROPERTY = _temp_table(
    "stage_property",
    Column("contact_key", String),
    Column("name", String),
    Column("value", String),
    Column("valid_from", UTCDateTime()),
    Column("first_valid_from", UTCDateTime()),
)
STAGE_ENTRY = _temp_table(
    "stage_entry_day", Column("contact_key", String), Column("stage", String), Column("day", Date)
)
NEW_HISTORY = _temp_table(
    "stage_new_history",
    Column("contact_id", Integer),
    Column("name", String),
    Column("value", String),
    Column("valid_from", UTCDateTime()),
)
TOUCHED = _temp_table("stage_touched", Column("contact_id", Integer))


def load_contacts(
    connection: duckdb.DuckDBPyConnection,
    db: Connection,
    source: Source,
    account_timezone: str,
    batch_id: str,
    now: datetime,
) -> tuple[int, int, int]:
    """Upsert `good`'s contacts, append each changed property value to its history, keep the
    stage entry dates. Returns (rows loaded, rows already known, contacts created)."""
    records = connection.sql(
        # No creation date: the record's own update time says it existed by then.
        """SELECT contact_key, email, hubspot_record_id, creation_source, integration,
                  COALESCE(created_at_ts, updated_at_ts) AS created_at, initial_stage,
                  initial_marketing_status
           FROM good ORDER BY contact_key"""
    ).to_arrow_reader(BULK_CHUNK_ROWS)
    for table in (STAGE_CONTACT, STAGE_PROPERTY, STAGE_ENTRY, NEW_HISTORY, TOUCHED):
        table.create(db)
    rows = bulk_load(db, STAGE_CONTACT, records)
    _index(db, STAGE_CONTACT, "contact_key", "hubspot_record_id")
    _attach_identities(db)
    _resolve_keys(db, "stage_contact")
    db.execute(
        text(
            """INSERT INTO stage_touched (contact_id)
           SELECT c.id FROM stage_contact s JOIN contact c ON c.email = s.contact_key
           WHERE (c.creation_source_inferred AND s.creation_source IS NOT NULL)
              OR s.created_at < c.created_at
              OR (c.initial_stage IS NULL AND s.initial_stage IS NOT NULL)
              OR (c.initial_marketing_status IS NULL AND s.initial_marketing_status IS NOT NULL)"""
        )
    )
    before = db.execute(text("SELECT count(*) FROM contact")).scalar_one()
    db.execute(
        text(
            """INSERT INTO contact (email, hubspot_record_id, creation_source,
                                creation_source_inferred, integration, created_at,
                                initial_stage, initial_marketing_status, first_batch_id)
           SELECT contact_key, hubspot_record_id, COALESCE(creation_source, :default_source),
                  creation_source IS NULL, integration, COALESCE(created_at, :now),
                  initial_stage, initial_marketing_status, :batch
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
        {"default_source": domain.DEFAULT_RECORD_CREATION_SOURCE, "now": now, "batch": batch_id},
    )
    created = db.execute(text("SELECT count(*) FROM contact")).scalar_one() - before
    _load_history(connection, db, source, batch_id)
    _load_entries(connection, db, source, account_timezone)
    # A row "loads" when it creates its contact or changes something about it.
    loaded = db.execute(
        text(
            """SELECT count(*) FROM contact c JOIN stage_contact s ON s.contact_key = c.email
           WHERE c.first_batch_id = :batch OR c.id IN (SELECT contact_id FROM stage_touched)"""
        ),
        {"batch": batch_id},
    ).scalar_one()
    for table in (STAGE_CONTACT, STAGE_PROPERTY, STAGE_ENTRY, NEW_HISTORY, TOUCHED):
        table.drop(db)
    return loaded, rows - loaded, created


def _attach_identities(db: Connection) -> None:
    """A contact known by its record id only gets the email a row gives it (its key becomes
    the email); a contact of an email gets the record id a row gives it. (Rows where the two
    disagree were quarantined.)"""
    db.execute(
        text(
            """INSERT INTO stage_touched (contact_id)
               SELECT c.id FROM contact c JOIN stage_contact s
                 ON s.hubspot_record_id = c.hubspot_record_id
               WHERE s.email IS NOT NULL AND c.email LIKE :prefix"""
        ),
        {"prefix": f"{RECORD_KEY_PREFIX}%"},
    )
    db.execute(
        text(
            """UPDATE contact SET email = (
                   SELECT s.email FROM stage_contact s
                   WHERE s.hubspot_record_id = contact.hubspot_record_id AND s.email IS NOT NULL)
               WHERE email LIKE :prefix AND hubspot_record_id IN (
                   SELECT hubspot_record_id FROM stage_contact WHERE email IS NOT NULL)"""
        ),
        {"prefix": f"{RECORD_KEY_PREFIX}%"},
    )
    db.execute(
        text(
            """INSERT INTO stage_touched (contact_id)
               SELECT c.id FROM contact c JOIN stage_contact s ON s.contact_key = c.email
               WHERE c.hubspot_record_id IS NULL AND s.hubspot_record_id IS NOT NULL"""
        )
    )
    db.execute(
        text(
            """UPDATE contact SET hubspot_record_id = (
                   SELECT s.hubspot_record_id FROM stage_contact s
                   WHERE s.contact_key = contact.email)
               WHERE hubspot_record_id IS NULL AND email IN (
                   SELECT contact_key FROM stage_contact WHERE hubspot_record_id IS NOT NULL)"""
        )
    )


def _resolve_keys(db: Connection, table: str) -> None:
    """A row without an email is keyed `hubspot:<Record ID>`; if the state store knows that
    record id under an email, the row is that contact's."""
    db.execute(
        text(
            f"""UPDATE {identifier(table)} SET contact_key = (
                   SELECT c.email FROM contact c
                   WHERE c.hubspot_record_id = substr({identifier(table)}.contact_key, :start))
               WHERE contact_key LIKE :pattern AND EXISTS (
                   SELECT 1 FROM contact c
                   WHERE c.hubspot_record_id = substr({identifier(table)}.contact_key, :start))"""
        ),
        {"start": len(RECORD_KEY_PREFIX) + 1, "pattern": f"{RECORD_KEY_PREFIX}%"},
    )


def _load_history(
    connection: duckdb.DuckDBPyConnection, db: Connection, source: Source, batch_id: str
) -> None:
    """Append each property value that changes something to the history: a contact's first
    value of a property stamped `first_valid_from` (README: Ingest, first_values_at), later
    ones `valid_from` (the record's update time, else the load time)."""
    columns = property_columns(source)
    if columns:
        connection.register(
            "property_names",
            pa.table({"column": list(columns), "name": list(columns.values())}),
        )
        listed = ", ".join(identifier(column) for column in columns)
        changes = connection.sql(
            f"""SELECT u.contact_key, n.name, u.value, u.valid_from, u.first_valid_from
                FROM (UNPIVOT (SELECT contact_key, valid_from, first_valid_from, {listed}
                               FROM good)
                      ON {listed} INTO NAME "column" VALUE value) u
                JOIN property_names n USING ("column")
                WHERE u.value IS NOT NULL
                ORDER BY u.contact_key, n.name"""
        ).to_arrow_reader(BULK_CHUNK_ROWS)
        bulk_load(db, STAGE_PROPERTY, changes)
        _resolve_keys(db, "stage_property")
    db.execute(
        text(
            # A contact this batch created has no history yet: no lookups (CASE and OR stop
            # at the first answer), which halves the time of a first load.
            """INSERT INTO stage_new_history (contact_id, name, value, valid_from)
           SELECT contact_id, name, value, stamp FROM (
               SELECT c.id AS contact_id, s.name, s.value, c.first_batch_id = :batch AS fresh,
                      CASE WHEN c.first_batch_id <> :batch
                                AND EXISTS (SELECT 1 FROM contact_property_history h
                                            WHERE h.contact_id = c.id AND h.name = s.name)
                           THEN s.valid_from ELSE s.first_valid_from END AS stamp
               FROM stage_property s JOIN contact c ON c.email = s.contact_key) x
           WHERE (x.fresh AND x.value <> '')
              OR (NOT x.fresh
                  AND COALESCE((SELECT h.value FROM contact_property_history h
                                WHERE h.contact_id = x.contact_id AND h.name = x.name
                                  AND h.valid_from <= x.stamp
                                ORDER BY h.valid_from DESC LIMIT 1), '') <> x.value
                  AND NOT EXISTS (SELECT 1 FROM contact_property_history h
                                  WHERE h.contact_id = x.contact_id AND h.name = x.name
                                    AND h.valid_from = x.stamp))"""
        ),
        {"batch": batch_id},
    )
    db.execute(
        text(
            """INSERT INTO contact_property_history (contact_id, name, valid_from, value, batch_id)
           SELECT contact_id, name, valid_from, value, :batch FROM stage_new_history"""
        ),
        {"batch": batch_id},
    )
    db.execute(text("INSERT INTO stage_touched SELECT contact_id FROM stage_new_history"))


def _load_entries(
    connection: duckdb.DuckDBPyConnection, db: Connection, source: Source, zone: str
) -> None:
    """The stage entry dates of the records (the day in the account's zone), the earliest kept."""
    stages = entry_stages(source)
    if not stages:
        return
    parts = " UNION ALL ".join(
        f"SELECT contact_key, {literal(stage)} AS stage, "
        f"CAST(timezone({literal(zone)}, entry_{index}) AS DATE) AS day "
        f"FROM good WHERE entry_{index} IS NOT NULL"
        for index, stage in enumerate(stages)
    )
    bulk_load(db, STAGE_ENTRY, connection.sql(parts).to_arrow_reader(BULK_CHUNK_ROWS))
    _resolve_keys(db, "stage_entry_day")
    db.execute(
        text(
            """INSERT INTO stage_touched (contact_id)
               SELECT c.id FROM stage_entry_day s JOIN contact c ON c.email = s.contact_key
               WHERE NOT EXISTS (SELECT 1 FROM contact_initial_stage_entry e
                                 WHERE e.contact_id = c.id AND e.stage = s.stage
                                   AND e.day <= s.day)"""
        )
    )
    db.execute(
        text(
            """INSERT INTO contact_initial_stage_entry (contact_id, stage, day)
               SELECT c.id, s.stage, s.day FROM stage_entry_day s
               JOIN contact c ON c.email = s.contact_key WHERE true
               ON CONFLICT (contact_id, stage) DO UPDATE SET
                 day = CASE WHEN excluded.day < contact_initial_stage_entry.day
                            THEN excluded.day ELSE contact_initial_stage_entry.day END"""
        )
    )
