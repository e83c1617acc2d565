"""Benchmark: the full rescore's computation in one partition and in several, beside the
hand-written DuckDB query.

    python benchmarks/partitions.py --contacts 1000000 --partitions 1 4 8

On the cached data set of `benchmarks/scoring.py` (prepared by `scoring.py --prepare-only`).
Each measurement runs in a child process of its own (its peak RSS is its own) whose temporary
folder, where DuckDB spills, is private and polled every 20 ms for its size. Measured: the
hand-written query of the shipped scores (`scoring.HAND_WRITTEN`, materialised), then
`prepare_day` as of the day with `engine.partitions: N` (every contact's scores and bands in
`day_scored`, a full pass over the lake per partition: what a rescore computes before it
writes). Both include registering the targets and the properties as of the day
(`prepare_inputs`); both read the same contacts and property history, read before the clock.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

NEXT_DAY = "2026-11-01"
CHILD = """
import json, resource, sys, time
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from scoring import DAY, HAND_WRITTEN, workspace
from leadflow.config import EngineSection
from leadflow.lake import duckdb_connection
from leadflow.scoring.query import as_of_end, load_properties, prepare_inputs, targets_table
from leadflow.scoring.query import property_names
from leadflow.scoring.scores import prepare_day, read_contacts

state, mode = Path(sys.argv[1]), sys.argv[2]
space = workspace(state)
contacts = read_contacts(space)
properties = load_properties(space.engine, property_names(space.config), None)
with duckdb_connection() as connection:
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "hand":
        events = space.lake.events_sql(space.committed_event_batches())
        end = as_of_end(DAY, space.config)
        prepare_inputs(connection, space.config, targets_table(contacts.column("email"), [DAY],
                       space.config), properties)
        sql = HAND_WRITTEN.format(end=end.isoformat(), events=events)
        connection.execute(f"CREATE TEMP TABLE day_scored AS {sql}")
    else:
        engine = EngineSection(partitions=int(mode))
        space = replace(space, config=space.config.model_copy(update={"engine": engine}))
        prepare_day(space, connection, DAY, contacts, properties=properties)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    [(rows,)] = connection.execute("SELECT count(*) FROM day_scored").fetchall()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "cpu": cpu, "rss": peak, "rows": rows}))
"""


DAILY_CHILD = """
import json, resource, sys, time
from dataclasses import replace
from datetime import date
from pathlib import Path
from leadflow.config import EngineSection
from leadflow.ingest.load import ingest_file
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_daily
from leadflow.settings import PROJECT_ROOT
from leadflow.workspace import Workspace

work, partitions, day, events = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
space = Workspace.in_folder(f"sqlite:///{work / 'state.db'}", work, PROJECT_ROOT / "leadflow.yaml")
engine = EngineSection(partitions=partitions)
space = replace(space, config=space.config.model_copy(update={"engine": engine}))
started = time.perf_counter()
ingested = 0.0
if events:
    ingest_file(space, Path(events))
    ingested = time.perf_counter() - started
[summary] = execute(space, plan_daily(space, date.fromisoformat(day)))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": time.perf_counter() - started, "ingest": ingested,
                  "seconds": summary.seconds, "ledger": summary.reads["ledger"], "rss": peak,
                  "changed": summary.scoring.scores_changed}))
"""


def daily(state: Path, data: Path, partitions: list[int], events: Path) -> None:
    """The day run of 2026-11-01 per partition count, each on a copy of its base."""
    from scoring import DAY
    from warm_prefect import copy_state

    rows = []
    for count in partitions:
        base = data / f"partitions-daily-base-{count}"
        if not (base / "ready").exists():
            copy_state(state, base)
            figures = run_child(DAILY_CHILD, [str(base), str(count), str(DAY), ""])
            print(f"  base day {DAY}, {count} partition(s): {figures['wall']:.1f} s (not measured)")
            (base / "ready").touch()
        work = data / "partitions-daily-work"
        copy_state(base, work, clear=False)
        rows.append(
            (count, run_child(DAILY_CHILD, [str(work), str(count), str(NEXT_DAY), str(events)]))
        )
    print(f"load {os.getloadavg()[0]:.1f} after")
    steps = list(rows[0][1]["seconds"])
    print("| partitions | total | ingest | " + " | ".join(steps) + " | peak RSS | ledgers |")
    print("|---" * (len(steps) + 5) + "|")
    for count, figures in rows:
        parts = " | ".join(f"{figures['seconds'][step]:.2f} s" for step in steps)
        print(
            f"| {count} | {figures['wall']:.2f} s | {figures['ingest']:.2f} s | {parts} "
            f"| {figures['rss']:,.0f} MiB | {figures['ledger']} |"
        )


def run_child(code: str, arguments: list[str]) -> dict:
    here = str(Path(__file__).resolve().parent)
    child = subprocess.run(
        [sys.executable, "-c", code, *arguments], capture_output=True, text=True, cwd=here
    )
    if child.returncode:
        raise SystemExit(child.stderr[-3000:])
    return json.loads(child.stdout.splitlines()[-1])


def folder_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # removed while walking
                total += os.path.getsize(os.path.join(root, name))
    return total


def measure(state: Path, mode: str) -> dict:
    """One child process: its figures, and the peak size of its temporary folder."""
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as private:
        peak, done = [0], threading.Event()

        def poll() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], folder_size(Path(private)))

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        here = str(Path(__file__).resolve().parent)
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(state), mode, here],
            env=os.environ | {"TMPDIR": private},
            capture_output=True,
            text=True,
        )
        done.set()
        watcher.join()
    if child.returncode:  # e.g. DuckDB out of memory: a figure of its own
        lines = [line for line in child.stderr.splitlines() if line.strip()]
        error = next((line for line in lines if "Error" in line), lines[-1] if lines else "")
        return {"failed": error.strip()[:160]}
    return json.loads(child.stdout.splitlines()[-1]) | {"spill": peak[0] / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--state", type=Path, help="another prepared state (default: --data's)")
    parser.add_argument("--daily", action="store_true", help="the day run instead")
    parser.add_argument("--events", type=int, default=55_000, help="--daily: the day's events")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the modes this often")
    args = parser.parse_args()
    state = args.state or args.data / f"scoring-{args.contacts}-{args.days}-state"
    if not (state / "ready").exists():
        parser.error(f"{state} is not prepared: run scoring.py --prepare-only first")
    print(f"{state}: load {os.getloadavg()[0]:.1f} at start")
    if args.daily:
        from daily import day_events_file

        events = day_events_file(state, args.data / "daily", args.events, None, "csv")
        daily(state, args.data, args.partitions, events)
        return
    for round_ in range(args.rounds):
        hand = measure(state, "hand")
        rows = [("hand-written", hand)]
        rows += [(f"leadflow, {n} partition(s)", measure(state, str(n))) for n in args.partitions]
        print(f"round {round_ + 1}, load {os.getloadavg()[0]:.1f} after")
        print("| computation | wall | ratio | CPU | peak RSS | peak spill files | rows |")
        print("|---|---|---|---|---|---|---|")
        for name, figures in rows:
            if "failed" in figures:
                print(f"| {name} | failed: {figures['failed']} | | | | | |")
                continue
            ratio = f"{figures['wall'] / hand['wall']:.2f}×" if "wall" in hand else "-"
            print(
                f"| {name} | {figures['wall']:.2f} s | {ratio} "
                f"| {figures['cpu']:.2f} s | {figures['rss']:,.0f} MiB "
                f"| {figures['spill']:,.0f} MiB | {figures['rows']:,} |"
            )


if __name__ == "__main__":
    main()
