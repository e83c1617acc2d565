"""The HubSpot sync against the local stand-in (tests/hubspot_standin.py), over real HTTP: pulls
into the real ingest (SQLite, PostgreSQL), pushes from the real state, the command line.

The portal: five contacts as HubSpot keeps them (internal names and values, UTC times) and a
campaign's email events. Ada and Cy open and click enough to become marketing qualified leads;
Bob is a non-marketing subscriber whom the rules promote; Eve unsubscribes, which schedules her
demotion (the renewal is a month after the day run); a phone-only contact has no email; an
event of a stranger makes a contact with no Record ID.
"""

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from leadflow.config import ConfigError, load_config
from leadflow.hubspot.client import HubSpotAuthError, HubSpotClient, HubSpotRetriesExhausted
from leadflow.hubspot.pull import pull
from leadflow.hubspot.push import PushRefused, push
from leadflow.pipeline import runs
from tests.conftest import SHIPPED_CONFIG, make_workspace
from tests.hubspot_standin import BATCH_UPDATE, SEARCH, TOKEN, FakeClock, Portal


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def as_of() -> date:
    """The day the tests run: yesterday in the account's zone, as `leadflow run` takes it."""
    from zoneinfo import ZoneInfo

    return (datetime.now(ZoneInfo("Europe/Paris")) - timedelta(days=1)).date()


def write_config(
    folder: Path, contacts_per_batch: int = 2, top_level: str = "", **push_settings
) -> Path:
    """The shipped configuration, its renewal a month after the day run, connected to HubSpot."""
    day = as_of()
    shipped = SHIPPED_CONFIG.read_text(encoding="utf-8")
    shipped = re.sub(
        r"renewal_date: \d{4}-\d{2}-\d{2}", f"renewal_date: {day + timedelta(days=30)}", shipped
    )
    push_lines = {
        "scores": "{engagement: leadflow_engagement, fit: leadflow_fit}",
        "bands": "{engagement: leadflow_engagement_band}",
        "max_marketing_changes": "10",
        **push_settings,
    }
    path = folder / "leadflow.yaml"
    path.write_text(
        shipped
        + f"""  pull:
    since: {day - timedelta(days=40)}
    events_window_hours: 2400
    contacts_per_batch: {contacts_per_batch}
  push:
"""
        + "".join(f"    {key}: {value}\n" for key, value in push_lines.items())
        + top_level,
        encoding="utf-8",
    )
    return path


def load_portal(portal: Portal) -> dict[str, str]:
    """The portal of the module docstring; returns name -> record id."""
    for name in ("leadflow_engagement", "leadflow_fit"):
        portal.define_property(name, type_="number", field_type="number")
    portal.define_property(
        "leadflow_engagement_band",
        type_="enumeration",
        field_type="select",
        options=(("hot", "Hot"), ("warm", "Warm"), ("cold", "Cold")),
    )
    day = datetime.combine(as_of(), datetime.min.time(), UTC)
    created = ms(day - timedelta(days=200))
    modified = ms(day - timedelta(days=20))
    people = {
        "ada": ("ada@example.com", "lead", "true", "FORM"),
        "bob": ("bob@example.com", "subscriber", "false", "IMPORT"),
        "cy": ("cy@example.com", "lead", "true", "FORM"),
        "eve": ("eve@example.com", "lead", "true", "FORM"),
        "phone": (None, "subscriber", "false", "CRM_UI"),
    }
    ids = {}
    for n, (name, (email, stage, marketing, source)) in enumerate(people.items()):
        properties = {
            "lifecyclestage": stage,
            "hs_marketable_status": marketing,
            "hs_object_source": source,
            "firstname": name.title(),
            "phone": "+33 1 23 45 67 89" if name == "phone" else None,
        }
        if email:
            properties["email"] = email
        ids[name] = portal.add_contact(
            properties, id=5001 + n, created_ms=created, modified_ms=modified + n
        )
    campaign = 7001
    for name in ("ada", "cy"):
        email = people[name][0]
        sent = day - timedelta(days=5)
        portal.add_email_event("DELIVERED", email, ms(sent), emailCampaignId=campaign)
        for k in range(5):
            portal.add_email_event(
                "OPEN", email, ms(sent + timedelta(hours=1 + k)), emailCampaignId=campaign
            )
        for k in range(2):
            portal.add_email_event(
                "CLICK",
                email,
                ms(sent + timedelta(hours=2, minutes=k)),
                emailCampaignId=campaign,
                url="https://example.com/pricing",
            )
    portal.add_email_event(
        "STATUSCHANGE",
        "eve@example.com",
        ms(day - timedelta(days=3)),
        emailCampaignId=campaign,
        portalSubscriptionStatus="UNSUBSCRIBED",
    )
    portal.add_email_event(
        "OPEN", "zed@example.com", ms(day - timedelta(days=2)), emailCampaignId=campaign
    )
    portal.add_email_event(  # a link scanner's click, flagged by HubSpot
        "CLICK",
        "bob@example.com",
        ms(day - timedelta(days=2)),
        emailCampaignId=campaign,
        filteredEvent=True,
    )
    return ids


