"""Events into the lake: what the lake does not have yet, machine clicks flagged, and the
contacts of emails seen for the first time.

Machine opens and clicks stay in the lake, flagged (`machine`), and count for no rule unless it
says `machine: include`: the vendor's own flag (SendGrid's `sg_machine_open`, HubSpot's
`filteredEvent`, …, read by `leadflow.ingest.formats`), or a click within
`ingest.machine_click_seconds` of its email's delivery (a link scanner follows every link as the
email arrives; a person does not read that fast). The delivery is looked up in the batch and in
the lake's files of the click's day and the day before; a delivery that arrives in a later
batch than its click does not flag it afterwards (lake files are never rewritten).
"""

from datetime import timedelta

import duckdb
from sqlalchemy import Column, Connection, MetaData, String, Table, text
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow import domain
from leadflow.lake import EVENT_SCHEMA, StagedBatch
from leadflow.sql import literal
from leadflow.store.db import BULK_CHUNK_ROWS, bulk_load
from leadflow.workspace import Workspace


def flag_machine_clicks(
    workspace: Workspace, connection: duckdb.DuckDBPyConnection, committed: set[str]
) -> int:
    """Flag `good`'s clicks that follow their email's delivery within the configured seconds;
    returns how many were flagged."""
    seconds = workspace.config.ingest.machine_click_seconds
    [(first, last)] = connection.execute(
        "SELECT min(occurred_at_ts), max(occurred_at_ts) FROM good "
        "WHERE type = 'email_click' AND NOT machine"
    ).fetchall()
    if not seconds or first is None:
        return 0
    lake = workspace.lake
    days = {first.date() - timedelta(days=1) + timedelta(days=n)
            for n in range((last.date() - first.date()).days + 2)}  # fmt: skip
    files = [path for path in lake.files(committed) if lake.file_day(path) in days]
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE deliveries AS
            SELECT email, campaign_id, occurred_at_ts AS delivered_at FROM good
            WHERE type = 'email_delivered'
            UNION ALL
            SELECT ev.email, ev.campaign_id, ev.occurred_at FROM {lake.relation(files)} ev
            SEMI JOIN (SELECT DISTINCT email FROM good WHERE type = 'email_click') clicks
                 ON clicks.email = ev.email
            WHERE ev.type = 'email_delivered'"""
    )
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE machine_clicks AS
            SELECT _row FROM good
            WHERE type = 'email_click' AND NOT machine AND EXISTS (
                SELECT 1 FROM deliveries d
                WHERE d.email = good.email
                  AND d.campaign_id IS NOT DISTINCT FROM good.campaign_id
                  AND d.delivered_at <= good.occurred_at_ts
                  AND epoch(good.occurred_at_ts) - epoch(d.delivered_at) <= {literal(seconds)})"""
    )
    connection.execute(
        "UPDATE good SET machine = true WHERE _row IN (SELECT _row FROM machine_clicks)"
    )
    [(flagged,)] = connection.execute("SELECT count(*) FROM machine_clicks").fetchall()
    connection.execute("DROP TABLE deliveries")
    connection.execute("DROP TABLE machine_clicks")
    return flagged


def stage_new_events(
    workspace: Workspace,
    connection: duckdb.DuckDBPyConnection,
    committed: set[str],
    batch_id: str,
) -> tuple[StagedBatch, int, int]:
    """Write `good`'s events that the lake does not have yet to the lake's staging area;
    returns the staged batch, the events new and those the lake had."""
    [(good,)] = connection.execute("SELECT count(*) FROM good").fetchall()
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
    [(new,)] = connection.execute("SELECT count(*) FROM new_events").fetchall()
    columns = ", ".join(
        f"{literal(batch_id)} AS batch_id"
        if name == "batch_id"
        else "occurred_at_ts AS occurred_at"
        if name == "occurred_at"
        else name
        for name in EVENT_SCHEMA
    )
    staged = workspace.lake.stage(connection, f"(SELECT {columns} FROM new_events)", batch_id)
    return staged, new, good - new


STAGE_EVENT_CONTACT = Table(
    "stage_event_contact",
    MetaData(),
    Column("email", String),
    Column("creation_source", String),
    Column("created_at", UTCDateTime()),
    prefixes=["TEMPORARY"],
)


def create_event_contacts(
    connection: duckdb.DuckDBPyConnection, db: Connection, batch_id: str
) -> int:
    """Create the contacts of unknown emails, their creation source taken from their first
    event; returns how many were created."""
    sources = " ".join(
        f"WHEN {literal(event_type)} THEN {literal(source)}"
        for event_type, source in domain.EVENT_CREATION_SOURCE.items()
    )
    first_seen = connection.sql(
        f"""SELECT email,
                   CASE arg_min(type, occurred_at_ts) {sources}
                        ELSE {literal(domain.DEFAULT_EVENT_CREATION_SOURCE)} END
                       AS creation_source,
                   min(occurred_at_ts) AS created_at
            FROM new_events GROUP BY email ORDER BY email"""
    ).to_arrow_reader(BULK_CHUNK_ROWS)
    STAGE_EVENT_CONTACT.create(db)
    bulk_load(db, STAGE_EVENT_CONTACT, first_seen)
    before = db.execute(text("SELECT count(*) FROM contact")).scalar_one()
    db.execute(
        text(
            """INSERT INTO contact (email, creation_source, creation_source_inferred, created_at,
                                first_batch_id)
           SELECT email, creation_source, true, created_at, :batch FROM stage_event_contact
           WHERE true ON CONFLICT (email) DO NOTHING"""
        ),
        {"batch": batch_id},
    )
    created = db.execute(text("SELECT count(*) FROM contact")).scalar_one() - before
    STAGE_EVENT_CONTACT.drop(db)
    return created
