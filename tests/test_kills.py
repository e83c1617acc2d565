"""No kill loses anything: the state-changing commands killed (SIGKILL) at many points, then run
again, end in the state an uninterrupted run gives, on SQLite and PostgreSQL.

One base workspace per database: a small demo base with 28 days run (a renewal on 2026-11-24,
demotions scheduled for it) and two admins' changes after it. Each scenario copies the base,
runs a command uninterrupted for the reference, then for each kill point: copies the base,
starts the real command (`python -m leadflow`) and kills it at that point — right after a log
line of a given step (the run logs every step of every day) or after a fraction of the
reference's duration — runs it again (or another command) and compares everything: every table
(without ids, batch ids and times; contacts by email), the exports, the tier, the lake.
"""

import csv
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, text
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.demo_data import generate_demo_data
from leadflow.settings import PROJECT_ROOT
from tests.conftest import POSTGRES_URL

END = date(2026, 11, 28)
RENEWAL = date(2026, 11, 24)
LATE_DAYS = ("2026-11-14", "2026-11-20")  # events of these days arrive late (the ingest scenario)
ADMIN_STAGE = ("2026-11-26", "other")
ADMIN_MARKETING = ("2026-11-25", "marketing")
# Never compared: row ids, random batch ids and wall-clock times differ between equal runs;
# state_version counts writes, run_lock_holder is who runs now, run_report logs what runs
# reported. (scoring_run is compared: a
# killed day leaves none, so a rerun never adds a second one for a day.)
INCIDENTAL = {
    "id",
    "demotion_id",
    "batch_id",
    "first_batch_id",
    "recorded_at",
    "started_at",
    "finished_at",
}
SKIPPED_TABLES = {"state_version", "run_lock_holder", "alembic_version", "run_report"}

pytestmark = pytest.mark.kill


@dataclass
class Copy:
    """A workspace: a database URL and a folder (lake, run cache, inbox, config)."""

    url: str
    folder: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "LEADFLOW_DATABASE_URL": self.url,
            "LEADFLOW_LAKE": str(self.folder / "lake"),
            "LEADFLOW_INBOX": str(self.folder / "inbox"),
            "LEADFLOW_CONFIG": str(self.folder / "leadflow.yaml"),
        }


class Databases:
    """Fresh databases of one kind, copies of a base: a file copy on SQLite, a database made
    from a template on PostgreSQL."""

    def __init__(self, kind: str, root: Path):
        self.kind, self.root, self.made = kind, root, []

    def new(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / name / 'state.db'}"
        database = f"leadflow_kill_{uuid.uuid4().hex[:10]}"
        self._admin(f"CREATE DATABASE {database}")
        self.made.append(database)
        return POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"

    def copy(self, base: Copy, name: str) -> Copy:
        from leadflow.store.db import get_engine

        get_engine(base.url).dispose()  # a file copied whole, a template without sessions
        folder = self.root / name
        shutil.copytree(base.folder, folder)
        if self.kind == "sqlite":
            return Copy(f"sqlite:///{folder / 'state.db'}", folder)
        database = f"leadflow_kill_{uuid.uuid4().hex[:10]}"
        self._admin(f"CREATE DATABASE {database} TEMPLATE {base.url.rsplit('/', 1)[1]}")
        self.made.append(database)
        return Copy(POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}", folder)

    def _admin(self, statement: str) -> None:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()

    def drop_all(self) -> None:
        for database in self.made:
            self._admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def leadflow(copy: Copy, *args: str, done_already: str | None = None) -> None:
    """A command run in this process (the reruns), which must succeed, or refuse with
    `done_already` (an admin change the killed run had committed)."""
    result = CliRunner().invoke(app, list(args), env=copy.env)
    if done_already and result.exit_code == 1 and done_already in result.stderr:
        return
    assert result.exit_code == 0, result.output + str(result.exception)


def start(copy: Copy, args: list[str]) -> subprocess.Popen:
    """`python -m leadflow --verbose ARGS` on `copy`, its log lines on stdout."""
    env = {**os.environ, **copy.env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow", "--verbose", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=copy.folder,
    )


