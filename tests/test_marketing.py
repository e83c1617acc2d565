"""Marketing contacts on SQLite and PostgreSQL: creation defaults, promotion, the demotion
calendar across renewals, suppression, graymail, the admin command and the tier report."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from leadflow.config import Contract
from leadflow.domain import NON_MARKETING_SOURCES
from leadflow.ingest.load import ingest_file
from leadflow.lifecycle import advance_stages
from leadflow.marketing import (
    MarketingError,
    add_months,
    renewal_after,
    renewal_on_or_before,
    set_marketing_status,
    tier_report,
    update_marketing,
)
from tests.conftest import make_workspace, snapshot
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

INGESTED_AT = datetime(2028, 1, 1, tzinfo=UTC)
CONFIG = """
account: {timezone: Europe/Paris}
contract:
  renewal_date: 2027-03-01
  billing: BILLING
  marketing_contact_tier: 4
  demotion_window_days: WINDOW
lifecycle:
  promote:
    lead: {event: form_submission}
marketing:
  integration_overrides: {zoom_webinar: marketing}
  promote: {all: [{stage: {in: [lead]}}, {not: {suppressed: true}}]}
  demote:
    - {id: unsubscribed, when: {event: email_unsubscribe}}
    - {id: hard-bounce, when: {event: email_bounce, where: {bounce_type: hard}}}
    - {id: unengaged, when: {unengaged: true}}
    - {id: job-seeker, when: {property: persona, eq: job_seeker}}
