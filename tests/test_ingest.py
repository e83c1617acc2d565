"""Ingest on a real state store (SQLite and PostgreSQL) and a real lake: all or nothing."""

import csv
import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import event, text
from sqlmodel import Session, select

from leadflow.config import Ingest
from leadflow.domain import EVENT_COLUMNS
from leadflow.ingest.load import BatchRejected, InputColumnsError, ingest_file
from leadflow.ingest.readers import ROW, InputFileError, RawFile
from leadflow.ingest.sources import source_of
from leadflow.lake import EVENT_SCHEMA, EventLake, duckdb_connection
from models import Contact
from models import ContactPropertyHistory as History
from tests.conftest import snapshot

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVENT_HEADER = list(EVENT_COLUMNS)


def event_row(
    event_id: str,
    email: str = "ann@example.com",
    type_: str = "email_open",
    occurred_at: str = "2026-11-01T10:00:00+01:00",
    source: str = "hubspot",
    properties: str = "",
    **columns: str,
) -> dict:
    return {
        "event_id": event_id,
        "source": source,
        "email": email,
        "type": type_,
        "occurred_at": occurred_at,
        "properties": properties,
        **columns,
    }


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def good_events(n: int, prefix: str = "e") -> list[dict]:
    return [event_row(f"{prefix}{i}", email=f"user{i % 7}@example.com") for i in range(n)]


def lake_events(space) -> list[tuple]:
    connection = duckdb_connection()
    relation = space.lake.events_sql(space.committed_event_batches())
    return connection.execute(
        f"SELECT source, event_id, email, type, occurred_at FROM {relation} ORDER BY 1, 2"
    ).fetchall()


def scalar(space, sql: str, **params):
    with space.engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def test_events_land_in_the_lake_partitioned_by_day_and_create_contacts(workspace, tmp_path):
    path = write_csv(
        tmp_path / "events.csv",
        [
            event_row(
                "1",
                email=" Ann@Example.COM ",
                type_="form_submission",
                form_id="newsletter",
                occurred_at="2026-10-01T23:30:00-02:00",
            ),
            event_row(
                "2",
                email="ann@example.com",
                type_="page_view",
                url="/pricing",
                occurred_at="2026-10-03T08:00:00",
            ),
            event_row("3", email="bob@example.com", type_="chat_started"),
            event_row("4", email="cat@example.com", type_="ad_click", campaign_id="c9"),
            event_row(
                "5",
                email="dan@example.com",
                type_="email_bounce",
                properties=json.dumps({"bounce_type": "hard"}),
            ),
        ],
        EVENT_HEADER,
    )
    result = ingest_file(workspace, path, now=NOW)
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("loaded", 5, 0)
    assert result.contacts_created == 4
    events = lake_events(workspace)
    assert events[0][2] == "ann@example.com"
    # -02:00 offset: 23:30 local is 01:30 UTC the next day; naive means UTC.
    assert events[0][4] == datetime(2026, 10, 2, 1, 30, tzinfo=UTC)
    assert events[1][4] == datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
    days = sorted(p.parent.name for p in workspace.lake.events_dir.glob("day=*/*.parquet"))
    assert days == ["day=2026-10-02", "day=2026-10-03", "day=2026-11-01"]
    with workspace.engine.connect() as connection:
        sources = dict(connection.execute(text("SELECT email, creation_source FROM contact")).all())
    assert sources == {
        "ann@example.com": "form",
        "bob@example.com": "conversation",
        "cat@example.com": "ads",
        "dan@example.com": "integration",
    }


def test_same_file_twice_and_an_overlapping_file_change_nothing(workspace, tmp_path):
    first = write_csv(tmp_path / "a.csv", good_events(10), EVENT_HEADER)
    assert ingest_file(workspace, first, now=NOW).rows_loaded == 10
    before = snapshot(workspace)
    again = ingest_file(workspace, first, now=NOW)
    assert again.status == "already_ingested"
    overlap = write_csv(tmp_path / "b.csv", good_events(10)[5:], EVENT_HEADER)
    assert ingest_file(workspace, overlap, now=NOW).status == "nothing_new"
    assert snapshot(workspace) == before
    wider = write_csv(tmp_path / "c.csv", good_events(15)[5:], EVENT_HEADER)
    result = ingest_file(workspace, wider, now=NOW)
    assert (result.rows_loaded, result.rows_duplicate) == (5, 5)
    assert len(lake_events(workspace)) == 15