def kill_at(copy: Copy, args: list[str], line: tuple[str, int] | None, seconds: float | None):
    """Start the command and SIGKILL it right after the n-th log line containing `line[0]`
    (failing if it finished before), or after `seconds` (if it is still running then)."""
    process = start(copy, args)
    timer = threading.Timer(seconds, process.kill) if seconds is not None else None
    if timer:
        timer.start()
    seen, output = 0, []
    for text_line in process.stdout:
        output.append(text_line)
        if line and line[0] in text_line:
            seen += 1
            if seen == line[1]:
                process.kill()
                break
    process.stdout.close()
    code = process.wait()
    if timer:
        timer.cancel()
    if line:
        assert code == -9, f"finished before the kill point {line}: {''.join(output)}"
    else:
        assert code in (0, -9), "".join(output)


def comparable(copy: Copy) -> dict:
    """Everything a run leaves, without what differs between equal runs (see INCIDENTAL)."""
    from leadflow.exports import contacts_as_of
    from leadflow.lake import duckdb_connection
    from leadflow.marketing import tier_report
    from leadflow.scoring.scores import scores_as_of
    from leadflow.settings import Settings
    from leadflow.store.db import get_engine
    from leadflow.workspace import Workspace

    engine = create_engine(copy.url)
    metadata = MetaData()
    metadata.reflect(engine)
    state: dict = {}
    with engine.connect() as connection:
        emails = dict(connection.execute(text("SELECT id, email FROM contact")).all())
        for table in metadata.sorted_tables:
            if table.name in SKIPPED_TABLES:
                continue
            columns = [c for c in table.columns if c.name not in INCIDENTAL]
            rows = connection.execute(table.select().with_only_columns(*columns)).mappings()
            state[table.name] = sorted(
                repr(
                    sorted(
                        (name, emails.get(value) if name == "contact_id" else value)
                        for name, value in row.items()
                    )
                )
                for row in rows
            )
    engine.dispose()
    env = copy.env
    space = Workspace.from_settings(
        Settings(
            database_url=env["LEADFLOW_DATABASE_URL"],
            lake=env["LEADFLOW_LAKE"],
            inbox=env["LEADFLOW_INBOX"],
            config=env["LEADFLOW_CONFIG"],
        )
    )
    state["export contacts"] = [contacts_as_of(space, day).to_pylist() for day in (RENEWAL, END)]
    state["export scores"] = scores_as_of(space, END).to_pylist()
    state["tier"] = [tier_report(space, day).as_json() for day in (RENEWAL, END)]
    with duckdb_connection() as connection:
        events = space.lake.events_sql(space.committed_event_batches())
        state["lake"] = connection.execute(
            f"SELECT * EXCLUDE (batch_id) FROM {events} ORDER BY source, event_id"
        ).fetchall()
    get_engine(copy.url).dispose()
    return state


def build_base(databases: Databases) -> tuple[Copy, Path]:
    """The base: 28 days run over a demo base, a renewal among them, two admins' changes after
    it; and a file of late events (held back from the base)."""
    folder = databases.root / "base"
    data = folder.parent / "data"
    dataset = generate_demo_data(data, contacts=120, days=60, seed=11, end=END)
    late = data / "late.csv"
    _hold_back(dataset.event_files[-1], late)
    (folder / "inbox").mkdir(parents=True)
    config = (PROJECT_ROOT / "leadflow.yaml").read_text()
    config = config.replace("renewal_date: 2027-03-01", f"renewal_date: {RENEWAL}")
    (folder / "leadflow.yaml").write_text(config)
    base = Copy(databases.new("base"), folder)
    files = [dataset.contacts_file, dataset.hubspot_file, *dataset.event_files]
    leadflow(base, "ingest", *map(str, files))
    leadflow(base, "backfill", "--start", "2026-11-01", "--end", str(END))
    engine = create_engine(base.url)
    with engine.connect() as connection:
        staged = connection.execute(
            text(
                "SELECT c.email FROM contact c JOIN contact_stage s ON s.contact_id = c.id "
                "WHERE s.stage = 'lead' ORDER BY c.email LIMIT 1"
            )
        ).scalar_one()
        non_marketing = connection.execute(
            text(
                "SELECT c.email FROM contact c JOIN contact_marketing m ON m.contact_id = c.id "
                "WHERE m.status = 'non_marketing' AND NOT m.suppressed ORDER BY c.email LIMIT 1"
            )
        ).scalar_one()
    engine.dispose()
    day, stage = ADMIN_STAGE
    leadflow(base, "stage", "set", staged, stage, "--reason", "moved by hand", "--as-of", day)
    day, status = ADMIN_MARKETING
    leadflow(base, "marketing", "set", non_marketing, status, "--reason", "asked", "--as-of", day)
    return base, late


