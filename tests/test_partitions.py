"""Contact-hash partitions (README: Scaling out): the same data scored in one partition, in
three and in eight gives the same state and the same exports, on SQLite and PostgreSQL."""

from dataclasses import replace
from datetime import UTC, date, datetime

import duckdb
import pytest
import yaml

from leadflow.config import EngineSection
from leadflow.demo_data import generate_demo_data
from leadflow.exports import contacts_as_of
from leadflow.ingest.load import ingest_file
from leadflow.lake import LAKE_FORMAT, bucket_sql, duckdb_connection, partition_sql
from leadflow.marketing import tier_report
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_backfill, plan_daily
from leadflow.scoring.partitions import INPUTS, create_by_partition, partition_count, write_inputs
from leadflow.scoring.scores import read_contacts, scores_as_of
from leadflow.settings import PROJECT_ROOT
from tests.conftest import logical_state, make_workspace

END = date(2026, 11, 5)
START, BEFORE_LAST, LAST = date(2026, 10, 10), date(2026, 10, 15), date(2026, 10, 16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_demo_data(
        tmp_path_factory.mktemp("partitions") / "data", contacts=300, days=60, end=END, seed=11
    )


def with_partitions(space, partitions: int | str):
    return replace(
        space,
        config=space.config.model_copy(update={"engine": EngineSection(partitions=partitions)}),
    )


def exports(space) -> dict:
    """What a user reads of the state as of the last day: every export, the tier."""
    return {
        "scores": scores_as_of(space, LAST).to_pylist(),
        "contacts": contacts_as_of(space, LAST).to_pylist(),
        "tier": tier_report(space, LAST).as_json(),
        "state": logical_state(space),
    }


def test_one_three_and_eight_partitions_give_the_same_exports(database_url, tmp_path, data):
    config = yaml.safe_load((PROJECT_ROOT / "leadflow.yaml").read_text())
    # A renewal inside the days run: demotions are queued, scheduled and applied.
    config["contract"].update(renewal_date="2026-10-14", demotion_window_days=10)
    path = tmp_path / "leadflow.yaml"
    path.write_text(yaml.safe_dump(config))
    space = make_workspace(database_url, tmp_path, path)
    ingest_file(space, data.contacts_file)
    for events in data.event_files[:-1]:
        ingest_file(space, events)
    with duckdb_connection() as connection:  # eight partitions, none of them empty
        connection.register("contacts", read_contacts(space))
        sizes = connection.execute(
            f"SELECT {partition_sql('email', 8)} AS p, count(*) FROM contacts GROUP BY p"
        ).fetchall()
    assert len(sizes) == 8 and min(count for _, count in sizes) > 10

    seen = {}
    for partitions in (1, 3, 8):
        parted = with_partitions(space, partitions)
        # The days from a start (N = 1) or as a replay (N = 3, 8: the ledgers of their own are
        # rebuilt on the first day, then advanced); then late data: the ledgers take it up.
        summaries = execute(parted, plan_backfill(parted, START, BEFORE_LAST))
        if partitions == 1:
            ingest_file(space, data.event_files[-1], now=datetime(2026, 11, 6, tzinfo=UTC))
        summaries += execute(parted, plan_daily(parted, LAST))
        ledgers = [summary.reads["ledger"] for summary in summaries]
        assert ledgers[0] == f"{partitions} partition(s): rebuilt"
        # (N = 3, 8: the backfill reaches the last day already; the daily run then replays it)
        assert f"{partitions} partition(s): advanced" in ledgers[1:]
        assert set(ledgers[1:]) <= {
            f"{partitions} partition(s): {how}" for how in ("advanced", "unchanged")
        }
        seen[partitions] = exports(parted)
    assert seen[1]["scores"] and seen[1]["tier"]["marketing_contacts"]
    assert {row["marketing_status"] for row in seen[1]["contacts"]} >= {
        "marketing",
        "non_marketing",
    }
    for partitions in (3, 8):
        for name in seen[1]:
            assert seen[partitions][name] == seen[1][name], (partitions, name)

    # A lake begun before the contact buckets (its files without them, no format mark) gives
    # the same partitions, the buckets computed from the emails; `db upgrade` then adds them.
    files = sorted(space.lake.events_dir.glob("day=*/batch-*.parquet"))
    with duckdb_connection() as connection:
        for path in files:
            connection.execute(
                f"COPY (SELECT * EXCLUDE (contact_bucket) FROM read_parquet('{path}')) "
                f"TO '{path}.old' (FORMAT parquet)"
            )
            path.with_name(path.name + ".old").replace(path)
    (space.lake.root / LAKE_FORMAT).unlink()
    assert not space.lake.bucketed
    for upgraded in (False, True):
        if upgraded:
            with duckdb_connection() as connection:
                assert space.lake.add_buckets(connection) == len(files)
            assert space.lake.bucketed
        parted = with_partitions(space, 3)
        execute(parted, plan_backfill(parted, START, LAST))
        assert exports(parted) == seen[1], upgraded


def test_auto_partitions_follow_the_base(tmp_path):
    space = make_workspace(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    assert partition_count(space.config, 2_000) == 1
    assert partition_count(space.config, 1_000_000) == 1
    assert partition_count(space.config, 1_000_001) == 2
    assert partition_count(space.config, 10_000_000) == 10
    assert partition_count(with_partitions(space, 8).config, 2_000) == 8


def test_a_join_over_the_base_made_by_partition_stays_within_duckdbs_memory():
    """The coordinator's joins of the whole base (the stored state beside the day's scores:
    the marketing decisions, the score comparison) run partition by partition of the contact
    ids: at a limit one such join overruns (as 5M contacts did at 512 MB), four partitions of
    it pass, with each row once."""
    with duckdb_connection() as connection:
        connection.execute("SET threads = 2")
        for name, columns in (
            ("state", "'contact' || i || '@example.com' AS email, repeat('x', 40) || i AS rule"),
            ("day_scored", "i * 0.5 AS score, repeat('z', 40) || i AS band"),
        ):
            rows = connection.sql(f"SELECT i AS contact_id, {columns} FROM range(400000) t(i)")
            connection.register(name, rows.to_arrow_table())
        query = """SELECT s.*, e.score, e.band FROM state s JOIN day_scored e USING (contact_id)
                   WHERE s.contact_id % $partitions = $partition
                     AND e.contact_id % $partitions = $partition"""
        connection.execute("SET memory_limit = '30MB'")
        with pytest.raises(duckdb.OutOfMemoryException):
            create_by_partition(connection, "joined", query, 1)
        create_by_partition(connection, "joined", query, 4)
        assert connection.execute(
            "SELECT count(*), count(DISTINCT contact_id), sum(contact_id) FROM joined"
        ).fetchall() == [(400_000, 400_000, 399_999 * 400_000 // 2)]


def test_partition_inputs_split_by_stored_buckets_are_those_split_by_the_emails(tmp_path):
    """The daily run's inputs carry each contact's bucket from the run cache's mirror; split by
    it, each partition's files hold the rows the emails' md5 gives it, without the bucket."""
    with duckdb_connection() as connection:
        emails = connection.sql("SELECT 'c' || i || '@example.com' AS email FROM range(3000) t(i)")
        connection.register("emails", emails.to_arrow_table())
        for stored in (False, True):
            bucket = f", {bucket_sql('email')} AS bucket" if stored else ""
            connection.execute(
                f"""CREATE OR REPLACE TEMP TABLE targets AS
                    SELECT email, DATE '2026-11-01' AS day{bucket} FROM emails"""
            )
            connection.execute(
                f"""CREATE OR REPLACE TEMP TABLE props AS
                    SELECT email, 'persona' AS name, 'p' || email AS value{bucket}
                    FROM emails WHERE email LIKE 'c1%'"""
            )
            write_inputs(connection, tmp_path / str(stored), 3)
        for name in INPUTS:
            for partition in range(3):
                folders = (tmp_path / "False", tmp_path / "True")
                files = [folder / f"{name}-{partition}.parquet" for folder in folders]
                hashed, split = (
                    connection.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL")
                    for path in files
                )
                assert split.columns == hashed.columns and "bucket" not in split.columns
                rows = split.fetchall()
                assert rows and rows == hashed.fetchall(), (name, partition)
                [(strays,)] = connection.execute(
                    f"SELECT count(*) FROM read_parquet('{files[1]}') "
                    f"WHERE {partition_sql('email', 3)} <> {partition}"
                ).fetchall()
                assert strays == 0, (name, partition)