BAD_ROWS = [
    (event_row("", email="x@example.com"), "event_id: missing event_id"),
    (event_row("b2", email="not-an-email"), "email: malformed email"),
    (event_row("b3", type_="email_opened"), "type: unknown event type"),
    (event_row("b4", occurred_at="yesterday"), "occurred_at: unparsable date"),
    (event_row("b5", occurred_at="2026-11-20T12:06:00Z"), "occurred_at: later than the time"),
    (event_row("b6", properties="{broken"), "properties: not a JSON object"),
    (
        event_row("b7", type_="email_bounce", properties='{"bounce_type": "medium"}'),
        "properties.bounce_type: missing or not hard/soft",
    ),
    (event_row("b8", type_="email_bounce"), "properties.bounce_type: missing or not"),
    (
        event_row("b9", type_="nps_response", properties='{"score": 14}'),
        "properties.score: missing or not between 0 and 10",
    ),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_ROWS, ids=[r for _, r in BAD_ROWS])
def test_each_kind_of_bad_row_is_quarantined_with_its_reason_and_raw(
    sqlite_workspace, tmp_path, bad, reason
):
    rows = good_events(40) + [bad]
    path = write_csv(tmp_path / "events.csv", rows, EVENT_HEADER)
    result = ingest_file(sqlite_workspace, path, now=NOW)
    assert (result.rows_loaded, result.rows_quarantined) == (40, 1)
    with sqlite_workspace.engine.connect() as connection:
        quarantined = connection.execute(text("SELECT file, row, reason, raw FROM quarantined_row"))
        file, row, found_reason, raw = quarantined.one()
    assert (file, row) == (str(path), 41)
    assert found_reason.startswith(reason)
    assert json.loads(raw)["event_id"] == (bad["event_id"] or None)


def test_future_event_within_five_minutes_of_skew_is_accepted(sqlite_workspace, tmp_path):
    path = write_csv(tmp_path / "e.csv", [event_row("1", occurred_at="2026-11-20T12:04:00Z")])
    assert ingest_file(sqlite_workspace, path, now=NOW).rows_loaded == 1


def test_duplicates_inside_one_file_are_all_quarantined(workspace, tmp_path):
    rows = good_events(40) + [event_row("d", type_="page_view"), event_row("d")]
    result = ingest_file(workspace, write_csv(tmp_path / "e.csv", rows, EVENT_HEADER), now=NOW)
    assert (result.rows_loaded, result.rows_quarantined) == (40, 2)
    reasons = {
        scalar(workspace, "SELECT reason FROM quarantined_row WHERE row = :r", r=r)
        for r in (41, 42)
    }
    assert reasons == {
        "source, event_id: duplicate (source, event_id) inside this file "
        "[expect_column_values_to_be_between]"
    }


