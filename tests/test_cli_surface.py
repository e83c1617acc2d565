"""The command line as a new user meets it: no Prefect server needed, failures in one line,
help for everything, reports that say what changed, a project of one's own, tables at 80
columns, `serve` that cannot clobber a work pool's deployments."""

import json
import os
import subprocess
import sys

import click
import pytest
import typer
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.settings import EXAMPLE_CONFIG
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

runner = CliRunner()


def one_line_error(result) -> str:
    """The failure's one line (and nothing else on stderr, no traceback anywhere)."""
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_every_command_and_option_has_help():
    command = typer.main.get_command(app)

    def walk(group: click.Command, path: str):
        yield path, group
        for name, child in getattr(group, "commands", {}).items():
            yield from walk(child, f"{path} {name}")

    for path, each in walk(command, "leadflow"):
        assert (each.help or "").strip(), f"{path}: no help"
        assert "acceptance tests" not in each.help
        for param in each.params:
            if param.name == "help":
                continue
            assert (getattr(param, "help", None) or "").strip(), f"{path} {param.name}: no help"


def test_help_answers_without_importing_anything_heavy():
    code = (
        "import sys; from leadflow.cli import app; import typer; "
        "typer.main.get_command(app); "
        "heavy = [m for m in ('great_expectations', 'prefect', 'pandas', 'duckdb', 'sqlalchemy',"
        " 'pyarrow', 'sklearn', 'matplotlib', 'dask', 'distributed', 'prefect_dask')"
        " if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize(
    "case",
    ["database", "corrupt database", "lake", "prefect", "config", "contact", "day range"],
)
def test_every_failure_is_one_line(case, leadflow_env, monkeypatch):
    command = ["tier", "--json"]
    if case == "database":
        monkeypatch.setenv("LEADFLOW_DATABASE_URL", "postgresql+psycopg://leadflow@127.0.0.1:9/x")
        expected = "the state store postgresql+psycopg://leadflow@127.0.0.1:9/x cannot be used"
    elif case == "corrupt database":
        (leadflow_env / "state.db").write_bytes(b"not a database, a truncated copy" * 100)
        expected = "the state store"
    elif case == "lake":
        (leadflow_env / "a-file").write_text("not a folder")
        monkeypatch.setenv("LEADFLOW_LAKE", str(leadflow_env / "a-file" / "lake"))
        events = write_csv(leadflow_env / "e.csv", [event_row("1")], EVENT_HEADER)
        command = ["ingest", str(events)]
        expected = "Not a directory"
    elif case == "prefect":
        monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
        command = ["run", "--as-of", "2026-11-20"]
        expected = "the Prefect API at http://127.0.0.1:9/api does not answer"
    elif case == "config":
        bad = leadflow_env / "bad.yaml"
        bad.write_text("account: {timezone: Europe/Paris\n")
        monkeypatch.setenv("LEADFLOW_CONFIG", str(bad))
        expected = "invalid YAML"
    elif case == "contact":
        command = ["explain", "nobody@example.com"]
        expected = "no contact with email 'nobody@example.com'"
    else:
        command = ["backfill", "--start", "2026-11-20", "--end", "2026-11-01"]
        expected = "--end 2026-11-01 is before --start 2026-11-20"
    line = one_line_error(runner.invoke(app, command))
    assert expected in line, line
    # --debug (LEADFLOW_DEBUG=1) lets the exception through, with its traceback.
    monkeypatch.setenv("LEADFLOW_DEBUG", "1")
    result = runner.invoke(app, command)
    if case != "day range":  # a usage check of the command itself, not an exception
        assert result.exception is not None and not isinstance(result.exception, SystemExit)


def test_duckdb_out_of_memory_is_one_line_that_says_so():
    import duckdb

    from leadflow.cli.failures import describe
    from leadflow.lake import DUCKDB_MEMORY_LIMIT

    connection = duckdb.connect()
    connection.execute("SET memory_limit = '20MB'")
    with pytest.raises(duckdb.OutOfMemoryException) as failure:  # a list cannot spill
        connection.execute("SELECT list(i) FROM range(20000000) t(i)").fetchall()
    message, code = describe(failure.value)
    assert code == 1 and "\n" not in message
    assert message.startswith(f"DuckDB ran out of its {DUCKDB_MEMORY_LIMIT} memory limit")
    assert "Out of Memory Error" in message and "How far one machine goes" in message


