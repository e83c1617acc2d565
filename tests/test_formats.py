"""Vendor event formats, run through DuckDB for real on payloads written from the vendors' docs.

The expectations here are read from the vendors' documentation (the tables below) and from the
payload records themselves, not from the mapping's own tables.
"""

import json
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from leadflow.domain import EVENT_COLUMNS
from leadflow.ingest.formats import (
    FORMATS,
    OUTPUT_COLUMNS,
    FormatError,
    FormatOptions,
    detect,
    ident,
    literal,
)
from leadflow.ingest.load import EVENT_CHECKS_SQL
from leadflow.ingest.sources import Source, normalise_events_sql

VENDORS = Path(__file__).parent / "data" / "vendors"
SENDGRID = FORMATS["sendgrid"]
HUBSPOT = FORMATS["hubspot-email-events"]
MAILCHIMP = FORMATS["mailchimp"]
SEGMENT = FORMATS["segment"]
IGNORED = "(ignored)"

# What each vendor's documentation says its event types are, and leadflow's reading of them.
SENDGRID_TYPES = {
    "processed": IGNORED,
    "deferred": IGNORED,
    "delivered": "email_delivered",
    "open": "email_open",
    "click": "email_click",
    "bounce": "email_bounce",
    "dropped": IGNORED,
    "spamreport": "email_spam_report",
    "unsubscribe": "email_unsubscribe",
    "group_unsubscribe": "email_unsubscribe",
    "group_resubscribe": IGNORED,
}
HUBSPOT_TYPES = {
    "SENT": "email_sent",
    "PROCESSED": IGNORED,
    "DEFERRED": IGNORED,
    "DROPPED": IGNORED,
    "DELIVERED": "email_delivered",
    "OPEN": "email_open",
    "CLICK": "email_click",
    "BOUNCE": "email_bounce",
    "SPAMREPORT": "email_spam_report",
    "PRINT": IGNORED,
    "FORWARD": IGNORED,
    "UNBOUNCE": IGNORED,
    # STATUSCHANGE: an unsubscribe when it unsubscribes, else ignored (see the test).
}
MAILCHIMP_TYPES = {"open": "email_open", "click": "email_click", "bounce": "email_bounce"}
SEGMENT_EMAIL_SPEC = {
    "Email Delivered": "email_delivered",
    "Email Opened": "email_open",
    "Email Link Clicked": "email_click",
    "Email Bounced": "email_bounce",
    "Email Marked as Spam": "email_spam_report",
    "Unsubscribed": "email_unsubscribe",
}


# --- payloads and `raw` ------------------------------------------------------------------------


def payload_text(name: str) -> str:
    return (VENDORS / name).read_text(encoding="utf-8")


def document(name: str):
    return json.loads(payload_text(name))


def json_lines(name: str) -> list:
    return [json.loads(line) for line in payload_text(name).splitlines() if line.strip()]