def test_too_many_bad_rows_reject_the_batch_and_change_nothing(workspace, tmp_path):
    ingest_file(workspace, write_csv(tmp_path / "ok.csv", good_events(5), EVENT_HEADER), now=NOW)
    before = snapshot(workspace)
    rows = good_events(18, prefix="n") + [event_row("x1", email="bad"), event_row("x2", email="")]
    path = write_csv(tmp_path / "bad.csv", rows, EVENT_HEADER)
    with pytest.raises(BatchRejected) as rejection:
        ingest_file(workspace, path, now=NOW)
    message = str(rejection.value)
    assert "2 of 20 rows bad (10.0% > 5.0%)" in message and "row 19" in message
    assert "\n" not in message
    assert snapshot(workspace) == before
    with rejection.value.report.open() as handle:
        report = list(csv.DictReader(handle))
    assert [(r["row"], r["file"]) for r in report] == [("19", str(path)), ("20", str(path))]


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("empty.csv", b"", InputFileError, "file is empty"),
        (
            "latin1.csv",
            "event_id,source,email,type,occurred_at\n1,s,zoë@x.fr,page_view,2026-11-01\n".encode(
                "latin-1"
            ),
            InputFileError,
            "not valid UTF-8",
        ),
        (
            "nocol.csv",
            b"event_id,email,type\n1,a@b.co,page_view\n",
            InputColumnsError,
            "missing column(s) source, occurred_at",
        ),
        ("what.csv", b"foo,bar\n1,2\n", InputColumnsError, "cannot tell contacts from events"),
        ("cut.parquet", b"PAR1\x00\x00garbage", InputFileError, "unreadable Parquet"),
    ],
)
def test_bad_files_fail_with_one_line_and_change_nothing(
    workspace, tmp_path, name, content, error, message
):
    ingest_file(workspace, write_csv(tmp_path / "ok.csv", good_events(3), EVENT_HEADER), now=NOW)
    before = snapshot(workspace)
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as raised:
        ingest_file(workspace, path, now=NOW)
    assert message in str(raised.value) and str(path) in str(raised.value)
    assert snapshot(workspace) == before


def test_truncated_csv_line_is_quarantined_not_half_loaded(sqlite_workspace, tmp_path):
    path = write_csv(tmp_path / "e.csv", good_events(40), EVENT_HEADER)
    path.write_bytes(path.read_bytes() + b"late,hubspot,zed@example.com,page_vi")
    result = ingest_file(sqlite_workspace, path, now=NOW)
    assert (result.rows_loaded, result.rows_quarantined) == (40, 1)
    reason = scalar(sqlite_workspace, "SELECT reason FROM quarantined_row")
    assert "4 fields where the header has 9" in reason


def test_a_failed_commit_leaves_no_lake_file_and_no_row(workspace, tmp_path):
    before = snapshot(workspace)

    def fail_commit(_session):
        raise RuntimeError("disk full")

    from sqlmodel import Session

    event.listen(Session, "before_commit", fail_commit)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            ingest_file(workspace, write_csv(tmp_path / "e.csv", good_events(5)), now=NOW)
    finally:
        event.remove(Session, "before_commit", fail_commit)
    assert snapshot(workspace) == before


def test_orphan_lake_files_are_not_read_and_are_swept(workspace, tmp_path):
    ingest_file(workspace, write_csv(tmp_path / "a.csv", good_events(3)), now=NOW)
    orphan = workspace.lake.events_dir / "day=2026-11-01" / f"batch-{'f' * 32}.parquet"
    source = next(workspace.lake.events_dir.glob("day=*/*.parquet"))
    orphan.write_bytes(source.read_bytes())
    assert len(lake_events(workspace)) == 3
    ingest_file(workspace, write_csv(tmp_path / "b.csv", good_events(4, prefix="b")), now=NOW)
    assert not orphan.exists()
    assert len(lake_events(workspace)) == 7


def test_a_month_of_events_is_staged_day_by_day_within_duckdbs_memory(tmp_path):
    """A month's events, 17M of them at 10M contacts, passed DuckDB's limit when staged by one
    partitioned COPY; day by day, 3M events pass at 64 MB (one COPY failed there), each day's
    file holding that UTC day's events ordered by contact bucket."""
    lake = EventLake(tmp_path / "lake")
    with duckdb_connection() as connection:
        connection.execute("SET memory_limit = '64MB'")
        columns = {name: f"NULL::{kind}" for name, kind in EVENT_SCHEMA.items()}
        columns |= {
            "event_id": "'e' || i",
            "source": "'hubspot'",
            "email": "'contact' || (i % 500000) || '@example.com'",
            "type": "'email_open'",
            "occurred_at": "TIMESTAMPTZ '2026-06-01 00:00:00+00' + to_seconds(i % (30 * 86400))",
            "properties": "'{}'",
        }
        select = ", ".join(f"{value} AS {name}" for name, value in columns.items())
        connection.execute(f"CREATE TEMP TABLE month AS SELECT {select} FROM range(3000000) t(i)")
        staged = lake.stage(connection, "(SELECT * FROM month)", "a" * 32)
        assert len(staged.staged) == 30
        counted = 0
        for path in staged.staged:
            [(rows, wrong_day, unordered)] = connection.execute(
                f"""SELECT count(*), count(*) FILTER (WHERE occurred_at::DATE <> $day),
                           count(*) FILTER (WHERE contact_bucket < previous)
                    FROM (SELECT *, lag(contact_bucket) OVER (ORDER BY file_row_number)
                                        AS previous
                          FROM read_parquet('{path}', file_row_number = true))""",
                {"day": date.fromisoformat(path.parent.name.removeprefix("day="))},
            ).fetchall()
            assert rows and wrong_day == 0 and unordered == 0, path
            counted += rows
        assert counted == 3_000_000


