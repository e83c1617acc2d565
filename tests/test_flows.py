"""Flows on a real Prefect server (the session-scoped test harness)."""

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from prefect import Flow
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ParameterTypeError
from prefect.flows import load_flow_from_entrypoint
from prefect.states import Failed
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows.backfill import backfill_flow
from flows.daily import daily_flow
from flows.demo import demo_flow
from flows.rescore import rescore_flow
from leadflow.cli import app
from leadflow.config import load_config
from leadflow.demo_data import generate_demo_data
from leadflow.deployments import runner_deployments
from leadflow.exports import contacts_as_of
from leadflow.ingest.load import BatchRejected, ingest_file
from leadflow.marketing import demotion_queue
from leadflow.report.content import QUEUE_ROWS_SHOWN
from leadflow.scoring.scores import scores_as_of
from leadflow.settings import PROJECT_ROOT, get_settings
from leadflow.workspace import Workspace
from models import Contact, QuarantinedRow
from tasks.ingest import retry_on_io_error
from tests.conftest import lock_held_by_another_process, logical_state

pytestmark = pytest.mark.flow


def test_demo_flow_ingests_quarantines_and_rejects(prefect_harness, leadflow_env):
    outcome = demo_flow(out_dir=leadflow_env / "demo", contacts=300, days=60, seed=7)
    results = outcome["ingest"]
    [day] = outcome["days"]
    assert day["scoring"]["contacts"] >= 300
    bands = day["scoring"]["bands"]["engagement"]
    assert set(bands) <= {"hot", "warm", "cold"} and sum(bands.values()) >= 300
    by_status = {}
    for item in results:
        by_status.setdefault(item["status"], []).append(item)
    assert len(by_status["rejected"]) == 1
    assert "nothing was loaded" in by_status["rejected"][0]["reason"]
    loaded = by_status["loaded"]
    assert sum(item["rows_loaded"] for item in loaded) > 1000
    assert sum(item["rows_quarantined"] for item in loaded) > 0

    space = Workspace.from_settings(get_settings())
    with Session(space.engine) as session:
        contacts = session.exec(select(func.count()).select_from(Contact)).one()
        quarantined = session.exec(select(func.count()).select_from(QuarantinedRow)).one()
    assert contacts >= 300
    assert quarantined == sum(item["rows_quarantined"] for item in loaded)

    summary = Artifact.get("ingest-summary")
    assert summary is not None and "**rejected**" in summary.data
    quality = Artifact.get("data-quality")
    assert quality is not None and "expect_column_values_to_match_regex" in str(quality.data)

    assert sum(day["lifecycle"]["funnel"].values()) > 0
    funnel = Artifact.get("lifecycle-funnel")
    assert funnel is not None and "| marketingqualifiedlead |" in funnel.data
    score_bands = Artifact.get("score-bands")
    assert score_bands is not None and "| engagement | cold |" in score_bands.data
    # Charts, as images the UI shows: the funnel, one distribution per score, the tier use.
    assert funnel.data.count("](data:image/svg+xml;base64,") == 1
    assert score_bands.data.count("](data:image/svg+xml;base64,") == 2
    movers = Artifact.get("top-movers")  # a first run: every score is new, and it says so
    assert movers is not None and movers.data.startswith("Every score changed was a first")

    marketing = day["marketing"]
    assert marketing["new_contacts"] == contacts
    assert marketing["tier"]["marketing_contacts"] > 0
    tier = Artifact.get("tier-use")
    assert (
        tier is not None and f"| {marketing['tier']['marketing_contacts']} | 10000 |" in tier.data
    )
    assert tier.data.count("](data:image/svg+xml;base64,") == 1
    queue = Artifact.get("demotion-queue")
    open_demotions = demotion_queue(space)
    assert queue is not None
    assert queue.description.startswith(f"{open_demotions.num_rows} open demotions")
    shown = open_demotions.slice(0, QUEUE_ROWS_SHOWN).to_pylist() or [
        {"email": "-", "state": "-", "rule": "-"}
    ]
    assert [row["email"] for row in json.loads(queue.data)] == [row["email"] for row in shown]

    before = logical_state(space)
    again = demo_flow(out_dir=leadflow_env / "demo", contacts=300, days=60, seed=7)
    statuses = {item["status"] for item in again["ingest"]}
    assert statuses <= {"already_ingested", "rejected"}
    assert again["changes"]["nothing"]
    summary = Artifact.get("run-summary")
    assert "**Nothing changed**" in summary.data and "1 already rejected before" in summary.data
    assert Artifact.get("top-movers").data == "No score moved: the run left every score as it was."
    # The same day again: undone and replayed, to exactly the same state.
    assert (
        again["plan"] == f"undo the changes after {day['day'] - timedelta(days=1)}, then "
        f"run 1 day(s): {day['day']}"
    )
    assert logical_state(space) == before