def _hold_back(events: Path, late: Path) -> None:
    """Move the events of LATE_DAYS out of `events` into `late`."""
    with events.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    start, stop = LATE_DAYS
    is_late = [start <= row["occurred_at"][:10] < stop for row in rows]
    for path, keep in ((events, False), (late, True)):
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row, flag in zip(rows, is_late, strict=True) if flag == keep)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def kill_base(request, tmp_path_factory):
    if request.param == "postgres":
        request.getfixturevalue("postgres_server")
    databases = Databases(request.param, tmp_path_factory.mktemp(f"kills-{request.param}"))
    try:
        base, late = build_base(databases)
        yield databases, base, late
    finally:
        if request.param == "postgres":
            databases.drop_all()


BACKFILL = ["backfill", "--start", "2026-11-22", "--end", "2026-11-23"]
# Kill points: after the n-th log line containing the text, or after a fraction of the
# reference run's duration. Together they cover the undo and every step of a day (inside
# the day's transaction, between its commit and the cache fold), on the renewal day and on
# the days of the admins' changes.
BACKFILL_POINTS = [
    ("undo after 2026-11-21 committed", 1),
    ("2026-11-22: read and scanned", 1),
    ("2026-11-23: scores written", 1),
    ("2026-11-24: stage moves written", 1),
    ("2026-11-24: marketing changes written", 1),
    ("2026-11-25: admin changes made again", 1),
    ("2026-11-25: committed", 1),
    ("2026-11-26: run cache folded", 1),
    0.7,
]


def _scenario(
    kill_base,
    name: str,
    command: list[str],
    points: list,
    reruns: list[list[str]],
    done_already: str | None = None,
):
    databases, base, late = kill_base
    if databases.kind == "postgres":
        # Every other point: the steps are the same code on both; the suite's time counts.
        points = points[::2]
    args = [str(late) if item == "LATE" else item for item in command]
    reference = databases.copy(base, f"{name}-reference")
    started = time.monotonic()
    process = start(reference, args)
    output = process.communicate()[0]
    assert process.returncode == 0, output
    duration = time.monotonic() - started
    expected = comparable(reference)
    for index, point in enumerate(points):
        copy = databases.copy(base, f"{name}-{index}")
        if isinstance(point, float):
            kill_at(copy, args, None, point * duration)
        else:
            kill_at(copy, args, point, None)
        rerun = reruns[index % len(reruns)]
        for again in rerun:
            again = [str(late) if item == "LATE" else item for item in again]
            leadflow(copy, *again, done_already=done_already)
        assert comparable(copy) == expected, f"{name}: killed at {point}, then {rerun}"
        shutil.rmtree(copy.folder)


def test_a_killed_backfill_rerun_ends_as_the_uninterrupted_one(kill_base):
    # Rerun: the same command, or a later daily run (which finishes the replay first).
    _scenario(
        kill_base,
        "backfill",
        BACKFILL,
        BACKFILL_POINTS,
        [[BACKFILL], [["run", "--as-of", str(END)]]],
    )


def test_a_killed_run_of_a_past_day_rerun_ends_as_the_uninterrupted_one(kill_base):
    command = ["run", "--as-of", "2026-11-24"]
    points = [
        ("undo after 2026-11-23 committed", 1),
        ("2026-11-24: marketing changes written", 1),
        ("2026-11-26: admin changes made again", 1),
        0.6,
    ]
    _scenario(kill_base, "run", command, points, [[command]])


def test_a_killed_ingest_rerun_ends_as_the_uninterrupted_one(kill_base):
    command = ["ingest", "LATE"]
    points = [
        ("events staged in the lake", 1),
        ("published in the lake, committing", 1),
        0.5,
    ]
    _scenario(kill_base, "ingest", command, points, [[command]])


def test_a_killed_admin_change_rerun_ends_as_the_uninterrupted_one(kill_base):
    command = ["stage", "set", "KEEP", "customer", "--reason", "signed", "--as-of", str(END)]
    databases, base, _ = kill_base
    engine = create_engine(base.url)
    with engine.connect() as connection:
        email = connection.execute(
            text("SELECT email FROM contact ORDER BY email LIMIT 1")
        ).scalar_one()
    engine.dispose()
    command[2] = email
    points = [("written, committing", 1), 0.8]
    _scenario(kill_base, "admin", command, points, [[command]], "is already at stage")
