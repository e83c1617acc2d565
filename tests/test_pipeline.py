"""Days of the pipeline on SQLite and PostgreSQL: plans, late data undone and replayed,
backfills equal to daily runs, admins' changes kept through a replay, the run lock."""

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from leadflow.exports import contacts_as_of
from leadflow.ingest.load import ingest_file
from leadflow.lifecycle import set_stage
from leadflow.pipeline.days import execute, run_day
from leadflow.pipeline.plans import Plan, latest_day, plan_backfill, plan_daily
from leadflow.pipeline.replay import (
    ReplayPending,
    begin_replay,
    pending_replay,
    refuse_during_replay,
)
from leadflow.scoring.scores import scores_as_of
from leadflow.store.lock import RunInProgress, state_lock
from tests.conftest import fresh_postgres_schema, lock_held_by_another_process, make_workspace
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

D1 = date(2026, 11, 2)
DAYS = [D1 + timedelta(days=offset) for offset in range(6)]  # 2..7 Nov
INGESTED_AT = datetime(2026, 12, 1, tzinfo=UTC)
DERIVED_TABLES = (
    "contact_score",
    "band_change",
    "contact_stage",
    "stage_entry",
    "stage_move",
    "contact_marketing",
    "demotion",
    "marketing_change",
    "contract_renewal",
    "day_run",
)
CONFIG = """
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 10, demotion_window_days: 90}
scores:
  engagement:
    limit: {min: -100, max: 100}
    decay: {half_life_days: 30}
    rules:
      - {id: open, event: email_open, points: 20}
bands:
  engagement: [{label: hot, gte: 30}, {label: cold}]
lifecycle:
  promote:
    lead: {event: form_submission}
    marketingqualifiedlead: {score: engagement, gte: 30}
marketing:
  promote: {all: [{stage: {in: [lead, marketingqualifiedlead]}}, {not: {suppressed: true}}]}
  demote:
    - {id: unsubscribed, when: {event: email_unsubscribe}}
"""


def on(day: date, hour: int = 10) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


# Events on time (before any run) and the ones that arrive three days late.
ON_TIME = [
    {"email": "ann@x.com", "type_": "email_open", "occurred_at": on(DAYS[0])},
    {"email": "bob@x.com", "type_": "form_submission", "occurred_at": on(DAYS[0])},
    {"email": "cid@x.com", "type_": "chat_started", "occurred_at": on(DAYS[0])},
    {"email": "ann@x.com", "type_": "email_open", "occurred_at": on(DAYS[4])},
]
LATE = [  # all on DAYS[1], arriving after DAYS[4] was run
    {"email": "ann@x.com", "type_": "email_open", "occurred_at": on(DAYS[1])},
    {"email": "bob@x.com", "type_": "email_unsubscribe", "occurred_at": on(DAYS[1])},
    {"email": "cid@x.com", "type_": "form_submission", "occurred_at": on(DAYS[1])},
    {"email": "dan@x.com", "type_": "form_submission", "occurred_at": on(DAYS[1])},
]