def connected_space(database_url: str, folder: Path, **settings):
    return make_workspace(database_url, folder, write_config(folder, **settings))


@pytest.fixture
def space(database_url, tmp_path):
    workspace = connected_space(database_url, tmp_path)
    yield workspace
    workspace.engine.dispose()


@pytest.fixture
def sqlite_space(sqlite_url, tmp_path):
    workspace = connected_space(sqlite_url, tmp_path)
    yield workspace
    workspace.engine.dispose()


def rows(space, sql: str, **parameters) -> list[tuple]:
    with space.engine.connect() as db:
        return [tuple(row) for row in db.execute(text(sql), parameters)]


def run_day(space) -> dict:
    """The day run without its own pull and push (the tests call them)."""
    hubspot = space.config.hubspot.model_copy(update={"pull": None, "push": None})
    offline = replace(space, config=space.config.model_copy(update={"hubspot": hubspot}))
    return runs.daily(offline, runs.LocalSteps(offline), as_of())


# --- pull ---------------------------------------------------------------------------------------


def test_a_first_pull_loads_the_portal_through_the_ingest(space, portal, client):
    ids = load_portal(portal)
    summary = pull(space, client)
    assert summary.contacts == 5 and summary.events == 19
    assert [batch["kind"] for batch in summary.batches] == ["contacts"] * 3 + ["events"]
    assert all(batch["status"] == "loaded" for batch in summary.batches)
    contacts = dict(rows(space, "SELECT hubspot_record_id, email FROM contact"))
    assert contacts[ids["ada"]] == "ada@example.com"
    assert contacts[ids["phone"]] == f"hubspot:{ids['phone']}"  # keyed by its Record ID
    assert contacts[None] == "zed@example.com"  # a stranger's event made a contact
    stages = dict(
        rows(
            space,
            "SELECT c.hubspot_record_id, c.initial_stage || '/' || c.initial_marketing_status "
            "FROM contact c WHERE c.hubspot_record_id IS NOT NULL",
        )
    )
    assert stages[ids["bob"]] == "subscriber/non_marketing"
    assert stages[ids["ada"]] == "lead/marketing"
    sources = dict(rows(space, "SELECT email, creation_source FROM contact"))
    assert sources["ada@example.com"] == "form" and sources["bob@example.com"] == "import"
    # The email events went through the vendor format: types, machine flag, known by id.
    events = lake_events(space)
    assert len(events) == 19
    machine = [event for event in events if event["machine"]]
    assert [(e["email"], e["type"]) for e in machine] == [("bob@example.com", "email_click")]
    assert sorted({event["type"] for event in events}) == [
        "email_click", "email_delivered", "email_open", "email_unsubscribe",
    ]  # fmt: skip
    cursors = dict(rows(space, "SELECT name, value FROM hubspot_cursor"))
    assert json.loads(cursors["contacts"])["modified_ms"] == max(
        ms(datetime.fromisoformat(portal.contact(i)["lastmodifieddate"].replace("Z", "+00:00")))
        for i in ids.values()
    )
    assert rows(space, "SELECT kind, status FROM hubspot_sync") == [("pull", "ok")]
    assert not list((space.lake.root.parent / "hubspot" / "pulled").iterdir())


