"""Company scores (README: Company scores), on SQLite and PostgreSQL: which company a contact
belongs to, each aggregate and its bands, `export companies`, a company score promoting a stage
and a marketing decision in the day run (equal to the full recompute), `explain --company`."""

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.companies.membership import (
    EMAIL_DOMAIN,
    company_sql,
    email_domain_sql,
    free_mail_domains,
    normalised_domain_sql,
)
from leadflow.companies.scores import companies_as_of, explain_company
from leadflow.errors import UserError
from leadflow.ingest.load import ingest_file
from leadflow.lake import duckdb_connection
from leadflow.marketing import read_state
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_daily
from leadflow.pipeline.runcache import attached
from leadflow.scoring.scores import scored_relation
from tests.conftest import fresh_postgres_schema, make_workspace
from tests.test_config import MINIMAL, error_of, load_text, write
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

DAY = date(2026, 11, 10)
BEFORE = DAY - timedelta(days=1)
INGESTED_AT = datetime(2026, 12, 1, tzinfo=UTC)
CONFIG = """
account: {timezone: UTC}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
scores:
  engagement:
    limit: {min: -100, max: 100}
    rules:
      - {id: open, event: email_open, points: 10}
      - {id: bounce, event: email_bounce, points: -30}
companies:
  scores:
    total: {from: engagement, aggregate: sum}
    best: {from: engagement, aggregate: max}
    top2: {from: engagement, aggregate: {mean_of_top: 2}}
  bands:
    total: [{label: hot, gte: 50}, {label: warm, gte: 20}, {label: cold}]
    top2: [{label: a, gte: 25}]
lifecycle:
  promote:
    lead: {company_score: total, gte: 50}
marketing:
  promote: {company_score: top2, gte: 25}
"""
CREATED = "2026-10-01T00:00:00Z"
# email -> company_domain property (empty: none) and creation time.
CONTACTS = {
    "a1@acme.com": ("", CREATED),
    "a2@acme.com": ("", CREATED),
    "a3@acme.com": ("", CREATED),  # no events: a member with 0
    "jo@gmail.com": ("https://www.ACME.com/about", CREATED),  # company_domain wins
    "pat@gmail.com": ("", CREATED),  # free mail, no company_domain: no company
    "sam@beta.io": ("", CREATED),
    "kim@beta.io": ("gamma.org", CREATED),  # company_domain wins over the email's domain
    "new@acme.com": ("", "2026-11-20T00:00:00Z"),  # created after DAY: not yet a member
}


def at(day: date, hour: int = 10) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


# (email, type, day): engagement on DAY a1 30, a2 10, a3 0, jo 20, pat 50, sam -20, kim 10.
EVENTS = [
    *[("a1@acme.com", "email_open", BEFORE)] * 1,
    *[("a1@acme.com", "email_open", DAY)] * 2,
    ("a2@acme.com", "email_open", DAY),
    *[("jo@gmail.com", "email_open", DAY)] * 2,
    *[("pat@gmail.com", "email_open", BEFORE)] * 5,
    ("sam@beta.io", "email_open", BEFORE),
    ("sam@beta.io", "email_bounce", DAY),
    ("kim@beta.io", "email_open", DAY),
]


def make_space(database_url: str, folder: Path, events: list[tuple] = EVENTS):
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "leadflow.yaml"
    config.write_text(CONFIG)
    space = make_workspace(database_url, folder, config)
    contacts = [
        {"email": email, "company_domain": domain, "created_at": created, "updated_at": created}
        for email, (domain, created) in CONTACTS.items()
    ]
    ingest_file(space, write_csv(folder / "contacts.csv", contacts), now=INGESTED_AT)
    load_events(space, folder / "events.csv", events)
    return space


def load_events(space, path: Path, events: list[tuple]) -> None:
    rows = [
        event_row(
            f"{email}-{type_}-{day}-{i}",
            email=email,
            type_=type_,
            occurred_at=at(day, 8 + i),
            properties='{"bounce_type": "soft"}' if type_ == "email_bounce" else "",
        )
        for i, (email, type_, day) in enumerate(events)
    ]
    ingest_file(space, write_csv(path, rows, EVENT_HEADER), now=INGESTED_AT)