def test_a_project_of_ones_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("LEADFLOW_CONFIG", "LEADFLOW_DATABASE_URL", "LEADFLOW_LAKE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["init", "project"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "project" / "leadflow.yaml"
    assert written.read_text() == EXAMPLE_CONFIG.read_text()
    assert "account.timezone" in result.stdout and "marketing_contact_tier" in result.stdout
    line = one_line_error(runner.invoke(app, ["init", "project"]))
    assert "exists: not overwritten" in line
    # Without a configuration, a command says how to get one.
    line = one_line_error(runner.invoke(app, ["tier"]))
    assert "leadflow.yaml: file not found (`leadflow init` writes one" in line


def test_tier_and_export_say_when_no_run_covers_the_day(leadflow_env):
    rows = [event_row("o1", email="ann@example.com", occurred_at="2026-11-02T10:00:00Z")]
    runner.invoke(app, ["ingest", str(write_csv(leadflow_env / "e.csv", rows, EVENT_HEADER))])
    report = json.loads(runner.invoke(app, ["tier", "--as-of", "2026-11-05", "--json"]).stdout)
    assert (report["covered"], report["note"]) == (
        False,
        "no day has been run yet: nothing is decided as of 2026-11-05 (`leadflow run`)",
    )
    assert runner.invoke(app, ["run", "--as-of", "2026-11-10"]).exit_code == 0
    result = runner.invoke(app, ["tier", "--as-of", "2026-11-01"])
    assert result.stderr.strip() == (
        "note: no run covers 2026-11-01: the first day run is 2026-11-10; nothing was decided "
        "by then"
    )
    result = runner.invoke(
        app, ["export", "contacts", "--as-of", "2026-11-10", "--out", str(leadflow_env / "c")]
    )
    assert result.exit_code == 0 and result.stderr == ""  # covered: nothing to say
    assert json.loads(runner.invoke(app, ["tier", "--as-of", "2026-11-10", "--json"]).stdout)[
        "covered"
    ]


def busy_processes(count: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_the_demo_needs_no_server_and_reads_at_80_columns_on_a_busy_machine(tmp_path):
    """A fresh folder (no leadflow.yaml), two CPU-bound processes beside it, no Prefect API:
    the first try succeeds, on the bundled example, in a terminal of 80 columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_", "PREFECT_"))}
    env.update(COLUMNS="80", PREFECT_HOME=str(tmp_path / "prefect-home"))
    busy = busy_processes()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "leadflow", "demo", "--contacts", "150", "--days", "30"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        for process in busy:
            process.kill()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "the demo runs on the bundled example" in result.stdout
    assert not (tmp_path / "prefect-home").exists()  # Prefect was not even started
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in ("contacts.csv", "hubspot-contacts.csv", "rejected-batch.csv"):
        assert any(name in line for line in lines), name  # whole, not broken
    assert "changed: " in result.stdout


def test_a_demo_run_again_says_nothing_changed(leadflow_env):
    out = leadflow_env / "demo"
    first = runner.invoke(app, ["demo", "--out", str(out), "--contacts", "150", "--days", "30"])
    assert first.exit_code == 0, first.output
    assert "changed: " in first.stdout and "nothing changed" not in first.stdout
    again = runner.invoke(app, ["demo", "--out", str(out), "--contacts", "150", "--days", "30"])
    assert again.exit_code == 0, again.output
    assert "nothing changed: the state is as it was before the run" in again.stdout
    assert "rejected again" in again.stdout
    assert "already rejected with the same content (batch rejected," in again.stdout
    reports = sorted(path.name for path in (leadflow_env / "rejects").iterdir())
    assert len([name for name in reports if name.endswith(".csv")]) == 1  # not a second one

    page = leadflow_env / "report.html"
    result = runner.invoke(app, ["report", "--out", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count("<svg") >= 3  # the funnel, a score distribution, the tier use
    for heading in ("Top movers", "Lifecycle funnel", "Marketing-contact tier", "Demotion queue"):
        assert heading in html
    assert "Nothing changed" in html and "No score moved" in html


def test_with_a_prefect_api_a_run_is_a_flow_run_with_its_artifacts(prefect_harness, leadflow_env):
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    rows = [event_row("o1", email="ann@example.com", occurred_at="2026-11-02T10:00:00Z")]
    runner.invoke(app, ["ingest", str(write_csv(leadflow_env / "e.csv", rows, EVENT_HEADER))])
    with get_client(sync_client=True) as client:
        before = len(client.read_flow_runs())
    result = runner.invoke(
        app, ["run", "--as-of", "2026-11-10"], env={"PREFECT_API_URL": PREFECT_API_URL.value()}
    )
    assert result.exit_code == 0, result.output
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    assert len(runs) == before + 1
    summary = Artifact.get("run-summary")
    assert summary is not None and "# Daily run of 2026-11-10" in summary.data
    assert str(summary.flow_run_id) in {str(run.id) for run in runs}
    funnel = Artifact.get("lifecycle-funnel")
    assert funnel is not None and "data:image/svg+xml;base64," in funnel.data


def test_serve_refuses_deployments_a_work_pool_serves(prefect_harness, leadflow_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    from leadflow.config import load_config
    from leadflow.deployments import runner_deployments

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="leadflow-pool", type="process"))
    backfill = runner_deployments(load_config(EXAMPLE_CONFIG))[1]
    deployment_id = backfill.apply(work_pool_name="leadflow-pool")  # as `prefect deploy` does
    try:
        result = runner.invoke(app, ["serve"], env={"PREFECT_API_URL": PREFECT_API_URL.value()})
        line = one_line_error(result)
        assert "backfill/leadflow-backfill (pool leadflow-pool) are served by a work pool" in line
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
            client.delete_work_pool("leadflow-pool")