def as_text(value: object) -> str | None:
    """A JSON value as `raw` holds it: objects and arrays as JSON text, booleans as true/false."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def raw_table(records: list) -> pa.Table:
    """Records as `raw`: a text column per top-level key (in first-seen order) and `_row`, the
    1-based record number; a record that is not an object is left out, as the reader does."""
    numbered = [(number, r) for number, r in enumerate(records, 1) if isinstance(r, dict)]
    names = list(dict.fromkeys(key for _, record in numbered for key in record))
    columns = {
        name: pa.array([as_text(record.get(name)) for _, record in numbered], pa.string())
        for name in names
    }
    table = pa.table(columns) if columns else pa.table({})
    rows = pa.array([number for number, _ in numbered], pa.int64())
    return table.append_column("_row", rows)


def connect(timezone: str = "UTC") -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(f"SET TimeZone = {literal(timezone)}")
    return connection


def run(fmt, records: list, options: FormatOptions | None = None, timezone: str = "UTC") -> list:
    table = raw_table(records)
    columns = set(table.column_names) - {"_row"}
    connection = connect(timezone)
    connection.register("raw", table)
    rows = connection.sql(fmt.mapping_sql(columns, options)).to_arrow_table().to_pylist()
    connection.close()
    return rows


def by_row(records: list, rows: list) -> list[tuple[dict, dict]]:
    """(record, mapped row) pairs, matched by record number."""
    mapped = {row["_row"]: row for row in rows}
    assert len(mapped) == len(rows)
    return [(record, mapped[number]) for number, record in enumerate(records, 1)]


def unique_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"repeated keys in properties: {keys}"
    return dict(pairs)


def props(row: dict) -> dict:
    value = json.loads(row["properties"], object_pairs_hook=unique_keys)
    assert isinstance(value, dict)
    return value


def same_second(iso_text: str, expected: datetime) -> bool:
    parsed = datetime.fromisoformat(iso_text)
    return parsed.utcoffset().total_seconds() == 0 and (
        parsed.replace(microsecond=0) == expected.replace(microsecond=0)
    )


def ignored_counts(rows: list) -> Counter:
    return Counter(row["vendor_type"] for row in rows if row["ignored"])


def check_types(pairs, vendor_type_of, expected_types) -> None:
    for record, row in pairs:
        vendor_type = vendor_type_of(record)
        assert row["vendor_type"] == vendor_type
        expected = expected_types[vendor_type]
        if expected == IGNORED:
            assert row["ignored"] is True and row["type"] is None, record
        else:
            assert row["ignored"] is False and row["type"] == expected, record


# --- SendGrid ------------------------------------------------------------------------------------


def sendgrid_records() -> list:
    return document("sendgrid_events.json")


def test_sendgrid_payload_covers_every_documented_event():
    assert set(SENDGRID_TYPES) <= {record["event"] for record in sendgrid_records()}


def test_sendgrid_every_documented_type_maps_as_documented():
    records = sendgrid_records()
    check_types(by_row(records, run(SENDGRID, records)), lambda r: r["event"], SENDGRID_TYPES)


def test_sendgrid_array_and_json_lines_map_alike():
    assert run(SENDGRID, json_lines("sendgrid_events.jsonl")) == run(SENDGRID, sendgrid_records())


def test_sendgrid_ids_emails_and_times():
    records = sendgrid_records()
    for record, row in by_row(records, run(SENDGRID, records)):
        assert row["source"] == "sendgrid"
        assert row["event_id"] == record["sg_event_id"]
        assert row["email"] == record["email"].lower()
        stamp = record["timestamp"]
        # Seconds, as documented; the Single Send example carries milliseconds.
        seconds = stamp / 1000 if record.get("mc_stats") == "singlesend" else stamp
        assert same_second(row["occurred_at"], datetime.fromtimestamp(seconds, UTC)), record
    assert any(r["email"] != r["email"].lower() for r in records)


def test_sendgrid_times_ignore_the_session_time_zone():
    records = sendgrid_records()
    assert run(SENDGRID, records, timezone="Asia/Kathmandu") == run(SENDGRID, records)


def test_sendgrid_bounce_kind_and_machine_flag():
    records = sendgrid_records()
    kinds = {"bounce": "hard", "blocked": "soft"}  # the `type` of a bounce event, as documented
    bounces = 0
    for record, row in by_row(records, run(SENDGRID, records)):
        assert row["machine"] is (record.get("sg_machine_open") is True)
        if record["event"] == "bounce":
            bounces += 1
            assert props(row)["bounce_type"] == kinds[record["type"]]
            assert props(row)["bounce_classification"] == record["bounce_classification"]
        else:
            assert "bounce_type" not in props(row)
    assert bounces == 2
    assert any(r.get("sg_machine_open") is True for r in records)


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"status": "5.1.1"}, "hard"),
        ({"status": "4.2.2"}, "soft"),
        ({"bounce_classification": "Invalid Address"}, "hard"),
        ({"bounce_classification": "Mailbox Unavailable"}, "soft"),
        ({"type": "blocked", "status": "5.0.0"}, "soft"),
        ({}, "hard"),
    ],
)
def test_sendgrid_bounce_kind_without_a_type(fields, kind):
    record = {"email": "a@b.co", "timestamp": 1, "event": "bounce", "sg_event_id": "x", **fields}
    assert props(run(SENDGRID, [record])[0])["bounce_type"] == kind


def test_sendgrid_ignored_counts_per_vendor_type():
    records = sendgrid_records()
    expected = Counter(r["event"] for r in records if SENDGRID_TYPES[r["event"]] == IGNORED)
    assert ignored_counts(run(SENDGRID, records)) == expected
    assert sum(expected.values()) >= 4


def test_sendgrid_campaign_properties_and_custom_arguments():
    records = sendgrid_records()
    for record, row in by_row(records, run(SENDGRID, records)):
        extras = props(row)
        category = record.get("category")
        campaign = record.get("marketing_campaign_id") or record.get("singlesend_id")
        if campaign is None and isinstance(category, str):
            campaign = category
        assert row["campaign_id"] == (None if campaign is None else str(campaign))
        assert extras["categories"] == (category if isinstance(category, list) else [category])
        assert extras["message_id"] == record["sg_message_id"]
        assert extras["vendor_type"] == record["event"]
        assert extras.get("user_agent") == record.get("useragent")
        assert row["url"] == record.get("url")
        for key in ("userid", "template", "marketing_campaign_name", "asm_group_id", "reason"):
            if key in record:
                assert extras[key] == str(record[key])
        if "pool" in record:
            assert extras["pool"] == record["pool"]
    assert any("userid" in r for r in records)


def test_a_vendor_field_named_like_a_leadflow_key_gives_way():
    record = {
        "email": "a@b.co",
        "timestamp": 1,
        "event": "bounce",
        "sg_event_id": "x",
        "type": "blocked",
        "bounce_type": "not this",
        "vendor_type": "nor this",
        "kept": "yes",
    }
    extras = props(run(SENDGRID, [record])[0])
    assert (extras["bounce_type"], extras["vendor_type"], extras["kept"]) == (
        "soft",
        "bounce",
        "yes",
    )


def test_sendgrid_unknown_event_is_passed_through():
    record = {"email": "a@b.co", "timestamp": 1, "event": "machine_open", "sg_event_id": "x"}
    row = run(SENDGRID, [record])[0]
    assert (row["type"], row["ignored"], row["vendor_type"]) == (
        "machine_open",
        False,
        "machine_open",
    )


# --- HubSpot -------------------------------------------------------------------------------------


def hubspot_records() -> list:
    return HUBSPOT.unwrap(document("hubspot_email_events.json"))


def test_hubspot_page_is_unwrapped_to_its_events():
    page = document("hubspot_email_events.json")
    assert {"events", "hasMore", "offset"} <= set(page)
    assert hubspot_records() == page["events"]


def test_hubspot_every_documented_type_maps_as_documented():
    records = hubspot_records()
    assert set(HUBSPOT_TYPES) | {"STATUSCHANGE"} == {record["type"] for record in records}
    pairs = [
        pair for pair in by_row(records, run(HUBSPOT, records)) if pair[0]["type"] in HUBSPOT_TYPES
    ]
    check_types(pairs, lambda r: r["type"], HUBSPOT_TYPES)


def test_hubspot_status_change_is_an_unsubscribe_only_when_it_unsubscribes():
    records = hubspot_records()
    changes = [
        (r, row) for r, row in by_row(records, run(HUBSPOT, records)) if r["type"] == "STATUSCHANGE"
    ]
    assert len(changes) == 2
    for record, row in changes:
        if record["portalSubscriptionStatus"] == "UNSUBSCRIBED":
            assert (row["type"], row["ignored"]) == ("email_unsubscribe", False)
            assert props(row)["subscriptions"] == record["subscriptions"]
        else:
            assert (row["type"], row["ignored"]) == (None, True)


def test_hubspot_ids_emails_times_campaigns_and_machine_flag():
    records = hubspot_records()
    for record, row in by_row(records, run(HUBSPOT, records)):
        assert row["source"] == "hubspot"
        assert row["event_id"] == f"{record['id']}:{record['created']}"  # the EventId pair
        assert row["email"] == record["recipient"].lower()
        expected = datetime.fromtimestamp(record["created"] / 1000, UTC)  # milliseconds
        assert same_second(row["occurred_at"], expected), record
        assert row["campaign_id"] == (
            str(record["emailCampaignId"]) if "emailCampaignId" in record else None
        )
        assert row["machine"] is (record.get("filteredEvent") is True)
        assert row["url"] == record.get("url")
        assert props(row).get("user_agent") == record.get("userAgent")
    assert any(r.get("filteredEvent") is True for r in records)
    assert any(r["created"] % 1000 for r in records)  # a time with milliseconds


def test_hubspot_bounce_kinds():
    # HubSpot's bounce categories: UNKNOWN_USER is a recipient that does not exist (permanent),
    # MAILBOX_FULL a full mailbox (temporary).
    kinds = {"UNKNOWN_USER": "hard", "MAILBOX_FULL": "soft"}
    records = hubspot_records()
    bounces = [
        (r, row) for r, row in by_row(records, run(HUBSPOT, records)) if r["type"] == "BOUNCE"
    ]
    assert {r["category"] for r, _ in bounces} == set(kinds)
    for record, row in bounces:
        assert props(row)["bounce_type"] == kinds[record["category"]]
        assert props(row)["bounce_category"] == record["category"]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"category": "MAILBOX_FULL", "status": "552"}, "soft"),  # the category names it temporary
        ({"category": "UNKNOWN_USER", "status": "450"}, "hard"),  # ... or permanent
        ({"category": "POLICY", "status": "554"}, "hard"),  # else the SMTP status decides
        ({"category": "POLICY", "status": "421"}, "soft"),
        ({"category": "SPAM"}, "hard"),  # else a BOUNCE is final (no further attempts)
    ],
)
def test_hubspot_bounce_kind_from_category_then_status(fields, kind):
    record = {
        "id": "b1",
        "created": 1433354405000,
        "type": "BOUNCE",
        "recipient": "a@b.co",
        **fields,
    }
    assert props(run(HUBSPOT, [record])[0])["bounce_type"] == kind


@pytest.mark.parametrize(
    ("portal", "subscriptions", "unsubscribes"),
    [
        ("UNSUBSCRIBED", [], True),  # from all email
        ("SUBSCRIBED", [{"id": 1, "status": "UNSUBSCRIBED"}], True),  # from one subscription type
        ("SUBSCRIBED", [{"id": 1, "status": "SUBSCRIBED"}], False),
        (None, None, False),
    ],
)
def test_hubspot_status_change_unsubscribes_from_all_or_from_a_type(
    portal, subscriptions, unsubscribes
):
    record = {"id": "s1", "created": 1433354800000, "type": "STATUSCHANGE", "recipient": "a@b.co"}
    if portal is not None:
        record.update(portalSubscriptionStatus=portal, subscriptions=subscriptions)
    row = run(HUBSPOT, [record])[0]
    expected = ("email_unsubscribe", False) if unsubscribes else (None, True)
    assert (row["type"], row["ignored"]) == expected


def test_hubspot_ignored_counts_per_vendor_type():
    records = hubspot_records()
    expected = Counter(r["type"] for r in records if HUBSPOT_TYPES.get(r["type"]) == IGNORED)
    expected.update(
        r["type"]
        for r in records
        if r["type"] == "STATUSCHANGE" and r["portalSubscriptionStatus"] != "UNSUBSCRIBED"
    )
    assert ignored_counts(run(HUBSPOT, records)) == expected


def test_hubspot_non_numeric_created_is_passed_through():
    records = [{"id": "e1", "created": "2015-06-03", "type": "OPEN", "recipient": "a@b.co"}]
    assert run(HUBSPOT, records)[0]["occurred_at"] == "2015-06-03"


# --- Mailchimp -----------------------------------------------------------------------------------


def mailchimp_records() -> list:
    return MAILCHIMP.unwrap(document("mailchimp_email_activity.json"))


def test_mailchimp_report_is_one_record_per_activity_with_its_email():
    report = document("mailchimp_email_activity.json")
    records = mailchimp_records()
    assert len(records) == sum(len(email["activity"]) for email in report["emails"])
    flat = iter(records)
    for email in report["emails"]:
        for activity in email["activity"]:
            record = next(flat)
            assert record["email_address"] == email["email_address"]
            assert record["campaign_id"] == email["campaign_id"]
            assert {k: record[k] for k in activity} == activity
            assert "activity" not in record and "_links" not in record


def test_mailchimp_every_documented_action_maps_as_documented():
    records = mailchimp_records()
    assert set(MAILCHIMP_TYPES) == {r["action"] for r in records}
    check_types(by_row(records, run(MAILCHIMP, records)), lambda r: r["action"], MAILCHIMP_TYPES)


def test_mailchimp_emails_times_campaigns_and_bounce_kinds():
    records = mailchimp_records()
    for record, row in by_row(records, run(MAILCHIMP, records)):
        assert row["source"] == "mailchimp"
        assert row["email"] == record["email_address"].lower()
        assert row["occurred_at"] == record["timestamp"]
        assert row["campaign_id"] == record["campaign_id"]
        assert row["url"] == record.get("url")
        assert row["machine"] is False  # the report documents no bot or proxy flag
        assert props(row).get("bounce_type") == record.get("type")
        assert props(row)["list_id"] == record["list_id"]
    assert {r.get("type") for r in records if r["action"] == "bounce"} == {"hard", "soft"}


def test_mailchimp_ids_are_deterministic_distinct_and_survive_reordering():
    report = document("mailchimp_email_activity.json")
    rows = run(MAILCHIMP, MAILCHIMP.unwrap(report))
    ids = [row["event_id"] for row in rows]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)  # the click recorded twice at the same second too
    assert [row["event_id"] for row in run(MAILCHIMP, MAILCHIMP.unwrap(report))] == ids
    shuffled = dict(report, emails=random.Random(7).sample(report["emails"], len(report["emails"])))
    assert {row["event_id"] for row in run(MAILCHIMP, MAILCHIMP.unwrap(shuffled))} == set(ids)
    moved = MAILCHIMP.unwrap(report)
    moved[0] = dict(moved[0], timestamp="2015-09-15T19:15:48+00:00")
    assert run(MAILCHIMP, moved)[0]["event_id"] not in ids


def test_mailchimp_email_without_an_activity_list_is_kept_as_a_record():
    report = {"emails": [{"email_address": "a@b.co", "campaign_id": "c1"}], "total_items": 1}
    records = MAILCHIMP.unwrap(report)
    assert records == [{"email_address": "a@b.co", "campaign_id": "c1"}]
    row = run(MAILCHIMP, records)[0]
    assert (row["type"], row["ignored"]) == (None, False)  # quarantined as a missing type


# --- Segment -------------------------------------------------------------------------------------


def segment_records() -> list:
    return json_lines("segment_tracks.jsonl")


def call_of(record: dict) -> str:
    return record.get("type", record.get("action"))


def test_segment_email_spec_names_map_and_the_rest_is_ignored():
    records = segment_records()
    assert set(SEGMENT_EMAIL_SPEC) <= {r.get("event") for r in records}
    for record, row in by_row(records, run(SEGMENT, records)):
        if call_of(record) != "track":
            assert (row["ignored"], row["type"], row["vendor_type"]) == (True, None, record["type"])
        elif record["event"] in SEGMENT_EMAIL_SPEC:
            assert (row["ignored"], row["type"]) == (False, SEGMENT_EMAIL_SPEC[record["event"]])
            assert row["vendor_type"] == record["event"]
        else:
            assert (row["ignored"], row["type"], row["vendor_type"]) == (
                True,
                None,
                record["event"],
            )


def test_segment_ignored_counts_per_vendor_type():
    records = segment_records()
    expected = Counter(
        record["event"] if call_of(record) == "track" else call_of(record)
        for record in records
        if call_of(record) != "track" or record["event"] not in SEGMENT_EMAIL_SPEC
    )
    assert ignored_counts(run(SEGMENT, records)) == expected
    assert {"identify", "page", "Order Completed", "Trial Started"} <= set(expected)


def test_segment_track_types_add_custom_types_and_override_names():
    records = segment_records()
    options = FormatOptions(
        track_types={"Trial Started": "trial_started", "email opened": "page_view"},
        custom_types=("trial_started",),
    )
    for record, row in by_row(records, run(SEGMENT, records, options)):
        if record.get("event") == "Trial Started":
            assert (row["type"], row["ignored"]) == ("trial_started", False)
        if record.get("event") == "Email Opened":
            assert row["type"] == "page_view"
        if record.get("event") == "Order Completed":
            assert row["ignored"] is True


def test_segment_track_named_as_a_valid_type_is_that_type():
    message = {"type": "track", "messageId": "m1", "event": "trial_started", "userId": "u"}
    assert run(SEGMENT, [message])[0]["ignored"] is True
    row = run(SEGMENT, [message], FormatOptions(custom_types=("trial_started",)))[0]
    assert (row["type"], row["ignored"]) == ("trial_started", False)


def test_segment_track_types_must_name_a_valid_type():
    with pytest.raises(ValueError, match="trial_started"):
        FormatOptions(track_types={"Trial Started": "trial_started"})


def test_segment_ids_emails_times_and_properties():
    records = segment_records()
    for record, row in by_row(records, run(SEGMENT, records)):
        assert row["source"] == "segment"
        assert row["event_id"] == record.get("messageId")
        email = (
            record.get("context", {}).get("traits", {}).get("email")
            or record.get("properties", {}).get("email")
            or record.get("traits", {}).get("email")
        )
        assert row["email"] == (email.lower() if email else None)
        assert row["occurred_at"] == (record.get("timestamp") or record.get("originalTimestamp"))
        properties = record.get("properties", {})
        assert row["campaign_id"] == properties.get("campaign_id")
        assert row["url"] == properties.get("link_url", properties.get("url"))
        extras = props(row)
        for key, value in properties.items():
            if key != "bounce_type":
                assert extras[key] == value
        if "context" in record:
            assert extras["ip"] == record["context"]["ip"]
            context = record["context"]
            assert extras["user_agent"] == context.get("userAgent", context.get("user_agent"))
        assert row["machine"] is False
    assert any(r.get("action") == "track" and "messageId" not in r for r in records)


def test_segment_bounce_kind_is_read_from_properties():
    records = segment_records()
    for record, row in by_row(records, run(SEGMENT, records)):
        if record.get("event") == "Email Bounced":
            assert props(row)["bounce_type"] == record["properties"]["bounce_type"].lower()


def test_segment_batch_is_unwrapped():
    records = segment_records()
    assert SEGMENT.unwrap({"batch": records, "sentAt": "2015-12-12T19:11:01.249Z"}) == records


# --- detection -----------------------------------------------------------------------------------


def leadflow_events() -> list[dict]:
    return [
        {
            "event_id": f"e{i}",
            "source": "hubspot",
            "email": "ann@example.com",
            "type": event_type,
            "occurred_at": "2026-11-01T10:00:00+01:00",
            "url": "https://example.com/",
            "form_id": "f1",
            "campaign_id": "c1",
            "properties": '{"bounce_type": "hard"}',
        }
        for i, event_type in enumerate(
            ("email_open", "email_bounce", "page_view", "form_submission")
        )
    ]


@pytest.mark.parametrize(
    ("payload", "fmt"),
    [
        ("sendgrid_events.json", SENDGRID),
        ("hubspot_email_events.json", HUBSPOT),
        ("mailchimp_email_activity.json", MAILCHIMP),
    ],
)
def test_detect_picks_the_format_of_each_document(payload, fmt):
    assert detect(document(payload)) is fmt


@pytest.mark.parametrize(
    ("payload", "fmt"), [("sendgrid_events.jsonl", SENDGRID), ("segment_tracks.jsonl", SEGMENT)]
)
def test_detect_picks_the_format_of_every_json_line(payload, fmt):
    records = json_lines(payload)
    assert detect(records[0]) is fmt
    assert {detect(record) for record in records} == {fmt}


def test_detect_picks_the_format_of_every_unwrapped_record():
    for fmt, records in (
        (HUBSPOT, hubspot_records()),
        (MAILCHIMP, mailchimp_records()),
        (SEGMENT, SEGMENT.unwrap({"batch": segment_records()})),
    ):
        assert {detect(record) for record in records} == {fmt}
    assert detect({"batch": segment_records()}) is SEGMENT


def test_detect_finds_no_vendor_in_leadflows_own_events():
    events = leadflow_events()
    assert detect(events) is None
    assert {detect(event) for event in events} == {None}
    assert {name for name, fmt in FORMATS.items() if any(fmt.matches(e) for e in events)} == set()


@pytest.mark.parametrize("value", [[], {}, "text", 3, None, [1, 2], {"events": "no"}])
def test_detect_finds_nothing_in_what_is_no_vendor_document(value):
    assert detect(value) is None


def test_unwrap_keeps_a_non_object_element_in_its_place():
    records = sendgrid_records()[:2]
    assert SENDGRID.unwrap([records[0], 5, records[1]]) == [records[0], 5, records[1]]
    assert SENDGRID.unwrap(records[0]) == [records[0]]


# --- every format: columns, missing columns, non-numeric times, hostile input ---------------------

BASE_RECORDS = {
    "sendgrid": {"email": "a@b.co", "timestamp": 1513299569, "event": "open", "sg_event_id": "x1"},
    "hubspot-email-events": {
        "id": "x1",
        "created": 1433354520000,
        "type": "OPEN",
        "recipient": "a@b.co",
        "portalId": 1,
    },
    "mailchimp": {
        "campaign_id": "c1",
        "email_address": "a@b.co",
        "action": "open",
        "timestamp": "2015-09-15T19:15:47+00:00",
    },
    "segment": {
        "type": "track",
        "messageId": "x1",
        "timestamp": "2015-12-12T19:11:01.249Z",
        "event": "Email Opened",
        "context": {"traits": {"email": "a@b.co"}},
    },
}
TYPE_KEYS = {
    "sendgrid": "event",
    "hubspot-email-events": "type",
    "mailchimp": "action",
    "segment": "event",
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_output_columns_and_types(name):
    assert list(OUTPUT_COLUMNS) == ["_row", *EVENT_COLUMNS, "machine", "vendor_type", "ignored"]
    connection = connect()
    connection.register("raw", raw_table([BASE_RECORDS[name]]))
    relation = connection.sql(FORMATS[name].mapping_sql(set(BASE_RECORDS[name])))
    types = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert list(types) == list(OUTPUT_COLUMNS)
    assert types["_row"] == "BIGINT"
    assert types["machine"] == types["ignored"] == "BOOLEAN"
    assert {types[c] for c in OUTPUT_COLUMNS[1:] if c not in ("machine", "ignored")} == {"VARCHAR"}
    assert (
        FORMATS[name].source
        == connection.sql(
            f"SELECT source FROM ({FORMATS[name].mapping_sql(set(BASE_RECORDS[name]))})"
        ).fetchall()[0][0]
    )


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_missing_columns_read_as_null(name):
    fmt = FORMATS[name]
    record = {TYPE_KEYS[name]: BASE_RECORDS[name][TYPE_KEYS[name]]}
    if name == "segment":
        record["type"] = "track"
    row = run(fmt, [record])[0]
    assert row["event_id"] is None or name == "mailchimp"  # Mailchimp's id is made, never NULL
    for column in ("email", "occurred_at", "url", "form_id", "campaign_id"):
        assert row[column] is None, column
    assert row["machine"] is False and row["ignored"] is False
    assert row["type"] is not None
    # No column at all but _row.
    connection = connect()
    connection.register("raw", pa.table({"_row": pa.array([1, 2], pa.int64())}))
    rows = connection.sql(fmt.mapping_sql(set())).fetchall()
    assert [row[0] for row in rows] == [1, 2]


@pytest.mark.parametrize(
    ("name", "key"), [("sendgrid", "timestamp"), ("hubspot-email-events", "created")]
)
@pytest.mark.parametrize("value", ["yesterday", "1e30", "NaN", "-inf", True, "12:00", "0x10"])
def test_a_non_numeric_or_impossible_epoch_is_passed_through(name, key, value):
    record = dict(BASE_RECORDS[name], **{key: value})
    assert run(FORMATS[name], [record])[0]["occurred_at"] == as_text(value)


HOSTILE = [
    'a"b',
    "x'y",
    "--",
    "; DROP TABLE raw; --",
    "'); DROP TABLE raw; --",
    '") FROM raw; --',
    "🎉 émoji ключ",
    "\\",
    "k" * 10_000,
]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_hostile_keys_and_values_change_nothing(name):
    fmt = FORMATS[name]
    base = BASE_RECORDS[name]
    values = {key: f"value of {key[:20]} '); DROP TABLE raw; -- \"" for key in HOSTILE}
    record = {**base, **values}
    if name == "segment":
        record["properties"] = dict(values)
    hostile_email = "o'hara--; DROP TABLE raw;\"🎉@Example.COM"
    table = raw_table([record, base])
    columns = set(table.column_names) - {"_row"}
    sql = fmt.mapping_sql(columns)
    for value in values.values():
        assert value not in sql  # values are data, never SQL text
    connection = connect()
    connection.register("raw", table)
    rows = connection.sql(sql).to_arrow_table().to_pylist()
    assert [row["_row"] for row in rows] == [1, 2]
    assert rows[0]["type"] == rows[1]["type"] == run(fmt, [base])[0]["type"]
    assert props(rows[0]).items() >= values.items()
    assert connection.sql("SELECT count(*) FROM raw").fetchall() == [(2,)]
    # A hostile value in a mapped field comes out as the value.
    email_key = {
        "sendgrid": "email",
        "hubspot-email-events": "recipient",
        "mailchimp": "email_address",
    }
    if name in email_key:
        assert run(fmt, [dict(base, **{email_key[name]: hostile_email})])[0]["email"] == (
            hostile_email.lower()
        )


def test_hostile_track_names_in_options():
    name = "it's -- ; \"quoted\" 🎉 ') OR 1=1 --"
    options = FormatOptions(track_types={name: "trial_started"}, custom_types=("trial_started",))
    messages = [
        {"type": "track", "messageId": "m1", "event": name, "userId": "u"},
        {"type": "track", "messageId": "m2", "event": "x' OR '1'='1", "userId": "u"},
    ]
    rows = run(SEGMENT, messages, options)
    assert [(r["type"], r["ignored"]) for r in rows] == [("trial_started", False), (None, True)]


@pytest.mark.parametrize(
    "keys", [("email", "EMAIL"), ("Event", "event"), ("_ROW",), ("email\x00x",)]
)
def test_keys_duckdb_cannot_tell_apart_are_an_error(keys):
    record = dict(BASE_RECORDS["sendgrid"], **{key: "v" for key in keys})
    with pytest.raises(FormatError, match="cannot be told apart"):
        SENDGRID.mapping_sql(set(record))


def test_a_key_with_a_nul_is_not_read():
    record = dict(BASE_RECORDS["sendgrid"], **{"odd\x00key": "v"})
    row = run(SENDGRID, [record])[0]
    assert row["event_id"] == "x1" and not any("odd" in key for key in props(row))


def test_quoting_doubles_the_quote_mark():
    assert ident('a"b') == '"a""b"'
    assert literal("it's") == "'it''s'"
    connection = connect()
    assert connection.sql(f"SELECT {literal(HOSTILE[4])} AS {ident(HOSTILE[0])}").fetchall() == [
        (HOSTILE[4],)
    ]


# --- what leadflow's validation makes of the mapped rows ---------------------------------------


@pytest.mark.parametrize(
    ("fmt", "records"),
    [
        (SENDGRID, sendgrid_records),
        (HUBSPOT, hubspot_records),
        (MAILCHIMP, mailchimp_records),
        (SEGMENT, segment_records),
    ],
)
def test_mapped_events_pass_leadflows_normalisation_checks(fmt, records):
    """Loaded events (not ignored) have parsable times, object properties, a bounce kind on every
    bounce, and no (source, event_id) twice: nothing in the payloads is quarantined for these."""
    mapped = run(fmt, records())
    kept = [row for row in mapped if not row["ignored"]]
    columns = ("_row", *EVENT_COLUMNS, "machine", "ignored")
    table = pa.Table.from_pylist([{c: row[c] for c in columns} for row in mapped])
    connection = connect()
    connection.register("mapped", table)
    source = Source(fmt.name, "events", [], vendor=fmt)
    connection.execute(f"CREATE TEMP TABLE norm AS {normalise_events_sql(source, 'mapped')}")
    checks = connection.sql(EVENT_CHECKS_SQL).to_arrow_table().to_pylist()
    assert len(checks) == len(kept) > 0
    for row in checks:
        assert row["occurred_at_unparsable"] is None, row
        assert row["properties_is_object"] is True
        assert row["bounce_type"] in (None, "hard", "soft")
        assert row["copies_in_file"] in (None, 1)
        assert row["type"] in EVENT_TYPES_AND_NONE
    bounces = [row for row in checks if row["type"] == "email_bounce"]
    assert bounces and all(row["bounce_type"] in ("hard", "soft") for row in bounces)


EVENT_TYPES_AND_NONE = {
    None,
    "email_sent",
    "email_delivered",
    "email_open",
    "email_click",
    "email_bounce",
    "email_unsubscribe",
    "email_spam_report",
}
