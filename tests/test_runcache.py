"""The run cache against what it saves re-reading: the aggregate ledger against a full pass
over the lake (day after day, across windows, step decay, a DST change, gaps, a batch of late
events and a step back, with groups, value tables, frequency ranges, a grid and resets by
events arriving between days and late), and the state mirror against the state store (through
day runs, admin changes, late data undone and replayed, a contacts batch, a demotion's whole
life)."""

import math
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from leadflow.demo_data import generate_demo_data
from leadflow.ingest.load import ingest_file
from leadflow.lake import bucket_sql, duckdb_connection
from leadflow.lifecycle import set_stage
from leadflow.marketing import read_state, set_marketing_status
from leadflow.pipeline.days import execute
from leadflow.pipeline.mirror import CONTACT_SCHEMA, CONTACTS_SQL, STATE_TABLES, state_version
from leadflow.pipeline.plans import plan_backfill, plan_daily
from leadflow.pipeline.runcache import attached, get_meta
from leadflow.scoring.ledger import held_aggregates
from leadflow.scoring.query import as_of_end, compile_model, whole_base_events_sql
from leadflow.scoring.scores import scored_relation
from leadflow.settings import PROJECT_ROOT
from leadflow.store.db import read_arrow
from tests.conftest import make_workspace
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

END = date(2026, 11, 5)
NOW = datetime(2026, 11, 6, tzinfo=UTC)  # the events' ingest time: after them all
# Rules whose aggregates change otherwise than by decay: windows, and steps of a step decay.
EXTRA_RULES = [
    {"id": "recent-open", "event": "email_open", "points": 5, "within_days": 3},
    {"id": "webinar", "event": "webinar_registration", "points": 30,
     "decay": {"percent": 50, "every_days": 7}},
    {"id": "clicks-this-week", "points": 12,
     "when": {"event": "email_click", "within_days": 7, "count": {"gte": 1}}},
    {"id": "visits", "event": "page_view", "within_days": 7, "group": "web",
     "ranges": [{"count": {"gte": 1, "lte": 2}, "points": 5},
                {"count": {"gte": 3, "lte": 5}, "points": 10},
                {"count": {"gte": 6}, "points": 20}]},
]  # fmt: skip
# The scoring constructs of README: Scores, over the shipped rules and the ones above.
CONSTRUCTS = {
    "groups": {"email": {"limit": {"max": 40}}, "web": {"limit": {"min": -5, "max": 25}}},
    "reset_when": {"event": "deal_lost"},
}
GRID = {
    "rows": {"score": "fit", "bands": [{"label": "A", "gte": 5}, {"label": "B"}]},
    "columns": {"score": "engagement", "bands": [{"label": "1", "gte": 60}, {"label": "2"}]},
}


VISITS = 9  # the index of EXTRA_RULES' visits among the engagement rules
updates: list[str] = []  # how the ledger got to each day: rebuilt | advanced | unchanged
bases: list[str] = []  # the end its decaying sums are kept as of, after each day


def by_email(relation) -> dict[str, dict]:
    return {row["email"]: row for row in relation.to_arrow_table().to_pylist()}


def scored(space, day: date, ledger: bool) -> dict[str, dict]:
    """The scoring query's every column (aggregates, properties, rules, scores, flags) for every
    contact as of `day`. With `ledger`, the ledger itself (every aggregate, the graymail send
    lists too) is also checked against the same aggregates from a full pass over the lake."""
    with duckdb_connection() as connection, attached(connection, space.cache_path):
        rows = by_email(
            scored_relation(
                space, connection, [day], contacts=read_state(space), lifecycle=True,
                marketing=True, ledger=ledger,
            )
        )  # fmt: skip
        held_end, how = get_meta(connection, "ledger_end"), get_meta(connection, "ledger_update")
        base = get_meta(connection, "ledger_base")
        if ledger:
            committed = space.committed_event_batches()
            end = as_of_end(day, space.config)
            events = space.lake.events_sql(committed)
            model = compile_model(space.config, events, False, end, lifecycle=True, marketing=True)
            full_events = model.events_with_resets(whole_base_events_sql(events, end))
            full = by_email(
                connection.sql(
                    f"SELECT e.email, {model.aggregates} FROM ({full_events}) e GROUP BY e.email"
                )
            )
            held = held_aggregates(connection, model)
            assert_same(by_email(connection.sql(f"SELECT * FROM {held}")), full, day)
    if ledger:
        assert held_end == as_of_end(day, space.config).isoformat()
        updates.append(how.split()[0])
        bases.append(base)
    return rows