"""


def make_space(database_url: str, folder: Path, billing: str = "annual", window: int = 90):
    config = folder / "leadflow.yaml"
    config.write_text(CONFIG.replace("BILLING", billing).replace("WINDOW", str(window)))
    return make_workspace(database_url, folder, config)


@pytest.fixture
def space(database_url, tmp_path: Path):
    space = make_space(database_url, tmp_path)
    yield space
    space.engine.dispose()


def contacts(space, folder: Path, rows: list[dict], name: str = "contacts") -> None:
    header = ["email", "created_at", "updated_at", "creation_source", "integration", "persona"]
    defaults = {
        "created_at": "2026-10-01T09:00:00Z",
        "updated_at": "2026-10-01T09:00:00Z",
        "creation_source": "form",
    }
    rows = [{**defaults, **row} for row in rows]
    ingest_file(space, write_csv(folder / f"{name}.csv", rows, header), now=INGESTED_AT)


def events(space, folder: Path, name: str, rows: list[dict]) -> None:
    batch = [event_row(f"{name}-{i}", **row) for i, row in enumerate(rows)]
    ingest_file(space, write_csv(folder / f"{name}.csv", batch, EVENT_HEADER), now=INGESTED_AT)


def run(space, day: date):
    advance_stages(space, day)
    return update_marketing(space, day)


def state(space, email: str) -> tuple:
    """(status, status_rule, suppressed, open demotion state or None)."""
    with space.engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    """SELECT m.status, m.status_rule, m.suppressed, d.state
                       FROM contact c JOIN contact_marketing m ON m.contact_id = c.id
                       LEFT JOIN demotion d ON d.contact_id = c.id
                            AND d.state IN ('queued', 'scheduled')
                       WHERE c.email = :email"""
                ),
                {"email": email},
            ).one()
        )


def audit(space, email: str, kind: str) -> list[tuple]:
    with space.engine.connect() as connection:
        rows = connection.execute(
            text(
                """SELECT m.day, m.from_value, m.to_value, m.rule FROM marketing_change m
                   JOIN contact c ON c.id = m.contact_id
                   WHERE c.email = :email AND m.kind = :kind ORDER BY m.id"""
            ),
            {"email": email, "kind": kind},
        ).all()
    return [(as_date(day), *rest) for day, *rest in rows]


def as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def test_new_contacts_get_their_creation_default_override_or_fixed_status(space, tmp_path):
    rows = [
        {"email": "form@x.com", "creation_source": "form"},
        {"email": "ads@x.com", "creation_source": "ads"},
        {"email": "import@x.com", "creation_source": "import"},
        {"email": "chat@x.com", "creation_source": "conversation"},
        {"email": "plain@x.com", "creation_source": "integration", "integration": "salesforce"},
        {"email": "zoom@x.com", "creation_source": "integration", "integration": "zoom_webinar"},
        # A fixed source stays non-marketing, even with a marketing integration override.
        *(
            {"email": f"{source}@x.com", "creation_source": source, "integration": "zoom_webinar"}
            for source in NON_MARKETING_SOURCES
        ),
        {"email": "later@x.com", "created_at": "2026-11-02T00:30:00+01:00"},
    ]
    contacts(space, tmp_path, rows)
    summary = run(space, date(2026, 11, 1))
    expected = {
        "form@x.com": ("marketing", "creation_default:form"),
        "ads@x.com": ("marketing", "creation_default:ads"),
        "import@x.com": ("non_marketing", "creation_default:import"),
        "chat@x.com": ("non_marketing", "creation_default:conversation"),
        "plain@x.com": ("non_marketing", "creation_default:integration"),
        "zoom@x.com": ("marketing", "integration_override:zoom_webinar"),
        **{f"{s}@x.com": ("non_marketing", f"fixed:{s}") for s in NON_MARKETING_SOURCES},
    }
    assert {email: state(space, email)[:2] for email in expected} == expected
    # Created after the end of 1 Nov in Paris: no status as of that day, one the day after.
    assert summary.new_contacts == len(expected)
    assert summary.tier.marketing_contacts == 3
    assert run(space, date(2026, 11, 2)).new_contacts == 1
    assert state(space, "later@x.com")[:2] == ("marketing", "creation_default:form")


def test_hubspot_status_wins_over_the_creation_default(space, tmp_path):
    path = write_csv(
        tmp_path / "hubspot.csv",
        [
            {
                "Email": "erin@x.com",
                "Marketing contact status": "Marketing contact",
                "Create Date": "2026-10-01 10:15",
            },
            {
                "Email": "finn@x.com",
                "Marketing contact status": "Non-marketing contact",
                "Create Date": "2026-10-01 10:15",
            },
        ],
    )
    ingest_file(space, path, now=INGESTED_AT)
    run(space, date(2026, 11, 1))
    assert state(space, "erin@x.com")[:2] == ("marketing", "record")  # an import otherwise
    assert state(space, "finn@x.com")[:2] == ("non_marketing", "record")


def test_demotion_calendar_across_a_renewal(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com"}, {"email": "bob@x.com"}])
    events(
        space,
        tmp_path,
        "unsub",
        [{"email": "ann@x.com", "type_": "email_unsubscribe", "occurred_at": "2026-11-10T10:00Z"}],
    )
    days = {}
    for day in (
        date(2026, 11, 9),
        date(2026, 11, 10),
        date(2026, 11, 30),
        date(2026, 12, 1),  # 2027-03-01 - 90 days: the first day of the window
        date(2027, 2, 28),
        date(2027, 3, 1),  # the renewal
        date(2027, 3, 2),
    ):
        days[day] = (run(space, day), state(space, "ann@x.com"))
    assert days[date(2026, 11, 9)][1] == ("marketing", "creation_default:form", False, None)
    # Suppressed at once; demoted only at renewal.
    assert days[date(2026, 11, 10)][1][2:] == (True, "queued")
    assert days[date(2026, 11, 30)][1][2:] == (True, "queued")
    assert days[date(2026, 12, 1)][1] == ("marketing", "creation_default:form", True, "scheduled")
    assert days[date(2027, 2, 28)][1][0] == "marketing"
    assert days[date(2027, 3, 1)][1] == ("non_marketing", "demotion:unsubscribed", True, None)
    assert audit(space, "ann@x.com", "demotion") == [
        (date(2026, 11, 10), None, "queued", "unsubscribed"),
        (date(2026, 12, 1), "queued", "scheduled", "unsubscribed"),
        (date(2027, 3, 1), "scheduled", "applied", "unsubscribed"),
    ]
    assert audit(space, "ann@x.com", "status")[-1] == (
        date(2027, 3, 1),
        "marketing",
        "non_marketing",
        "demotion:unsubscribed",
    )
    # The tier report as of each day, the renewal rolled forward once it is passed.
    tiers = {day: summary.tier for day, (summary, _) in days.items()}
    assert (tiers[date(2026, 11, 30)].queued_demotions, tiers[date(2026, 11, 30)].saving) == (1, 1)
    before = tiers[date(2027, 2, 28)]
    assert (before.marketing_contacts, before.scheduled_demotions) == (2, 1)
    assert (before.projected_after_renewal, before.renewal_date) == (1, date(2027, 3, 1))
    after = tiers[date(2027, 3, 1)]
    assert (after.marketing_contacts, after.scheduled_demotions) == (1, 0)
    assert after.renewal_date == date(2028, 3, 1)
    assert days[date(2027, 3, 1)][0].renewal == date(2027, 3, 1)
    assert days[date(2027, 3, 1)][0].demotions["applied"] == 1
    with space.engine.connect() as connection:
        renewals = connection.execute(text("SELECT * FROM contract_renewal")).all()
    assert [tuple(map(str, row)) for row in renewals] == [
        ("2027-03-01", "2027-03-01", "1", "2028-03-01")
    ]
    # Reading back the past: the tier as of a day already run is what that run reported.
    assert tier_report(space, date(2026, 12, 1)) == tiers[date(2026, 12, 1)]


def test_a_demotion_opened_inside_the_window_is_scheduled_at_once(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com"}])
    events(
        space,
        tmp_path,
        "bounce",
        [
            {
                "email": "ann@x.com",
                "type_": "email_bounce",
                "occurred_at": "2027-01-10T10:00Z",
                "properties": '{"bounce_type": "hard"}',
            },
            {
                "email": "ann@x.com",
                "type_": "email_bounce",
                "occurred_at": "2027-01-05T10:00Z",
                "properties": '{"bounce_type": "soft"}',
            },
        ],
    )
    run(space, date(2027, 1, 9))
    assert state(space, "ann@x.com")[2:] == (False, None)  # a soft bounce suppresses nothing
    run(space, date(2027, 1, 10))
    assert state(space, "ann@x.com")[2:] == (True, "scheduled")
    assert audit(space, "ann@x.com", "demotion")[0][3] == "hard-bounce"


def test_a_demotion_is_cancelled_when_no_rule_holds_any_more(space, tmp_path):
    contacts(
        space,
        tmp_path,
        [{"email": "ann@x.com", "persona": "job_seeker", "updated_at": "2026-10-01T09:00Z"}],
    )
    run(space, date(2026, 11, 1))
    assert state(space, "ann@x.com")[3] == "queued"
    contacts(
        space,
        tmp_path,
        [{"email": "ann@x.com", "persona": "buyer", "updated_at": "2026-11-20T09:00Z"}],
        name="update",
    )
    run(space, date(2026, 11, 19))
    assert state(space, "ann@x.com")[3] == "queued"  # the property as it was on the 19th
    run(space, date(2026, 11, 20))
    assert state(space, "ann@x.com") == ("marketing", "creation_default:form", False, None)
    assert audit(space, "ann@x.com", "demotion") == [
        (date(2026, 11, 1), None, "queued", "job-seeker"),
        (date(2026, 11, 20), "queued", "cancelled", "job-seeker"),
    ]
    run(space, date(2027, 3, 1))  # nothing left to apply at renewal
    assert state(space, "ann@x.com")[0] == "marketing"


def test_promotion_by_rule_only_when_no_demote_rule_holds(space, tmp_path):
    contacts(
        space,
        tmp_path,
        [
            {"email": "ann@x.com", "creation_source": "import", "updated_at": "2026-10-01T09:00Z"},
            {
                "email": "bob@x.com",
                "creation_source": "import",
                "persona": "job_seeker",
                "updated_at": "2026-10-01T09:00Z",
            },
        ],
    )
    forms = [
        {"email": email, "type_": "form_submission", "occurred_at": "2026-11-05T10:00Z"}
        for email in ("ann@x.com", "bob@x.com")
    ]
    events(space, tmp_path, "forms", forms)
    run(space, date(2026, 11, 4))
    assert state(space, "ann@x.com")[0] == "non_marketing"
    summary = run(space, date(2026, 11, 5))  # both become leads
    assert summary.promoted == 1
    assert state(space, "ann@x.com")[:2] == ("marketing", "marketing.promote")
    # Demotion wins: a lead meeting a demote rule is not promoted, and not demoted either.
    assert state(space, "bob@x.com") == ("non_marketing", "creation_default:import", False, None)
    contacts(
        space,
        tmp_path,
        [{"email": "bob@x.com", "persona": "buyer", "updated_at": "2026-11-08T09:00Z"}],
        name="update",
    )
    run(space, date(2026, 11, 8))
    assert state(space, "bob@x.com")[:2] == ("marketing", "marketing.promote")


def test_an_admin_promotion_cancels_a_pending_demotion(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com", "persona": "job_seeker"}])
    run(space, date(2026, 11, 1))
    assert state(space, "ann@x.com")[3] == "queued"
    done = set_marketing_status(space, "ann@x.com", "marketing", "key account", date(2026, 11, 2))
    assert "queued demotion cancelled" in done
    assert state(space, "ann@x.com")[3] is None
    with space.engine.connect() as connection:
        reason = connection.execute(
            text("SELECT reason FROM marketing_change ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert reason == "key account"
    assert audit(space, "ann@x.com", "demotion")[-1] == (
        date(2026, 11, 2),
        "queued",
        "cancelled",
        "admin",
    )


def test_admin_non_marketing_only_requests_a_demotion_kept_until_renewal(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com"}])
    run(space, date(2026, 11, 1))
    with pytest.raises(MarketingError, match="needs a --reason"):
        set_marketing_status(space, "ann@x.com", "non_marketing", " ", date(2026, 11, 2))
    done = set_marketing_status(space, "ann@x.com", "non_marketing", "asked", date(2026, 11, 2))
    assert done.startswith("demotion queued: stays marketing until the renewal of 2027-03-01")
    with pytest.raises(MarketingError, match="already has a queued demotion"):
        set_marketing_status(space, "ann@x.com", "non_marketing", "again", date(2026, 11, 2))
    # No demote rule holds, yet an admin's request is not cancelled by the rules.
    for day in (date(2026, 11, 3), date(2026, 12, 1)):
        run(space, day)
    assert state(space, "ann@x.com") == ("marketing", "creation_default:form", False, "scheduled")
    run(space, date(2027, 3, 1))
    assert state(space, "ann@x.com")[:2] == ("non_marketing", "demotion:admin")
    with pytest.raises(MarketingError, match="already non-marketing"):
        set_marketing_status(space, "ann@x.com", "non_marketing", "x", date(2027, 3, 2))


def test_spam_report_suppresses_at_once_whatever_the_billing_status(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com"}])
    spam = [
        {"email": "ann@x.com", "type_": "email_spam_report", "occurred_at": "2026-11-03T10:00Z"}
    ]
    events(space, tmp_path, "spam", spam)
    summary = run(space, date(2026, 11, 3))
    assert summary.suppressed == 1
    # Suppressed (no marketing sent), still billed: no demote rule is about spam reports.
    assert state(space, "ann@x.com") == ("marketing", "creation_default:form", True, None)
    with space.engine.connect() as connection:
        reason = connection.execute(
            text("SELECT reason FROM marketing_change WHERE kind = 'suppression'")
        ).scalar_one()
    assert reason == "spam_report"


@pytest.mark.parametrize(("sends", "unengaged"), [(10, False), (11, True)])
def test_graymail_never_engaged_demotes_after_11_sends(space, tmp_path, sends, unengaged):
    contacts(space, tmp_path, [{"email": "ann@x.com"}])
    start = datetime(2026, 10, 2, 10, tzinfo=UTC)
    rows = [
        {"email": "ann@x.com", "type_": "email_sent", "occurred_at": (start + i * DAY).isoformat()}
        for i in range(sends)
    ]
    events(space, tmp_path, "sends", rows)
    run(space, date(2026, 11, 1))
    assert state(space, "ann@x.com")[3] == ("queued" if unengaged else None)


@pytest.mark.parametrize(("sends", "unengaged"), [(15, False), (16, True)])
def test_graymail_engaged_before_demotes_after_16_sends(space, tmp_path, sends, unengaged):
    contacts(space, tmp_path, [{"email": "ann@x.com"}])
    start = datetime(2026, 10, 2, 10, tzinfo=UTC)
    rows = [{"email": "ann@x.com", "type_": "email_open", "occurred_at": start.isoformat()}]
    rows += [
        {
            "email": "ann@x.com",
            "type_": "email_sent",
            "occurred_at": (start + (i + 1) * DAY).isoformat(),
        }
        for i in range(sends)
    ]
    events(space, tmp_path, "sends", rows)
    run(space, date(2026, 11, 1))
    assert state(space, "ann@x.com")[3] == ("queued" if unengaged else None)


DAY = timedelta(days=1)


def test_days_are_counted_in_the_account_time_zone(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com"}])
    # 23:30 UTC on 10 Nov is 00:30 on 11 Nov in Paris.
    late = [
        {"email": "ann@x.com", "type_": "email_unsubscribe", "occurred_at": "2026-11-10T23:30Z"}
    ]
    events(space, tmp_path, "late", late)
    run(space, date(2026, 11, 10))
    assert state(space, "ann@x.com")[2:] == (False, None)
    run(space, date(2026, 11, 11))
    assert state(space, "ann@x.com")[2:] == (True, "queued")


def test_running_a_day_twice_changes_nothing(space, tmp_path):
    contacts(space, tmp_path, [{"email": "ann@x.com", "persona": "job_seeker"}])
    run(space, date(2026, 12, 5))
    before = snapshot(space)
    again = run(space, date(2026, 12, 5))
    assert (again.new_contacts, again.promoted, sum(again.demotions.values())) == (0, 0, 0)
    after = snapshot(space)
    assert before == after


def test_monthly_billing_applies_at_each_month_end(database_url, tmp_path):
    space = make_space(database_url, tmp_path, billing="monthly", window=10)
    contacts(space, tmp_path, [{"email": "ann@x.com", "persona": "job_seeker"}])
    # Anchored on 1 March 2027, monthly: the renewal after 5 Nov 2026 is 1 Dec 2026.
    run(space, date(2026, 11, 5))
    assert state(space, "ann@x.com")[3] == "queued"
    run(space, date(2026, 11, 21))  # 1 Dec - 10 days
    assert state(space, "ann@x.com")[3] == "scheduled"
    summary = run(space, date(2026, 12, 1))
    assert state(space, "ann@x.com")[0] == "non_marketing"
    assert summary.tier.renewal_date == date(2027, 1, 1)
    space.engine.dispose()


def test_renewal_dates_roll_by_whole_billing_periods_both_ways():
    annual = Contract(renewal_date=date(2027, 3, 1), marketing_contact_tier=1)
    assert renewal_after(date(2026, 11, 22), annual) == date(2027, 3, 1)
    assert renewal_after(date(2027, 3, 1), annual) == date(2028, 3, 1)
    assert renewal_after(date(2026, 2, 28), annual) == date(2026, 3, 1)
    assert renewal_on_or_before(date(2027, 3, 1), annual) == date(2027, 3, 1)
    assert renewal_on_or_before(date(2027, 2, 28), annual) == date(2026, 3, 1)
    monthly = Contract(renewal_date=date(2027, 1, 31), billing="monthly", marketing_contact_tier=1)
    assert renewal_after(date(2027, 2, 1), monthly) == date(2027, 2, 28)
    assert renewal_after(date(2027, 2, 28), monthly) == date(2027, 3, 31)
    assert renewal_after(date(2026, 11, 30), monthly) == date(2026, 12, 31)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2027, 1, 31), -2) == date(2026, 11, 30)