def test_contacts_upsert_and_keep_the_history_of_their_properties(workspace, tmp_path):
    header = [
        "email",
        "first_name",
        "phone",
        "persona",
        "updated_at",
        "creation_source",
        "employees",
    ]
    first = write_csv(
        tmp_path / "c1.csv",
        [
            {
                "email": "Ann@Example.com",
                "first_name": "Ann",
                "persona": "marketer",
                "updated_at": "2026-01-01T00:00:00Z",
                "employees": "50",
            },
            {"email": "bob@example.com", "first_name": "Bob", "creation_source": "crm_ui"},
        ],
        header,
    )
    result = ingest_file(workspace, first, now=NOW)
    assert (result.rows_loaded, result.contacts_created) == (2, 2)
    second = write_csv(
        tmp_path / "c2.csv",
        [
            {
                "email": "ann@example.com",
                "first_name": "Ann",
                "phone": "+33 1 23",
                "persona": "job_seeker",
                "updated_at": "2026-06-01T00:00:00Z",
                "employees": "50",
            },
            {"email": "bob@example.com", "first_name": "Bob", "creation_source": "crm_ui"},
        ],
        header,
    )
    result = ingest_file(workspace, second, now=NOW)
    assert (result.rows_loaded, result.rows_duplicate, result.contacts_created) == (1, 1, 0)
    with Session(workspace.engine) as session:
        history = session.exec(
            select(History.name, History.value, History.valid_from)
            .join(Contact)
            .where(Contact.email == "ann@example.com")
            .order_by(History.name, History.valid_from)
        ).all()
        sources = dict(session.exec(select(Contact.email, Contact.creation_source)).all())
    assert history == [
        ("employees", "50", datetime(2026, 1, 1, tzinfo=UTC)),
        ("first_name", "Ann", datetime(2026, 1, 1, tzinfo=UTC)),
        ("persona", "marketer", datetime(2026, 1, 1, tzinfo=UTC)),
        ("persona", "job_seeker", datetime(2026, 6, 1, tzinfo=UTC)),
        ("phone", "+33 1 23", datetime(2026, 6, 1, tzinfo=UTC)),
    ]
    assert sources == {"ann@example.com": "import", "bob@example.com": "crm_ui"}
    # An older record arriving late is history too, not the current value.
    late = write_csv(
        tmp_path / "c3.csv",
        [{"email": "ann@example.com", "persona": "analyst", "updated_at": "2026-03-01T00:00:00Z"}],
        header,
    )
    ingest_file(workspace, late, now=NOW)
    current = scalar(
        workspace,
        "SELECT value FROM contact_property_history WHERE name = 'persona' "
        "ORDER BY valid_from DESC LIMIT 1",
    )
    assert current == "job_seeker"


def test_a_contact_record_corrects_the_source_inferred_from_its_first_event(workspace, tmp_path):
    ingest_file(
        workspace, write_csv(tmp_path / "e.csv", [event_row("1", type_="page_view")]), now=NOW
    )
    assert scalar(workspace, "SELECT creation_source FROM contact") == "integration"
    record = write_csv(
        tmp_path / "c.csv",
        [
            {
                "email": "ann@example.com",
                "creation_source": "integration",
                "integration": "zoom_webinar",
            }
        ],
    )
    ingest_file(workspace, record, now=NOW)
    other = write_csv(
        tmp_path / "c2.csv", [{"email": "ann@example.com", "creation_source": "form"}]
    )
    ingest_file(workspace, other, now=NOW)
    with workspace.engine.connect() as connection:
        row = connection.execute(
            text("SELECT creation_source, integration, creation_source_inferred FROM contact")
        ).one()
    assert tuple(row) == ("integration", "zoom_webinar", False)


