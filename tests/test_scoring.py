"""The scoring engine on a real lake and state store: every rule kind, decay, window edge."""

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from leadflow.ingest.load import ingest_file
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_daily
from leadflow.scoring.query import as_of_end
from leadflow.scoring.scores import explain, history, score_day, scores_as_of
from tests.conftest import make_workspace
from tests.test_hubspot_export import export_rows, write_export
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

DAY = date(2026, 6, 30)
CONFIG = """
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
scores:
  engagement:
    limit: {min: -50, max: 100}
    decay: {half_life_days: 90}
    rules:
      - {id: open, event: email_open, points: 10}
      - {id: click, event: email_click, points: 20, max_points: 60, decay: none}
      - {id: webinar, event: webinar_attended, points: 8, decay: {percent: 50, every_days: 30}}
      - {id: recent-chat, event: chat_started, points: 7, within_days: 10, decay: none}
      - {id: bounce, event: email_bounce, where: {bounce_type: hard}, points: -90, decay: none}
      - id: pricing
        when: {event: page_view, where: {url: {contains: /pricing}}, within_days: 60,
               count: {gte: 3}}
        points: 15
      - id: never-opens
        when: {all: [{event: email_sent, count: {gte: 3}}, {event: email_open, count: {eq: 0}}]}
        points: -20
  fit:
    limit: {min: -200, max: 100}
    rules:
      - {id: phone-known, when: {property: phone, known: true}, points: 5}
      - {id: job-seeker, when: {property: persona, eq: job_seeker}, points: -100}
      - {id: engaged, when: {score: engagement, gte: 50}, points: 1}
      - {id: not-fr, when: {not: {property: country, in: [FR, BE]}}, points: 2}
bands:
  engagement: [{label: hot, gte: 60}, {label: warm, gte: 20}, {label: cold}]
"""
END = datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # midnight after DAY in Paris (CEST)


def at(days_before_end: float) -> str:
    return (END - timedelta(days=days_before_end)).isoformat()


@pytest.fixture
def space(database_url, tmp_path: Path):
    config = tmp_path / "leadflow.yaml"
    config.write_text(CONFIG)
    space = make_workspace(database_url, tmp_path, config)
    yield space
    space.engine.dispose()


def load(space, tmp_path: Path, rows: list[dict], contacts: list[dict] | None = None) -> None:
    now = datetime(2026, 7, 15, tzinfo=UTC)
    if contacts:
        ingest_file(space, write_csv(tmp_path / "contacts.csv", contacts), now=now)
    events = [event_row(str(i), **row) for i, row in enumerate(rows)]
    ingest_file(space, write_csv(tmp_path / "events.csv", events, EVENT_HEADER), now=now)


def scores(space, day: date = DAY) -> dict[str, dict]:
    return {row["email"]: row for row in scores_as_of(space, day).to_pylist()}


def test_as_of_end_is_midnight_after_the_day_in_the_account_zone(space):
    assert as_of_end(DAY, space.config) == END
    assert as_of_end(date(2026, 12, 30), space.config) == datetime(2026, 12, 30, 23, tzinfo=UTC)


def test_event_rules_decay_cap_and_windows(space, tmp_path):
    a = "a@example.com"
    load(
        space,
        tmp_path,
        [
            {"email": a, "type_": "email_open", "occurred_at": at(90)},  # half-life: 10 -> 5
            {"email": a, "type_": "email_open", "occurred_at": at(0.5)},  # 10 * 0.5^(0.5/90)
            *[{"email": a, "type_": "email_click", "occurred_at": at(d)} for d in (1, 2, 3, 4)],
            {"email": a, "type_": "webinar_attended", "occurred_at": at(61)},  # 8 * 0.5^2
            {"email": a, "type_": "chat_started", "occurred_at": at(10)},  # exactly 10: out
            {"email": a, "type_": "chat_started", "occurred_at": at(9.999)},  # in
        ],
    )
    expected = 5 + 10 * 0.5 ** (0.5 / 90) + 60 + 2 + 7
    assert scores(space)[a]["engagement"] == pytest.approx(expected, abs=1e-4)
    assert scores(space)[a]["band_engagement"] == "hot"


