"""Pure mappings between HubSpot contact objects and leadflow's rows, and back for the push.

No I/O here: the pull turns search results into rows with leadflow's contact columns (another step
writes them to a file or table for the ingest); the push turns leadflow values into
`{"id": ..., "properties": {...}}` inputs for the batch update. Property names and values follow
docs/hubspot-api.md, which cites where each comes from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from leadflow import domain

# HubSpot internal property name -> leadflow contact column (SPEC §2 standard properties, plus the
# two the HubSpot export mapping in leadflow.ingest.load also knows).
PROPERTY_COLUMNS: dict[str, str] = {
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "phone",
    "mobilephone": "mobile_phone",
    "company": "company",
    "jobtitle": "job_title",
    "hs_persona": "persona",
    "industry": "industry",
    "country": "country",
    # Kept as plain properties: what HubSpot said about the source and the renewal marker.
    "hs_object_source": "record_source",
    "hs_analytics_source": "original_source",
    "hs_marketable_until_renewal": "marketable_until_renewal",
}
# What a pull must request so that contact_rows can fill every column (a search returns only the
# properties it is asked for, or a short default list).
PULL_PROPERTIES: tuple[str, ...] = (
    "email",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
    "lifecyclestage",
    "hs_marketable_status",
    "hs_object_source",
    "hs_object_source_label",
    "hs_object_source_detail_1",
    "hs_analytics_source",
    "hs_analytics_source_data_1",
    *(name for name in PROPERTY_COLUMNS if name not in ("hs_object_source", "hs_analytics_source")),
)
IDENTITY_COLUMNS: tuple[str, ...] = (
    "email",
    "hubspot_record_id",
    "created_at",
    "updated_at",
    "creation_source",
    "integration",
    "initial_stage",
    "initial_marketing_status",
)

# `hs_object_source` ("Record source": how the record was created) -> leadflow creation source.
# HubSpot documents the labels of this property, not its internal values; these are the internal
# values seen in API answers (see docs/hubspot-api.md, "Creation source").
RECORD_SOURCE_MAP: dict[str, str] = {
    "FORM": "form",
    "FORMS": "form",
    "IMPORT": "import",
    "CONVERSATIONS": "conversation",
    "CHATFLOWS": "conversation",
    "BOT": "conversation",
    "INTEGRATION": "integration",
    "API": "integration",
    "BATCH_UPDATE": "integration",
    "ADS": "ads",
    "CRM_UI": "crm_ui",
    "MOBILE_IOS": "mobile",
    "MOBILE_ANDROID": "mobile",
    "EMAIL": "email_log",
    "BCC_EMAIL": "email_log",
    "EMAIL_INTEGRATION": "email_log",
    "FORWARDED_EMAIL": "email_log",
    "MEETINGS": "meeting",
    "SALES_EXTENSION": "email_extension",
    "EXTENSION": "email_extension",
}
# `hs_analytics_source` ("Original source", documented values) when the record source is absent.
# Web sources identify a contact through a form; OFFLINE defers to hs_analytics_source_data_1.
ANALYTICS_SOURCE_MAP: dict[str, str] = {
    "PAID_SEARCH": "ads",
    "PAID_SOCIAL": "ads",
    "ORGANIC_SEARCH": "form",
    "SOCIAL_MEDIA": "form",
    "REFERRALS": "form",
    "EMAIL_MARKETING": "form",
    "OTHER_CAMPAIGNS": "form",
    "DIRECT_TRAFFIC": "form",
    "AI_REFERRALS": "form",
}
MARKETABLE_STATUS = {"true": "marketing", "false": "non_marketing"}

# The push of marketing decisions. HubSpot does not let the API write `hs_marketable_status`
# (docs/hubspot-api.md, "Marketing contact status"): leadflow writes this custom enumeration
# property instead, and a HubSpot workflow ("Set marketing contact status") acts on it.
MARKETING_REQUEST_PROPERTY = "leadflow_marketing_request"
REQUEST_MARKETING = "marketing"
REQUEST_NON_MARKETING_AT_RENEWAL = "non_marketing_at_renewal"
LIFECYCLE_PROPERTY = "lifecyclestage"


def _get(contact: Any, key: str) -> Any:
    return contact.get(key) if isinstance(contact, Mapping) else getattr(contact, key, None)


def _properties(contact: Any) -> Mapping[str, Any]:
    return _get(contact, "properties") or {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def to_utc_iso(value: Any) -> str | None:
    """A HubSpot datetime (ISO-8601 with Z, or epoch milliseconds) as ISO-8601 UTC, ms precision."""
    text = _text(value)
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        moment = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")


def creation_source(properties: Mapping[str, Any]) -> tuple[str, str | None]:
    """leadflow's creation source and integration name for a contact's HubSpot properties.

    The record source says how the record was created, which is what leadflow means by creation
    source; the original (traffic) source is the fallback; anything unknown counts as an import,
    as a contacts file without a source does.
    """
    record = (_text(properties.get("hs_object_source")) or "").upper()
    source = RECORD_SOURCE_MAP.get(record)
    if source is None:
        analytics = (_text(properties.get("hs_analytics_source")) or "").upper()
        if analytics == "OFFLINE":
            drill_down = (_text(properties.get("hs_analytics_source_data_1")) or "").upper()
            source = RECORD_SOURCE_MAP.get(drill_down)
        else:
            source = ANALYTICS_SOURCE_MAP.get(analytics)
    source = source or domain.DEFAULT_RECORD_CREATION_SOURCE
    integration = None
    if source == "integration":
        integration = _text(properties.get("hs_object_source_detail_1")) or _text(
            properties.get("hs_object_source_label")
        )
    return source, integration


def snake_case(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()).strip("_")


def contact_rows(
    contacts: Iterable[Any],
    *,
    extra_properties: Sequence[str] = (),
    value_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with leadflow's contact columns, and the column names, for HubSpot contact objects.

    `contacts` are search results (dicts with `id` and `properties`, or client `Contact`s).
    `extra_properties` are further HubSpot property names, kept under their snake_case names.
    `value_maps` translate enumeration values per HubSpot property (e.g. a portal's custom
    lifecycle stage ids to leadflow stages, or `hs_persona` values to persona names); a value
    missing from its map is kept as it is. An empty email stays None: HubSpot has contacts
    without one.
    """
    value_maps = value_maps or {}
    extra = {name: snake_case(name) for name in extra_properties if name not in PROPERTY_COLUMNS}
    columns = [*IDENTITY_COLUMNS, *PROPERTY_COLUMNS.values(), *extra.values()]

    def value(properties: Mapping[str, Any], name: str) -> str | None:
        raw = _text(properties.get(name))
        return value_maps.get(name, {}).get(raw, raw) if raw is not None else None

    rows = []
    for contact in contacts:
        properties = _properties(contact)
        email = _text(properties.get("email"))
        source, integration = creation_source(properties)
        status = _text(properties.get("hs_marketable_status"))
        row: dict[str, Any] = {
            "email": email.lower() if email else None,
            "hubspot_record_id": str(_get(contact, "id") or properties.get("hs_object_id")),
            "created_at": to_utc_iso(properties.get("createdate") or _get(contact, "createdAt")),
            "updated_at": to_utc_iso(
                properties.get("lastmodifieddate") or _get(contact, "updatedAt")
            ),
            "creation_source": source,
            "integration": integration,
            "initial_stage": value(properties, "lifecyclestage"),
            "initial_marketing_status": MARKETABLE_STATUS.get((status or "").lower()),
        }
        for name, column in [*PROPERTY_COLUMNS.items(), *extra.items()]:
            row[column] = value(properties, name)
        rows.append(row)
    return rows, columns