def test_hubspot_export_is_mapped(workspace, tmp_path):
    path = write_csv(
        tmp_path / "hubspot.csv",
        [
            {
                "Record ID": "101",
                "Email": "erin@example.com",
                "First Name": "Erin",
                "Phone Number": "+1 555",
                "Lifecycle Stage": "Marketing Qualified Lead",
                "Marketing contact status": "Non-marketing contact",
                "Create Date": "2025-03-04 10:15",
                "Last Modified Date": "2026-01-02 09:00",
                "Favourite Colour": "blue",
            }
        ],
    )
    result = ingest_file(workspace, path, now=NOW)
    assert (result.kind, result.contacts_created) == ("contacts", 1)
    with Session(workspace.engine) as session:
        contact = session.exec(
            select(
                Contact.email,
                Contact.creation_source,
                Contact.initial_stage,
                Contact.initial_marketing_status,
                Contact.created_at,
            )
        ).one()
    with workspace.engine.connect() as connection:
        properties = dict(
            connection.execute(text("SELECT name, value FROM contact_property_history")).all()
        )
    assert tuple(contact[:4]) == (
        "erin@example.com",
        "import",
        "marketingqualifiedlead",
        "non_marketing",
    )
    # HubSpot writes the portal's local time: 10:15 in Paris (the account's zone) in March.
    assert contact[4] == datetime(2025, 3, 4, 9, 15, tzinfo=UTC)
    assert properties == {
        "first_name": "Erin",
        "phone": "+1 555",
        "favourite_colour": "blue",
    }


def test_contact_rows_are_validated(sqlite_workspace, tmp_path):
    rows = [{"email": f"p{i}@example.com", "created_at": "2026-01-01"} for i in range(30)]
    rows += [
        {"email": "p1@example.com", "created_at": ""},
        {"email": "q@example.com", "created_at": "31/12/2025"},
        {"email": "r@example.com", "creation_source": "carrier_pigeon"},
    ]
    config = sqlite_workspace.config.model_copy(update={"ingest": Ingest(max_bad_fraction=0.2)})
    space = dataclasses.replace(sqlite_workspace, config=config)
    result = ingest_file(space, write_csv(tmp_path / "c.csv", rows), now=NOW)
    assert (result.rows_loaded, result.rows_quarantined) == (29, 4)
    with sqlite_workspace.engine.connect() as connection:
        reasons = dict(connection.execute(text("SELECT row, reason FROM quarantined_row")).all())
    assert reasons[2].startswith("email: duplicate email") and reasons[31] == reasons[2]
    assert reasons[32].startswith("created_at: unparsable date")
    assert reasons[33].startswith("creation_source: unknown creation source")


def test_jsonl_and_parquet_inputs_load_the_same_events(workspace, tmp_path):
    rows = good_events(6)
    rows[0]["properties"] = json.dumps({"score": 9})
    rows[0]["type"] = "nps_response"
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({**r, "properties": json.loads(r["properties"] or "{}")}) for r in rows[:3]
        )
        + "\n"
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "e.parquet"
    tail = rows[3:]
    pq.write_table(
        pa.table(
            {
                **{k: [r[k] for r in tail] for k in ("event_id", "source", "email", "type")},
                "occurred_at": [datetime(2026, 11, 1, 9, tzinfo=UTC)] * 3,
            }
        ),
        parquet,
    )
    assert ingest_file(workspace, jsonl, now=NOW).rows_loaded == 3
    assert ingest_file(workspace, parquet, now=NOW).rows_loaded == 3
    assert len(lake_events(workspace)) == 6