def test_only_io_errors_are_retried():
    assert retry_on_io_error(None, None, Failed(data=OSError("disk unavailable")))
    assert not retry_on_io_error(None, None, Failed(data=BatchRejected("bad", report=None)))
    assert not retry_on_io_error(None, None, Failed(data=ValueError("bad value")))


def test_demo_command_prints_what_it_did(prefect_harness, leadflow_env):
    result = CliRunner().invoke(
        app, ["demo", "--out", str(leadflow_env / "demo"), "--contacts", "200", "--days", "40"]
    )
    assert result.exit_code == 0, result.output
    summary = [line for line in result.stdout.splitlines() if line.startswith("ingested ")]
    assert len(summary) == 1
    assert "rejected 1 batch(es) whole" in summary[0]
    loaded = int(summary[0].split()[1])
    assert loaded > 500
    assert "batch rejected" in result.stdout
    assert "engagement: cold" in result.stdout
    assert "lifecycle funnel after" in result.stdout
    assert "marketing contacts of 10000 paid" in result.stdout
    assert "demotion queue:" in result.stdout


def test_daily_flow_ingests_the_inbox_and_reports(prefect_harness, leadflow_env, monkeypatch):
    inbox = leadflow_env / "inbox"
    monkeypatch.setenv("LEADFLOW_INBOX", str(inbox))
    end = date(2026, 11, 20)
    dataset = generate_demo_data(inbox, contacts=200, days=30, seed=3, end=end)
    events_dir = inbox / "events"
    for path in events_dir.iterdir():  # the generator writes events into a sub-folder
        path.rename(inbox / path.name)
    events_dir.rmdir()
    outcome = daily_flow(as_of=end)
    statuses = {Path(item["file"]).name: item["status"] for item in outcome["ingest"]}
    assert statuses[dataset.rejected_file.name] == "rejected"
    assert sorted(path.name for path in (inbox / "rejected").iterdir()) == [
        dataset.rejected_file.name
    ]
    processed = {path.name for path in (inbox / "processed").iterdir()}
    assert processed == set(statuses) - {dataset.rejected_file.name}
    assert not [path for path in inbox.iterdir() if path.is_file()]
    [day] = outcome["days"]
    assert day["day"] == end and day["scoring"]["contacts"] >= 200
    summary = Artifact.get("run-summary")
    assert summary is not None and f"Daily run of {end}" in summary.data
    assert "1 batch(es) rejected whole" in summary.data and "**Tier use**" in summary.data
    assert Artifact.get("top-movers") is not None
    assert Artifact.get("data-quality") is not None

    # A rejected batch dropped in later changes nothing, and is filed away.
    space = Workspace.from_settings(get_settings())
    before = logical_state(space)
    (inbox / "late-bad.csv").write_bytes(
        (inbox / "rejected" / dataset.rejected_file.name).read_bytes()
    )
    again = daily_flow(as_of=end)
    assert [item["status"] for item in again["ingest"]] == ["rejected"]
    assert (inbox / "rejected" / "late-bad.csv").exists()
    assert logical_state(space) == before


def test_backfill_flow_equals_the_days_run_one_by_one(prefect_harness, tmp_path, monkeypatch):
    data = tmp_path / "data"
    dataset = generate_demo_data(data, contacts=150, days=20, seed=5, end=date(2026, 11, 20))
    files = [dataset.contacts_file, *dataset.event_files]
    days = [date(2026, 11, 14) + timedelta(days=offset) for offset in range(4)]
    exported = {}
    for name in ("daily", "backfill"):
        folder = tmp_path / name
        monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{folder / 'state.db'}")
        monkeypatch.setenv("LEADFLOW_LAKE", str(folder / "lake"))
        monkeypatch.setenv("LEADFLOW_INBOX", str(folder / "inbox"))
        space = Workspace.from_settings(get_settings())
        for path in files:
            ingest_file(space, path)
        if name == "daily":
            for day in days:
                daily_flow(as_of=day)
        else:
            outcome = backfill_flow(start=days[0], end=days[-1])
            assert [item["day"] for item in outcome["days"]] == days
        exported[name] = [
            (contacts_as_of(space, day).to_pylist(), scores_as_of(space, day).to_pylist())
            for day in days
        ]
        space.engine.dispose()
    assert exported["backfill"] == exported["daily"]
    progress = Artifact.get("backfill-progress")
    assert progress is not None and progress.data == 100.0


