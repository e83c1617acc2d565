"""The `leadflow` command line: exit codes, one-line errors, exports (README: Daily runs)."""

import csv
import json

from sqlalchemy import inspect
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.domain import STAGES
from leadflow.store.db import make_engine
from tests.test_ingest import EVENT_HEADER, event_row, good_events, write_csv

runner = CliRunner()


def test_ingest_then_export_quarantine(leadflow_env):
    rows = good_events(40) + [event_row("bad", email="nobody")]
    path = write_csv(leadflow_env / "events.csv", rows, EVENT_HEADER)
    result = runner.invoke(app, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "loaded" in result.stdout and "41" in result.stdout
    out = leadflow_env / "q.csv"
    result = runner.invoke(app, ["export", "quarantine", "--out", str(out)])
    assert result.exit_code == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["file"], r["row"], r["reason"].split(":")[0]) for r in rows] == [
        (str(path), "41", "email")
    ]
    assert '"email":"nobody"' in rows[0]["raw"]


def test_rejected_batch_exits_non_zero_with_one_line(leadflow_env):
    rows = good_events(10) + [event_row(f"x{i}", email="nobody") for i in range(5)]
    path = write_csv(leadflow_env / "bad.csv", rows, EVENT_HEADER)
    result = runner.invoke(app, ["ingest", str(path)])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "batch rejected, 5 of 15 rows bad" in errors[0]
    assert "[expect_column_values_to_match_regex]" in errors[0]


def test_missing_column_and_forced_kind(leadflow_env):
    path = leadflow_env / "contacts.csv"
    path.write_text("email,first_name\nann@example.com,Ann\n")
    result = runner.invoke(app, ["ingest", "--kind", "events", str(path)])
    assert result.exit_code == 1
    assert "missing column(s) event_id, source, type, occurred_at" in result.stderr
    assert runner.invoke(app, ["ingest", "--kind", "contacts", str(path)]).exit_code == 0


