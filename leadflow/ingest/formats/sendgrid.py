"""SendGrid Event Webhook events (a JSON array as posted, or one event per JSON line).

Follows the Twilio SendGrid "Event Webhook Reference"
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event) and "Understanding
Apple Mail Privacy Protection and Open Events" for `sg_machine_open`. See docs/formats.md.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadflow.ingest.formats.base import EventFormat, FormatOptions
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

# `event` (lower-cased) -> leadflow type.
TYPES = {
    "delivered": "email_delivered",
    "open": "email_open",
    "click": "email_click",
    "bounce": "email_bounce",
    "spamreport": "email_spam_report",
    "unsubscribe": "email_unsubscribe",
    # An unsubscribe from one unsubscribe group (asm_group_id in properties).
    "group_unsubscribe": "email_unsubscribe",
}
# Documented events leadflow does not model: counted as ignored.
IGNORED = ("processed", "deferred", "dropped", "group_resubscribe", "account_status_change")
# Keys that become event columns (or properties under leadflow's names).
CONSUMED = (
    "email",
    "timestamp",
    "event",
    "sg_event_id",
    "url",
    "sg_machine_open",
    "type",
    "useragent",
    "sg_message_id",
    "category",
)
# Keys leadflow sets in properties (a vendor field of the same name gives way).
PROPERTY_KEYS = (
    "user_agent",
    "message_id",
    "categories",
    "bounce_kind",
    "bounce_type",
    "vendor_type",
)
_SEGMENT_CALLS = ("track", "identify", "page", "screen", "group", "alias")


@dataclass(frozen=True)
class SendGridFormat(EventFormat):
    def matches(self, record: Any) -> bool:
        if not isinstance(record, dict) or not isinstance(record.get("event"), str):
            return False
        if record.get("type") in _SEGMENT_CALLS or "messageId" in record:
            return False
        return "sg_event_id" in record or ("email" in record and "timestamp" in record)

    def mapping_sql(self, columns: Iterable[str], options: FormatOptions | None = None) -> str:
        raw = Fields(columns)
        read = {
            "event": raw.text("event"),
            "email": raw.text("email"),
            "timestamp": raw.text("timestamp"),
            "id": raw.text("sg_event_id"),
            "url": raw.text("url"),
            "machine": raw.text("sg_machine_open"),
            "kind": raw.text("type"),
            "status": raw.text("status"),
            "classification": raw.text("bounce_classification"),
            "campaign": raw.first("marketing_campaign_id", "singlesend_id"),
            "category": raw.text("category"),
            "user_agent": raw.text("useragent"),
            "message_id": raw.text("sg_message_id"),
            "extras": raw.members(raw.others(CONSUMED + PROPERTY_KEYS)),
        }
        category = ref("category")
        category_is_array = f"COALESCE({json_kind(category)} = 'ARRAY', false)"  # else one
        derive = {
            "key": f"lower({ref('event')})",
            "categories": (
                f"CASE WHEN {category} IS NULL THEN NULL WHEN {category_is_array} "
                f"THEN {category} ELSE '[' || {json_string(category)} || ']' END"
            ),
            "single_category": (
                f"CASE WHEN {category} IS NULL THEN NULL WHEN NOT {category_is_array} "
                f"THEN {category} WHEN json_array_length({category}) = 1 "
                f"THEN json_extract_string({category}, '$[0]') END"
            ),
        }
        decide = {
            "mapped": case_map(ref("key"), TYPES),
            "ignored": one_of(ref("key"), IGNORED),
        }
        kind, status = f"lower({ref('kind')})", ref("status")
        bounce = {
            "bounce_type": (
                f"CASE WHEN {ref('mapped')} = 'email_bounce' THEN CASE "
                f"WHEN {kind} = 'bounce' THEN 'hard' WHEN {kind} = 'blocked' THEN 'soft' "
                f"WHEN {status} LIKE '5%' THEN 'hard' WHEN {status} LIKE '4%' THEN 'soft' "
                f"WHEN lower({ref('classification')}) = 'invalid address' THEN 'hard' "
                f"WHEN {ref('classification')} IS NOT NULL THEN 'soft' "
                "ELSE 'hard' END END"
            )
        }
        properties = object_text(
            ref("extras"),
            members(
                [
                    ("user_agent", json_string(ref("user_agent"))),
                    ("message_id", json_string(ref("message_id"))),
                    ("categories", ref("categories")),
                    ("bounce_kind", json_string(ref("kind"))),
                    ("bounce_type", json_string(ref("bounce_type"))),
                    ("vendor_type", json_string(ref("event"))),
                ]
            ),
        )
        output = {
            "event_id": ref("id"),
            "source": literal(self.source),
            "email": f"lower({ref('email')})",
            "type": (
                f"CASE WHEN {ref('ignored')} THEN NULL "
                f"ELSE COALESCE({ref('mapped')}, {ref('event')}) END"
            ),
            "occurred_at": epoch_to_iso(ref("timestamp"), "auto"),
            "url": ref("url"),
            "form_id": "NULL",
            "campaign_id": f"COALESCE({ref('campaign')}, {ref('single_category')})",
            "properties": properties,
            "machine": is_true(ref("machine")),
            "vendor_type": ref("event"),
            "ignored": ref("ignored"),
        }
        return staged_select([read, derive, decide, bounce], output)


SENDGRID = SendGridFormat(name="sendgrid", source="sendgrid")

__all__ = ["IGNORED", "SENDGRID", "TYPES", "SendGridFormat"]