def test_a_second_run_is_refused_while_one_holds_the_state(prefect_harness, leadflow_env):
    with lock_held_by_another_process(get_settings().database_url, "a long backfill"):
        state = daily_flow(as_of=date(2026, 11, 20), return_state=True)
        assert state.is_failed()
        assert "being changed by a long backfill" in str(state.result(raise_on_failure=False))
        result = CliRunner().invoke(app, ["run", "--as-of", "2026-11-20"])
        assert result.exit_code == 1
        assert "the state store is being changed by a long backfill" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_io_error_in_a_day_is_retried(prefect_harness, leadflow_env, monkeypatch):
    import tasks.day

    calls = []
    real_run_day = tasks.day.run_day

    def flaky_run_day(space, day, run_partitions):
        calls.append(day)
        if len(calls) == 1:
            raise OSError("lake volume briefly unavailable")  # what a network disk does
        return real_run_day(space, day, run_partitions)

    monkeypatch.setattr(tasks.day, "run_day", flaky_run_day)
    outcome = daily_flow(as_of=date(2026, 11, 20))
    assert calls == [date(2026, 11, 20)] * 2
    assert [day["day"] for day in outcome["days"]] == [date(2026, 11, 20)]


def test_rescore_flow_runs_the_latest_day_again(prefect_harness, leadflow_env):
    state = rescore_flow(return_state=True)
    assert state.is_failed() and "no day has been run yet" in str(
        state.result(raise_on_failure=False)
    )
    daily_flow(as_of=date(2026, 11, 20))
    outcome = rescore_flow()
    assert outcome["plan"] == "run 1 day(s): 2026-11-20"


PREFECT_YAML = PROJECT_ROOT / "deployments" / "prefect.yaml"


def test_prefect_yaml_entrypoints_import_and_take_their_parameters():
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    deployments = {item["name"]: item for item in spec["deployments"]}
    assert set(deployments) == {"leadflow-daily", "leadflow-backfill", "leadflow-rescore"}
    samples = {
        "leadflow-daily": [{}, {"as_of": "2026-11-20"}],
        "leadflow-backfill": [{"start": "2026-01-01", "end": "2026-01-31"}],
        "leadflow-rescore": [{}],
    }
    for name, item in deployments.items():
        flow = load_flow_from_entrypoint(str(PROJECT_ROOT / item["entrypoint"]))
        assert isinstance(flow, Flow), name
        for parameters in [item["parameters"] | sample for sample in samples[name]]:
            flow.validate_parameters(parameters)
        assert item["concurrency_limit"] == 1 and item["work_pool"]["name"] == "leadflow"
    with pytest.raises(ParameterTypeError):
        load_flow_from_entrypoint(
            str(PROJECT_ROOT / deployments["leadflow-backfill"]["entrypoint"])
        ).validate_parameters({"start": "not a day", "end": "2026-01-31"})
    [schedule] = deployments["leadflow-daily"]["schedules"]
    config = load_config(PROJECT_ROOT / "leadflow.yaml")
    assert schedule["timezone"] == config.account.timezone  # the account zone, as in the config
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # a valid cron


def test_serve_builds_the_same_deployments_in_the_account_zone(tmp_path):
    config = load_config(PROJECT_ROOT / "leadflow.yaml")
    config = config.model_copy(
        update={"account": config.account.model_copy(update={"timezone": "America/New_York"})}
    )
    built = {deployment.name: deployment for deployment in runner_deployments(config)}
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    assert set(built) == {item["name"] for item in spec["deployments"]}
    [schedule] = built["leadflow-daily"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 * * *", "America/New_York")
    assert not built["leadflow-backfill"].schedules and not built["leadflow-rescore"].schedules


def test_the_server_schedules_the_daily_deployment_at_six_in_the_account_zone(prefect_harness):
    """The scheduler service of the Prefect server must be able to create the runs (it could
    not with SQLAlchemy 2.1: pinned to 2.0)."""
    config = load_config(PROJECT_ROOT / "leadflow.yaml")
    daily = runner_deployments(config)[0]
    deployment_id = daily.apply()
    with get_client(sync_client=True) as client:
        response = client.request(
            "POST", "/deployments/{id}/schedule", path_params={"id": deployment_id}, json={}
        )
        response.raise_for_status()
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    assert runs and all(run.state.is_scheduled() for run in runs)
    local = [run.expected_start_time.astimezone(config.account.tz) for run in runs]
    assert {(moment.hour, moment.minute) for moment in local} == {(6, 0)}