# --- the push: leadflow values -> HubSpot batch update inputs --------------------------------


def hubspot_value(value: Any) -> str:
    """A property value as HubSpot takes it: strings; "" clears; booleans are "true"/"false"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "f").rstrip("0").rstrip(".") if value == value else ""
    return str(value)


def contact_update(record_id: Any, properties: Mapping[str, Any]) -> dict[str, Any]:
    """One batch update input: `{"id": ..., "properties": {...}}`, values as HubSpot strings."""
    if not properties:
        raise ValueError(f"contact {record_id}: an update needs at least one property")
    return {
        "id": str(record_id),
        "properties": {k: hubspot_value(v) for k, v in properties.items()},
    }


def merge_updates(*updates: Mapping[str, Any]) -> dict[str, Any]:
    """Several updates of one record as one input (later properties win)."""
    ids = {update["id"] for update in updates}
    if len(ids) != 1:
        raise ValueError(f"merge_updates takes updates of one record, got {sorted(ids)}")
    merged: dict[str, str] = {}
    for update in updates:
        merged.update(update["properties"])
    return {"id": ids.pop(), "properties": merged}


def score_update(
    record_id: Any,
    value: float,
    band: str | None = None,
    *,
    score_property: str,
    band_property: str | None = None,
    decimals: int = 2,
) -> dict[str, Any]:
    """A score (and its band) written into the portal's configured custom properties."""
    properties: dict[str, Any] = {score_property: round(float(value), decimals)}
    if band_property is not None:
        properties[band_property] = band
    return contact_update(record_id, properties)


