"""Segment messages (one per JSON line, a JSON array, or an HTTP API `{"batch": [...]}`): track
calls named per Segment's Email spec become email events; other calls and names are ignored.

Follows Segment's "Spec: Email Events" (https://segment.com/docs/connections/spec/email/), "Spec:
Track" and "Spec: Common Fields" (https://segment.com/docs/connections/spec/common/). See
docs/formats.md.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadflow.ingest.formats.base import EventFormat, FormatOptions, first_object
from leadflow.ingest.formats.sql import (
    Fields,
    case_map,
    json_string,
    json_text,
    json_value,
    literal,
    members,
    object_text,
    one_of,
    ref,
    staged_select,
)

# Track names of Segment's Email spec -> leadflow type (matched without regard to case).
EMAIL_SPEC = {
    "Email Delivered": "email_delivered",
    "Email Opened": "email_open",
    "Email Link Clicked": "email_click",
    "Email Bounced": "email_bounce",
    "Email Marked as Spam": "email_spam_report",
    "Unsubscribed": "email_unsubscribe",
}
# Segment's calls other than track: ignored.
OTHER_CALLS = ("identify", "page", "screen", "group", "alias")
_CALLS = ("track", *OTHER_CALLS)
_ENVELOPE = ("messageId", "userId", "anonymousId", "user_id", "event", "properties", "context")


def track_types(options: FormatOptions) -> dict[str, str]:
    """Lower-cased track name -> type: the Email spec, then names equal to a valid type, then
    the configured `track_types` (the last word)."""
    names = {name.lower(): event_type for name, event_type in EMAIL_SPEC.items()}
    names.update((event_type.lower(), event_type) for event_type in sorted(options.valid_types))
    names.update(
        (name.strip().lower(), event_type) for name, event_type in options.track_types.items()
    )
    return names


@dataclass(frozen=True)
class SegmentFormat(EventFormat):
    def unwrap_object(self, document: dict) -> list[Any] | None:
        batch = document.get("batch")
        if not isinstance(batch, list):
            return None
        first = first_object(batch)
        return list(batch) if first is None or self.matches(first) else None

    def matches(self, record: Any) -> bool:
        if not isinstance(record, dict):
            return False
        call = record.get("type", record.get("action"))
        return call in _CALLS and bool(set(_ENVELOPE) & set(record))

    def mapping_sql(self, columns: Iterable[str], options: FormatOptions | None = None) -> str:
        options = options or FormatOptions()
        raw = Fields(columns)
        read = {
            # The Email spec's examples spell the call `action` and the user `user_id`.
            "call": raw.first("type", "action"),
            "event": raw.text("event"),
            "id": raw.first("messageId", "message_id"),
            "timestamp": raw.first("timestamp", "originalTimestamp"),
            "context": raw.text("context"),
            "properties": raw.text("properties"),
            "traits": raw.text("traits"),
            "user_id": raw.first("userId", "user_id"),
            "anonymous_id": raw.first("anonymousId", "anonymous_id"),
        }
        context, properties = ref("context"), ref("properties")
        derive = {
            "call_key": f"lower({ref('call')})",
            "email": (
                f"COALESCE({json_text(context, '$.traits.email')}, "
                f"{json_text(properties, '$.email')}, {json_text(ref('traits'), '$.email')})"
            ),
            "user_agent": (
                f"COALESCE({json_text(context, '$.userAgent')}, "
                f"{json_text(context, '$.user_agent')})"
            ),
            "ip": json_text(context, "$.ip"),
            "url": f"COALESCE({json_text(properties, '$.link_url')}, "
            f"{json_text(properties, '$.url')})",
            "form_id": json_text(properties, "$.form_id"),
            "campaign": json_text(properties, "$.campaign_id"),
            "bounce_kind": (
                f"COALESCE({json_text(properties, '$.bounce_type')}, "
                f"{json_text(properties, '$.bounceType')})"
            ),
            # The vendor's properties object, kept whole (anything else is kept under
            # `properties`).
            "base": (
                f"CASE WHEN {properties} IS NULL THEN '{{}}' "
                f"WHEN left({properties}, 1) = '{{' AND json_valid({properties}) THEN {properties} "
                f"ELSE '{{\"properties\":' || ({json_value(properties)}) || '}}' END"
            ),
        }
        call = ref("call_key")
        names = case_map(f"lower({ref('event')})", track_types(options))
        decide = {"mapped": f"CASE WHEN {call} = 'track' THEN {names} END"}
        ignore = {
            "ignored": (
                f"({one_of(call, OTHER_CALLS)} OR COALESCE({call} = 'track' "
                f"AND {ref('event')} IS NOT NULL AND {ref('mapped')} IS NULL, false))"
            ),
            "bounce_type": (
                f"CASE WHEN {ref('mapped')} = 'email_bounce' THEN CASE "
                f"WHEN lower({ref('bounce_kind')}) IN ('hard', 'soft') "
                f"THEN lower({ref('bounce_kind')}) ELSE {ref('bounce_kind')} END END"
            ),
            "vendor_type": f"CASE WHEN {call} = 'track' THEN {ref('event')} ELSE {ref('call')} END",
        }
        extras = object_text(
            members(
                [
                    (key, json_string(ref(key)))
                    for key in ("user_agent", "ip", "user_id", "anonymous_id")
                ]
                + [
                    ("bounce_type", json_string(ref("bounce_type"))),
                    ("vendor_type", json_string(ref("vendor_type"))),
                ]
            )
        )
        output = {
            "event_id": ref("id"),
            "source": literal(self.source),
            "email": f"lower({ref('email')})",
            "type": (
                f"CASE WHEN {ref('ignored')} THEN NULL WHEN {call} = 'track' THEN {ref('mapped')} "
                f"ELSE {ref('call')} END"
            ),
            "occurred_at": ref("timestamp"),
            "url": ref("url"),
            "form_id": ref("form_id"),
            "campaign_id": ref("campaign"),
            "properties": (
                f"CAST(json_merge_patch(CAST({ref('base')} AS JSON), CAST({extras} AS JSON)) "
                "AS VARCHAR)"
            ),
            "machine": "false",
            "vendor_type": ref("vendor_type"),
            "ignored": ref("ignored"),
        }
        return staged_select([read, derive, decide, ignore], output)


SEGMENT = SegmentFormat(name="segment", source="segment")