@pytest.fixture
def space(database_url, tmp_path: Path):
    space = make_space(database_url, tmp_path)
    yield space
    space.engine.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def loaded(request, tmp_path_factory):
    """The same data, loaded once per database for the tests that only read it."""
    folder = tmp_path_factory.mktemp(f"companies-{request.param}")
    if request.param == "sqlite":
        space = make_space(f"sqlite:///{folder / 'state.db'}", folder)
        yield space
        space.engine.dispose()
        return
    with fresh_postgres_schema(request.getfixturevalue("postgres_server")) as url:
        space = make_space(url, folder)
        yield space
        space.engine.dispose()


# --- Membership ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "company_domain", "company"),
    [
        ("ann@acme.com", None, "acme.com"),
        ("ann@acme.com", "beta.io", "beta.io"),  # company_domain wins
        ("ann@gmail.com", "HTTPS://WWW.Beta.IO/about?x=1", "beta.io"),  # normalised
        ("ann@gmail.com", "jane@beta.io", "beta.io"),
        ("ann@acme.com", "  beta.io.  ", "beta.io"),
        ("ann@acme.com", "http://www.beta.io:8080", "beta.io"),
        ("ann@acme.com", "  ", "acme.com"),  # an empty company_domain says nothing
        ("ann@www.acme.com", None, "acme.com"),
        ("ann@mail.acme.com", None, "mail.acme.com"),  # sub-domains are not folded
        ("ann@gmail.com", None, None),  # free mail
        ("ann@yahoo.co.uk", None, None),
        ("ann@gmail.com", "gmail.com", "gmail.com"),  # an explicit company_domain always wins
        ("hubspot:1234", None, None),  # no email: a HubSpot record only
        ("hubspot:1234", "acme.com", "acme.com"),
    ],
)
def test_a_contact_belongs_to_its_company_domain_else_its_email_domain(
    email, company_domain, company
):
    row = duckdb.execute(
        f"""SELECT {company_sql()} FROM (
                SELECT *, {email_domain_sql()} AS {EMAIL_DOMAIN}
                FROM (SELECT ? AS email, ? AS "prop:company_domain"))""",
        [email, company_domain],
    ).fetchone()
    assert row == (company,)


def test_the_free_mail_list_is_shipped_normalised_and_large():
    domains = free_mail_domains()
    assert len(domains) >= 300 and len(set(domains)) == len(domains)
    assert {"gmail.com", "outlook.com", "yahoo.fr", "icloud.com", "gmx.de", "qq.com"} <= set(
        domains
    )
    normalised = duckdb.execute(
        f"SELECT list({normalised_domain_sql('d')}) FROM unnest(?) t(d)", [list(domains)]
    ).fetchone()[0]
    assert normalised == list(domains)  # each entry is already what a domain normalises to


# --- Scores, bands, export ----------------------------------------------------------------------

# acme.com on DAY: a1 30, jo 20, a2 10, a3 0 (new@acme.com does not exist yet).
ACME = {"domain": "acme.com", "contacts": 4, "total": 60.0, "band_total": "hot",
        "best": 30.0, "top2": 25.0, "band_top2": "a"}  # fmt: skip
BETA = {"domain": "beta.io", "contacts": 1, "total": -20.0, "band_total": "cold",
        "best": -20.0, "top2": -20.0, "band_top2": None}  # fmt: skip
GAMMA = {"domain": "gamma.org", "contacts": 1, "total": 10.0, "band_total": "cold",
         "best": 10.0, "top2": 10.0, "band_top2": None}  # fmt: skip


def test_company_scores_aggregate_their_contacts_scores_as_of_the_day(loaded):
    assert companies_as_of(loaded, DAY).to_pylist() == [ACME, BETA, GAMMA]
    # The day before: a1 10, the others 0; sam's open made him 10 and beta.io with him.
    before = {row["domain"]: row for row in companies_as_of(loaded, BEFORE).to_pylist()}
    assert before["acme.com"] == {
        "domain": "acme.com", "contacts": 4, "total": 10.0, "band_total": "cold",
        "best": 10.0, "top2": 5.0, "band_top2": None,
    }  # fmt: skip
    assert (before["beta.io"]["total"], before["beta.io"]["top2"]) == (10.0, 10.0)


