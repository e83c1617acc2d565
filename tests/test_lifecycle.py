"""Lifecycle stages on SQLite and PostgreSQL: forward only, skipped stages, audit, admin moves."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from leadflow.domain import STAGES
from leadflow.ingest.load import ingest_file
from leadflow.lifecycle import StageError, advance_stages, set_stage
from tests.conftest import make_workspace
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

DAY = date(2026, 6, 30)
CONFIG = """
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
scores:
  engagement:
    limit: {min: -50, max: 100}
    rules:
      - {id: open, event: email_open, points: 30}
lifecycle:
  promote:
    subscriber: {event: form_submission, where: {form_id: {in: [newsletter, blog]}}}
    lead: {event: form_submission, where: {form_id: demo-request}}
    marketingqualifiedlead: {any: [{score: engagement, gte: 60}, {event: webinar_registration}]}
    salesqualifiedlead: {event: sales_accepted}
    customer: {event: deal_won}
"""


@pytest.fixture
def space(database_url, tmp_path: Path):
    config = tmp_path / "leadflow.yaml"
    config.write_text(CONFIG)
    space = make_workspace(database_url, tmp_path, config)
    yield space
    space.engine.dispose()


def load(space, folder: Path, name: str, rows: list[dict]) -> None:
    events = [event_row(f"{name}-{i}", **row) for i, row in enumerate(rows)]
    ingest_file(
        space,
        write_csv(folder / f"{name}.csv", events, EVENT_HEADER),
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )


def on(day: date, hour: int = 10) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def stages(space) -> dict[str, str]:
    with space.engine.connect() as connection:
        return dict(
            connection.execute(
                text(
                    "SELECT c.email, s.stage FROM contact_stage s "
                    "JOIN contact c ON c.id = s.contact_id"
                )
            ).all()
        )


def entries(space, email: str) -> dict[str, date]:
    with space.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT e.stage, e.day FROM stage_entry e JOIN contact c ON c.id = e.contact_id "
                "WHERE c.email = :email"
            ),
            {"email": email},
        ).all()
    return {stage: day if isinstance(day, date) else date.fromisoformat(day) for stage, day in rows}


def test_highest_stage_wins_and_skipped_stages_get_their_date(space, tmp_path):
    load(
        space,
        tmp_path,
        "a",
        [
            {
                "email": "n@x.com",
                "type_": "form_submission",
                "form_id": "newsletter",
                "occurred_at": on(DAY),
            },
            {
                "email": "w@x.com",
                "type_": "form_submission",
                "form_id": "newsletter",
                "occurred_at": on(DAY),
            },
            {"email": "w@x.com", "type_": "webinar_registration", "occurred_at": on(DAY)},
            {
                "email": "later@x.com",
                "type_": "deal_won",
                "occurred_at": on(DAY + timedelta(days=1)),
            },
        ],
    )
    summary = advance_stages(space, DAY)
    assert stages(space) == {"n@x.com": "subscriber", "w@x.com": "marketingqualifiedlead"}
    assert summary.moves == 2 and summary.funnel["marketingqualifiedlead"] == 1
    assert summary.funnel == {stage: 0 for stage in (*STAGES, "other")} | {
        "subscriber": 1,
        "marketingqualifiedlead": 1,
    }
    assert entries(space, "w@x.com") == {
        "subscriber": DAY,
        "lead": DAY,
        "marketingqualifiedlead": DAY,
    }
    with space.engine.connect() as connection:
        audit = connection.execute(
            text(
                "SELECT c.email, m.from_stage, m.to_stage, m.day, m.rule, m.model_version "
                "FROM stage_move m JOIN contact c ON c.id = m.contact_id ORDER BY 1"
            )
        ).all()
    assert [(row[0], row[1], row[2], row[4]) for row in audit] == [
        ("n@x.com", None, "subscriber", "lifecycle.promote.subscriber"),
        ("w@x.com", None, "marketingqualifiedlead", "lifecycle.promote.marketingqualifiedlead"),
    ]
    assert {row[5] for row in audit} == {space.config.model_version}
    assert advance_stages(space, DAY).moves == 0  # the same day again: nothing moves


def test_forward_only_by_rule_back_only_by_an_admin(space, tmp_path):
    load(
        space,
        tmp_path,
        "a",
        [
            {"email": "c@x.com", "type_": "deal_won", "occurred_at": on(DAY)},
        ],
    )
    advance_stages(space, DAY)
    assert stages(space) == {"c@x.com": "customer"}
    previous = set_stage(space, "C@x.com", "lead", "deal was booked on the wrong contact", DAY)
    assert previous == "customer" and stages(space) == {"c@x.com": "lead"}
    with space.engine.connect() as connection:
        rule, reason = connection.execute(
            text("SELECT rule, reason FROM stage_move ORDER BY id DESC LIMIT 1")
        ).one()
    assert (rule, reason) == ("admin", "deal was booked on the wrong contact")
    # A contact above its rules' target stays: no rule moves anyone back.
    load(
        space,
        tmp_path,
        "b",
        [
            {"email": "m@x.com", "type_": "webinar_registration", "occurred_at": on(DAY)},
        ],
    )
    set_stage(space, "m@x.com", "opportunity", "met at a fair", DAY)
    advance_stages(space, DAY + timedelta(days=1))
    assert stages(space)["m@x.com"] == "opportunity"
    with pytest.raises(StageError, match="needs a --reason"):
        set_stage(space, "m@x.com", "lead", "  ", DAY)
    with pytest.raises(StageError, match="unknown stage"):
        set_stage(space, "m@x.com", "prospect", "x", DAY)


def test_a_stage_from_the_contact_record_and_other_are_respected(space, tmp_path):
    hubspot = write_csv(
        tmp_path / "hubspot.csv",
        [
            {"Record ID": "1", "Email": "h@x.com", "Lifecycle Stage": "Sales Qualified Lead"},
            {"Record ID": "2", "Email": "o@x.com", "Lifecycle Stage": "Other"},
        ],
    )
    ingest_file(space, hubspot, now=datetime(2026, 12, 1, tzinfo=UTC))
    load(
        space,
        tmp_path,
        "a",
        [
            {"email": "h@x.com", "type_": "webinar_registration", "occurred_at": on(DAY)},
            {"email": "o@x.com", "type_": "deal_won", "occurred_at": on(DAY)},
        ],
    )
    assert advance_stages(space, DAY).moves == 0
    assert stages(space) == {}  # h stays SQL (from its record), o stays `other`
    set_stage(space, "o@x.com", "lead", "reviewed by sales ops", DAY)
    advance_stages(space, DAY)
    assert stages(space) == {"o@x.com": "customer"}
