"""HubSpot Email Events API (v1, legacy) events: a page `{"events": [...], "hasMore": ..,
"offset": ..}` of GET /email/public/v1/events, or one event per JSON line.

Follows HubSpot's "Email Events API Overview"
(https://legacydocs.hubspot.com/docs/methods/email/email_events_overview) and "Get email events"
(https://developers.hubspot.com/docs/api-reference/legacy/email-analytics-v1/events/get-email-public-v1-events).
See docs/formats.md.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadflow.ingest.formats.base import EventFormat, FormatOptions, first_object
from leadflow.ingest.formats.sql import (
    Fields,
    case_map,
    epoch_to_iso,
    is_true,
    json_kind,
    json_string,
    literal,
    members,
    object_text,
    one_of,
    ref,
    staged_select,
)

# `type` (upper-cased) -> leadflow type. STATUSCHANGE is an unsubscribe only when it unsubscribes.
TYPES = {
    "SENT": "email_sent",
    "DELIVERED": "email_delivered",
    "OPEN": "email_open",
    "CLICK": "email_click",
    "BOUNCE": "email_bounce",
    "SPAMREPORT": "email_spam_report",
}
# Documented events leadflow does not model (and a STATUSCHANGE that unsubscribes from nothing).
IGNORED = ("PROCESSED", "DROPPED", "DEFERRED", "PRINT", "FORWARD", "UNBOUNCE")
# Bounce categories that name a temporary failure: a soft bounce.
SOFT_CATEGORIES = ("MAILBOX_FULL", "GREYLISTING", "TIMEOUT", "THROTTLED", "TEMPORARY_PROBLEM")
HARD_CATEGORIES = ("UNKNOWN_USER",)
CONSUMED = (
    "id",
    "created",
    "type",
    "recipient",
    "emailCampaignId",
    "url",
    "filteredEvent",
    "userAgent",
    "category",
)
# Keys leadflow sets in properties (a vendor field of the same name gives way).
PROPERTY_KEYS = ("user_agent", "bounce_category", "bounce_type", "vendor_type")


@dataclass(frozen=True)
class HubSpotEmailEventsFormat(EventFormat):
    def unwrap_object(self, document: dict) -> list[Any] | None:
        events = document.get("events")
        if not isinstance(events, list) or not {"hasMore", "offset"} & set(document):
            return None
        first = first_object(events)
        return list(events) if first is None or self.matches(first) else None

    def matches(self, record: Any) -> bool:
        if not isinstance(record, dict) or not {"id", "created"} <= set(record):
            return False
        return bool({"recipient", "emailCampaignId", "portalId", "sentBy"} & set(record))

    def mapping_sql(self, columns: Iterable[str], options: FormatOptions | None = None) -> str:
        raw = Fields(columns)
        read = {
            "type": raw.text("type"),
            "id": raw.text("id"),
            "created": raw.text("created"),
            "recipient": raw.text("recipient"),
            "campaign": raw.text("emailCampaignId"),
            "url": raw.text("url"),
            "filtered": raw.text("filteredEvent"),
            "user_agent": raw.text("userAgent"),
            "category": raw.text("category"),
            "status": raw.text("status"),
            "portal_status": raw.text("portalSubscriptionStatus"),
            "subscriptions": raw.text("subscriptions"),
            "extras": raw.members(raw.others(CONSUMED + PROPERTY_KEYS)),
        }
        subscriptions = ref("subscriptions")
        derive = {
            "key": f"upper({ref('type')})",
            "unsubscribes": (
                f"COALESCE(upper({ref('portal_status')}) = 'UNSUBSCRIBED', false) OR COALESCE("
                f"CASE WHEN {json_kind(subscriptions)} = 'ARRAY' "
                f"THEN list_contains(list_transform(json_extract_string({subscriptions}, "
                "'$[*].status'), lambda s: upper(s)), 'UNSUBSCRIBED') END, false)"
            ),
        }
        key = ref("key")
        decide = {
            "mapped": (
                f"CASE WHEN {key} = 'STATUSCHANGE' THEN CASE WHEN {ref('unsubscribes')} "
                f"THEN 'email_unsubscribe' END ELSE {case_map(key, TYPES)} END"
            ),
            "ignored": (
                f"({one_of(key, IGNORED)} OR "
                f"COALESCE({key} = 'STATUSCHANGE' AND NOT {ref('unsubscribes')}, false))"
            ),
        }
        category, status = f"upper({ref('category')})", ref("status")
        bounce = {
            "bounce_type": (
                f"CASE WHEN {ref('mapped')} = 'email_bounce' THEN CASE "
                f"WHEN {one_of(category, SOFT_CATEGORIES)} THEN 'soft' "
                f"WHEN {one_of(category, HARD_CATEGORIES)} THEN 'hard' "
                f"WHEN {status} LIKE '4%' THEN 'soft' WHEN {status} LIKE '5%' THEN 'hard' "
                "ELSE 'hard' END END"
            )
        }
        properties = object_text(
            ref("extras"),
            members(
                [
                    ("user_agent", json_string(ref("user_agent"))),
                    ("bounce_category", json_string(ref("category"))),
                    ("bounce_type", json_string(ref("bounce_type"))),
                    ("vendor_type", json_string(ref("type"))),
                ]
            ),
        )
        identifier, created = ref("id"), ref("created")
        output = {
            # HubSpot's EventId is the pair (id, created).
            "event_id": (
                f"CASE WHEN {identifier} IS NULL OR {created} IS NULL THEN {identifier} "
                f"ELSE {identifier} || ':' || {created} END"
            ),
            "source": literal(self.source),
            "email": f"lower({ref('recipient')})",
            "type": (
                f"CASE WHEN {ref('ignored')} THEN NULL "
                f"ELSE COALESCE({ref('mapped')}, {ref('type')}) END"
            ),
            "occurred_at": epoch_to_iso(created, "milliseconds"),
            "url": ref("url"),
            "form_id": "NULL",
            "campaign_id": ref("campaign"),
            "properties": properties,
            "machine": is_true(ref("filtered")),
            "vendor_type": ref("type"),
            "ignored": ref("ignored"),
        }
        return staged_select([read, derive, decide, bounce], output)


HUBSPOT_EMAIL_EVENTS = HubSpotEmailEventsFormat(name="hubspot-email-events", source="hubspot")