def test_a_company_score_promotes_a_stage_and_a_marketing_decision_in_the_day_run(space):
    execute(space, plan_daily(space, BEFORE))
    assert stages(space) == {}  # acme.com totals 10 the day before
    execute(space, plan_daily(space, DAY))
    acme = {"a1@acme.com", "a2@acme.com", "a3@acme.com", "jo@gmail.com"}
    assert stages(space) == dict.fromkeys(acme, "lead")
    assert marketing(space) == {
        email: ("marketing" if email in acme else "non_marketing")
        for email in CONTACTS
        if email != "new@acme.com"
    }
    # The day run (aggregate ledger, state mirror) gives what a full recompute gives.
    with duckdb_connection() as connection, attached(connection, space.cache_path):
        rows = {}
        for ledger in (True, False):
            relation = scored_relation(
                space, connection, [DAY], contacts=read_state(space), lifecycle=True,
                marketing=True, ledger=ledger,
            )  # fmt: skip
            rows[ledger] = sorted(
                relation.select(
                    'email, company, "company_score:total", "company_score:top2", '
                    '"company_band:total", target_stage, promote'
                ).fetchall()
            )
    assert rows[True] == rows[False]
    assert ("jo@gmail.com", "acme.com", 60.0, 25.0, "hot", "lead", True) in rows[True]
    assert ("pat@gmail.com", None, None, None, None, None, False) in rows[True]


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


def marketing(space) -> dict[str, str]:
    with space.engine.connect() as connection:
        return dict(
            connection.execute(
                text(
                    "SELECT c.email, m.status FROM contact_marketing m "
                    "JOIN contact c ON c.id = m.contact_id"
                )
            ).all()
        )


def test_explain_a_company_lists_its_contacts_and_what_counts(loaded):
    total, best, top2 = explain_company(loaded, "WWW.Acme.com", DAY)
    assert (total.domain, total.value, total.band, total.aggregate, total.contacts) == (
        "acme.com", 60.0, "hot", "sum", 4,
    )  # fmt: skip
    assert [(c.email, c.score, c.counted) for c in total.contributors] == [
        ("a1@acme.com", 30.0, True), ("jo@gmail.com", 20.0, True),
        ("a2@acme.com", 10.0, True), ("a3@acme.com", 0.0, True),
    ]  # fmt: skip
    assert [c.counted for c in best.contributors] == [True, False, False, False]
    assert (top2.aggregate, top2.value) == ("mean_of_top: 2", 25.0)
    assert [c.counted for c in top2.contributors] == [True, True, False, False]


def test_export_and_explain_from_the_command_line(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", loaded.engine.url.render_as_string(False))
    monkeypatch.setenv("LEADFLOW_LAKE", str(loaded.lake.root))
    monkeypatch.setenv("LEADFLOW_CONFIG", str(loaded.lake.root.parent / "leadflow.yaml"))
    runner = CliRunner()
    out = tmp_path / "companies.csv"
    day = ["--as-of", DAY.isoformat()]
    result = runner.invoke(app, ["export", "companies", "--out", str(out), *day])
    assert result.exit_code == 0, result.output
    assert "3 companies as of 2026-11-10" in result.stdout
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["domain", "contacts", "total", "band_total", "best", "top2",
                             "band_top2"]  # fmt: skip
    assert [(r["domain"], r["contacts"], r["total"], r["band_total"]) for r in rows] == [
        ("acme.com", "4", "60", "hot"), ("beta.io", "1", "-20", "cold"),
        ("gamma.org", "1", "10", "cold"),
    ]  # fmt: skip
    result = runner.invoke(app, ["explain", "--company", "acme.com", *day])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert "total of acme.com as of 2026-11-10: 60 (hot)" in shown
    assert "│ a1@acme.com │ 30 │ yes │" in shown
    assert "mean_of_top: 2 of engagement over 4 contacts -> 25" in shown
    result = runner.invoke(app, ["explain", "--company", "acme.com", "--json", *day])
    explained = json.loads(result.stdout)
    assert [item["score"] for item in explained] == ["total", "best", "top2"]
    assert explained[1]["contributors"][0] == {
        "email": "a1@acme.com", "score": 30.0, "counted": True,
    }  # fmt: skip
    result = runner.invoke(app, ["explain", "--company", "nowhere.example", *day])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: no contact belongs to the company 'nowhere.example' on 2026-11-10"
    )
    result = runner.invoke(app, ["explain", "a1@acme.com", "--company", "acme.com"])
    assert result.exit_code == 1
    assert "give a contact's EMAIL or --company DOMAIN" in result.stderr