def assert_same(incremental: dict[str, dict], full: dict[str, dict], day: date) -> None:
    assert incremental.keys() == full.keys(), day
    for email, row in full.items():
        other = incremental[email]
        for column, value in row.items():
            if isinstance(value, float):
                assert math.isclose(other[column], value, rel_tol=1e-9, abs_tol=1e-9), (
                    day, email, column, other[column], value,
                )  # fmt: skip
            else:
                assert other[column] == value, (day, email, column, other[column], value)
                assert type(other[column]) is type(value), (column, other[column], value)


@pytest.fixture
def space(sqlite_url: str, tmp_path: Path):
    config = yaml.safe_load((PROJECT_ROOT / "leadflow.yaml").read_text())
    engagement = config["scores"]["engagement"]
    engagement["rules"] += EXTRA_RULES
    engagement.update(CONSTRUCTS)
    for rule in engagement["rules"]:
        if rule["id"] in ("email-open", "email-click", "recent-open"):
            rule["group"] = "email"
    config["scores"]["fit"]["rules"].append(
        {"id": "industry", "property": "industry", "values": {"software": 5, "Finance": 3}}
    )
    config["grids"] = {"lead_grade": GRID}
    config["lifecycle"]["promote"]["salesqualifiedlead"] = {
        "any": [{"event": "sales_accepted"}, {"grid": "lead_grade", "in": ["A1"]}]
    }
    # Company scores read by a lifecycle rule: windows over every contact, after the scores.
    config["companies"] = {
        "scores": {
            "account": {"from": "engagement", "aggregate": {"mean_of_top": 3}},
            "reach": {"from": "engagement", "aggregate": "sum"},
        },
        "bands": {"account": [{"label": "hot", "gte": 40}, {"label": "cold"}]},
    }
    config["lifecycle"]["promote"]["marketingqualifiedlead"]["any"].append(
        {"company_score": "account", "gte": 40}
    )
    path = tmp_path / "leadflow.yaml"
    path.write_text(yaml.safe_dump(config))
    return make_workspace(sqlite_url, tmp_path, path)


