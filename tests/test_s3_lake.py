"""The event lake in S3-compatible storage (LEADFLOW_LAKE=s3://bucket/prefix), against a real
S3 server: moto's, started once for the module on 127.0.0.1, with a bucket of its own per test.
The same data on an S3 lake gives what it gives on a local lake; a batch uploaded but never
committed is not counted and is swept; S3's failures are one line without the secret."""

import logging
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.config import EngineSection
from leadflow.demo_data import generate_demo_data
from leadflow.exports import contacts_as_of
from leadflow.ingest.load import ingest_file
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_backfill
from leadflow.scoring.scores import scores_as_of
from tests.conftest import SHIPPED_CONFIG, fresh_postgres_schema, make_workspace

END = date(2026, 11, 28)
SECRET = "s3cr3t-never-shown-0123456789"


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> dict[str, str]:
    """The AWS variables a user sets, pointing at the moto server."""
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "leadflow-test",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(s3_env) -> str:
    """A new bucket on the server, for this test."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client(s3_env).create_bucket(Bucket=name)
    return name


def s3_client(env: dict[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def bucket_batches(env: dict[str, str], bucket: str) -> set[str]:
    """The batch ids of the lake files in the bucket, committed or not."""
    pages = s3_client(env).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key.rsplit("batch-", 1)[1].removesuffix(".parquet") for key in keys if "batch-" in key}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo_data(
        tmp_path_factory.mktemp("s3-demo"), contacts=150, days=45, seed=5, end=END
    )


def ingest_and_run(space, demo) -> list:
    for path in [demo.contacts_file, *demo.event_files]:
        ingest_file(space, path)
    return execute(space, plan_backfill(space, date(2026, 11, 25), END))


def outcome(space) -> dict:
    events = space.lake.events_sql(space.committed_event_batches())
    with space.lake.connection() as connection:
        lake = connection.execute(
            f"SELECT * EXCLUDE (batch_id) FROM {events} ORDER BY source, event_id"
        ).fetchall()
    return {
        "scores": scores_as_of(space, END).to_pylist(),
        "contacts": contacts_as_of(space, END).to_pylist(),
        "lake": lake,
    }


def test_an_s3_lake_gives_what_a_local_lake_gives(s3_env, bucket, demo, tmp_path):
    local = make_workspace(f"sqlite:///{tmp_path / 'local.db'}", tmp_path / "local")
    remote = make_workspace(
        f"sqlite:///{tmp_path / 'remote.db'}",
        tmp_path / "remote",
        lake=f"s3://{bucket}/leadflow/lake",
    )
    # The remote lake's days in three contact-hash partitions (README: Scaling out), the local
    # lake's in one.
    partitioned = remote.config.model_copy(update={"engine": EngineSection(partitions=3)})
    remote = replace(remote, config=partitioned)
    ingest_and_run(local, demo)
    days = ingest_and_run(remote, demo)
    assert {day.reads["ledger"].split(":")[0] for day in days} == {"3 partition(s)"}
    expected = outcome(local)
    assert expected["scores"] and expected["lake"]
    assert outcome(remote) == expected
    # The events are in the bucket, the run cache on this machine, nothing else local.
    assert bucket_batches(s3_env, bucket) == remote.committed_event_batches()
    assert remote.cache_path.is_file()
    assert not (tmp_path / "remote" / "lake" / "events").exists()
    for space in (local, remote):
        space.engine.dispose()


def test_a_failed_commit_leaves_nothing_in_the_bucket(s3_env, bucket, demo, tmp_path):
    """A batch uploaded whose commit the database refuses (a trigger on the final update of
    its batch row, which comes after the upload) is removed from the bucket again."""
    space = make_workspace(
        f"sqlite:///{tmp_path / 'state.db'}", tmp_path, lake=f"s3://{bucket}/lake"
    )
    ingest_file(space, demo.contacts_file)
    ingest_file(space, demo.event_files[0])
    committed = space.committed_event_batches()
    before = outcome(space)
    with space.engine.begin() as db:
        db.execute(
            text(
                "CREATE TRIGGER refuse AFTER UPDATE OF rows_loaded ON ingest_batch "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    with pytest.raises(Exception, match="refused by the test"):
        ingest_file(space, demo.event_files[1])
    assert space.committed_event_batches() == committed
    assert bucket_batches(s3_env, bucket) == committed
    assert outcome(space) == before
    space.engine.dispose()


@pytest.mark.postgres
def test_a_batch_uploaded_but_never_committed_is_not_read_and_is_swept(
    postgres_server, s3_env, bucket, demo, tmp_path
):
    """`leadflow ingest` killed after the upload, its commit held back by the database (a
    trigger sleeping on the batch row's final update): the objects are in the bucket, nothing
    counts them, and the next ingest deletes them."""
    with fresh_postgres_schema(postgres_server) as url:
        space = make_workspace(url, tmp_path, lake=f"s3://{bucket}/lake")
        ingest_file(space, demo.contacts_file)
        ingest_file(space, demo.event_files[0])
        execute(space, plan_backfill(space, END, END))
        committed = space.committed_event_batches()
        before = outcome(space)
        with space.engine.begin() as db:
            db.execute(
                text(
                    "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM pg_sleep(120); RETURN NEW; END $$"
                )
            )
            db.execute(
                text(
                    "CREATE TRIGGER stall BEFORE UPDATE ON ingest_batch "
                    "FOR EACH ROW EXECUTE FUNCTION stall()"
                )
            )
        env = {
            **os.environ,
            "LEADFLOW_DATABASE_URL": url,
            "LEADFLOW_LAKE": f"s3://{bucket}/lake",
            "LEADFLOW_LOCAL_DIR": str(tmp_path),
            "LEADFLOW_CONFIG": str(SHIPPED_CONFIG),
            "PREFECT_API_URL": "",
            "PGAPPNAME": "leadflow-s3-stalled",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "leadflow", "--verbose", "ingest", str(demo.event_files[1])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = []
        for line in process.stdout:
            output.append(line)
            if "published in the lake, committing" in line:
                break
        try:
            process.wait(timeout=1)  # it must be stalled in the commit, not finished
            pytest.fail("the ingest finished: " + "".join(output) + process.stdout.read())
        except subprocess.TimeoutExpired:
            process.kill()
        process.wait()
        output.append(process.stdout.read())
        process.stdout.close()
        assert SECRET not in "".join(output)  # its --verbose log lines
        with space.engine.begin() as db:
            db.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'leadflow-s3-stalled'"
                )
            )
            db.execute(text("DROP TRIGGER stall ON ingest_batch"))
        orphans = bucket_batches(s3_env, bucket) - committed
        assert len(orphans) == 1 and space.committed_event_batches() == committed
        assert outcome(space) == before
        again = execute(space, plan_backfill(space, END, END))
        assert outcome(space) == before and again
        ingest_file(space, demo.event_files[1])
        assert bucket_batches(s3_env, bucket) == space.committed_event_batches()
        assert not orphans & space.committed_event_batches()
        space.engine.dispose()


def cli(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env={**env, "PREFECT_API_URL": ""})


def test_the_cli_on_an_s3_lake(s3_env, bucket, demo, tmp_path):
    """`ingest`, `run` and `export scores` with LEADFLOW_LAKE=s3://…: the export is the one the
    same commands give on a local lake."""
    exports = {}
    for name, lake in (("local", str(tmp_path / "local" / "lake")), ("s3", f"s3://{bucket}/x")):
        env = {
            **s3_env,
            "LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / name / 'state.db'}",
            "LEADFLOW_LAKE": lake,
            "LEADFLOW_LOCAL_DIR": str(tmp_path / name),
            "LEADFLOW_CONFIG": str(SHIPPED_CONFIG),
        }
        files = [demo.contacts_file, *demo.event_files, demo.rejected_file]
        result = cli(env, "ingest", *map(str, files))
        assert result.exit_code == 1, result.output  # the rejected file is rejected
        assert "rejected" in result.output
        result = cli(env, "run", "--as-of", str(END))
        assert result.exit_code == 0, result.output
        out = tmp_path / name / "scores.csv"
        result = cli(env, "export", "scores", "--out", str(out), "--as-of", str(END))
        assert result.exit_code == 0, result.output
        exports[name] = out.read_text()
        # What stays local: the rejected file's report, the run cache.
        assert list((tmp_path / name / "rejects").glob("rejected-batch-*.csv"))
        assert (tmp_path / name / "lake" / "_cache" / "run.duckdb").is_file()
    assert exports["s3"] == exports["local"]
    assert len(exports["s3"].splitlines()) > 100


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert SECRET not in result.output + result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "lake, endpoint, expected",
    [
        ("s3://no-such-bucket/lake", None, "s3://no-such-bucket/lake cannot be used: The spec"),
        ("s3://BUCKET/lake", "http://127.0.0.1:9", "cannot be used: Could not connect"),
    ],
    ids=["missing bucket", "endpoint down"],
)
def test_s3_failures_are_one_line_without_the_secret(
    s3_env, bucket, demo, tmp_path, lake, endpoint, expected
):
    env = {
        **s3_env,
        "AWS_ENDPOINT_URL": endpoint or s3_env["AWS_ENDPOINT_URL"],
        "LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "LEADFLOW_LAKE": lake.replace("BUCKET", bucket),
        "LEADFLOW_LOCAL_DIR": str(tmp_path),
        "LEADFLOW_CONFIG": str(SHIPPED_CONFIG),
    }
    assert cli(env, "ingest", str(demo.contacts_file)).exit_code == 0  # no lake needed
    line = one_line_error(cli(env, "ingest", str(demo.event_files[0])))
    assert expected in line and "LEADFLOW_LAKE" in line, line
    if endpoint is None:  # (an endpoint down costs s3fs's retries, seconds, each time)
        line = one_line_error(cli(env, "export", "scores", "--out", str(tmp_path / "s.csv")))
        assert expected in line, line


def test_a_read_failing_under_duckdb_is_one_line(s3_env, bucket, tmp_path):
    """S3's failures while DuckDB reads (through the registered file system) are DuckDB's
    errors, some carrying a Python traceback: one line all the same, the exception's."""
    from leadflow.cli.failures import describe
    from leadflow.lake import open_lake

    lake = open_lake(f"s3://{bucket}/lake", tmp_path)
    s3_client(s3_env).put_object(Bucket=bucket, Key="lake/events/day=x/a.parquet", Body=b"-")
    missing = f"s3://{bucket}/lake/events/day=2026-11-01/batch-{'a' * 32}.parquet"
    said = "the lake or the run cache: "
    for path, expected in (
        (missing, f'{said}IO Error: No files found that match the pattern "{missing}"'),
        (f"s3://{bucket}/lake/events/day=x", f"{said}IsADirectoryError"),
    ):
        with pytest.raises(Exception) as failure, lake.connection() as connection:
            connection.execute(f"SELECT count(*) FROM {lake.relation([path])}").fetchall()
        message, code = describe(failure.value)
        assert code == 1 and message.startswith(expected), message
        assert "\n" not in message and SECRET not in message


@pytest.mark.parametrize("lake", ["s3://", "s3:///prefix", "gs://bucket/lake"])
def test_a_lake_url_that_is_not_s3_is_one_line(leadflow_env, lake, monkeypatch):
    monkeypatch.setenv("LEADFLOW_LAKE", lake)
    line = one_line_error(cli({}, "run"))
    assert line.startswith("error: LEADFLOW_LAKE: ") and repr(lake) in line, line
