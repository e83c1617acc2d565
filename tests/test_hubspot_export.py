"""A HubSpot contacts export as HubSpot writes it: 300 columns, all quoted, association columns
repeated, headers with quotes, slashes, parentheses and no name, contacts without email (keyed
by Record ID), the portal's local times, lifecycle labels, stage entry dates, record sources,
unsubscribes. It loads with one `ingest`, unchanged, and `export contacts` shows what HubSpot
had."""

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from leadflow.exports import contacts_as_of
from leadflow.ingest.load import ingest_file
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_daily
from leadflow.settings import PROJECT_ROOT
from tests.conftest import make_workspace
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = date(2026, 11, 10)
STANDARD = [
    "Record ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone Number",
    "Lifecycle Stage",
    "Marketing contact status",
    "Create Date",
    "Last Modified Date",
    "Record source",
    "Record source detail 1",
    "Original Source",
    "Unsubscribed from all email",
    'Date entered "Lead (Lifecycle Stage Pipeline)"',
    'Date entered "Marketing Qualified Lead (Lifecycle Stage Pipeline)"',
    'Date entered "Customer (Lifecycle Stage Pipeline)"',
    "Billing Contact",
    "Associated Company",
    "Billing Contact",
    'Notes "internal"',
    "State/Region",
    "Annual Revenue (USD)",
    "",
    "Billing Contact",
]
HEADER = STANDARD + [f"Custom property {n}" for n in range(1, 300 - len(STANDARD))] + [""]
# (record id, email, stage label, status, created (portal time), record source, detail,
#  original source, unsubscribed, lead entered, mql entered, customer entered)
CONTACTS = [
    ("101", "Ann@Example.com", "Lead", "Marketing contact", "2026-02-25 22:36", "Forms", "",
     "Organic Search", "false", "2026-03-01 23:30", "", ""),
    ("102", "bob@example.com", "Marketing Qualified Lead", "Non-marketing contact",
     "2026-03-04 10:15", "Integration", "Zoom Webinar", "", "false", "2026-03-04 10:15",
     "2026-04-01 09:00", ""),
    ("103", "cid@example.com", "Customer", "Marketing contact", "2026-01-10 08:00", "CRM UI",
     "", "", "true", "2026-01-10 08:00", "2026-02-01 08:00", "2026-06-15 16:45"),
    ("104", "", "Subscriber", "Non-marketing contact", "2026-05-05 05:05", "Import", "", "",
     "false", "", "", ""),
    ("105", "dan@example.com", "Trial user", "Marketing contact", "2026-05-06 12:00",
     "Workflows", "", "Paid Search", "true", "", "", ""),
    ("106", "", "Lead", "Non-marketing contact", "2026-05-07 12:00", "Sales email extension",
     "", "", "false", "2026-05-07 12:00", "", ""),
    ("107", "eve@example.com", "Other", "Non-marketing contact", "2026-05-08 12:00", "Meetings",
     "", "", "false", "", "", ""),
    ("108", "fay@example.com", "Lead", "Marketing contact", "2026-05-09 12:00", "", "",
     "Offline Sources", "false", "2026-05-09 12:00", "", ""),
    ("109", "", "", "", "2026-05-10 12:00", "Mobile iOS", "", "", "", "", "", ""),
    ("110", "gus@example.com", "Lead", "Marketing contact", "2026-05-11 12:00", "Chatflows", "",
     "", "false", "2026-05-11 12:00", "", ""),
    ("111", "hal@example.com", "Opportunity", "Marketing contact", "2026-05-12 12:00",
     "BCC'd Email", "", "", "false", "", "", ""),
    ("112", "ivy@example.com", "Evangelist", "Non-marketing contact", "2026-05-13 12:00", "Ads",
     "", "", "false", "", "", ""),
]  # fmt: skip


