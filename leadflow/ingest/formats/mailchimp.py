"""Mailchimp Marketing API email-activity reports: `{"emails": [{..., "activity": [...]}], ...}`
of GET /reports/{campaign_id}/email-activity, one record per activity (with its email's fields),
or such records one per JSON line.

Follows Mailchimp's Marketing API reference, "Email Activity Reports: List email activity"
(https://mailchimp.com/developer/marketing/api/email-activity-reports/list-email-activity/).
See docs/formats.md.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadflow.ingest.formats.base import EventFormat, FormatOptions, first_object
from leadflow.ingest.formats.sql import (
    Fields,
    case_map,
    ident,
    is_true,
    json_string,
    literal,
    members,
    object_text,
    ref,
    staged_select,
)
from leadflow.ingest.readers import ROW

# `action` (lower-cased) -> leadflow type: the three actions the report documents.
TYPES = {"open": "email_open", "click": "email_click", "bounce": "email_bounce"}
CONSUMED = ("action", "email_address", "timestamp", "url", "campaign_id", "type", "is_proxy_open")
# Keys leadflow sets in properties (a vendor field of the same name gives way).
PROPERTY_KEYS = ("bounce_type", "vendor_type")
# An email's fields that are not copied onto its activity records.
DROPPED_EMAIL_FIELDS = ("activity", "_links")


@dataclass(frozen=True)
class MailchimpFormat(EventFormat):
    def unwrap_object(self, document: dict) -> list[Any] | None:
        emails = document.get("emails")
        if not isinstance(emails, list):
            return None
        first = first_object(emails)
        if first is None:
            if not {"total_items", "campaign_id"} & set(document):
                return None
        elif not {"activity", "email_address", "email_id"} & set(first):
            return None
        records: list[Any] = []
        for email in emails:
            if not isinstance(email, dict):
                records.append(email)  # unreadable, in its place
                continue
            parent = {"campaign_id": document["campaign_id"]} if "campaign_id" in document else {}
            parent.update(
                (key, value) for key, value in email.items() if key not in DROPPED_EMAIL_FIELDS
            )
            activity = email.get("activity")
            if not isinstance(activity, list):
                records.append(parent)  # no activity list: a record without an action
                continue
            for item in activity:
                records.append({**parent, **item} if isinstance(item, dict) else item)
        return records

    def matches(self, record: Any) -> bool:
        return (
            isinstance(record, dict)
            and "action" in record
            and bool({"email_address", "email_id"} & set(record))
        )

    def mapping_sql(self, columns: Iterable[str], options: FormatOptions | None = None) -> str:
        raw = Fields(columns)
        campaign, email = raw.text("campaign_id"), raw.text("email_address")
        action, timestamp, url = raw.text("action"), raw.text("timestamp"), raw.text("url")
        identity = f"{campaign}, lower({email}), {action}, {timestamp}, {url}"
        read = {
            "action": action,
            "email": email,
            "timestamp": timestamp,
            "url": url,
            "campaign": campaign,
            "kind": raw.text("type"),
            "proxy": raw.text("is_proxy_open"),
            # Identical activities (same campaign, email, action, time and URL) are told apart by
            # their order in the export, so the same export always gives the same ids.
            "occurrence": f"row_number() OVER (PARTITION BY {identity} ORDER BY {ident(ROW)})",
            "extras": raw.members(raw.others(CONSUMED + PROPERTY_KEYS)),
        }
        derive = {"mapped": case_map(f"lower({ref('action')})", TYPES)}
        kind = ref("kind")
        bounce = {
            "bounce_type": (
                f"CASE WHEN {ref('mapped')} = 'email_bounce' THEN CASE "
                f"WHEN lower({kind}) IN ('hard', 'soft') THEN lower({kind}) ELSE {kind} END END"
            )
        }
        key = (
            f"[{ref('campaign')}, lower({ref('email')}), {ref('action')}, {ref('timestamp')}, "
            f"{ref('url')}, CAST({ref('occurrence')} AS VARCHAR)]"
        )
        output = {
            "event_id": f"md5(CAST(to_json({key}) AS VARCHAR))",
            "source": literal(self.source),
            "email": f"lower({ref('email')})",
            "type": f"COALESCE({ref('mapped')}, {ref('action')})",
            "occurred_at": ref("timestamp"),
            "url": ref("url"),
            "form_id": "NULL",
            "campaign_id": ref("campaign"),
            "properties": object_text(
                ref("extras"),
                members(
                    [
                        ("bounce_type", json_string(ref("bounce_type"))),
                        ("vendor_type", json_string(ref("action"))),
                    ]
                ),
            ),
            "machine": is_true(ref("proxy")),
            "vendor_type": ref("action"),
            "ignored": "false",
        }
        return staged_select([read, derive, bounce], output)


MAILCHIMP = MailchimpFormat(name="mailchimp", source="mailchimp")
