"""Benchmark: leadflow at 1M to 10M contacts on this machine: the history's ingest, the first
day, then a daily run, with each step's time and peak memory.

    python benchmarks/scale.py --contacts 1000000 2000000 5000000 10000000

For each size, not timed and cached in `--data`: a synthetic base written by DuckDB (the demo
generator holds a whole base in memory, too much at 10M): `contacts-NN.csv` (the demo's columns,
a million contacts a file)
and a year of events, about 20 per contact, as monthly Parquet files in leadflow's input
format, with the mix of the demo's event types. Then each step runs in a child process of its
own (its peak RSS is its own), on the shipped `leadflow.yaml` (`engine.partitions: auto`):

1. **ingest**: `ingest_file` of the contacts file, then of each month (read, normalise, Great
   Expectations, quarantine, dedupe against the lake, lake write, contacts);
2. **first day**: `run_day` as of 2026-10-31 (every contact scored, staged, flagged; every
   score written);
3. **daily**: a CSV of the next day's events (5.5% of the base, sampled from the last
   fortnight, as `benchmarks/daily.py` makes it) ingested, then `run_day` of 2026-11-01, the
   ledgers advanced by a day. No Prefect server: the flow adds about 1 s (`daily.py`).

Each finished step is recorded in `<data>/scale-<N>/steps.json`, so an interrupted run goes
on where it stopped; `--again` runs the first day and daily steps once more on a copy of the
ingested state.

The state store is a SQLite file in `<data>/scale-<N>-state`, or with `--postgres URL` (a
server's URL without a database) a database `leadflow_scale_<N>` on that server: a batch of
ten million contacts is one transaction, whose write-ahead log SQLite cannot checkpoint before
it commits (32 GB of it at 10M; BENCHMARKS: Scale), where PostgreSQL checkpoints as it goes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
from partitions import folder_size

HERE = Path(__file__).resolve().parent
END = date(2026, 10, 31)
DAYS = 365
EVENTS_PER_CONTACT = 20
# A contacts batch is one transaction: on SQLite its write-ahead log grows with it until it
# commits (1.6 GB a million contacts), so the base comes in files of a million.
CONTACTS_PER_FILE = 1_000_000
NEXT_DAY_SHARE = 0.055  # the daily benchmark's 55k events a day at 1M
# The demo generator's mix (share of events by type; source), 1M contacts, one year.
EVENT_MIX = [
    ("email_sent", "hubspot", 0.345),
    ("email_delivered", "hubspot", 0.334),
    ("page_view", "website", 0.172),
    ("email_open", "hubspot", 0.065),
    ("form_submission", "website", 0.021),
    ("ad_click", "ads", 0.014),
    ("email_click", "hubspot", 0.008),
    ("chat_started", "website", 0.0057),
    ("webinar_registration", "zoom", 0.0052),
    ("email_bounce", "hubspot", 0.0044),
    ("webinar_attended", "zoom", 0.0018),
    ("meeting_booked", "hubspot", 0.0036),
    ("sales_accepted", "salesforce", 0.0036),
    ("email_unsubscribe", "hubspot", 0.0007),
]
URLS = ["/pricing", "/product/scoring", "/blog/mql-vs-sql", "/demo", "/webinars/graymail", "/"]
PERSONAS = ["sales_leader", "marketing_ops", "founder", "developer", "job_seeker", "student"]

STEP = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from scale import run_step
from pathlib import Path
figures = run_step(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
figures["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(figures))
"""


def _uniform(salt: int, key: str = "i") -> str:
    """A uniform number in [0, 1) drawn from `key` (DuckDB's hash: stable within a version)."""
    return f"(hash({key}, {salt}) % 1000000007) / 1000000007.0"