def test_events_at_the_end_of_the_day_and_after_it(space, tmp_path):
    load(
        space,
        tmp_path,
        [
            {
                "email": "in@example.com",
                "type_": "chat_started",
                "occurred_at": (END - timedelta(seconds=1)).isoformat(),
            },
            # 23:30 UTC on the 30th is 01:30 on July 1st in Paris: after the day.
            {
                "email": "out@example.com",
                "type_": "chat_started",
                "occurred_at": "2026-06-30T23:30:00+00:00",
            },
            {"email": "out@example.com", "type_": "chat_started", "occurred_at": END.isoformat()},
        ],
    )
    today = scores(space)
    assert today["in@example.com"]["engagement"] == 7
    assert "out@example.com" not in today  # its first event is after the day: not there yet
    assert scores(space, DAY + timedelta(days=1))["out@example.com"]["engagement"] == 14


def test_condition_rules_negative_points_where_filters_and_limits(space, tmp_path):
    rows = [
        {
            "email": "p@example.com",
            "type_": "page_view",
            "url": "/pricing?x=1",
            "occurred_at": at(d),
        }
        for d in (1, 20, 59)
    ]
    rows += [
        {"email": "q@example.com", "type_": "page_view", "url": "/pricing", "occurred_at": at(d)}
        for d in (1, 20, 61)
    ]  # third one outside 60 days
    rows += [
        {"email": "s@example.com", "type_": "email_sent", "occurred_at": at(d)} for d in (1, 2, 3)
    ]
    rows += [
        {
            "email": "b@example.com",
            "type_": "email_bounce",
            "occurred_at": at(1),
            "properties": '{"bounce_type": "hard"}',
        },
        {
            "email": "b@example.com",
            "type_": "email_bounce",
            "occurred_at": at(2),
            "properties": '{"bounce_type": "soft"}',
        },
    ]
    load(space, tmp_path, rows)
    today = scores(space)
    assert today["p@example.com"]["engagement"] == 15
    assert today["q@example.com"]["engagement"] == 0
    assert today["s@example.com"]["engagement"] == -20
    assert today["b@example.com"]["engagement"] == -50  # -90 clamped to the limit
    assert today["b@example.com"]["band_engagement"] == "cold"


def test_properties_as_of_the_day_and_scores_reading_scores(space, tmp_path):
    contacts = [
        {
            "email": "j@example.com",
            "phone": "+33 1",
            "persona": "marketer",
            "country": "FR",
            "updated_at": "2026-01-01T00:00:00Z",
        },
        {
            "email": "k@example.com",
            "persona": "job_seeker",
            "country": "DE",
            "updated_at": "2026-01-01T00:00:00Z",
        },
    ]
    load(
        space,
        tmp_path,
        [
            {"email": "j@example.com", "type_": "email_click", "occurred_at": at(d)}
            for d in (1, 2, 3)
        ],
        contacts,
    )
    later = write_csv(
        tmp_path / "later.csv",
        [{"email": "j@example.com", "persona": "job_seeker", "updated_at": "2026-07-10T00:00:00Z"}],
    )
    ingest_file(space, later, now=datetime(2026, 7, 15, tzinfo=UTC))
    today = scores(space)
    assert today["j@example.com"]["fit"] == 5 + 1  # phone, engagement 60 >= 50; FR
    assert today["k@example.com"]["fit"] == -100 + 2
    assert scores(space, date(2026, 7, 10))["j@example.com"]["fit"] == 5 - 100 + 1
    # Properties as of each day: the one-day path (no join with the targets) and the many-day
    # path of `history` agree on the days around the change.
    path = history(space, "j@example.com", date(2026, 7, 8), date(2026, 7, 11)).to_pylist()
    fit = {row["day"]: row["value"] for row in path if row["score"] == "fit"}
    assert fit == {day: scores(space, day)["j@example.com"]["fit"] for day in fit}
    assert fit[date(2026, 7, 9)] != fit[date(2026, 7, 10)]


def test_explain_sums_to_the_score(space, tmp_path):
    a = "a@example.com"
    load(
        space,
        tmp_path,
        [{"email": a, "type_": "email_open", "occurred_at": at(d)} for d in (1, 30, 200)]
        + [
            {
                "email": a,
                "type_": "email_bounce",
                "occurred_at": at(5),
                "properties": '{"bounce_type": "hard"}',
            }
        ],
    )
    [engagement, fit] = explain(space, a, DAY)
    assert math.isclose(
        sum(r.contribution for r in engagement.rules), engagement.total_before_limit
    )
    assert engagement.value == -50 and engagement.total_before_limit < -50
    opens = engagement.rules[0]
    assert (opens.rule, opens.events) == ("open", 3)
    assert opens.newest == END - timedelta(days=1)
    assert opens.oldest == END - timedelta(days=200)
    assert fit.score == "fit" and fit.value == 2  # not FR/BE: no country known


