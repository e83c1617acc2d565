"""The state mirror: what a day run reads of the state store (contacts, the property history the
rules read, stored scores, stages, marketing statuses, open demotions), kept in the run cache
(`leadflow.pipeline.runcache`) so that a day does not read a million contacts through the database
driver again.

- Contacts and property history change only by ingest. Each row also holds its contact's lake
  bucket (`leadflow.lake.bucket_sql`), hashed once here, not every day to split the
  partitions' inputs. An events batch only adds contacts
  (appended by id); a contacts batch may update contacts and adds history (re-read whole, and
  its history rows appended). The mirror records the contacts batches it holds.
- Scores, stages, marketing statuses and demotions change only in transactions that call
  `leadflow.db.bump_state_version`. The mirror records the version it reflects; if the state
  store's differs, it reads them whole again. A day run folds its own changes into the mirror
  (`record_day`) and records the version after them: it holds the state lock, nobody else wrote.
"""

from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa
from sqlalchemy import text

from leadflow.lake import bucket_sql
from leadflow.lifecycle import CURRENT_SCHEMA
from leadflow.marketing import OPEN_STATES, STATE_SCHEMA, renewal_after
from leadflow.pipeline.runcache import get_meta, set_meta, transaction
from leadflow.scoring.conditions import quote
from leadflow.scoring.query import PROPERTY_SCHEMA
from leadflow.scoring.scores import STORED_SCHEMA
from leadflow.store.db import read_arrow
from leadflow.workspace import Workspace

# The contact's own columns of `read_state` (id, email, created_at, source, integration,
# initial status), and its initial stage.
CONTACT_SCHEMA = pa.schema([*STATE_SCHEMA][:6] + [pa.field("initial_stage", pa.string())])
CONTACTS_SQL = """SELECT id, email, CAST(created_at AS TEXT), creation_source, integration,
                         initial_marketing_status, initial_stage FROM contact"""
BUCKET = f"{bucket_sql('email')} AS bucket"
PARSED_HISTORY = f"email, name, value, valid_from::TIMESTAMPTZ AS valid_from, {BUCKET}"
# What `mirror_contacts_key` records besides the properties' names: a mirror of another
# layout (one before the buckets) is read again.
CONTACTS_LAYOUT = "bucketed"
# The marketing state and the open demotion of `read_state`, each with its contact id.
MARKETING_SCHEMA = pa.schema([STATE_SCHEMA.field("contact_id"), *[*STATE_SCHEMA][6:11]])
DEMOTION_SCHEMA = pa.schema([STATE_SCHEMA.field("contact_id"), *[*STATE_SCHEMA][11:]])
# What the state store holds, read whole: (mirror table, query, schema).
STATE_TABLES = [
    (
        "scores",
        "SELECT contact_id, score, value, band, model_version FROM contact_score",
        STORED_SCHEMA,
    ),
    ("stages", "SELECT contact_id, stage FROM contact_stage", CURRENT_SCHEMA),
    (
        "marketing",
        """SELECT contact_id, status, status_rule, CAST(status_day AS TEXT),
                  CAST(suppressed AS INTEGER), CAST(suppressed_day AS TEXT)
           FROM contact_marketing""",
        MARKETING_SCHEMA,
    ),
    (
        "demotions",
        f"""SELECT contact_id, id, state, rule, CAST(renewal_date AS TEXT) FROM demotion
            WHERE state IN {OPEN_STATES}""",
        DEMOTION_SCHEMA,
    ),
]


def state_version(workspace: Workspace) -> str:
    with workspace.engine.connect() as connection:
        return connection.execute(text("SELECT token FROM state_version")).scalar_one()


@dataclass(frozen=True)
class DayInputs:
    """A day run's inputs, as the state store holds them before the day."""

    state: pa.Table  # `marketing.read_state`'s columns
    buckets: pa.ChunkedArray  # each state row's lake bucket
    stages: pa.Table  # `lifecycle.current_stages`'s columns
    properties: str  # the relation of the history of the properties the rules read
    scores: str  # the relation of the stored scores (in the mirror: read in place, not copied)
    reads: dict[str, str]  # part -> how it was had: mirror | appended | read