def test_bad_configuration_is_one_line_naming_the_key(leadflow_env, monkeypatch):
    config = leadflow_env / "bad.yaml"
    config.write_text(
        "account: {timezone: Europe/Paris}\n"
        "contract: {renewal_date: 2027-03-01, marketing_contact_tier: 10, colour: red}\n"
    )
    monkeypatch.setenv("LEADFLOW_CONFIG", str(config))
    result = runner.invoke(app, ["ingest", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {config}: contract.colour: unknown key"


def test_db_upgrade_creates_the_schema(leadflow_env):
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0
    tables = set(inspect(make_engine(f"sqlite:///{leadflow_env / 'state.db'}")).get_table_names())
    assert {"contact", "contact_property_history", "ingest_batch", "quarantined_row"} <= tables


def test_generate_writes_a_sample_without_loading_it(leadflow_env):
    out = leadflow_env / "sample"
    result = runner.invoke(
        app,
        ["generate", "--out", str(out), "--contacts", "200", "--days", "30", "--split", "single"],
    )
    assert result.exit_code == 0, result.output
    assert (out / "contacts.csv").exists() and (out / "hubspot-contacts.csv").exists()
    assert len(list((out / "events").glob("events*.csv"))) == 1
    assert not (leadflow_env / "state.db").exists()


def test_scoring_commands(prefect_harness, leadflow_env):
    rows = [
        event_row(f"o{i}", email="ann@example.com", occurred_at=f"2026-11-0{i}T10:00:00Z")
        for i in range(1, 8)
    ]
    runner.invoke(app, ["ingest", str(write_csv(leadflow_env / "e.csv", rows, EVENT_HEADER))])
    result = runner.invoke(app, ["run", "--as-of", "2026-11-10"])
    assert result.exit_code == 0, result.output
    assert "scored 1 contacts as of 2026-11-10" in result.stdout
    assert "engagement: warm 1" in result.stdout  # 7 recent opens, no visits: -10

    result = runner.invoke(app, ["explain", "Ann@Example.com", "--as-of", "2026-11-10", "--json"])
    assert result.exit_code == 0, result.output
    [engagement, fit] = json.loads(result.stdout)
    assert engagement["rules"][0]["events"] == 7
    total = sum(rule["contribution"] for rule in engagement["rules"])
    assert round(total, 4) == engagement["value"]

    out = leadflow_env / "scores.csv"
    result = runner.invoke(app, ["export", "scores", "--as-of", "2026-11-10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        [row] = list(csv.DictReader(handle))
    assert list(row) == ["email", "engagement", "fit", "band_engagement", "hubspot_record_id"]
    assert float(row["engagement"]) == engagement["value"] and row["band_engagement"] == "warm"

    history_csv = leadflow_env / "history.csv"
    result = runner.invoke(
        app,
        [
            "history",
            "ann@example.com",
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-10",
            "--out",
            str(history_csv),
        ],
    )
    assert result.exit_code == 0, result.output
    with history_csv.open() as handle:
        assert len(list(csv.DictReader(handle))) == 10 * 2

    result = runner.invoke(app, ["rescore", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "0 contacts would change band; nothing was written" in result.stdout

    result = runner.invoke(app, ["explain", "nobody@example.com"])
    assert result.exit_code == 1 and "no contact with email" in result.stderr


def test_a_stage_condition_in_a_score_is_a_one_line_config_error(leadflow_env, monkeypatch):
    config = leadflow_env / "stage.yaml"
    config.write_text(
        "account: {timezone: Europe/Paris}\n"
        "contract: {renewal_date: 2027-03-01, marketing_contact_tier: 10}\n"
        "scores:\n  s:\n    limit: {min: 0, max: 10}\n    rules:\n"
        "      - {id: mql, when: {stage: {in: [lead]}}, points: 1}\n"
    )
    monkeypatch.setenv("LEADFLOW_CONFIG", str(config))
    result = runner.invoke(app, ["run", "--as-of", "2026-11-10"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {config}: scores.s.rules[0].when.stage: stage conditions are allowed in "
        "marketing rules only (scores and lifecycle rules decide the stage, so they cannot read it)"
    )


def test_run_moves_stages_and_stage_set_moves_back(prefect_harness, leadflow_env):
    rows = [
        event_row(
            "f1",
            email="ann@example.com",
            type_="form_submission",
            form_id="demo",
            occurred_at="2026-11-02T10:00:00Z",
        )
    ]
    runner.invoke(app, ["ingest", str(write_csv(leadflow_env / "e.csv", rows, EVENT_HEADER))])
    result = runner.invoke(app, ["run", "--as-of", "2026-11-10"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "1 stage move(s)" in said and "lead 1" in said
    result = runner.invoke(
        app,
        [
            "stage",
            "set",
            "ann@example.com",
            "subscriber",
            "--reason",
            "asked to be treated as a newsletter reader",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lead -> subscriber" in result.stdout
    result = runner.invoke(app, ["stage", "set", "ann@example.com", "lead"])
    assert result.exit_code != 0  # --reason is required


def test_marketing_set_tier_and_export_contacts(prefect_harness, leadflow_env):
    rows = [
        event_row(
            "f1",
            email="ann@example.com",
            type_="form_submission",
            form_id="newsletter",
            occurred_at="2026-11-02T10:00:00Z",
        ),
        event_row("o1", email="bob@example.com", occurred_at="2026-11-02T10:00:00Z"),
    ]
    runner.invoke(app, ["ingest", str(write_csv(leadflow_env / "e.csv", rows, EVENT_HEADER))])
    result = runner.invoke(app, ["run", "--as-of", "2026-11-10"])
    assert result.exit_code == 0, result.output
    assert "2 first marketing status(es)" in " ".join(result.stdout.split())

    result = runner.invoke(
        app,
        [
            "marketing",
            "set",
            "ann@example.com",
            "non_marketing",
            "--reason",
            "asked",
            "--as-of",
            "2026-12-05",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "demotion scheduled: stays marketing until the renewal of 2027-03-01" in result.stdout
    result = runner.invoke(app, ["marketing", "set", "bob@example.com", "non_marketing"])
    assert result.exit_code != 0  # --reason is required
    result = runner.invoke(
        app, ["marketing", "set", "bob@example.com", "non_marketing", "--reason", "x"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: bob@example.com is already non-marketing"

    result = runner.invoke(app, ["tier", "--as-of", "2026-12-05", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == {
        "as_of": "2026-12-05",
        "marketing_contacts": 1,  # ann: a newsletter form made her marketing; bob: integration
        "tier": 10000,
        "used_pct": 0.01,
        "level": "ok",
        "queued_demotions": 0,
        "scheduled_demotions": 1,
        "projected_after_renewal": 0,
        "saving": 1,
        "renewal_date": "2027-03-01",
        # After the latest day run: said so, in one line.
        "covered": False,
        "note": "no run covers 2026-12-05: the latest day run is 2026-11-10; this is the state "
        "it left",
    }
    before = json.loads(runner.invoke(app, ["tier", "--as-of", "2026-12-04", "--json"]).stdout)
    assert before["scheduled_demotions"] == 0  # the request is stamped with its day

    out = leadflow_env / "contacts.csv"
    result = runner.invoke(app, ["export", "contacts", "--as-of", "2026-12-05", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        exported = {row["email"]: row for row in csv.DictReader(handle)}
    assert list(exported["ann@example.com"]) == [
        "email",
        "lifecycle_stage",
        "marketing_status",
        "demotion",
        "suppressed",
        "creation_source",
        *(f"date_entered_{stage}" for stage in STAGES),
        "hubspot_record_id",
    ]
    ann = exported["ann@example.com"]
    assert (ann["lifecycle_stage"], ann["marketing_status"], ann["demotion"]) == (
        "lead",
        "marketing",
        "scheduled",
    )
    assert (ann["suppressed"], ann["creation_source"]) == ("false", "form")
    assert (ann["date_entered_subscriber"], ann["date_entered_lead"]) == ("2026-11-10",) * 2
    assert ann["date_entered_marketingqualifiedlead"] == ""
    bob = exported["bob@example.com"]
    assert (bob["marketing_status"], bob["demotion"], bob["creation_source"]) == (
        "non_marketing",
        "none",
        "integration",
    )


def test_backfill_command(prefect_harness, leadflow_env):
    rows = [event_row("o1", email="ann@example.com", occurred_at="2026-11-02T10:00:00Z")]
    runner.invoke(app, ["ingest", str(write_csv(leadflow_env / "e.csv", rows, EVENT_HEADER))])
    result = runner.invoke(app, ["backfill", "--start", "2026-11-01", "--end", "2026-11-03"])
    assert result.exit_code == 0, result.output
    assert "plan: run 3 day(s): 2026-11-01..2026-11-03" in result.stdout
    assert "3 days run" in result.stdout
    result = runner.invoke(app, ["backfill", "--start", "2026-11-02", "--end", "2026-11-02"])
    assert "plan: undo the changes after 2026-11-01, then run 2 day(s)" in result.stdout
    result = runner.invoke(app, ["backfill", "--start", "2026-11-03", "--end", "2026-11-01"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --end 2026-11-01 is before --start 2026-11-03"