def test_an_incremental_pull_brings_only_what_changed(sqlite_space, portal, client):
    space = sqlite_space
    ids = load_portal(portal)
    pull(space, client)
    before = rows(space, "SELECT count(*) FROM ingest_batch")[0][0]
    again = pull(space, client)
    # Nothing changed: the last contacts' millisecond is asked again and skipped, and the
    # events' overlap brings back events the lake knows (nothing loaded, no batch kept).
    assert again.contacts == 0
    assert all(batch["status"] != "loaded" for batch in again.batches)
    assert rows(space, "SELECT count(*) FROM ingest_batch")[0][0] == before
    later = datetime.now(UTC)
    portal.add_contact({"email": "new@example.com", "lifecyclestage": "lead"})
    portal.set_modified(ids["bob"], ms(later))
    portal.add_email_event("OPEN", "new@example.com", ms(later - timedelta(minutes=5)))
    third = pull(space, client)
    assert third.contacts == 2 and third.events >= 1
    assert "new@example.com" in dict(rows(space, "SELECT email, id FROM contact"))
    assert len(lake_events(space)) == 20


def test_a_pull_stopped_midway_resumes_and_loads_nothing_twice(
    sqlite_url, tmp_path, standin, portal
):
    space = connected_space(sqlite_url, tmp_path, contacts_per_batch=200)
    load_portal(portal)
    modified = ms(datetime.now(UTC) - timedelta(days=10))
    for n in range(445):  # 450 contacts: three search pages of 200
        portal.add_contact({"email": f"p{n}@example.com"}, modified_ms=modified + n)
    clock = FakeClock()
    searches = 0

    def fail_the_second_page(endpoint, _body):
        nonlocal searches
        if endpoint == SEARCH:
            searches += 1
            if searches == 2:
                portal.fail_next(2, 503, endpoint=SEARCH)

    portal.on_request = fail_the_second_page
    with HubSpotClient(
        TOKEN, base_url=standin.base_url, clock=clock.monotonic, sleep=clock.sleep,
        max_attempts=2,
    ) as hubspot:  # fmt: skip
        with pytest.raises(HubSpotRetriesExhausted):
            pull(space, hubspot)
        # The first batch (the first page) was committed, its cursor with it; nothing else.
        assert rows(space, "SELECT count(*) FROM contact") == [(200,)]
        assert rows(space, "SELECT status FROM hubspot_sync") == [("failed",)]
        portal.on_request = None
        resumed = pull(space, hubspot)
    assert resumed.contacts == 250  # the rest, not the first 200 again
    assert rows(space, "SELECT count(*) FROM contact WHERE hubspot_record_id IS NOT NULL") == [
        (450,)
    ]
    history = rows(
        space,
        "SELECT contact_id, count(*) FROM contact_property_history WHERE name = 'first_name' "
        "GROUP BY contact_id",
    )
    assert len(history) == 5 and {count for _, count in history} == {1}
    assert len(lake_events(space)) == 19
    statuses = [status for (status,) in rows(space, "SELECT status FROM hubspot_sync ORDER BY id")]
    assert statuses == ["failed", "ok"]
    space.engine.dispose()


def lake_events(space) -> list[dict]:
    from leadflow.lake import duckdb_connection

    with duckdb_connection() as connection:
        relation = space.lake.events_sql(space.committed_event_batches())
        return connection.sql(f"SELECT * FROM {relation}").to_arrow_table().to_pylist()


# --- push ---------------------------------------------------------------------------------------


def pushed_props(portal: Portal, record_id: str) -> dict:
    wanted = ("leadflow_", "lifecyclestage", "hs_marketable")
    return {k: v for k, v in portal.contact(record_id).items() if k.startswith(wanted)}


def pulled_and_run(space, portal, client) -> dict[str, str]:
    ids = load_portal(portal)
    pull(space, client)
    run_day(space)
    return ids