def generate(data: Path, contacts: int) -> None:
    """The contacts file and the monthly event files of a base of `contacts` (not timed)."""
    if (data / "generated").exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    (data / "events").mkdir(parents=True)
    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute("SET memory_limit = '2GB'")
    connection.execute("SET TimeZone = 'UTC'")
    first = END - timedelta(days=DAYS - 1)
    personas = "[" + ", ".join(f"'{persona}'" for persona in PERSONAS) + "]"
    for part, start in enumerate(range(0, contacts, CONTACTS_PER_FILE)):
        stop = min(start + CONTACTS_PER_FILE, contacts)
        connection.execute(
            f"""COPY (
                SELECT 'contact' || i || '@company' || (i % 50000) || '.example' AS email,
                       'First' || (i % 997) AS first_name, 'Last' || (i % 1009) AS last_name,
                       CASE WHEN {_uniform(1)} < 0.6 THEN '+1 415 ' || (1000000 + i % 8999999) END
                           AS phone,
                       'Company ' || (i % 50000) AS company, 'Manager' AS job_title,
                       {personas}[1 + (hash(i, 2) % {len(PERSONAS)})::INTEGER] AS persona,
                       'Software' AS industry, 'United States' AS country,
                       strftime(TIMESTAMP '{first}' - INTERVAL 730 DAY
                                + to_seconds(({_uniform(3)} * 1000 * 86400)::BIGINT),
                                '%Y-%m-%dT%H:%M:%SZ') AS created_at,
                       strftime(TIMESTAMP '{END}', '%Y-%m-%dT%H:%M:%SZ') AS updated_at,
                       'import' AS creation_source, NULL AS integration,
                       'Legacy CRM import' AS lead_source_detail, 10 + i % 990 AS employees
                FROM range({start}, {stop}) t(i))
                TO '{data / f"contacts-{part:02d}.csv"}' (FORMAT csv, HEADER)"""
        )
    # An event's type by its draw against the mix's cumulative shares.
    cases, total = [], 0.0
    for event_type, source, share in EVENT_MIX:
        total += share
        cases.append((total, event_type, source))
    draw = _uniform(5, "e")
    kind = " ".join(f"WHEN {draw} < {bound / total!r} THEN {n}" for n, (bound, _, _) in
                    enumerate(cases))  # fmt: skip
    types = "[" + ", ".join(f"'{event_type}'" for _, event_type, _ in cases) + "]"
    sources = "[" + ", ".join(f"'{source}'" for _, _, source in cases) + "]"
    urls = "[" + ", ".join(f"'https://www.example.com{url}'" for url in URLS) + "]"
    per_day = contacts * EVENTS_PER_CONTACT / DAYS
    month = first.replace(day=1)
    while month <= END:
        following = (month + timedelta(days=32)).replace(day=1)
        start, stop = max(month, first), min(following, END + timedelta(days=1))
        offset = round((start - first).days * per_day)
        rows = round((stop - first).days * per_day) - offset
        seconds = (stop - start).days * 86400
        # A contact by a skewed draw (a few are very active, most are not), a time in the month.
        connection.execute(
            f"""COPY (
                SELECT event_id, source, email, type, occurred_at,
                       CASE WHEN type IN ('page_view', 'email_click', 'form_submission',
                                          'ad_click', 'chat_started')
                            THEN {urls}[1 + (hash(e, 7) % {len(URLS)})::INTEGER] END AS url,
                       CASE WHEN type = 'form_submission' THEN 'demo-request' END AS form_id,
                       CASE WHEN source = 'hubspot' THEN 'campaign-' || (e % 52) END
                           AS campaign_id,
                       CASE WHEN type = 'email_bounce'
                            THEN '{{"bounce_type": "' || CASE WHEN e % 4 = 0 THEN 'hard'
                                                               ELSE 'soft' END || '"}}'
                            ELSE '{{}}' END AS properties
                FROM (
                    SELECT e, 'gen-' || e AS event_id,
                           {sources}[1 + kind] AS source, {types}[1 + kind] AS type,
                           'contact' || c || '@company' || (c % 50000) || '.example' AS email,
                           strftime(TIMESTAMP '{start}' + to_seconds((u * {seconds})::BIGINT),
                                    '%Y-%m-%dT%H:%M:%SZ') AS occurred_at, u
                    FROM (SELECT e, CASE {kind} END AS kind,
                                 floor(pow({_uniform(6, "e")}, 2) * {contacts})::BIGINT AS c,
                                 {_uniform(8, "e")} AS u
                          FROM range({offset}, {offset + rows}) t(e)))
                ORDER BY occurred_at)
                TO '{data / "events" / f"events-{start:%Y-%m}.parquet"}' (FORMAT parquet)"""
        )
        month = following
    (data / "generated").touch()
    print(f"  generated {contacts:,} contacts in {time.perf_counter() - started:.0f} s", flush=True)


