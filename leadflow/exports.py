"""CSV exports read back from the state store."""

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Engine
from sqlmodel import select

from leadflow.db import session_scope
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