def test_a_push_sends_scores_stages_and_billing_safe_marketing_requests(space, portal, client):
    ids = pulled_and_run(space, portal, client)
    # Cy was moved ahead in HubSpot since the pull: leadflow's stage for her is behind it.
    with portal.lock:
        portal.contacts[ids["cy"]]["properties"]["lifecyclestage"] = "opportunity"
    scores = dict(
        rows(
            space,
            "SELECT c.email, s.value FROM contact_score s JOIN contact c ON c.id = s.contact_id "
            "WHERE s.score = 'engagement'",
        )
    )
    summary = push(space, client)
    assert summary.sent == {
        "score": 10, "band": 5, "stage": 1,
        "marketing: marketing": 2, "marketing: non_marketing_at_renewal": 1,
    }  # fmt: skip
    assert summary.skipped == {"stage": 1} and not summary.failed
    assert summary.requests == 1 and summary.without_record_id == 1  # the stranger
    ada = pushed_props(portal, ids["ada"])
    assert ada["leadflow_engagement"] == str(round(scores["ada@example.com"]))
    assert ada["leadflow_engagement_band"] == "hot" and ada["leadflow_fit"] == "0"
    assert ada["lifecyclestage"] == "marketingqualifiedlead"
    assert "leadflow_marketing_request" not in ada  # marketing already: nothing asked
    assert pushed_props(portal, ids["cy"])["lifecyclestage"] == "opportunity"  # never back
    # Bob (non-marketing, promoted by the rules) is made marketing at once.
    bob = pushed_props(portal, ids["bob"])
    assert bob["leadflow_marketing_request"] == "marketing"
    assert bob["hs_marketable_status"] == "true"
    # Eve's demotion is scheduled: marked for the renewal, still marketing (and billed) now.
    eve = pushed_props(portal, ids["eve"])
    assert eve["leadflow_marketing_request"] == "non_marketing_at_renewal"
    assert eve["hs_marketable_status"] == "true" and eve["hs_marketable_until_renewal"] == "true"
    [body] = portal.bodies(BATCH_UPDATE)
    assert all("hs_marketable_status" not in item["properties"] for item in body["inputs"])
    audit = rows(
        space,
        "SELECT record_id, property, value, outcome, detail FROM hubspot_push_record "
        "WHERE outcome = 'skipped'",
    )
    assert audit == [
        (ids["cy"], "lifecyclestage", "marketingqualifiedlead", "skipped",
         "HubSpot has it at opportunity (stages move forward only)"),
    ]  # fmt: skip

    # A second push sends nothing, not even a read: every value is recorded as HubSpot's.
    requests = portal.count()
    again = push(space, client)
    assert again.nothing and again.requests == 0 and portal.count() == requests

    # Eve's demotion cancelled by hand: the marker is cleared, she stays marketing.
    from leadflow.marketing import set_marketing_status

    set_marketing_status(space, "eve@example.com", "marketing", "she asked", as_of())
    cancelled = push(space, client)
    assert cancelled.sent == {"marketing: marketing": 1}
    eve = pushed_props(portal, ids["eve"])
    assert eve["hs_marketable_until_renewal"] == "false" and eve["hs_marketable_status"] == "true"
    portal.renew()  # the renewal comes: nobody leadflow kept marketing is dropped
    assert all(pushed_props(portal, i)["hs_marketable_status"] == "true" for i in ids.values())
    statuses = rows(space, "SELECT kind, status FROM hubspot_sync ORDER BY id")
    assert statuses == [("pull", "ok"), ("push", "ok"), ("push", "ok"), ("push", "ok")]


