"""Vendor event formats: SendGrid, HubSpot Email Events, Mailchimp email activity, Segment.

Each format maps a vendor's records to leadflow's event columns in DuckDB SQL (docs/formats.md
has the mapping tables). The ingest uses a format in three steps:

1. `detect(document_or_first_record)` (or `FORMATS[name]` for `--format name`) gives the format;
2. `fmt.unwrap(document)` turns a whole JSON document into its records (for JSON Lines, each line
   is a record already);
3. the records become `raw`, an all-text table with a column per top-level key and `_row` (as
   `readers.read_input` builds it), and `fmt.mapping_sql(columns, options)` is a
   `SELECT ... FROM raw` giving OUTPUT_COLUMNS: leadflow's event columns plus `machine` (the
   vendor's bot/proxy flag), `vendor_type` and `ignored` (a documented vendor event leadflow does
   not model: count it per vendor_type, load it nowhere).
"""

from typing import Any

from leadflow.ingest.formats.base import EventFormat, FormatOptions
from leadflow.ingest.formats.hubspot import HUBSPOT_EMAIL_EVENTS
from leadflow.ingest.formats.mailchimp import MAILCHIMP
from leadflow.ingest.formats.segment import SEGMENT
from leadflow.ingest.formats.sendgrid import SENDGRID
from leadflow.ingest.formats.sql import OUTPUT_COLUMNS, FormatError, ident, literal, quote

FORMATS: dict[str, EventFormat] = {
    fmt.name: fmt for fmt in (SENDGRID, HUBSPOT_EMAIL_EVENTS, MAILCHIMP, SEGMENT)
}


def detect(document_or_first_record: Any) -> EventFormat | None:
    """The format whose document (array, page, report, batch) or record this is, or None (for
    leadflow's own events, say). The formats' shapes do not overlap."""
    for fmt in FORMATS.values():
        if fmt.unwrap(document_or_first_record) is not None:
            return fmt
    return None


__all__ = [
    "FORMATS",
    "OUTPUT_COLUMNS",
    "EventFormat",
    "FormatError",
    "FormatOptions",
    "detect",
    "ident",
    "literal",
    "quote",
]