def make_space(database_url: str, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "leadflow.yaml"
    config.write_text(CONFIG)
    return make_workspace(database_url, folder, config)


@pytest.fixture
def space(database_url, tmp_path: Path):
    space = make_space(database_url, tmp_path / "a")
    yield space
    space.engine.dispose()


@pytest.fixture
def other_space(database_url, tmp_path: Path, request):
    """A second workspace on the same kind of database, for side-by-side comparisons."""
    if database_url.startswith("sqlite"):
        (tmp_path / "b").mkdir()
        space = make_space(f"sqlite:///{tmp_path / 'b' / 'state.db'}", tmp_path / "b")
        yield space
        space.engine.dispose()
        return
    with fresh_postgres_schema(request.getfixturevalue("postgres_server")) as url:
        space = make_space(url, tmp_path / "b")
        yield space
        space.engine.dispose()


def load(space, name: str, rows: list[dict]) -> None:
    batch = [event_row(f"{name}-{i}", **row) for i, row in enumerate(rows)]
    path = write_csv(space.lake.root.parent / f"{name}.csv", batch, EVENT_HEADER)
    ingest_file(space, path, now=INGESTED_AT)


def derived_state(space) -> dict:
    """The state the days produce, without ids and wall-clock times."""
    with space.engine.connect() as connection:
        state = {}
        for table in DERIVED_TABLES:
            rows = connection.execute(text(f"SELECT * FROM {table}")).mappings().all()
            state[table] = sorted(
                repr(
                    sorted(
                        (key, value)
                        for key, value in row.items()
                        if key not in {"id", "demotion_id", "recorded_at", "finished_at"}
                    )
                )
                for row in rows
            )
    # Contact ids differ between two stores: compare by email through the exports.
    return state


def exports(space, day: date) -> tuple:
    return contacts_as_of(space, day).to_pylist(), scores_as_of(space, day).to_pylist()


def run_daily(space, day: date) -> Plan:
    plan = plan_daily(space, day)
    execute(space, plan)
    return plan


def test_plans(space):
    assert plan_daily(space, DAYS[2]) == Plan(None, [DAYS[2]], None)
    run_daily(space, DAYS[2])
    # Missed days are caught up; a day already run is replayed with every later day.
    assert plan_daily(space, DAYS[5]) == Plan(None, DAYS[3:6], DAYS[2])
    assert plan_daily(space, DAYS[2]) == Plan(DAYS[1], [DAYS[2]], DAYS[2])
    assert plan_daily(space, DAYS[1]).days == DAYS[1:3]
    assert plan_backfill(space, DAYS[0], DAYS[1]) == Plan(D1 - timedelta(days=1), DAYS[:3], DAYS[2])
    assert plan_backfill(space, DAYS[1], DAYS[1]) == Plan(DAYS[0], DAYS[1:3], DAYS[2])
    assert plan_backfill(space, DAYS[3], DAYS[4]).days == DAYS[3:5]
    with pytest.raises(ValueError, match="before --start"):
        plan_backfill(space, DAYS[3], DAYS[2])
    assert Plan(DAYS[0], DAYS[1:3], DAYS[2]).describe() == (
        "undo the changes after 2026-11-02, then run 2 day(s): 2026-11-03..2026-11-04"
    )


def test_late_data_ends_in_the_state_it_would_have_produced_on_time(space, other_space):
    # On time: every event is there before the first run.
    load(other_space, "on-time", ON_TIME)
    load(other_space, "late", LATE)
    for day in DAYS[:5]:
        run_daily(other_space, day)
    # Late: the events of DAYS[1] arrive after DAYS[4] was run, then the daily run of DAYS[1].
    load(space, "on-time", ON_TIME)
    for day in DAYS[:5]:
        run_daily(space, day)
    without_late = exports(space, DAYS[4])
    load(space, "late", LATE)
    plan = run_daily(space, DAYS[1])
    assert plan == Plan(DAYS[0], DAYS[1:5], DAYS[4])
    assert derived_state(space) == derived_state(other_space)
    for day in DAYS[:5]:
        assert exports(space, day) == exports(other_space, day)
    # And the late events did change things, stamped with their own day.
    assert exports(space, DAYS[4]) != without_late
    contacts = {row["email"]: row for row in exports(space, DAYS[4])[0]}
    assert contacts["bob@x.com"]["demotion"] == "queued"  # unsubscribed on DAYS[1]
    assert contacts["cid@x.com"]["date_entered_lead"] == str(DAYS[1])
    # Running the latest day again changes nothing.
    before = derived_state(space)
    run_daily(space, DAYS[4])
    assert derived_state(space) == before


def test_a_backfill_equals_the_same_days_run_one_by_one(space, other_space):
    for workspace in (space, other_space):
        load(workspace, "on-time", ON_TIME)
        load(workspace, "late", LATE)
    for day in DAYS:
        run_daily(other_space, day)
    execute(space, plan_backfill(space, DAYS[0], DAYS[-1]))
    assert derived_state(space) == derived_state(other_space)
    for day in DAYS:
        assert exports(space, day) == exports(other_space, day)
    # A backfill over days already run replays them to the same state.
    execute(space, plan_backfill(space, DAYS[2], DAYS[3]))
    assert derived_state(space) == derived_state(other_space)


def test_an_admin_change_survives_the_replay_of_late_data(space):
    load(space, "on-time", ON_TIME)
    for day in DAYS[:4]:
        run_daily(space, day)
    set_stage(space, "bob@x.com", "subscriber", "asked for the newsletter only", DAYS[3])
    load(space, "late", LATE)
    run_daily(space, DAYS[1])
    with space.engine.connect() as connection:
        moves = connection.execute(
            text(
                "SELECT m.day, m.to_stage, m.rule, m.reason FROM stage_move m "
                "JOIN contact c ON c.id = m.contact_id WHERE c.email = 'bob@x.com' ORDER BY m.id"
            )
        ).all()
    assert [(str(day), *rest) for day, *rest in moves] == [
        (str(DAYS[0]), "lead", "lifecycle.promote.lead", None),
        (str(DAYS[3]), "subscriber", "admin", "asked for the newsletter only"),
    ]


def test_the_run_lock_refuses_a_second_run_from_another_process(space):
    url = space.engine.url.render_as_string(hide_password=False)
    with lock_held_by_another_process(url, "a test holder with a long name, of a flow run"):
        with pytest.raises(RunInProgress) as refused, state_lock(space.engine, "me"):
            pass
        # The holder in full, with its pid, host and start (not cut at 63 characters).
        assert re.search(
            r"being changed by a test holder with a long name, of a flow run \(pid \d+ on "
            r"\S+, since \d{4}-\d\d-\d\dT[\d:]+\+00:00\); try again when it finishes$",
            str(refused.value),
        ), str(refused.value)
        with pytest.raises(RunInProgress), state_lock(space.engine, "me", wait_seconds=1):
            pass
    # Released with the process that held it, even killed (once the server has seen the
    # session end: a moment on PostgreSQL).
    with (
        state_lock(space.engine, "me", wait_seconds=5),
        state_lock(space.engine, "me again (re-entrant)"),
    ):
        pass


def test_an_interrupted_replay_is_finished_first_by_every_later_plan(space):
    """What a replay killed after its second day leaves behind, and what later plans do."""
    load(space, "on-time", ON_TIME)
    for day in DAYS[:5]:
        run_daily(space, day)
    set_stage(space, "bob@x.com", "subscriber", "newsletter only", DAYS[3])
    # A backfill from DAYS[1]: its undo commits, then DAYS[1] and DAYS[2]; killed there.
    begin_replay(space, DAYS[0], DAYS[4])
    assert pending_replay(space.engine).through == DAYS[4]
    for day in DAYS[1:3]:
        run_day(space, day)
    assert latest_day(space) == DAYS[2]
    with space.engine.connect() as connection:
        aside = connection.execute(text("SELECT day, kind, value FROM replay_admin_change")).all()
    assert [(str(day), kind, value) for day, kind, value in aside] == [
        (str(DAYS[3]), "stage", "subscriber")
    ]  # set aside in the state store, not lost with the process
    with pytest.raises(ReplayPending, match="finish it first"):
        refuse_during_replay(space)

    resumed = "finish the interrupted replay up to 2026-11-06: "
    # The same backfill again resumes where it stopped; so does any daily run.
    assert plan_backfill(space, DAYS[1], DAYS[2]) == Plan(None, DAYS[3:5], DAYS[4], DAYS[4])
    assert plan_daily(space, DAYS[5]) == Plan(None, DAYS[3:6], DAYS[4], DAYS[4])
    assert plan_daily(space, DAYS[4]).days == DAYS[3:5]
    assert plan_daily(space, DAYS[4]).describe().startswith(resumed + "run 2 day(s)")
    # The interrupted replay's own undo is not made again; an earlier one is.
    assert plan_daily(space, DAYS[1]) == Plan(None, DAYS[3:5], DAYS[4], DAYS[4])
    before_d1 = DAYS[0] - timedelta(days=1)
    assert plan_daily(space, DAYS[0]) == Plan(before_d1, DAYS[:5], DAYS[4], DAYS[4])
    # Late data since the replay began: the same backfill starts again.
    load(space, "late", LATE)
    assert plan_backfill(space, DAYS[1], DAYS[2]) == Plan(DAYS[0], DAYS[1:5], DAYS[4], DAYS[4])

    execute(space, plan_daily(space, DAYS[4]))
    assert pending_replay(space.engine) is None
    with space.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM replay_admin_change")).scalar() == 0
        moves = connection.execute(
            text(
                "SELECT m.day, m.to_stage, m.rule FROM stage_move m"
                " JOIN contact c ON c.id = m.contact_id WHERE c.email = 'bob@x.com' ORDER BY m.id"
            )
        ).all()
    # Made again on its day by the replay, after that day's rules; the next day's rules move
    # bob forward again, as any day run after the admin's change does.
    assert [(str(day), stage, rule) for day, stage, rule in moves] == [
        (str(DAYS[0]), "lead", "lifecycle.promote.lead"),
        (str(DAYS[3]), "subscriber", "admin"),
        (str(DAYS[4]), "lead", "lifecycle.promote.lead"),
    ]
