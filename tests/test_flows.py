"""Flows on a real Prefect server (the session-scoped test harness)."""

from datetime import timedelta

import pytest
from prefect.artifacts import Artifact
from prefect.states import Failed
from sqlalchemy import func
from sqlmodel import Session, select

from flows.demo import demo_flow
from leadflow.ingest import BatchRejected
from leadflow.settings import get_settings
from leadflow.workspace import Workspace
from models import Contact, QuarantinedRow
from tasks.ingest import retry_on_io_error
from tests.conftest import logical_state

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
    assert funnel is not None and "marketingqualifiedlead" in str(funnel.data)
    score_bands = Artifact.get("score-bands")
    assert score_bands is not None and "| engagement | cold |" in score_bands.data

    marketing = day["marketing"]
    assert marketing["new_contacts"] == contacts
    assert marketing["tier"]["marketing_contacts"] > 0
    tier = Artifact.get("tier-use")
    assert (
        tier is not None and f"| {marketing['tier']['marketing_contacts']} | 10000 |" in tier.data
    )
    queue = Artifact.get("demotion-queue")
    assert queue is not None and "open demotions" in queue.description

    before = logical_state(space)
    again = demo_flow(out_dir=leadflow_env / "demo", contacts=300, days=60, seed=7)
    statuses = {item["status"] for item in again["ingest"]}
    assert statuses <= {"already_ingested", "rejected"}
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
    from typer.testing import CliRunner

    from leadflow.cli import app

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
    assert "funnel: subscriber" in result.stdout
    assert "marketing contacts of 10000 paid" in result.stdout
    assert "demotion queue:" in result.stdout