def test_daily_write_back_is_idempotent_and_records_band_changes(space, tmp_path):
    a = "a@example.com"
    load(
        space,
        tmp_path,
        [{"email": a, "type_": "email_click", "occurred_at": at(d)} for d in (1, 2, 3)]
        + [{"email": "z@example.com", "type_": "page_view", "occurred_at": at(1)}],
    )
    first = score_day(space, DAY)
    assert (first.contacts, first.scores_changed, first.band_changes) == (2, 4, 2)
    again = score_day(space, DAY)
    assert (again.scores_changed, again.band_changes) == (0, 0)
    with space.engine.connect() as connection:
        changes = connection.execute(
            text(
                "SELECT c.email, b.old_band, b.new_band FROM band_change b "
                "JOIN contact c ON c.id = b.contact_id ORDER BY 1"
            )
        ).all()
        stored = connection.execute(
            text("SELECT value, band FROM contact_score WHERE score = 'engagement' ORDER BY value")
        ).all()
    assert [tuple(row) for row in changes] == [(a, None, "hot"), ("z@example.com", None, "cold")]
    assert [tuple(row) for row in stored] == [(0.0, "cold"), (60.0, "hot")]


def test_history_is_the_daily_path_without_stored_rows(space, tmp_path):
    a = "a@example.com"
    load(space, tmp_path, [{"email": a, "type_": "email_open", "occurred_at": at(2)}])
    path = history(space, a, DAY - timedelta(days=3), DAY).to_pylist()
    engagement = [(row["day"], row["value"]) for row in path if row["score"] == "engagement"]
    assert [value for _, value in engagement][:2] == [0, 0]
    for day, value in engagement[2:]:
        assert value == scores(space, day)[a]["engagement"]
    # Before its first event the contact did not exist: the export of those days leaves it out.
    assert a not in scores(space, engagement[1][0])
    with space.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM contact_score")).scalar_one() == 0


def scored_emails(space) -> set[str]:
    """The contacts with a stored score (every score of the config)."""
    with space.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.email, count(*) FROM contact_score s JOIN contact c "
                "ON c.id = s.contact_id GROUP BY c.email"
            )
        ).all()
    assert {count for _, count in rows} <= {2}  # engagement and fit
    return {email for email, _ in rows}


def created_by(space, day: date) -> set[str]:
    """The contacts whose creation is before the end of `day` in the account zone."""
    end = as_of_end(day, space.config)
    with space.engine.connect() as connection:
        rows = connection.execute(text("SELECT email, created_at FROM contact")).all()
    stamps = {email: datetime.fromisoformat(str(created)) for email, created in rows}
    return {
        email
        for email, stamp in stamps.items()
        if (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)) < end
    }