def day_inputs(
    connection: duckdb.DuckDBPyConnection, workspace: Workspace, property_names: set[str]
) -> DayInputs:
    """Bring the mirror up to the state store, reading as little as it can, and return the
    day's inputs from it."""
    reads = {
        "contacts": _sync_contacts(connection, workspace, sorted(property_names)),
        "state": _sync_state(connection, workspace),
    }
    state = connection.sql(
        """SELECT c.contact_id, c.email, c.created_at, c.creation_source, c.integration,
                  c.initial_status, m.status, m.status_rule, m.status_day, m.suppressed,
                  m.suppressed_day, d.demotion_id, d.demotion_state, d.demotion_rule,
                  d.demotion_renewal, c.bucket
           FROM cache.contacts c
           LEFT JOIN cache.marketing m USING (contact_id)
           LEFT JOIN cache.demotions d USING (contact_id)"""
    ).to_arrow_table()
    stages = connection.sql(
        """SELECT c.contact_id, COALESCE(s.stage, c.initial_stage) AS stage
           FROM cache.contacts c LEFT JOIN cache.stages s USING (contact_id)
           WHERE s.stage IS NOT NULL OR c.initial_stage IS NOT NULL"""
    ).to_arrow_table()
    return DayInputs(
        state.drop_columns(["bucket"]).cast(STATE_SCHEMA),
        state.column("bucket"),
        stages.cast(CURRENT_SCHEMA),
        "cache.properties",
        "cache.scores",
        reads,
    )


def _store(
    connection: duckdb.DuckDBPyConnection, name: str, rows: pa.Table, columns: str = "*"
) -> None:
    connection.register("mirror_rows", rows)
    connection.execute(f"CREATE OR REPLACE TABLE cache.{name} AS SELECT {columns} FROM mirror_rows")
    connection.unregister("mirror_rows")


def _sync_contacts(
    connection: duckdb.DuckDBPyConnection, workspace: Workspace, names: list[str]
) -> str:
    """Contacts and the named properties' history: appended, or read whole if a contacts batch
    landed (it may have updated contacts) or other properties are wanted."""
    with workspace.engine.connect() as db:
        batches = set(
            db.execute(text("SELECT id FROM ingest_batch WHERE kind = 'contacts'")).scalars()
        )
    held = (
        {row[0] for row in connection.execute("SELECT * FROM cache.contact_batches").fetchall()}
        if get_meta(connection, "mirror_contacts_key") == repr((CONTACTS_LAYOUT, names))
        else None
    )
    history_sql = (
        "SELECT c.email, h.name, h.value, CAST(h.valid_from AS TEXT) "
        "FROM contact_property_history h JOIN contact c ON c.id = h.contact_id "
        f"WHERE h.name IN ({', '.join(quote(name) for name in names) or 'NULL'})"
    )
    if held == batches and _same_contacts_so_far(connection, workspace):
        [(last,)] = connection.execute(
            "SELECT COALESCE(max(contact_id), 0) FROM cache.contacts"
        ).fetchall()
        added = read_arrow(workspace.engine, f"{CONTACTS_SQL} WHERE id > {last}", CONTACT_SCHEMA)
        if added.num_rows == 0:
            return "mirror"
        connection.register("added_contacts", added)
        connection.execute(f"INSERT INTO cache.contacts SELECT *, {BUCKET} FROM added_contacts")
        connection.unregister("added_contacts")
        return "appended"
    contacts = read_arrow(workspace.engine, CONTACTS_SQL, CONTACT_SCHEMA)
    history = read_arrow(workspace.engine, history_sql, PROPERTY_SCHEMA)
    with transaction(connection):
        _store(connection, "contacts", contacts, f"*, {BUCKET}")
        # Times parsed once here, not by every day's query.
        _store(connection, "properties", history, PARSED_HISTORY)
        _store(
            connection,
            "contact_batches",
            pa.table({"batch_id": pa.array(sorted(batches), pa.string())}),
        )
        set_meta(connection, "mirror_contacts_key", repr((CONTACTS_LAYOUT, names)))
    return "read"


def _same_contacts_so_far(connection: duckdb.DuckDBPyConnection, workspace: Workspace) -> bool:
    """Whether the store still has the mirrored contacts (a restored backup may not): the same
    count up to the last mirrored id, and the same email there."""
    [(count, last, email)] = connection.execute(
        """SELECT count(*), max(contact_id), arg_max(email, contact_id) FROM cache.contacts"""
    ).fetchall()
    with workspace.engine.connect() as db:
        stored = db.execute(
            text(  # two lookups: one scan for both read every email (0.47 s at 2M, not 0.10)
                "SELECT (SELECT count(*) FROM contact WHERE id <= :last), "
                "(SELECT email FROM contact WHERE id = :last)"
            ),
            {"last": last or 0},
        ).one()
    return tuple(stored) == (count, email)