def test_the_ledger_gives_what_a_full_pass_gives(space, tmp_path):
    data = generate_demo_data(tmp_path / "data", contacts=300, days=100, end=END, seed=7)
    held_back = data.event_files[-2]  # October's events
    ingest_file(space, data.contacts_file)
    for path in data.event_files:
        if path != held_back:
            ingest_file(space, path)
    # A contact sent to every day, so that the ledger's list of the 16 latest sends is full and
    # is cut as it advances.
    sends = [
        event_row(f"send-{n}", email="daily@example.com", type_="email_sent",
                  occurred_at=f"{date(2026, 10, 1) + timedelta(days=n)}T09:00:00+00:00")
        for n in range(33)
    ]  # fmt: skip
    ingest_file(space, write_csv(tmp_path / "sends.csv", sends, EVENT_HEADER), now=NOW)

    # Visits leaving a 7-day window one a day (ranges 6+, 3-5, 1-2 in turn); a contact whose
    # deal is lost between two day runs, then again; and resets that arrive late (below).
    def event(email: str, kind: str, when: str, n: int) -> dict:
        return event_row(f"{email}-{kind}-{n}", email=email, type_=kind, occurred_at=when)

    own = [
        event("visits@example.com", "page_view", f"2026-10-{d}T09:00:00+00:00", d)
        for d in range(14, 21)
    ]
    for n in range(33):
        for email in ("reset@example.com", "late-reset@example.com"):
            day = date(2026, 10, 1) + timedelta(days=n)
            own.append(event(email, "email_open", f"{day}T08:00:00+00:00", n))
    own += [
        event("reset@example.com", "deal_lost", f"2026-10-{d}T12:00:00+00:00", d) for d in (22, 25)
    ]
    ingest_file(space, write_csv(tmp_path / "own.csv", own, EVENT_HEADER), now=NOW)
    late = [
        event("late-reset@example.com", "deal_lost", "2026-10-12T12:00:00+00:00", 12),
        event("reset@example.com", "deal_lost", "2026-10-10T12:00:00+00:00", 10),
    ]
    days = [
        date(2026, 10, 20),
        date(2026, 10, 21),
        date(2026, 10, 24),  # a gap of three days
        date(2026, 10, 25),  # a 25-hour day: summer time ends in Paris
        date(2026, 10, 26),
        date(2026, 11, 2),  # a week on: windows of 3 and 7 days pass, the step decay steps
    ]
    changed_days = 0
    visits, resets = [], []
    for day in days:
        full = scored(space, day, ledger=False)
        incremental = scored(space, day, ledger=True)
        assert_same(incremental, full, day)
        changed_days += any(row["events_seen"] for row in full.values())
        visits.append(incremental["visits@example.com"][f"rule:engagement:{VISITS}"])
        resets.append(incremental["reset@example.com"]["reset:engagement"])
    assert changed_days == len(days)
    bands = Counter(row["company_band:account"] for row in full.values())
    assert bands["hot"] and bands["cold"] and bands[None]  # the company layers are exercised
    assert updates == ["rebuilt"] + ["advanced"] * (len(days) - 1)
    # Advancing rewrites the corrected contacts' rows only: the others' stay as of the first day.
    first_end = as_of_end(days[0], space.config).isoformat()
    assert bases == [first_end] * len(days)
    assert visits == [20, 20, 10, 5, 5, 0]
    assert [str(at)[:10] if at else None for at in resets] == [None, None] + ["2026-10-22"] + [
        "2026-10-25"
    ] * 3

    # A batch of events up to a month old arrives: the same day again, then the next.
    ingest_file(space, held_back)
    ingest_file(space, write_csv(tmp_path / "late.csv", late, EVENT_HEADER), now=NOW)
    for day in (date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 3)):
        assert_same(scored(space, day, True), scored(space, day, False), day)
    # An earlier day than the ledger's: rebuilt whole, still the same.
    day = date(2026, 10, 30)
    assert_same(scored(space, day, True), scored(space, day, False), day)
    assert updates[len(days) :] == ["advanced", "advanced", "unchanged", "rebuilt"]
    grades = scored(space, day, False)
    assert grades["reset@example.com"]["grid:lead_grade"] in ("B1", "B2")


