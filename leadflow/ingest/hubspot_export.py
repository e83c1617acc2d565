"""HubSpot contacts exports, as HubSpot writes them (README: "HubSpot contacts exports").

An export's header row holds property *labels* ("First Name", "Lifecycle Stage", `Date entered
"Customer (Lifecycle Stage Pipeline)"`), in any number and order, some repeated (association
columns); its values are labels too ("Marketing Qualified Lead", "Non-marketing contact",
"CRM UI"), and its times are the portal's local time without an offset ("2026-02-25 22:36").
The same contacts read from HubSpot's API (`leadflow hubspot pull`), or from tools that copy it
(a warehouse sync), carry the properties' *internal* names (`hs_object_id`, `lifecyclestage`,
`hs_v2_date_entered_customer`), internal values (`marketingqualifiedlead`, `CRM_UI`, `true`)
and UTC times with an offset: both spellings map alike.
This module says which header is which leadflow column, and how its labels read, as DuckDB SQL
over text columns (no header ever reaches the SQL: the caller passes column expressions).
"""

import re
from dataclasses import dataclass, field

from leadflow.domain import STAGES
from leadflow.sql import literal

# Header (lower-cased) -> leadflow contact column: the export's label, then the internal name.
COLUMNS = {
    "record id": "hubspot_record_id",
    "hs_object_id": "hubspot_record_id",
    "email": "email",
    "create date": "created_at",
    "createdate": "created_at",
    "last modified date": "updated_at",
    "lastmodifieddate": "updated_at",
    "lifecycle stage": "initial_stage",
    "lifecyclestage": "initial_stage",
    "marketing contact status": "initial_marketing_status",
    "hs_marketable_status": "initial_marketing_status",
    "record source": "record_source",
    "hs_object_source": "record_source",
    "original source": "original_source",
    "hs_analytics_source": "original_source",
    "record source detail 1": "record_source_detail",
    "hs_object_source_detail_1": "record_source_detail",
}
# Header (lower-cased) -> property name: the standard ones under leadflow's names.
PROPERTIES = {
    "first name": "first_name",
    "firstname": "first_name",
    "last name": "last_name",
    "lastname": "last_name",
    "phone number": "phone",
    "phone": "phone",
    "mobile phone number": "mobile_phone",
    "mobilephone": "mobile_phone",
    "company name": "company",
    "company": "company",
    "job title": "job_title",
    "jobtitle": "job_title",
    "persona": "persona",
    "hs_persona": "persona",
    "industry": "industry",
    "country/region": "country",
    "country": "country",
    "unsubscribed from all email": "unsubscribed_from_all_email",
    "hs_email_optout": "unsubscribed_from_all_email",
}
# `Date entered "Customer (Lifecycle Stage Pipeline)"`, and older exports' "Became a Customer Date";
# internally `hs_v2_date_entered_customer` and `hs_lifecyclestage_customer_date`.
DATE_ENTERED = (
    re.compile(r'^date entered "(?P<stage>.+?) \(lifecycle stage pipeline\)"$'),
    re.compile(r"^became an? (?P<stage>.+?) date$"),
    re.compile(r"^hs_v2_date_entered_(?P<stage>[a-z]+)$"),
    re.compile(r"^hs_lifecyclestage_(?P<stage>[a-z]+)_date$"),
)
# "Record source" labels (and internal values), squeezed (lower case, letters and digits only):
# how the record was created, which is what leadflow means by a creation source.
RECORD_SOURCES = {
    "forms": "form",
    "form": "form",
    "import": "import",
    "conversations": "conversation",
    "botchatflow": "conversation",
    "chatflows": "conversation",
    "bot": "conversation",
    "integration": "integration",
    "integrations": "integration",
    "api": "integration",
    "batchupdate": "integration",
    "ads": "ads",
    "crmui": "crm_ui",
    "mobile": "mobile",
    "mobileios": "mobile",
    "mobileandroid": "mobile",
    "bccdemail": "email_log",
    "bccemail": "email_log",
    "email": "email_log",
    "emailintegration": "email_log",
    "forwardedemail": "email_log",
    "meetings": "meeting",
    "meeting": "meeting",
    "salesemailextension": "email_extension",
    "salesextension": "email_extension",
    "emailextension": "email_extension",
    "extension": "email_extension",
}
# "Original Source" (traffic source) labels, squeezed: the fallback when the record source says
# nothing leadflow knows. Paid traffic came through ads; other web traffic became a contact
# through a form; offline sources are imports.
ORIGINAL_SOURCES = {
    "paidsearch": "ads",
    "paidsocial": "ads",
    "organicsearch": "form",
    "organicsocial": "form",
    "socialmedia": "form",
    "referrals": "form",
    "emailmarketing": "form",
    "othercampaigns": "form",
    "directtraffic": "form",
    "aireferrals": "form",
    "offlinesources": "import",
    "offline": "import",
}