def test_every_contact_created_by_the_day_has_a_score_as_of_it(space, tmp_path):
    """Contacts created on the day itself, up to its last second in the account zone, written
    in other zones or without one (UTC), duplicates differing in case and spaces, a HubSpot
    contact without email: each has a score as of the day, by `score_day` and by the day run;
    a contact created at or after the day's end (in the account zone) has none yet, unless it
    has an event before it."""
    contacts = [
        ("old@example.com", "2025-01-10T08:00:00Z"),
        ("morning@example.com", "2026-06-30T09:00:00+02:00"),
        ("last-second@example.com", "2026-06-30T21:59:59Z"),  # 23:59:59 in Paris
        ("new-york@example.com", "2026-06-30T17:30:00-04:00"),  # 23:30 in Paris
        ("naive@example.com", "2026-06-30 21:00:00"),  # no zone: UTC, 23:00 in Paris
        (" Dup@Example.COM ", "2026-07-02T10:00:00Z"),  # and created earlier by a later file
        ("midnight@example.com", "2026-06-30T22:00:00Z"),  # 00:00 on July 1st in Paris
        ("utc-day@example.com", "2026-06-30T23:30:00+00:00"),  # June 30 in UTC only
        ("early-event@example.com", "2026-07-03T09:00:00Z"),  # but an event on the day
    ]
    load(
        space,
        tmp_path,
        [{"email": "early-event@example.com", "type_": "chat_started", "occurred_at": at(0.5)}],
        [
            {"email": email, "created_at": created, "updated_at": created}
            for email, created in contacts
        ],
    )
    again = [{"email": "dup@example.com", "created_at": "2026-06-30T12:00:00Z"}]
    ingest_file(
        space, write_csv(tmp_path / "again.csv", again), now=datetime(2026, 7, 15, tzinfo=UTC)
    )
    # A HubSpot export (modified 2026-10-01, loaded later); Create Date in the portal's zone,
    # the account's: Paris. Keyed by Record ID, without email.
    export = [
        (record, "", "", "", created, "Import", "", "", "false", "", "", "")
        for record, created in (("201", "2026-06-30 23:59"), ("202", "2026-07-01 00:00"))
    ]
    ingest_file(
        space,
        write_export(tmp_path / "hubspot.csv", export_rows(export)),
        now=datetime(2026, 11, 20, tzinfo=UTC),
    )
    on_the_day = {
        "old@example.com",
        "morning@example.com",
        "last-second@example.com",
        "new-york@example.com",
        "naive@example.com",
        "dup@example.com",
        "early-event@example.com",
        "hubspot:201",
    }
    later = {"midnight@example.com", "utc-day@example.com", "hubspot:202"}
    assert created_by(space, DAY) == on_the_day - {"early-event@example.com"}
    assert created_by(space, DAY + timedelta(days=1)) == (on_the_day | later) - {
        "early-event@example.com"
    }
    summary = score_day(space, DAY)
    assert summary.contacts == len(on_the_day)
    assert scored_emails(space) == on_the_day
    exported = {
        row["email"] or row["hubspot_record_id"] for row in scores_as_of(space, DAY).to_pylist()
    }
    assert exported == (on_the_day - {"hubspot:201"}) | {"201"}  # exported by record id

    with space.engine.begin() as connection:  # the day run, from no stored score
        for table in ("band_change", "contact_score", "scoring_run"):
            connection.execute(text(f"DELETE FROM {table}"))
    execute(space, plan_daily(space, DAY))
    assert scored_emails(space) == on_the_day
    execute(space, plan_daily(space, DAY + timedelta(days=1)))
    assert scored_emails(space) == on_the_day | later


EVENT_KINDS = (
    "email_open",
    "email_click",
    "webinar_attended",
    "chat_started",
    "page_view",
    "email_sent",
)


def reference_engagement(events: list[tuple[str, float, str]]) -> float:
    """The README's scoring rules written plainly, for the rules of CONFIG's engagement score."""

    def count(kind, within=math.inf, url=None):
        return sum(
            1 for k, age, u in events if k == kind and age < within and (url is None or url in u)
        )

    total = sum(10 * 0.5 ** (age / 90) for kind, age, _ in events if kind == "email_open")
    total += min(60.0, 20.0 * count("email_click"))
    total += sum(
        8 * 0.5 ** math.floor(age / 30) for kind, age, _ in events if kind == "webinar_attended"
    )
    total += 7 * count("chat_started", within=10)
    total += 15 if count("page_view", within=60, url="/pricing") >= 3 else 0
    total += -20 if count("email_sent") >= 3 and count("email_open") == 0 else 0
    return min(max(total, -50.0), 100.0)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(EVENT_KINDS),
            st.floats(min_value=0.001, max_value=400),
            st.sampled_from(["/pricing", "/blog/x", "/pricing/eu"]),
        ),
        max_size=12,
    )
)
def test_engine_equals_a_plain_reference(sqlite_scoring_space, events):
    space, folder = sqlite_scoring_space
    email = f"h{next(COUNTER)}@example.com"
    rows = [
        event_row(
            f"{email}-{i}",
            email=email,
            type_=kind,
            url=url,
            occurred_at=(END - timedelta(days=age)).isoformat(),
        )
        for i, (kind, age, url) in enumerate(events)
    ] or [event_row(f"{email}-0", email=email, type_="form_submission", occurred_at=at(500))]
    ingest_file(
        space,
        write_csv(folder / f"{email}.csv", rows, EVENT_HEADER),
        now=datetime(2026, 7, 15, tzinfo=UTC),
    )
    # Timestamps travel through text at microsecond precision.
    rounded = [(k, round(age * 86400e6) / 86400e6, u) for k, age, u in events]
    [engagement, _] = explain(space, email, DAY)
    assert engagement.value == pytest.approx(reference_engagement(rounded), abs=2e-4)