def export_rows(contacts=CONTACTS) -> list[list[str]]:
    rows = []
    for index, item in enumerate(contacts):
        record, email, stage, status, created, source, detail, original, unsub = item[:9]
        lead, mql, customer = item[9:]
        row = [record, f"First{index}", f"Last{index}", email, "+1 555 01" if index % 2 else "",
               stage, status, created, "2026-10-01 09:00", source, detail, original, unsub,
               lead, mql, customer, f"billing-a-{index}", "Acme", f"billing-b-{index}",
               'said "hi"; -- ok', "NY/NJ", "1,000", f"anonymous-{index}",
               f"billing-c-{index}"]  # fmt: skip
        row += [f"v{index}-{n}" if n % 7 == 0 else "" for n in range(1, 300 - len(STANDARD))]
        rows.append([*row, ""])
    return rows


def write_export(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)  # as HubSpot writes it
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture
def portal(database_url, tmp_path):
    """A workspace whose HubSpot portal is in New York (the account in Paris)."""
    config = yaml.safe_load((PROJECT_ROOT / "leadflow.yaml").read_text())
    config["hubspot"] = {"timezone": "America/New_York"}
    config["ingest"]["max_bad_fraction"] = 0.25
    path = tmp_path / "leadflow.yaml"
    path.write_text(yaml.safe_dump(config))
    space = make_workspace(database_url, tmp_path, path)
    yield space
    space.engine.dispose()


def contacts_by_record(space) -> dict:
    with space.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT hubspot_record_id, email, creation_source, integration, initial_stage, "
                "initial_marketing_status, created_at FROM contact"
            )
        ).all()
    return {row[0]: row[1:] for row in rows}


def test_a_300_column_export_loads_unchanged(portal, tmp_path):
    path = write_export(tmp_path / "hubspot-crm-exports-all-contacts.csv", export_rows())
    result = ingest_file(portal, path, now=NOW)
    assert (result.format, result.kind) == ("hubspot-contacts", "contacts")
    assert (result.rows_total, result.rows_loaded, result.rows_quarantined) == (12, 12, 0)
    assert result.contacts_created == 12
    assert len(HEADER) == 300
    notes = "\n".join(result.notes)
    assert "repeats 'Billing Contact' 3 times" in notes
    assert "column 23 has no name" in notes and "column 300 has no name" in notes
    assert "lifecycle stages leadflow does not know, left out: 'Trial user' (1)" in notes

    contacts = contacts_by_record(portal)
    # The key: the email, lower-cased; `hubspot:<Record ID>` for the three without one.
    assert {record: row[0] for record, row in contacts.items() if record in ("101", "104")} == {
        "101": "ann@example.com",
        "104": "hubspot:104",
    }
    assert sum(row[0].startswith("hubspot:") for row in contacts.values()) == 3
    # Record source (else original source) as HubSpot spells it.
    sources = {record: (row[1], row[2]) for record, row in contacts.items()}
    assert sources == {
        "101": ("form", None),
        "102": ("integration", "Zoom Webinar"),
        "103": ("crm_ui", None),
        "104": ("import", None),
        "105": ("ads", None),  # Workflows: no source leadflow knows; Paid Search
        "106": ("email_extension", None),
        "107": ("meeting", None),
        "108": ("import", None),  # Offline Sources
        "109": ("mobile", None),
        "110": ("conversation", None),
        "111": ("email_log", None),
        "112": ("ads", None),
    }
    assert contacts["102"][3:5] == ("marketingqualifiedlead", "non_marketing")
    assert contacts["105"][3] is None  # a stage of the portal's own
    # 22:36 in New York on 25 February is 03:36 UTC the next day.
    assert str(contacts["101"][5]).startswith("2026-02-26 03:36")

    with portal.engine.connect() as connection:
        names = set(
            connection.execute(text("SELECT DISTINCT name FROM contact_property_history"))
            .scalars()
            .all()
        )
        phone_stamp = connection.execute(
            text(
                "SELECT h.valid_from FROM contact_property_history h JOIN contact c "
                "ON c.id = h.contact_id WHERE c.hubspot_record_id = '102' AND h.name = 'phone'"
            )
        ).scalar_one()
    assert {"billing_contact", "billing_contact_2", "billing_contact_3", "notes_internal",
            "state_region", "annual_revenue_usd", "column_23", "first_name"} <= names  # fmt: skip
    assert "email" not in names and "lifecycle_stage" not in names
    # A first value counts from the contact's creation (HubSpot's Last Modified Date is the
    # latest change of any property): 10:15 in New York, 15:15 UTC.
    assert str(phone_stamp).startswith("2026-03-04 15:15")

    execute(portal, plan_daily(portal, DAY))
    exported = {
        (row["email"] or row["hubspot_record_id"]): row
        for row in contacts_as_of(portal, DAY).to_pylist()
    }
    assert len(exported) == 12
    cid = exported["cid@example.com"]
    assert (cid["date_entered_lead"], cid["date_entered_marketingqualifiedlead"]) == (
        "2026-01-10",
        "2026-02-01",
    )
    # 16:45 in New York on 15 June is 22:45 in Paris, the account's day: 15 June.
    assert cid["date_entered_customer"] == "2026-06-15"
    assert cid["lifecycle_stage"] == "customer" and cid["creation_source"] == "crm_ui"
    # Unsubscribed from all email: suppressed, by the record.
    assert (cid["suppressed"], exported["dan@example.com"]["suppressed"]) == ("true", "true")
    assert exported["ann@example.com"]["suppressed"] == "false"
    assert exported["ann@example.com"]["date_entered_lead"] == "2026-03-02"  # Paris' day
    keyless = exported["104"]
    assert (keyless["email"], keyless["lifecycle_stage"]) == ("", "subscriber")
    assert keyless["marketing_status"] == "marketing"  # a subscriber: promoted by the rule
    with portal.engine.connect() as connection:
        suppressions = connection.execute(
            text(
                "SELECT c.hubspot_record_id, m.rule, m.reason FROM marketing_change m "
                "JOIN contact c ON c.id = m.contact_id WHERE m.kind = 'suppression'"
            )
        ).all()
    assert sorted(suppressions) == [("103", "record", "unsubscribed"), ("105", "record",
                                     "unsubscribed")]  # fmt: skip