def test_a_state_store_restored_from_a_copy_is_mirrored_again(tmp_path):
    """A state store put back from a copy holds fewer contacts than the mirror, whose check
    (the count up to its last contact, and that contact's email) then reads them again."""
    space = make_workspace(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    data = generate_demo_data(tmp_path / "data", contacts=120, days=30, end=END, seed=5)
    ingest_file(space, data.contacts_file)
    for events in data.event_files[:-1]:
        ingest_file(space, events)
    first = execute(space, plan_daily(space, date(2026, 10, 31)))
    assert first[0].reads["contacts"] == "read"
    copy = tmp_path / "copy.db"
    with sqlite3.connect(tmp_path / "state.db") as live, sqlite3.connect(copy) as kept:
        live.backup(kept)
    newcomers = [event_row(f"new-{n}", email=f"new{n}@example.com") for n in range(3)]
    ingest_file(space, write_csv(tmp_path / "newcomers.csv", newcomers, EVENT_HEADER))
    later = execute(space, plan_daily(space, date(2026, 11, 4)))  # and the days before it
    assert [day.reads["contacts"] for day in later][:2] == ["appended", "mirror"]
    space.engine.dispose()
    with sqlite3.connect(copy) as kept, sqlite3.connect(tmp_path / "state.db") as live:
        kept.backup(live)
    again = execute(space, plan_daily(space, date(2026, 11, 4)))
    assert again[0].reads["contacts"] == "read"
    assert_mirror_is_the_store(space, date(2026, 11, 4))


def mirror_rows(space) -> dict[str, list[tuple]]:
    """The mirror's tables, and the state store's read whole, side by side."""
    with duckdb_connection() as connection, attached(connection, space.cache_path):
        assert get_meta(connection, "mirror_state_version") == state_version(space)
        # Each contact's and property row's bucket is its email's, appended rows' too.
        for name in ("contacts", "properties"):
            [(wrong,)] = connection.execute(
                f"SELECT count(*) FROM cache.{name} WHERE bucket IS DISTINCT FROM "
                f"{bucket_sql('email')}"
            ).fetchall()
            assert wrong == 0, name
        tables = {}
        for name, sql, schema in [("contacts", CONTACTS_SQL, CONTACT_SCHEMA), *STATE_TABLES]:
            columns = "* EXCLUDE (bucket)" if name == "contacts" else "*"
            mirrored = connection.sql(f"SELECT {columns} FROM cache.{name}").to_arrow_table()
            stored = read_arrow(space.engine, sql, schema)
            tables[name] = (
                sorted(mirrored.cast(schema).to_pylist(), key=repr),
                sorted(stored.to_pylist(), key=repr),
            )
    return tables


def assert_mirror_is_the_store(space, day: date) -> None:
    for name, (mirrored, stored) in mirror_rows(space).items():
        assert mirrored == stored, (day, name)


def test_the_mirror_follows_the_state_store(database_url, tmp_path):
    config = yaml.safe_load((PROJECT_ROOT / "leadflow.yaml").read_text())
    config["contract"].update(renewal_date="2026-10-20", demotion_window_days=10)
    path = tmp_path / "leadflow.yaml"
    path.write_text(yaml.safe_dump(config))
    space = make_workspace(database_url, tmp_path, path)
    data = generate_demo_data(tmp_path / "data", contacts=300, days=60, end=END, seed=3)
    ingest_file(space, data.contacts_file)
    for events in data.event_files[:-1]:
        ingest_file(space, events)
    summaries = execute(space, plan_backfill(space, date(2026, 10, 5), date(2026, 10, 15)))
    assert_mirror_is_the_store(space, date(2026, 10, 15))
    with space.engine.connect() as connection:
        someone = connection.execute(
            text(
                """SELECT c.email FROM contact c JOIN contact_marketing m ON m.contact_id = c.id
                   WHERE m.status = 'marketing' AND NOT EXISTS (
                       SELECT 1 FROM demotion d WHERE d.contact_id = c.id) LIMIT 1"""
            )
        ).scalar_one()
    set_stage(space, someone, "customer", "signed on paper", date(2026, 10, 15))
    set_marketing_status(space, someone, "non_marketing", "asked by phone", date(2026, 10, 15))
    for day in (date(2026, 10, 16), date(2026, 10, 17)):
        summaries += execute(space, plan_daily(space, day))
        assert_mirror_is_the_store(space, day)
    ingest_file(space, data.hubspot_file)  # a contacts batch: contacts re-read
    ingest_file(space, data.event_files[-1])  # November's events: new contacts appended
    for day in (date(2026, 10, 20), date(2026, 10, 21)):  # catch up over the renewal
        summaries += execute(space, plan_daily(space, day))
        assert_mirror_is_the_store(space, day)
    summaries += execute(space, plan_daily(space, date(2026, 10, 12)))  # undo and replay
    assert_mirror_is_the_store(space, date(2026, 10, 21))

    demotions = Counter()
    for summary in summaries:
        demotions.update({state: n for state, n in summary.marketing.demotions.items() if n})
    assert demotions.keys() >= {"queued", "scheduled", "applied"}
    reads = [summary.reads["state"] for summary in summaries]
    assert reads[0] == "read" and reads[1:11] == ["mirror"] * 10
    assert reads[11] == "read"  # after the admin changes