def test_a_dry_run_says_what_would_be_sent_and_sends_nothing(sqlite_space, portal, client):
    space = sqlite_space
    ids = pulled_and_run(space, portal, client)
    dry = push(space, client, dry_run=True)
    assert dry.sent["marketing: non_marketing_at_renewal"] == 1 and dry.requests == 0
    assert dry.first[0] == {
        "contact": "ada@example.com", "record_id": ids["ada"],
        "property": "leadflow_engagement", "value": dry.first[0]["value"],
    }  # fmt: skip
    assert portal.count(BATCH_UPDATE) == 0
    assert rows(space, "SELECT count(*) FROM hubspot_pushed") == [(0,)]
    assert rows(space, "SELECT count(*) FROM hubspot_push_record") == [(0,)]
    assert push(space, client).sent == dry.sent  # the real push then sends all of it


def test_a_429_storm_is_waited_out_and_sends_each_value_once(sqlite_space, portal, client, clock):
    space = sqlite_space
    ids = pulled_and_run(space, portal, client)
    portal.fail_next(3, 429, retry_after=7, endpoint=BATCH_UPDATE)
    portal.fail_next(1, 502, retry_after=None, endpoint=BATCH_UPDATE)
    summary = push(space, client)
    assert not summary.failed and summary.requests == 1
    assert clock.sleeps.count(7) == 3  # Retry-After honoured, then a backoff for the 502
    assert portal.count(BATCH_UPDATE) == 5
    assert pushed_props(portal, ids["bob"])["hs_marketable_status"] == "true"
    assert push(space, client).nothing


def test_an_interrupted_push_resumes_with_what_it_had_not_sent(
    sqlite_url, tmp_path, portal, client
):
    space = connected_space(sqlite_url, tmp_path, contacts_per_batch=200)
    load_portal(portal)
    modified = ms(datetime.now(UTC) - timedelta(days=10))
    for n in range(150):  # two batch updates: 100 contacts, then the rest
        portal.add_contact(
            {"email": f"p{n}@example.com"}, created_ms=modified, modified_ms=modified + n
        )
    pull(space, client)
    run_day(space)
    updates = 0

    def revoke_after_the_first_update(endpoint, _body):
        nonlocal updates
        if endpoint == BATCH_UPDATE:
            updates += 1
            if updates == 2:
                portal.token = "revoked"

    portal.on_request = revoke_after_the_first_update
    with pytest.raises(HubSpotAuthError):
        push(space, client)
    [first] = portal.bodies(BATCH_UPDATE)[:1]
    recorded = {
        record
        for (record,) in rows(
            space,
            "SELECT DISTINCT c.hubspot_record_id FROM hubspot_pushed p "
            "JOIN contact c ON c.id = p.contact_id",
        )
    }
    assert recorded == {item["id"] for item in first["inputs"]} and len(recorded) == 100
    portal.on_request = None
    portal.token = TOKEN
    resumed = push(space, client)
    sent = {item["id"] for item in portal.bodies(BATCH_UPDATE)[-1]["inputs"]}
    assert resumed.requests == 1 and len(sent) == 55 and not sent & recorded
    assert push(space, client).nothing
    space.engine.dispose()


def test_values_refused_in_a_partial_failure_are_recorded_and_sent_next_push(
    sqlite_space, portal, client
):
    space = sqlite_space
    ids = pulled_and_run(space, portal, client)
    portal.fail_ids(ids["bob"], message="Property values were not valid")
    first = push(space, client)
    assert first.failed == {"score": 2, "band": 1, "marketing: marketing": 1}
    assert first.failures[0].startswith("bob@example.com (leadflow_engagement): VALIDATION_ERROR")
    assert "leadflow_engagement" not in portal.contact(ids["bob"])
    assert pushed_props(portal, ids["eve"])["hs_marketable_until_renewal"] == "true"
    failed = rows(
        space,
        "SELECT DISTINCT record_id, detail FROM hubspot_push_record WHERE outcome = 'failed'",
    )
    assert failed == [(ids["bob"], "VALIDATION_ERROR: Property values were not valid")]
    portal.failing_ids.clear()
    second = push(space, client)
    assert second.sent == first.failed  # only what HubSpot refused
    [_, body] = portal.bodies(BATCH_UPDATE)
    assert [item["id"] for item in body["inputs"]] == [ids["bob"]]
    assert pushed_props(portal, ids["bob"])["hs_marketable_status"] == "true"