COUNTER = itertools.count()


@pytest.fixture
def sqlite_scoring_space(sqlite_url, tmp_path: Path):
    config = tmp_path / "leadflow.yaml"
    config.write_text(CONFIG)
    space = make_workspace(sqlite_url, tmp_path, config)
    yield space, tmp_path
    space.engine.dispose()


def test_a_rule_change_is_detected_and_its_impact_shown_before_writing(space, tmp_path):
    import dataclasses

    from leadflow.config import load_config
    from leadflow.scoring.scores import rescore_impact

    a = "a@example.com"
    load(space, tmp_path, [{"email": a, "type_": "email_click", "occurred_at": at(1)}])
    assert score_day(space, DAY).model_changed is False
    changed_yaml = tmp_path / "changed.yaml"
    changed_yaml.write_text(CONFIG.replace("points: 20, max_points: 60", "points: 70"))
    changed = dataclasses.replace(space, config=load_config(changed_yaml))
    assert changed.config.model_version != space.config.model_version

    impact = rescore_impact(changed, DAY)
    assert impact.band_changes == 1
    assert ("engagement", "hot", 0, 1) in impact.bands
    assert ("engagement", "warm", 1, 0) in impact.bands
    assert impact.movers[0][:2] == (a, "engagement") and impact.movers[0][4] == 50
    with space.engine.connect() as connection:  # the dry run wrote nothing
        assert connection.execute(text("SELECT max(value) FROM contact_score")).scalar() == 20

    summary = score_day(changed, DAY)
    assert (summary.model_changed, summary.band_changes) == (True, 1)


HYGIENE = """
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
scores:
  hygiene:
    limit: {min: -100, max: 100}
    rules:
      - {id: unengaged, when: {unengaged: true}, points: -1}
      - {id: suppressed, when: {suppressed: true}, points: -10}
"""


def sends(email: str, count: int, first_age: float = 100) -> list[dict]:
    return [
        {"email": email, "type_": "email_sent", "occurred_at": at(first_age - i)}
        for i in range(count)
    ]


def test_graymail_thresholds_and_suppression(database_url, tmp_path):
    config = tmp_path / "hygiene.yaml"
    config.write_text(HYGIENE)
    space = make_workspace(database_url, tmp_path, config)
    engaged_open = {"type_": "email_open", "occurred_at": at(200)}
    rows = sends("never10@x.com", 10) + sends("never11@x.com", 11)
    rows += [{"email": "eng15@x.com", **engaged_open}] + sends("eng15@x.com", 15)
    rows += [{"email": "eng16@x.com", **engaged_open}] + sends("eng16@x.com", 16)
    rows += sends("recent@x.com", 20) + [
        {"email": "recent@x.com", "type_": "email_click", "occurred_at": at(90)}
    ]
    rows += [
        {"email": "unsub@x.com", "type_": "email_unsubscribe", "occurred_at": at(3)},
        {"email": "spam@x.com", "type_": "email_spam_report", "occurred_at": at(3)},
        {
            "email": "hard@x.com",
            "type_": "email_bounce",
            "occurred_at": at(3),
            "properties": '{"bounce_type": "hard"}',
        },
        {
            "email": "soft@x.com",
            "type_": "email_bounce",
            "occurred_at": at(3),
            "properties": '{"bounce_type": "soft"}',
        },
    ]
    load(space, tmp_path, rows)
    hygiene = {email: row["hygiene"] for email, row in scores(space).items()}
    assert hygiene == {
        "never10@x.com": 0,
        "never11@x.com": -1,
        "eng15@x.com": 0,
        "eng16@x.com": -1,
        "recent@x.com": 0,
        "unsub@x.com": -10,
        "spam@x.com": -10,
        "hard@x.com": -10,
        "soft@x.com": 0,
    }
    space.engine.dispose()