def _sync_state(connection: duckdb.DuckDBPyConnection, workspace: Workspace) -> str:
    version = state_version(workspace)
    if get_meta(connection, "mirror_state_version") == version:
        return "mirror"
    tables = [
        (name, read_arrow(workspace.engine, sql, schema)) for name, sql, schema in STATE_TABLES
    ]
    with transaction(connection):
        for name, rows in tables:
            _store(connection, name, rows)
        set_meta(connection, "mirror_state_version", version)
    return "read"


def record_day(
    connection: duckdb.DuckDBPyConnection, workspace: Workspace, day: date, model_version: str
) -> None:
    """Fold a day run's own changes into the mirror: `changed_scores` (score_step), `moves`
    (lifecycle_step), `decided` (marketing_step) and the demotions the day opened, then record
    the state store's version after them."""
    connection.register(
        "opened_demotions",
        read_arrow(
            workspace.engine,
            f"""SELECT contact_id, id FROM demotion
                WHERE opened_day = '{day.isoformat()}' AND state IN {OPEN_STATES}""",
            pa.schema([("contact_id", pa.int64()), ("demotion_id", pa.int64())]),
        ),
    )
    day_text = quote(day.isoformat())
    renewal = quote(renewal_after(day, workspace.config.contract).isoformat())
    # Marketing: the status after the day where it changed, the suppression where it changed.
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE marketing_after AS
            SELECT contact_id,
                   CASE WHEN status_changed THEN new_status ELSE status END AS status,
                   CASE WHEN status_changed THEN new_rule ELSE status_rule END AS status_rule,
                   CASE WHEN status_changed THEN {day_text} ELSE status_day END AS status_day,
                   CASE WHEN suppression_changed THEN now_suppressed::BIGINT
                        ELSE COALESCE(suppressed, 0) END AS suppressed,
                   CASE WHEN suppression_changed THEN {day_text} ELSE suppressed_day END
                       AS suppressed_day
            FROM (SELECT *, status IS NULL OR promoted OR demotion_next = 'applied'
                                AS status_changed,
                         now_suppressed <> (COALESCE(suppressed, 0) = 1) AS suppression_changed
                  FROM decided)
            WHERE status_changed OR suppression_changed"""
    )
    # Demotions: those still open, and those the day opened (their ids from the state store).
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE demotions_after AS
            SELECT contact_id, demotion_id, demotion_next, demotion_rule, demotion_renewal
            FROM decided WHERE demotion_next IN {OPEN_STATES}
            UNION ALL
            SELECT d.contact_id, o.demotion_id, d.opened, d.demote_rule, {renewal}
            FROM decided d JOIN opened_demotions o USING (contact_id)
            WHERE d.opened IS NOT NULL"""
    )
    with workspace.engine.connect() as db:
        after = db.execute(text("SELECT token FROM state_version")).scalar_one()
    with transaction(connection):
        _fold_day(connection, model_version, after)
    connection.unregister("opened_demotions")


def _fold_day(connection: duckdb.DuckDBPyConnection, model_version: str, after: str) -> None:
    connection.execute(
        """DELETE FROM cache.scores s USING changed_scores c
           WHERE s.contact_id = c.contact_id AND s.score = c.score"""
    )
    connection.execute(
        "INSERT INTO cache.scores SELECT contact_id, score, value, band, ? FROM changed_scores",
        [model_version],
    )
    connection.execute("DELETE FROM cache.stages s USING moves m WHERE s.contact_id = m.contact_id")
    connection.execute("INSERT INTO cache.stages SELECT contact_id, to_stage FROM moves")
    connection.execute(
        "DELETE FROM cache.marketing m USING marketing_after a WHERE m.contact_id = a.contact_id"
    )
    connection.execute("INSERT INTO cache.marketing SELECT * FROM marketing_after")
    connection.execute(
        """DELETE FROM cache.demotions m USING decided d
           WHERE m.contact_id = d.contact_id AND d.demotion_id IS NOT NULL"""
    )
    connection.execute("INSERT INTO cache.demotions SELECT * FROM demotions_after")
    set_meta(connection, "mirror_state_version", after)