def test_the_kill_switch_refuses_a_push_of_too_many_marketing_changes(
    sqlite_url, tmp_path, portal, client
):
    space = connected_space(sqlite_url, tmp_path, max_marketing_changes="2")
    pulled_and_run(space, portal, client)
    with pytest.raises(PushRefused) as refusal:
        push(space, client)
    assert str(refusal.value).startswith(
        "HubSpot push refused: 3 marketing status changes asked, more than "
        "hubspot.push.max_marketing_changes (2); nothing was sent"
    )
    assert portal.count(BATCH_UPDATE) == 0
    assert rows(space, "SELECT count(*) FROM hubspot_pushed") == [(0,)]
    assert rows(space, "SELECT kind, status FROM hubspot_sync ORDER BY id")[-1] == (
        "push",
        "refused",
    )
    assert push(space, client, dry_run=True).refused == str(refusal.value)
    space.engine.dispose()


LEAD_GRADE = """grids:
  lead_grade:
    rows: {score: fit, bands: [{label: A, gte: 5}, {label: B}]}
    columns: {score: engagement, bands: [{label: "1", gte: 60}, {label: "2"}]}
"""


def test_a_grid_cell_is_pushed_and_sent_again_only_when_it_changes(
    sqlite_url, tmp_path, portal, client
):
    space = connected_space(
        sqlite_url, tmp_path, top_level=LEAD_GRADE, grids="{lead_grade: leadflow_lead_grade}"
    )
    portal.define_property("leadflow_lead_grade")
    ids = pulled_and_run(space, portal, client)
    first = push(space, client)
    assert first.sent["grid"] == 5
    grades = {name: portal.contact(i)["leadflow_lead_grade"] for name, i in ids.items()}
    # Ada and Cy are hot (engagement 76) with no fit: B1; the phone's 5 points of fit: A2.
    assert grades == {"ada": "B1", "bob": "B2", "cy": "B1", "eve": "B2", "phone": "A2"}
    with space.engine.begin() as db:  # Bob's engagement as a later day would leave it
        db.execute(
            text(
                "UPDATE contact_score SET value = 75, band = 'hot' WHERE score = 'engagement' "
                "AND contact_id = (SELECT id FROM contact WHERE email = 'bob@example.com')"
            )
        )
    again = push(space, client)
    assert again.sent == {"score": 1, "band": 1, "grid": 1}
    assert portal.contact(ids["bob"])["leadflow_lead_grade"] == "B1"
    space.engine.dispose()


def test_the_configuration_names_grids_that_exist(tmp_path):
    path = write_config(tmp_path, grids="{lead_grade: leadflow_lead_grade}")
    with pytest.raises(ConfigError, match=r"hubspot\.push\.grids\.lead_grade: unknown grid"):
        load_config(path)


def test_the_configuration_names_scores_that_exist(tmp_path):
    path = write_config(tmp_path, scores="{engagment: leadflow_engagement}")
    with pytest.raises(ConfigError, match=r"hubspot\.push\.scores.*engagment"):
        load_config(path)


# --- the command line and the flows ---------------------------------------------------------


@pytest.fixture
def connected_env(leadflow_env, standin, portal, monkeypatch) -> Path:
    """A shell with a connected configuration, the stand-in's URL and its token."""
    monkeypatch.setenv("LEADFLOW_CONFIG", str(write_config(leadflow_env)))
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HUBSPOT_API_BASE", standin.base_url)
    return leadflow_env


def leadflow(*arguments: str):
    from leadflow.cli import app

    return CliRunner().invoke(app, list(arguments))


