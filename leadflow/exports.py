"""CSV exports read back from the state store: quarantine, and contacts as of a day."""

import csv
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Engine
from sqlmodel import select

from leadflow.domain import RECORD_KEY_PREFIX, STAGES
from leadflow.marketing import latest_per_contact_sql, latest_sql
from leadflow.scoring.conditions import grid_column
from leadflow.scoring.query import as_of_end
from leadflow.scoring.scores import prepare_day, read_contacts
from leadflow.sql import identifier, literal
from leadflow.store.db import read_arrow, session_scope
from leadflow.workspace import Workspace
from models import QuarantinedRow


def export_quarantine(engine: Engine, out: Path) -> int:
    """Write every quarantined row (`file`, `row`, `reason`, `raw`) to `out`; return the count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with session_scope(engine) as session, out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "row", "reason", "raw"])
        query = select(QuarantinedRow).order_by(QuarantinedRow.id)
        for item in session.exec(query.execution_options(yield_per=10_000)):
            writer.writerow([item.file, item.row, item.reason, item.raw])
            count += 1
    return count


def write_csv(table: pa.Table, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, out, pacsv.WriteOptions(quoting_style="needed"))


def contacts_as_of(workspace: Workspace, day: date) -> pa.Table:
    """`export contacts`: each contact created by the end of `day` (or seen by a run of
    it, through an earlier event), with its stage, marketing status, demotion state,
    suppression and stage entry days as the runs up to `day` left them (a contact no run has
    seen yet has an empty marketing_status). An entry day is the earliest of the run's and the
    record's (a HubSpot export's `Date entered …`). A contact known by its HubSpot Record ID
    only has an empty email. With `grids` configured, each contact's cell of each grid as of
    `day` (`grid_<name>`), computed from its scores of that day (no grid is stored)."""
    entered = ", ".join(
        f"min(CASE WHEN stage = {literal(stage)} THEN CAST(day AS TEXT) END)" for stage in STAGES
    )
    entry_columns = ", ".join(f"e.entered_{stage}" for stage in STAGES)
    entry_names = ", ".join(f"entered_{stage}" for stage in STAGES)
    schema = pa.schema(
        [(name, pa.string()) for name in (*CONTACT_COLUMNS[: -len(STAGES) - 1], "created_at")]
        + [(f"date_entered_{stage}", pa.string()) for stage in STAGES]
        + [("hubspot_record_id", pa.string()), ("contact_id", pa.int64())]
    )
    by_day = literal(day.isoformat())
    rows = read_arrow(
        workspace.engine,
        f"""WITH entries ({"contact_id, " + entry_names}) AS (
                SELECT contact_id, {entered} FROM (
                    SELECT contact_id, stage, day FROM stage_entry WHERE day <= {by_day}
                    UNION ALL
                    SELECT contact_id, stage, day FROM contact_initial_stage_entry
                    WHERE day <= {by_day}) all_entries
                GROUP BY contact_id)
            SELECT CASE WHEN c.email LIKE {literal(RECORD_KEY_PREFIX + "%")} THEN ''
                        ELSE c.email END,
                   COALESCE(s.value, c.initial_stage), m.value,
                   COALESCE(d.value, 'none'), COALESCE(p.value, 'false'), c.creation_source,
                   CAST(c.created_at AS TEXT), {entry_columns}, c.hubspot_record_id, c.id
            FROM contact c
            LEFT JOIN ({latest_per_contact_sql("stage_move", "to_stage", day)}) s
                ON s.contact_id = c.id
            LEFT JOIN ({latest_sql("status", day)}) m ON m.contact_id = c.id
            LEFT JOIN ({latest_sql("demotion", day)}) d ON d.contact_id = c.id
            LEFT JOIN ({latest_sql("suppression", day)}) p ON p.contact_id = c.id
            LEFT JOIN entries e ON e.contact_id = c.id""",
        schema,
    )
    with workspace.lake.connection() as connection:
        connection.register("rows", rows)
        grids, joined = "", ""
        if workspace.config.grids:
            prepare_day(workspace, connection, day, read_contacts(workspace))
            grids = "".join(
                f", g.{grid_column(name)} AS {identifier('grid_' + name)}"
                for name in workspace.config.grids
            )
            joined = "LEFT JOIN day_scored g USING (contact_id)"
        return connection.sql(
            f"SELECT rows.* EXCLUDE (created_at, contact_id){grids} FROM rows {joined} "
            "WHERE created_at::TIMESTAMPTZ < $end OR marketing_status IS NOT NULL "
            "ORDER BY email, hubspot_record_id",
            params={"end": as_of_end(day, workspace.config)},
        ).to_arrow_table()


CONTACT_COLUMNS = (
    "email",
    "lifecycle_stage",
    "marketing_status",
    "demotion",
    "suppressed",
    "creation_source",
    *(f"date_entered_{stage}" for stage in STAGES),
    "hubspot_record_id",
)