def test_a_later_export_gives_keyless_contacts_their_email_and_refuses_conflicts(portal, tmp_path):
    ingest_file(portal, write_export(tmp_path / "first.csv", export_rows()), now=NOW)
    zed = [event_row("z1", email="zed@example.com", occurred_at="2026-11-01T10:00:00Z")]
    ingest_file(portal, write_csv(tmp_path / "zed.csv", zed, EVENT_HEADER), now=NOW)
    before = contacts_by_record(portal)
    updated = list(CONTACTS)
    updated[3] = ("104", "new@example.com", *CONTACTS[3][2:])  # 104 now has an email
    updated[5] = ("106", "zed@example.com", *CONTACTS[5][2:])  # zed is another contact
    updated[6] = ("107", "changed@example.com", *CONTACTS[6][2:])  # eve changed her email
    result = ingest_file(
        portal, write_export(tmp_path / "second.csv", export_rows(updated)), now=NOW
    )
    assert result.rows_quarantined == 2
    after = contacts_by_record(portal)
    assert after["104"][0] == "new@example.com" and before["104"][0] == "hubspot:104"
    assert after["106"][0] == "hubspot:106" and after["107"][0] == "eve@example.com"
    with portal.engine.connect() as connection:
        reasons = dict(
            connection.execute(
                text("SELECT row, reason FROM quarantined_row WHERE file LIKE '%second%'")
            ).all()
        )
    assert (
        "Record ID 106 is the contact hubspot:106 and zed@example.com another one" in (reasons[6])
    )
    assert "Record ID 107 is eve@example.com, not changed@example.com" in reasons[7]
    # Events of the email now reach the contact that had none.
    rows = [event_row("o1", email="new@example.com", occurred_at="2026-11-02T10:00:00Z")]
    ingest_file(portal, write_csv(tmp_path / "e.csv", rows, EVENT_HEADER), now=NOW)
    with portal.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM contact")).scalar() == 13