def stage_moves_backward(current: str | None, new: str) -> bool:
    """True when HubSpot would not take `new` directly: a move back in the stage order.

    HubSpot moves lifecycle stages forward only; going back needs the value cleared first
    (docs/hubspot-api.md, "Lifecycle stage"). Stages outside the order (other, custom) count as
    not comparable, so the move is made through a clear to be safe.
    """
    if not current or current == new:
        return False
    order = domain.STAGES
    if current in order and new in order:
        return order.index(new) < order.index(current)
    return True


def lifecycle_stage_updates(
    record_id: Any, stage: str, *, current: str | None = None
) -> list[dict[str, Any]]:
    """The update(s) that put a contact at `stage` (an internal lifecycle value).

    Two inputs when the move goes back: clear, then set. They must go in two separate batch
    requests, in that order: HubSpot does not promise to apply one batch's inputs in order.
    """
    if not stage:
        raise ValueError("a lifecycle stage is required (use lifecycle_stage_clear to clear it)")
    set_stage = contact_update(record_id, {LIFECYCLE_PROPERTY: stage})
    if stage_moves_backward(current, stage):
        return [lifecycle_stage_clear(record_id), set_stage]
    return [set_stage]


def lifecycle_stage_clear(record_id: Any) -> dict[str, Any]:
    return contact_update(record_id, {LIFECYCLE_PROPERTY: ""})


def marketing_update(
    record_id: Any, *, request_property: str = MARKETING_REQUEST_PROPERTY
) -> dict[str, Any]:
    """Ask HubSpot to make the contact a marketing contact now (billed from now on)."""
    return contact_update(record_id, {request_property: REQUEST_MARKETING})


def non_marketing_at_renewal_update(
    record_id: Any, scheduled: bool = True, *, request_property: str = MARKETING_REQUEST_PROPERTY
) -> dict[str, Any]:
    """Set (scheduled) or clear the "non-marketing at the next update" marker.

    Set: the contact stays marketing, and billed, until the renewal; HubSpot shows it as
    `hs_marketable_until_renewal` = true. Cleared: the contact is asked to be marketing again,
    which is how HubSpot cancels a pending demotion (the contact is marketing until then anyway).
    """
    value = REQUEST_NON_MARKETING_AT_RENEWAL if scheduled else REQUEST_MARKETING
    return contact_update(record_id, {request_property: value})


# --- marketing email events -> leadflow events -------------------------------------------------

EVENT_SOURCE = "hubspot_email"
EVENT_TYPES = {
    "SENT": "email_sent",
    "DELIVERED": "email_delivered",
    "OPEN": "email_open",
    "CLICK": "email_click",
    "BOUNCE": "email_bounce",
    "SPAMREPORT": "email_spam_report",
}


def _is_unsubscribe(event: Mapping[str, Any]) -> bool:
    if str(event.get("portalSubscriptionStatus", "")).upper() == "UNSUBSCRIBED":
        return True
    subscriptions = event.get("subscriptions") or []
    return any(str(s.get("status", "")).upper() == "UNSUBSCRIBED" for s in subscriptions)


def email_event_rows(events: Iterable[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """leadflow event rows (domain.EVENT_COLUMNS) for Email Events API events.

    Kept: SENT, DELIVERED, OPEN, CLICK, BOUNCE (HubSpot's BOUNCE is the hard bounce: no further
    delivery attempt; a DEFERRED is a soft one and is dropped, as the rest: PROCESSED, DROPPED,
    PRINT, FORWARD, SUGGESTION, UNBOUNCE), SPAMREPORT, and STATUSCHANGE when it unsubscribes.
    Events may be given as dicts or as client `EmailEvent`s (their `raw` dict is read).
    """
    rows = []
    for item in events:
        event: Mapping[str, Any] = item if isinstance(item, Mapping) else item.raw
        kind = str(event.get("type", "")).upper()
        if kind == "STATUSCHANGE" and _is_unsubscribe(event):
            event_type = "email_unsubscribe"
        else:
            event_type = EVENT_TYPES.get(kind)
        recipient = _text(event.get("recipient"))
        if event_type is None or recipient is None:
            continue
        properties: dict[str, Any] = {}
        if event_type == "email_bounce":
            properties["bounce_type"] = "hard"
            if event.get("category"):
                properties["category"] = event["category"]
        if event.get("filteredEvent"):
            properties["filtered"] = True
        campaign = event.get("emailCampaignId")
        rows.append(
            {
                "event_id": str(event["id"]),
                "source": EVENT_SOURCE,
                "email": recipient.lower(),
                "type": event_type,
                "occurred_at": to_utc_iso(event.get("created")),
                "url": _text(event.get("url")) if event_type == "email_click" else None,
                "form_id": None,
                "campaign_id": str(campaign) if campaign is not None else None,
                "properties": json.dumps(properties, sort_keys=True) if properties else None,
            }
        )
    return rows, list(domain.EVENT_COLUMNS)
