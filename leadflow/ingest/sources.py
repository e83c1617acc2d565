"""What an input file is (its format and kind), and its records as leadflow's columns, in SQL.

Formats (`leadflow ingest --format NAME`, else told from the file):
- `leadflow`: leadflow's own contacts or events columns (README: Ingest);
- `hubspot-contacts`: a HubSpot contacts export (`leadflow.ingest.hubspot_export`);
- `sendgrid`, `hubspot-email-events`, `mailchimp`, `segment`: a vendor's email or event records
  (`leadflow.ingest.formats`), always events.

The file's columns reach DuckDB renamed to their position (`c0`, `c1`, …; `Source.physical`):
no name from a file is ever written into SQL, so a header made of quotes, semicolons, comments,
control characters, emoji or 10,000 characters is just data, and headers that differ only in
case stay apart (DuckDB's names do not).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from leadflow import domain
from leadflow.config import LeadflowConfig
from leadflow.errors import UserError
from leadflow.ingest import hubspot_export
from leadflow.ingest.formats import FORMATS, EventFormat, FormatOptions, detect
from leadflow.ingest.readers import ROW, RawFile
from leadflow.sql import identifier, literal

Kind = Literal["contacts", "events"]
OWN_FORMATS = ("leadflow", "hubspot-contacts")
FORMAT_NAMES = (*OWN_FORMATS, *FORMATS)
# Contact columns that are not properties (leadflow's format).
CONTACT_COLUMNS = (*domain.CONTACT_IDENTITY_COLUMNS, "hubspot_record_id")
CONTACT_STATE_COLUMNS = ("initial_stage", "initial_marketing_status")
RECORD_KEY_PREFIX = domain.RECORD_KEY_PREFIX


class InputColumnsError(UserError, ValueError):
    """The file lacks a column its kind requires, or what it is cannot be told."""


@dataclass
class Source:
    """What a file is and how its columns read: `fields` maps leadflow's columns (and, for
    contacts, `properties` the property names, `entries` the stages dated) to the file's
    columns, by their original names; `physical` gives each original name its SQL name."""

    format: str
    kind: Kind
    columns: list[str]
    fields: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)
    vendor: EventFormat | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def physical(self) -> dict[str, str]:
        return {name: f"c{index}" for index, name in enumerate(self.columns)}

    def column(self, name: str) -> str:
        """The SQL text of leadflow column `name` (trimmed, NULL when empty or absent)."""
        original = self.fields.get(name)
        if original is None:
            return "NULL::VARCHAR"
        return text_of(self.physical[original])


def text_of(column: str) -> str:
    return f"NULLIF(trim(CAST({identifier(column)} AS VARCHAR)), '')"


def unwrap_for(format_name: str | None):
    """How the reader opens a JSON document for `--format` (any vendor's when not given)."""
    if format_name in OWN_FORMATS or (format_name and format_name not in FORMATS):
        return None  # (an unknown name is refused by `source_of`)
    candidates = [FORMATS[format_name]] if format_name else list(FORMATS.values())

    def unwrap(document):
        for vendor in candidates:
            records = vendor.unwrap(document)
            if records is not None:
                return records, vendor.name
        return None

    return unwrap


def source_of(path: Path, raw: RawFile, kind: Kind | None, format_name: str | None) -> Source:
    """What the file is: forced by `--format`/`--kind`, else told from its shape."""
    columns = [name for name in raw.table.column_names if name != ROW]
    if format_name is not None and format_name not in FORMAT_NAMES:
        raise InputColumnsError(
            f"{path}: unknown format {format_name!r} (one of: {', '.join(FORMAT_NAMES)})"
        )
    vendor = None
    if format_name in FORMATS:
        vendor = FORMATS[format_name]
    elif format_name is None:
        vendor = FORMATS.get(raw.document or "") or detect(_first_record(raw, columns))
    if vendor is not None:
        if kind == "contacts":
            raise InputColumnsError(f"{path}: {vendor.name} records are events, not contacts")
        source = Source(vendor.name, "events", columns, vendor=vendor, notes=list(raw.notes))
        return source
    hubspot = format_name == "hubspot-contacts" or (
        format_name is None and hubspot_export.is_export(columns)
    )
    if hubspot:
        if kind == "events":
            raise InputColumnsError(f"{path}: a HubSpot contacts export holds contacts")
        return _hubspot_source(path, columns, raw.notes)
    return _leadflow_source(path, columns, kind, raw.notes)


def _first_record(raw: RawFile, columns: list[str]) -> dict | None:
    if raw.table.num_rows == 0:
        return None
    first = raw.table.slice(0, 1).to_pylist()[0]
    return {name: first[name] for name in columns if first.get(name) is not None}


def _leadflow_source(path: Path, columns: list[str], kind: Kind | None, notes) -> Source:
    if kind is None:
        if "event_id" in columns or {"type", "occurred_at"} <= set(columns):
            kind = "events"
        elif "email" in columns or "hubspot_record_id" in columns:
            kind = "contacts"
        else:
            raise InputColumnsError(
                f"{path}: cannot tell contacts from events (no email, event_id or Record ID "
                "column); pass --kind, or --format for a vendor's file"
            )
    read = domain.EVENT_COLUMNS + ("machine",) if kind == "events" else CONTACT_COLUMNS
    read += CONTACT_STATE_COLUMNS if kind == "contacts" else ()
    _refuse_repeated(path, columns, read)
    source = Source("leadflow", kind, columns, notes=list(notes))
    source.fields = {name: name for name in columns if name in read}
    if kind == "events":
        missing = [name for name in domain.EVENT_REQUIRED_COLUMNS if name not in source.fields]
    else:
        source.properties = {name: name for name in columns if name not in read}
        missing = [] if {"email", "hubspot_record_id"} & set(source.fields) else ["email"]
    if missing:
        raise InputColumnsError(f"{path}: missing column(s) {', '.join(missing)} for {kind}")
    return source


def _refuse_repeated(path: Path, columns: list[str], read: tuple[str, ...]) -> None:
    """A column leadflow reads, repeated, cannot be read: which copy is right is unknown."""
    for name in read:
        if f"{name} (2)" in columns:
            raise InputColumnsError(
                f"{path}: the header repeats {name!r}, a column leadflow reads: which one is "
                "right cannot be told"
            )


def _hubspot_source(path: Path, columns: list[str], notes) -> Source:
    mapped = hubspot_export.export_columns(columns)
    for leadflow_name, header in mapped.fields.items():
        if f"{header} (2)" in columns:
            raise InputColumnsError(
                f"{path}: the header repeats {header!r} (leadflow's {leadflow_name}): which one "
                "is right cannot be told"
            )
    if not {"email", "hubspot_record_id"} & set(mapped.fields):
        raise InputColumnsError(f"{path}: a HubSpot export needs a Record ID or an Email column")
    return Source(
        "hubspot-contacts",
        "contacts",
        columns,
        fields=mapped.fields,
        properties=mapped.properties,
        entries=mapped.entries,
        notes=list(notes),
    )


# --- Events ------------------------------------------------------------------------------------


def vendor_sql(source: Source, config: LeadflowConfig) -> str:
    """The vendor's records as leadflow's event columns (and `machine`, `vendor_type`,
    `ignored`), over `raw`."""
    options = FormatOptions(
        track_types=config.segment.track_types, custom_types=tuple(config.events.custom_types)
    )
    return source.vendor.mapping_sql(source.physical, options)


def normalise_events_sql(source: Source, relation: str = "raw") -> str:
    """leadflow's event columns, parsed and checked, from `relation`: `raw` (leadflow's format,
    columns by position) or `mapped` (a vendor's, columns named as leadflow's)."""
    if relation == "raw":
        col = source.column
        machine = (
            f"COALESCE(lower({col('machine')}) IN ('true', '1', 'yes'), false)"
            if "machine" in source.fields
            else "false"
        )
    else:

        def col(name: str) -> str:
            return text_of(name)

        machine = "COALESCE(machine, false)"
    return f"""
        SELECT {ROW}, event_id, source, lower(email) AS email, type, occurred_at,
               occurred_at_ts, epoch(occurred_at_ts) AS occurred_at_epoch, url, form_id,
               campaign_id, properties, machine,
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
                     {machine} AS machine,
                     CASE WHEN json_valid({col("properties")}) THEN {col("properties")} END
                         AS json_properties
              FROM {relation}{" WHERE NOT ignored" if relation != "raw" else ""})
    """


# --- Contacts ----------------------------------------------------------------------------------


def normalise_contacts_sql(source: Source, config: LeadflowConfig, first_values_at: str) -> str:
    """leadflow's contact columns from `raw`: identity (`contact_key`), times, source, initial
    state, the stamps of property values (`valid_from`, and `first_valid_from` for a contact's
    first value of a property), the stage entry times (`entry_<i>`, see `entry_stages`), and the
    property columns as they are (`c<i>`)."""
    col = source.column
    hubspot = source.format == "hubspot-contacts"
    if hubspot:
        zone = config.portal_timezone

        def time_sql(expression: str) -> str:
            return hubspot_export.local_time_sql(expression, zone)

        creation_source = hubspot_export.creation_source_sql(
            col("record_source"), col("original_source")
        )
        detail = col("record_source_detail")
        integration = f"CASE WHEN {creation_source} = 'integration' THEN {detail} END"
    else:

        def time_sql(expression: str) -> str:
            return f"TRY_CAST({expression} AS TIMESTAMPTZ)"

        creation_source = f"lower({col('creation_source')})"
        integration = col("integration")
    stage = col("initial_stage")
    status = col("initial_marketing_status")
    entries = ""
    for index, stage_name in enumerate(entry_stages(source)):
        expression = text_of(source.physical[source.entries[stage_name]])
        entries += f", {expression} AS entry_text_{index}, {time_sql(expression)} AS entry_{index}"
    unparsable = " OR ".join(
        f"(entry_text_{index} IS NOT NULL AND entry_{index} IS NULL)"
        for index in range(len(source.entries))
    )
    entered_check = (
        f"CASE WHEN {unparsable} THEN 'unparsable' END" if source.entries else "NULL::VARCHAR"
    )
    first = {
        "created_at": "COALESCE(created_at_ts, updated_at_ts, $now)",
        "updated_at": "COALESCE(updated_at_ts, created_at_ts, $now)",
        "load_time": "$now",
    }[first_values_at]
    properties = "".join(
        f", {identifier(source.physical[header])}" for header in source.properties.values()
    )
    known_stage = f"lower(replace(replace(replace({stage}, ' ', ''), '_', ''), '-', ''))"
    if hubspot:  # a portal's own stages (labels leadflow does not know) are left out
        stages = ", ".join(literal(name) for name in (*domain.STAGES, domain.OTHER_STAGE))
        known_stage = f"CASE WHEN {known_stage} IN ({stages}) THEN {known_stage} END"
    return f"""
        SELECT *, epoch(updated_at_ts) AS updated_at_epoch,
               COALESCE(email, {literal(RECORD_KEY_PREFIX)} || hubspot_record_id)
                   AS contact_key,
               COALESCE(updated_at_ts, $now) AS valid_from, {first} AS first_valid_from,
               {entered_check} AS entered_unparsable
        FROM (
        SELECT {ROW}, lower({col("email")}) AS email,
               {col("hubspot_record_id")} AS hubspot_record_id,
               {col("created_at")} AS created_at,
               {time_sql(col("created_at"))} AS created_at_ts,
               {col("updated_at")} AS updated_at,
               {time_sql(col("updated_at"))} AS updated_at_ts,
               {creation_source} AS creation_source,
               {integration} AS integration,
               {known_stage} AS initial_stage,
               {stage} AS stage_label,
               CASE WHEN lower({status}) LIKE 'non%' OR lower({status}) = 'false'
                    THEN 'non_marketing'
                    WHEN lower({status}) LIKE 'marketing%' OR lower({status}) = 'true'
                    THEN 'marketing'
                    ELSE lower({status}) END AS initial_marketing_status
               {entries}{properties}
        FROM raw)
    """


def entry_stages(source: Source) -> list[str]:
    """The stages whose entry dates the file gives, in the order of `entry_<i>` columns."""
    return list(source.entries)


def property_columns(source: Source) -> dict[str, str]:
    """Physical column -> property name."""
    return {source.physical[header]: name for name, header in source.properties.items()}