def test_pull_run_push_from_the_command_line_closes_the_loop(connected_env, portal):
    ids = load_portal(portal)
    pulled = leadflow("hubspot", "pull")
    assert pulled.exit_code == 0, pulled.output
    assert "pulled 5 contacts" in pulled.output and "19 email events" in pulled.output
    dry = leadflow("hubspot", "push", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "nothing to push" in dry.output  # nothing scored yet
    day = leadflow("run")  # pulls (nothing new), runs the day, pushes
    assert day.exit_code == 0, day.output
    assert "HubSpot push" in day.output and portal.count(BATCH_UPDATE) == 1
    assert pushed_props(portal, ids["eve"])["hs_marketable_until_renewal"] == "true"
    assert pushed_props(portal, ids["ada"])["lifecyclestage"] == "marketingqualifiedlead"
    pushed = leadflow("hubspot", "push")
    assert pushed.exit_code == 0, pushed.output
    assert "nothing to push" in pushed.output and portal.count(BATCH_UPDATE) == 1
    again = leadflow("run")
    assert again.exit_code == 0 and portal.count(BATCH_UPDATE) == 1


def test_the_token_is_never_printed(connected_env, portal, monkeypatch):
    load_portal(portal)
    portal.echo_token = True  # HubSpot's messages quote the Authorization header back
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token-1234")
    refused = leadflow("hubspot", "pull")
    assert refused.exit_code == 1
    assert "401" in refused.output or "token" in refused.output.lower()
    assert "pat-na1-wrong-token-1234" not in refused.output
    assert "Traceback" not in refused.output
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    assert leadflow("hubspot", "pull").exit_code == 0
    portal.fail_ids(*portal.contacts)
    day = leadflow("run")  # its push fails per record: sent again by the next push
    assert day.exit_code == 1 and "HubSpot refused 20 value(s)" in day.output
    failed = leadflow("hubspot", "push")
    assert failed.exit_code == 1 and "refused by HubSpot" in failed.output
    assert TOKEN not in failed.output and "failed:" in failed.output
    stored = " ".join(
        map(str, rows_at(connected_env, "SELECT * FROM hubspot_push_record")
                 + rows_at(connected_env, "SELECT * FROM hubspot_sync"))
    )  # fmt: skip
    assert "Authorization was" in stored and TOKEN not in stored
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    missing = leadflow("hubspot", "push")
    assert missing.exit_code == 1 and "HUBSPOT_ACCESS_TOKEN is not set" in missing.output


def test_a_failed_push_fails_nothing_computed_and_the_next_run_pushes(connected_env, portal):
    ids = load_portal(portal)

    def revoke_the_token_at_the_update(endpoint, _body):
        if endpoint == BATCH_UPDATE:
            portal.token = "rotated"

    portal.on_request = revoke_the_token_at_the_update
    first = leadflow("run")
    assert first.exit_code == 1, first.output
    assert "the HubSpot push failed" in first.output and "Traceback" not in first.output
    assert rows_at(connected_env, "SELECT count(*) FROM contact_score")[0][0] > 0  # committed
    assert "leadflow_engagement" not in portal.contact(ids["ada"])
    portal.on_request = None
    portal.token = TOKEN
    second = leadflow("run")  # the day is done: it only pushes
    assert second.exit_code == 0, second.output
    assert pushed_props(portal, ids["ada"])["leadflow_engagement_band"] == "hot"
    assert rows_at(connected_env, "SELECT status FROM hubspot_sync WHERE kind = 'push'") == [
        ("failed",), ("ok",),
    ]  # fmt: skip


def rows_at(folder: Path, sql: str) -> list[tuple]:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{folder / 'state.db'}")
    with engine.connect() as db:
        result = [tuple(row) for row in db.execute(text(sql))]
    engine.dispose()
    return result


@pytest.mark.flow
def test_the_daily_flow_pulls_and_pushes_and_reports_the_sync(
    prefect_harness, connected_env, portal
):
    from prefect.artifacts import Artifact

    from flows.daily import daily_flow

    ids = load_portal(portal)
    outcome = daily_flow(as_of=as_of())
    assert outcome["hubspot"]["pull"]["contacts"] == 5
    assert outcome["hubspot"]["push"]["status"] == "ok"
    assert pushed_props(portal, ids["bob"])["hs_marketable_status"] == "true"
    artifact = Artifact.get("hubspot-sync")
    assert artifact is not None
    assert "5 contacts" in artifact.data and TOKEN not in artifact.data
    summary = Artifact.get("run-summary")
    assert "HubSpot" in summary.data