CONSTRUCTS_CONFIG = """
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
scores:
  engagement:
    limit: {min: -30, max: 60}
    decay: {half_life_days: 30}
    groups: {email: {limit: {max: 25}}, web: {limit: {min: -5, max: 15}}}
    reset_when: {event: deal_lost}
    rules:
      - {id: open, event: email_open, points: 10, group: email}
      - {id: click, event: email_click, points: 20, group: email, decay: none}
      - id: visits
        event: page_view
        within_days: 14
        group: web
        ranges: [{count: {gte: 1, lte: 2}, points: 5}, {count: {gte: 3, lte: 5}, points: 10},
                 {count: {gte: 6}, points: 20}]
      - {id: unsubscribed, event: email_unsubscribe, points: -10, group: web, decay: none}
      - {id: webinar, event: webinar_attended, points: 8}
"""
CONSTRUCT_KINDS = (
    "email_open",
    "email_click",
    "page_view",
    "email_unsubscribe",
    "webinar_attended",
    "deal_lost",
)


def reference_constructs(events: list[tuple[str, float]]) -> float:
    """README: Scores' groups, frequency ranges and resets written plainly, for
    CONSTRUCTS_CONFIG: events older than the latest deal lost count for nothing."""
    reset = min((age for kind, age in events if kind == "deal_lost"), default=math.inf)
    kept = [(kind, age) for kind, age in events if age <= reset]
    email = sum(10 * 0.5 ** (age / 30) for kind, age in kept if kind == "email_open")
    email += 20 * sum(1 for kind, _ in kept if kind == "email_click")
    visits = sum(1 for kind, age in kept if kind == "page_view" and age < 14)
    web = 20 if visits >= 6 else 10 if visits >= 3 else 5 if visits >= 1 else 0
    web -= 10 * sum(1 for kind, _ in kept if kind == "email_unsubscribe")
    webinar = sum(8 * 0.5 ** (age / 30) for kind, age in kept if kind == "webinar_attended")
    total = min(email, 25) + min(max(web, -5), 15) + webinar
    return min(max(total, -30.0), 60.0)


@pytest.fixture
def constructs_space(sqlite_url, tmp_path: Path):
    config = tmp_path / "leadflow.yaml"
    config.write_text(CONSTRUCTS_CONFIG)
    space = make_workspace(sqlite_url, tmp_path, config)
    yield space, tmp_path
    space.engine.dispose()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(CONSTRUCT_KINDS), st.floats(min_value=0.001, max_value=60)),
        max_size=14,
    )
)
def test_groups_ranges_and_resets_equal_a_plain_reference(constructs_space, events):
    space, folder = constructs_space
    email = f"c{next(COUNTER)}@example.com"
    rows = [
        event_row(
            f"{email}-{i}",
            email=email,
            type_=kind,
            occurred_at=(END - timedelta(days=age)).isoformat(),
        )
        for i, (kind, age) in enumerate(events)
    ] or [event_row(f"{email}-0", email=email, type_="form_submission", occurred_at=at(500))]
    ingest_file(
        space,
        write_csv(folder / f"{email}.csv", rows, EVENT_HEADER),
        now=datetime(2026, 7, 15, tzinfo=UTC),
    )
    rounded = [(kind, round(age * 86400e6) / 86400e6) for kind, age in events]
    [engagement] = explain(space, email, DAY)
    assert engagement.value == pytest.approx(reference_constructs(rounded), abs=2e-4)
    assert engagement.total_before_limit == pytest.approx(
        sum(r.contribution for r in engagement.rules if r.group is None)
        + sum(group.capped for group in engagement.groups)
    )


def test_the_write_back_streams_every_changed_score_by_score_then_contact():
    """Sorted a million contact ids at a time (one sort of a first day's 20M rows at 10M
    contacts passed DuckDB's memory limit): 2.5M ids, two scores, shuffled, come out whole and
    in order."""
    from leadflow.lake import duckdb_connection
    from leadflow.scoring.scores import _changed_in_order

    with duckdb_connection() as connection:
        connection.execute(
            """CREATE TEMP TABLE changed_scores AS
               SELECT i // 2 + 1 AS contact_id, ['fit', 'engagement'][i % 2 + 1] AS score,
                      i * 0.5 AS value, 'A' AS band, NULL::VARCHAR AS old_band
               FROM range(5000000) t(i) ORDER BY hash(i)"""
        )
        streamed = _changed_in_order(connection).read_all()  # as bulk_load reads it
    columns = streamed["score"].to_pylist(), streamed["contact_id"].to_pylist()
    keys = list(zip(*columns, strict=True))
    assert len(keys) == 5_000_000 and keys[0] == ("engagement", 1)
    assert all(before < after for before, after in itertools.pairwise(keys))