class StateStore:
    """Where one size's state lives: a SQLite file in its folder, or a PostgreSQL database;
    with the copy of it as ingested that `--again` starts from."""

    def __init__(self, state: Path, contacts: int, postgres: str | None):
        self.folder, self.postgres = state, postgres
        self.database = f"leadflow_scale_{contacts}"

    @property
    def url(self) -> str:
        if self.postgres:
            return f"{self.postgres.rstrip('/')}/{self.database}"
        return f"sqlite:///{self.folder / 'state.db'}"

    def _server(self, *statements: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(
            f"{self.postgres.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
        engine.dispose()

    def create(self) -> None:
        if self.postgres and not (self.folder / "steps.json").exists():
            self._server(
                f"DROP DATABASE IF EXISTS {self.database}", f"CREATE DATABASE {self.database}"
            )

    def keep_ingested(self) -> None:
        """A copy of the state store as ingested (the lake is only added to by later steps)."""
        if self.postgres:
            copy = f"{self.database}_ingested"
            self._server(
                f"DROP DATABASE IF EXISTS {copy}",
                f"CREATE DATABASE {copy} TEMPLATE {self.database}",
            )
        else:
            shutil.copy2(self.folder / "state.db", self.folder / "state.db.ingested")

    def restore(self) -> None:
        """The state as ingested: the state store copied back, the run cache and the next
        day's batch dropped (its lake files go with the batch: unreferenced, swept by the next
        ingest)."""
        if self.postgres:
            copy = f"{self.database}_ingested"
            self._server(
                f"DROP DATABASE IF EXISTS {self.database}",
                f"CREATE DATABASE {self.database} TEMPLATE {copy}",
            )
        else:
            copy = self.folder / "state.db.ingested"
            if not copy.exists():
                raise SystemExit(f"{copy}: no copy of the ingested state (--no-copy)")
            shutil.copy2(copy, self.folder / "state.db")
            for name in ("state.db-wal", "state.db-shm"):
                (self.folder / name).unlink(missing_ok=True)
        shutil.rmtree(self.folder / "lake" / "_cache", ignore_errors=True)

    def mebibytes(self) -> float:
        if not self.postgres:
            return (self.folder / "state.db").stat().st_size / 2**20
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        with engine.connect() as connection:
            size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
        engine.dispose()
        return size / 2**20


def _workspace(state: Path, url: str):
    from leadflow.settings import PROJECT_ROOT
    from leadflow.workspace import Workspace

    return Workspace.in_folder(url, state, PROJECT_ROOT / "leadflow.yaml")


def run_step(step: str, data: Path, state: Path, url: str) -> dict:
    """One step in this (child) process; its figures."""
    from leadflow.ingest.load import ingest_file
    from leadflow.pipeline.days import run_day
    from leadflow.scoring.partitions import run_in_process

    space = _workspace(state, url)
    figures: dict = {}
    if step == "daily":  # the inbox is made before the clock starts
        from daily import day_events_file

        inbox = day_events_file(state, data / "daily", figures_events(space), None, "csv")
    started = time.perf_counter()
    if step == "ingest":
        figures["contacts"] = sum(  # contacts.csv: data generated before the split
            ingest_file(space, path).rows_loaded for path in sorted(data.glob("contacts*.csv"))
        )
        rows = 0
        for path in sorted((data / "events").glob("*.parquet")):
            result = ingest_file(space, path)
            rows += result.rows_loaded
            seconds = time.perf_counter() - started
            print(
                f"    {path.name}: {result.rows_loaded:,} rows ({seconds:.0f} s)", file=sys.stderr
            )
        figures["events"] = rows
    elif step in ("first day", "daily"):
        if step == "daily":
            clock = time.perf_counter()
            figures["rows"] = ingest_file(space, inbox).rows_loaded
            figures["ingest"] = time.perf_counter() - clock
        partitions = []

        def run_partitions(jobs):  # in process, as `run_day` does, keeping each one's time
            partitions.extend(run_in_process(jobs))
            return partitions

        day = END if step == "first day" else END + timedelta(days=1)
        summary = run_day(space, day, run_partitions=run_partitions)
        figures |= {
            "partition seconds": [round(result.seconds, 2) for result in partitions],
            "contacts": summary.scoring.contacts,
            "scores changed": summary.scoring.scores_changed,
            "parts": summary.seconds,
            "ledger": summary.reads["ledger"],
        }
    figures["wall"] = time.perf_counter() - started
    return figures


def figures_events(space) -> int:
    from leadflow.scoring.scores import read_contacts

    return round(read_contacts(space).num_rows * NEXT_DAY_SHARE)


def measure(step: str, data: Path, store: StateStore) -> dict:
    child = subprocess.run(
        [sys.executable, "-c", STEP, str(HERE), step, str(data), str(store.folder), store.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    if child.returncode:
        return {"failed": f"exit {child.returncode} (its error above)"}
    return json.loads(child.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--again", action="store_true", help="first day and daily once more")
    parser.add_argument(
        "--no-copy",
        action="store_true",
        help="keep no copy of the ingested state for --again (a SQLite file of 16 GB at 10M)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="the state store on this PostgreSQL server, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432",
    )
    args = parser.parse_args()
    rows = []
    for contacts in args.contacts:
        data, state = args.data / f"scale-{contacts}", args.data / f"scale-{contacts}-state"
        print(f"{contacts:,} contacts: load {os.getloadavg()[0]:.1f}", flush=True)
        generate(data, contacts)
        store = StateStore(state, contacts, args.postgres)
        record = state / "steps.json"
        if args.again and record.exists():
            steps = json.loads(record.read_text())
            store.restore()
            steps = {"ingest": steps["ingest"]}
        else:
            state.mkdir(parents=True, exist_ok=True)
            store.create()
            steps = json.loads(record.read_text()) if record.exists() else {}
        for step in ("ingest", "first day", "daily"):
            if step in steps and "failed" not in steps[step]:
                continue
            figures = measure(step, data, store)
            figures["load"] = os.getloadavg()[0]
            steps[step] = figures
            if step == "ingest" and "failed" not in figures and not args.no_copy:
                store.keep_ingested()
            record.write_text(json.dumps(steps, indent=1))
            print(f"  {step}: {json.dumps(figures)}", flush=True)
            if "failed" in figures:
                break
        steps["lake MiB"] = folder_size(state / "lake" / "events") / 2**20
        steps["state MiB"] = store.mebibytes()
        rows.append((contacts, steps))
    _table(rows)


def _table(rows: list[tuple[int, dict]]) -> None:
    print("\n| contacts | events | ingest | first day | daily (ingest + day) | peak RSS "
          "(ingest / first day / daily) | lake | state store |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for contacts, steps in sorted(rows, key=lambda row: row[0]):
        cells = []
        for step in ("ingest", "first day", "daily"):
            figures = steps.get(step, {})
            cells.append(figures.get("failed") or (f"{figures['wall']:.0f} s" if figures else "-"))
        memory = " / ".join(
            f"{steps[step]['rss'] / 1024:.2f} GiB" if "rss" in steps.get(step, {}) else "-"
            for step in ("ingest", "first day", "daily")
        )
        events = steps.get("ingest", {}).get("events", 0)
        print(f"| {contacts:,} | {events:,} | {' | '.join(cells)} | {memory} "
              f"| {steps['lake MiB']:,.0f} MiB | {steps['state MiB']:,.0f} MiB |")  # fmt: skip


if __name__ == "__main__":
    main()