def is_export(columns: list[str]) -> bool:
    """HubSpot's contacts: `Record ID` (or `hs_object_id`), or `Email` and no leadflow `email`."""
    return bool({"Record ID", "hs_object_id"} & set(columns)) or (
        "Email" in columns and "email" not in columns
    )


def is_internal(key: str) -> bool:
    """Internal names have no space and no capital (labels have them)."""
    return re.fullmatch(r"[a-z0-9_]+", key) is not None


def internal_names() -> list[str]:
    """The internal property names this mapping reads (what a pull asks HubSpot for): for each
    column and property, the last internal key of the tables above."""
    names = {}
    for mapping in (COLUMNS, PROPERTIES):
        names |= {target: key for key, target in mapping.items() if is_internal(key)}
    return [*names.values(), *(f"hs_v2_date_entered_{stage}" for stage in STAGES)]


def internal_name(property_name: str) -> str:
    """The HubSpot property behind one of leadflow's property names (`persona`: `hs_persona`);
    a name leadflow does not rename is HubSpot's own."""
    found = [key for key, name in PROPERTIES.items() if name == property_name and is_internal(key)]
    return found[-1] if found else property_name


def squeeze(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def entered_stage(header: str) -> str | None:
    """The stage a `Date entered` (or `Became a … Date`) header dates, if it is one."""
    for pattern in DATE_ENTERED:
        match = pattern.match(header.strip().lower())
        if match:
            stage = squeeze(match.group("stage"))
            return stage if stage in STAGES else None
    return None


def property_name(header: str) -> str:
    """A header as a snake_case property name."""
    return re.sub(r"_+", "_", re.sub(r"[^0-9a-z]", "_", header.strip().lower())).strip("_")


@dataclass
class ExportColumns:
    """Which export column is what: leadflow columns, properties, stage entry dates."""

    fields: dict[str, str] = field(default_factory=dict)  # leadflow column -> header
    properties: dict[str, str] = field(default_factory=dict)  # property name -> header
    entries: dict[str, str] = field(default_factory=dict)  # stage -> header


def export_columns(headers: list[str]) -> ExportColumns:
    """How an export's headers map; a property name taken twice gets a numbered suffix."""
    mapped = ExportColumns()
    for header in headers:
        key = header.strip().lower()
        if key in COLUMNS and COLUMNS[key] not in mapped.fields:
            mapped.fields[COLUMNS[key]] = header
            continue
        stage = entered_stage(header)
        if stage and stage not in mapped.entries:
            mapped.entries[stage] = header
            continue
        name = PROPERTIES.get(key) or property_name(header) or "column"
        candidate, copy = name, 1
        while candidate in mapped.properties:
            copy += 1
            candidate = f"{name}_{copy}"
        mapped.properties[candidate] = header
    return mapped


def _case(expression: str, mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {literal(key)} THEN {literal(value)}" for key, value in mapping.items())
    return f"CASE {expression} {whens} END"


def squeezed_sql(expression: str) -> str:
    return f"regexp_replace(lower({expression}), '[^a-z0-9]', '', 'g')"


def creation_source_sql(record_source: str, original_source: str) -> str:
    """leadflow's creation source from the record source label, else the original source."""
    return (
        f"COALESCE({_case(squeezed_sql(record_source), RECORD_SOURCES)}, "
        f"{_case(squeezed_sql(original_source), ORIGINAL_SOURCES)})"
    )


def local_time_sql(expression: str, zone: str) -> str:
    """A time as HubSpot writes it (the portal's local time, no offset) as TIMESTAMPTZ; a time
    with an offset keeps it."""
    with_offset = f"regexp_matches({expression}, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$')"
    return (
        f"CASE WHEN {with_offset} THEN TRY_CAST({expression} AS TIMESTAMPTZ) "
        f"ELSE timezone({literal(zone)}, TRY_CAST({expression} AS TIMESTAMP)) END"
    )