def test_late_events_of_one_contact_move_its_company_as_if_on_time(space, database_url, tmp_path):
    # jo's two opens on DAY arrive late: without them acme.com totals 40 (no lead) and its top
    # two average 20 (no marketing); the daily run that receives them replays DAY.
    late = [event for event in EVENTS if event[0] == "jo@gmail.com"]
    other = make_space(
        database_url if database_url.startswith("postgres") else f"sqlite:///{tmp_path}/b.db",
        tmp_path / "b", [event for event in EVENTS if event not in late],
    )  # fmt: skip
    for workspace in (space, other):
        for day in (BEFORE, DAY):
            execute(workspace, plan_daily(workspace, day))
    assert stages(other) == {} and "marketing" not in marketing(other).values()
    load_events(other, tmp_path / "late.csv", late)
    execute(other, plan_daily(other, DAY))
    assert stages(other) == stages(space) and len(stages(space)) == 4
    assert marketing(other) == marketing(space)
    other.engine.dispose()


# --- Configuration ------------------------------------------------------------------------------

ENGAGEMENT = """\
scores:
  engagement:
    limit: {min: 0, max: 100}
    rules: [{id: open, event: email_open, points: 10}]
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("companies: {scores: {acct: {from: engagment, aggregate: sum}}}",
         "companies.scores.acct.from: unknown score 'engagment'"),
        ("companies: {scores: {acct: {from: engagement, aggregate: avg}}}",
         "companies.scores.acct.aggregate: aggregate must be sum, max or {mean_of_top: N}, "
         "got 'avg'"),
        ("companies: {scores: {acct: {from: engagement, aggregate: {mean_of_top: 0}}}}",
         "companies.scores.acct.aggregate.mean_of_top: Input should be greater than 0, got 0"),
        ("companies: {scores: {acct: {from: engagement}}}",
         "companies.scores.acct.aggregate: required key is missing"),
        ("companies: {scores: {acct: {from: engagement, aggregate: sum}},"
         " bands: {acc: [{label: hot}]}}",
         "companies.bands.acc: unknown company score 'acc'"),
        ("companies: {scores: {acct: {from: engagement, aggregate: sum}},"
         " bands: {acct: [{label: cold}, {label: hot, gte: 50}]}}",
         "companies.bands.acct: only the last band may omit gte, not 'cold'"),
        ("lifecycle: {promote: {lead: {company_score: acct, gte: 10}}}",
         "lifecycle.promote.lead.company_score: unknown company score 'acct'"),
        ("companies: {scores: {acct: {from: engagement, aggregate: max}}}\n"
         "marketing: {promote: {not: {company_score: acct}}}",
         "marketing.promote.not: give at least one of: gte, lte"),
        ("  fit: {limit: {min: 0, max: 10},"
         " rules: [{id: big, when: {company_score: acct, gte: 10}, points: 5}]}\n"
         "companies: {scores: {acct: {from: engagement, aggregate: max}}}",
         "scores.fit.rules[0].when.company_score: company score conditions are allowed in "
         "lifecycle and marketing rules only (company scores are built from contact scores)"),
    ],
)  # fmt: skip
def test_configuration_errors_name_their_key(tmp_path, extra, expected):
    assert error_of(write(tmp_path, MINIMAL + ENGAGEMENT + extra + "\n")) == expected


def test_the_model_version_follows_the_companies_section(tmp_path):
    plain = load_text(tmp_path, MINIMAL + ENGAGEMENT).model_version
    section = "companies: {scores: {acct: {from: engagement, aggregate: sum}}}\n"
    summed = load_text(tmp_path, MINIMAL + ENGAGEMENT + section).model_version
    maxed = load_text(tmp_path, MINIMAL + ENGAGEMENT + section.replace("sum", "max")).model_version
    assert len({plain, summed, maxed}) == 3
    block = "companies:\n  scores:\n    acct:\n      aggregate: sum\n      from: engagement\n"
    assert load_text(tmp_path, MINIMAL + ENGAGEMENT + block).model_version == summed


def test_company_commands_need_a_companies_section(sqlite_workspace):
    with pytest.raises(UserError, match="^the configuration has no companies section: add"):
        companies_as_of(sqlite_workspace, DAY)