def test_kind_and_format_are_told_from_columns_or_forced(tmp_path):
    def source(columns, kind=None, format=None):
        table = pa.table({name: ["x"] for name in columns})
        table = table.append_column(ROW, pa.array([1], pa.int64()))
        return source_of(tmp_path / "f.csv", RawFile(table, []), kind, format)

    assert source(EVENT_HEADER).kind == "events"
    assert (source(["email", "first_name"]).kind, source(["email"]).format) == (
        "contacts",
        "leadflow",
    )
    hubspot = source(["Record ID", "Email", "First Name"])
    assert (hubspot.format, hubspot.fields["email"], hubspot.properties) == (
        "hubspot-contacts",
        "Email",
        {"first_name": "First Name"},
    )
    assert source(["email"], format="hubspot-contacts").format == "hubspot-contacts"
    with pytest.raises(InputColumnsError, match="missing column"):
        source(["email", "first_name"], "events")
    with pytest.raises(InputColumnsError, match="unknown format 'csv'"):
        source(["email"], format="csv")
    with pytest.raises(InputColumnsError, match="repeats 'email', a column leadflow reads"):
        source(["email", "email (2)"])


def test_naive_and_offset_timestamps_are_stored_in_utc(sqlite_workspace, tmp_path):
    rows = [
        event_row("1", occurred_at="2026-11-01T00:30:00+02:00"),
        event_row("2", occurred_at="2026-11-01 00:30"),
    ]
    ingest_file(sqlite_workspace, write_csv(tmp_path / "e.csv", rows), now=NOW)
    times = [row[4] for row in lake_events(sqlite_workspace)]
    assert times == [
        datetime(2026, 10, 31, 22, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 0, 30, tzinfo=UTC),
    ]
    assert times[0] - times[1] == timedelta(hours=-2)


@pytest.mark.parametrize(
    ("setting", "phone_from", "persona_from"),
    [
        # leadflow's default: the record's updated_at, else its created_at, else the load time.
        (None, "2026-03-01", "2026-03-01"),
        ("created_at", "2026-01-15", "2026-01-15"),
        ("updated_at", "2026-03-01", "2026-03-01"),
        ("load_time", "2026-11-20", "2026-11-20"),
    ],
)
def test_first_values_count_from_the_chosen_time(sqlite_workspace, tmp_path, setting, phone_from,
                                                  persona_from):  # fmt: skip
    config = sqlite_workspace.config.model_copy(update={"ingest": Ingest(first_values_at=setting)})
    space = dataclasses.replace(sqlite_workspace, config=config)
    header = ["email", "phone", "persona", "created_at", "updated_at"]
    first = [
        {
            "email": "a@x.co",
            "phone": "+1",
            "persona": "cto",
            "created_at": "2026-01-15T00:00:00Z",
            "updated_at": "2026-03-01T00:00:00Z",
        }
    ]
    ingest_file(space, write_csv(tmp_path / "c1.csv", first, header), now=NOW)
    # A later change of a known property is stamped with the record's update time, whatever
    # the setting: only a first value is in question.
    later = [{**first[0], "persona": "ceo", "updated_at": "2026-09-01T00:00:00Z"}]
    ingest_file(space, write_csv(tmp_path / "c2.csv", later, header), now=NOW)
    with sqlite_workspace.engine.connect() as connection:
        stamps = connection.execute(
            text(
                "SELECT name, value, substr(CAST(valid_from AS TEXT), 1, 10) "
                "FROM contact_property_history ORDER BY name, valid_from"
            )
        ).all()
    assert {(name, value): day for name, value, day in stamps} == {
        ("persona", "cto"): persona_from,
        ("persona", "ceo"): "2026-09-01",
        ("phone", "+1"): phone_from,
    }


def test_a_file_without_times_counts_its_first_values_from_the_load(sqlite_workspace, tmp_path):
    rows = [{"email": "b@x.co", "phone": "+1"}]
    ingest_file(sqlite_workspace, write_csv(tmp_path / "c.csv", rows, ["email", "phone"]), now=NOW)
    with sqlite_workspace.engine.connect() as connection:
        stamp = connection.execute(text("SELECT valid_from FROM contact_property_history")).scalar()
    assert str(stamp).startswith("2026-11-20 12:00")
