"""Benchmark: the daily flow of one day (~55k new events) on a 1M-contact / 20M-event history.

    python benchmarks/daily.py --contacts 1000000 --days 365
    python benchmarks/daily.py --profile bench-data/daily.prof   # the same, under cProfile

The history is the data set of `benchmarks/scoring.py` (same generator call, ending 2026-10-31,
cached in --data; prepared by running `scoring.py --prepare-only` if missing: several minutes,
not timed). Once, also cached (--fresh-base redoes it): a copy of that state on which the daily
flow has run 2026-10-31, in a child process (the first day run scores everyone: the slow one,
timed and printed but not the measurement).

The measurement, on a fresh copy of that state, on a real Prefect server started for the run
(`prefect server start`, a free port, a private PREFECT_HOME) and warmed by a small flow: one
events file for 2026-11-01 dropped into the inbox (LEADFLOW_INBOX), then
`flows.daily.daily_flow(as_of=2026-11-01)` called in this process: ingest the inbox, plan (only
that day: the day before was run), score, lifecycle and marketing, report. The day's events
(--events, default 55,000) are a sample of the history's last fortnight, moved to 2026-11-01
(same local times of day in the account zone) with new event ids: new events of existing
contacts, in the mean day's volume and mix (the generator's days are either a campaign send of
~340k events or a quiet day of 5-20k; --source-day replays one of them whole). Reported: the flow's
wall time, its parts (ingest of the inbox, the day task and the steps `run_day` times, the report
task), and this process's peak RSS.
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
from warm_prefect import Timers, copy_state, leadflow_env, prefect_server, timed, warm_up

from leadflow.config import load_config
from leadflow.domain import EVENT_COLUMNS
from leadflow.settings import PROJECT_ROOT

END = date(2026, 10, 31)  # the last day of the history (scoring.py's DAY)
RUN_DAY = END + timedelta(days=1)
CONFIG = PROJECT_ROOT / "leadflow.yaml"
SCORING = Path(__file__).with_name("scoring.py")

# The day before RUN_DAY, in a child process (its peak memory is not this process's).
RUN_PREVIOUS_DAY = """
import json, sys, time
from datetime import date
from flows.daily import daily_flow
started = time.perf_counter()
result = daily_flow(as_of=date.fromisoformat(sys.argv[1]))
seconds = time.perf_counter() - started
print(json.dumps({"wall": seconds, "plan": result["plan"],
                  "days": [{"day": str(d["day"]), "seconds": d["seconds"],
                            "scores_changed": d["scoring"]["scores_changed"]}
                           for d in result["days"]]}))
"""


def prepare_history(data: Path, contacts: int, days: int) -> Path:
    """The cached state of scoring.py (ingested, never run); prepared by scoring.py if missing."""
    state = data / f"scoring-{contacts}-{days}-state"
    if not (state / "ready").exists():
        print("preparing the history with scoring.py --prepare-only (not timed) ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(SCORING),
                "--prepare-only",
                "--contacts",
                str(contacts),
                "--days",
                str(days),
                "--data",
                str(data),
            ],
            check=True,
        )
    return state


def day_events_file(state: Path, out: Path, events: int, source_day: date | None, fmt: str) -> Path:
    """RUN_DAY's events, moved from the history to RUN_DAY at the same local time of day (in
    the account zone), with new event ids (suffixed with RUN_DAY). By default a sample of
    `events` of the last fortnight's events (chosen by a hash of their ids): a day of mean
    volume and mix; the generator's own days are either a campaign send (~340k events) or a
    quiet day (5-20k). With `source_day`, all of that day's events. Cached in `out`."""
    zone = load_config(CONFIG).account.timezone
    lake = state / "lake" / "events"
    first = source_day or END - timedelta(days=13)
    last = source_day or END
    name = f"from-{source_day}" if source_day else f"sample-{events}-of-{first}..{last}"
    path = out / f"events-{RUN_DAY}-{name}.{fmt}"
    if path.exists():
        return path
    days = [first + timedelta(days=offset) for offset in range(-1, (last - first).days + 2)]
    files = [
        f"{lake.as_posix()}/day={day}/*.parquet" for day in days if (lake / f"day={day}").exists()
    ]
    local = f"timezone('{zone}', occurred_at)"
    columns = {name: name for name in EVENT_COLUMNS}
    columns["event_id"] = f"event_id || '-{RUN_DAY:%Y%m%d}'"
    time_of_day = f"{local} - date_trunc('day', {local})"
    columns["occurred_at"] = (
        f"strftime(timezone('{zone}', TIMESTAMP '{RUN_DAY}' + ({time_of_day})),"
        " '%Y-%m-%dT%H:%M:%S.%f+00:00')"
    )
    select = ", ".join(f"{value} AS {name}" for name, value in columns.items())
    sample = "" if source_day else f"ORDER BY hash(source, event_id) LIMIT {events}"
    out.mkdir(parents=True, exist_ok=True)
    target = "(FORMAT csv, HEADER)" if fmt == "csv" else "(FORMAT parquet)"
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(
        f"""COPY (SELECT {select} FROM (
                    SELECT * FROM read_parquet({files}, hive_partitioning = false)
                    WHERE CAST({local} AS DATE) BETWEEN DATE '{first}' AND DATE '{last}'
                    {sample})
                  ORDER BY occurred_at, source, event_id)
            TO '{path.as_posix()}' {target}"""
    )
    return path


def run_previous_day(work: Path) -> dict:
    """Run the day before RUN_DAY on `work` with the daily flow, in a child process."""
    leadflow_env(work, CONFIG)
    output = subprocess.run(
        [sys.executable, "-c", RUN_PREVIOUS_DAY, str(END)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,  # for warm_prefect
    )
    result = json.loads(output.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  {result['plan']}: {result['wall']:.1f} s (children's peak RSS {peak:,.0f} MiB)")
    for day in result["days"]:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in day["seconds"].items())
        print(f"  {day['day']}: {day['scores_changed']} scores written; {steps}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--events", type=int, default=55_000, help="events of the run day")
    parser.add_argument(
        "--source-day", type=date.fromisoformat, help="replay all this day's events instead"
    )
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--fresh-base", action="store_true", help="run the day before again")
    parser.add_argument("--profile", type=Path, help="run the flow under cProfile, stats here")
    args = parser.parse_args()
    data = args.data.resolve()
    history = prepare_history(data, args.contacts, args.days)
    name = f"daily-{args.contacts}-{args.days}"
    base, work = data / f"{name}-base", data / f"{name}-work"
    events = day_events_file(history, data / name, args.events, args.source_day, args.format)
    n_rows = (
        duckdb.connect()
        .execute(
            f"SELECT count(*) FROM "
            f"{'read_csv' if args.format == 'csv' else 'read_parquet'}('{events.as_posix()}')"
        )
        .fetchone()[0]
    )
    print(f"{events.name}: {n_rows:,} events for {RUN_DAY}")

    with prefect_server(data / f"{name}-prefect.log"):
        if args.fresh_base or not (base / "ready").exists():
            print(f"base: the history with {END} run by the daily flow (not timed) ...")
            copy_state(history, base)
            run_previous_day(base)
            (base / "ready").touch()
        copy_state(base, work, clear=False)
        inbox = work / "inbox"
        leadflow_env(work, CONFIG, inbox)

        import flows.daily
        import flows.steps
        import leadflow.pipeline.runs
        import tasks.ingest

        print(f"warm-up flow (twice): {warm_up():.1f} s")
        inbox.mkdir()
        shutil.copy2(events, inbox / events.name)

        timers = Timers()
        timers.wrap(leadflow.pipeline.runs, "_ingest_files", "ingest")
        timers.wrap(tasks.ingest, "ingest_outcome", "ingest_file")
        timers.wrap(leadflow.pipeline.runs, "plan_daily", "plan")
        timers.wrap(flows.steps, "run_day_task", "day task")
        timers.wrap(flows.steps, "report_task", "report task")
        flow = lambda: flows.daily.daily_flow(as_of=RUN_DAY)  # noqa: E731
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            flow = lambda: profiler.runcall(flows.daily.daily_flow, as_of=RUN_DAY)  # noqa: E731
        result, wall = timed(f"daily flow of {RUN_DAY}", flow)
        timers.restore()
        if args.profile:
            profiler.dump_stats(args.profile)
            print(f"profile written to {args.profile}")

    [ingested] = result["ingest"]
    print(
        f"  plan: {result['plan']}; ingest: {ingested['status']}, {ingested['rows_loaded']} "
        f"loaded, {ingested['rows_duplicate']} already known, "
        f"{ingested['rows_quarantined']} quarantined"
    )
    print(
        f"  ingest {timers.total('ingest'):.2f} s "
        f"(ingest_file {timers.total('ingest_file'):.2f} s), plan {timers.total('plan'):.2f} s, "
        f"day task {timers.total('day task'):.2f} s, report task "
        f"{timers.total('report task'):.2f} s"
    )
    for day in result["days"]:
        steps = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in day["seconds"].items())
        scoring, marketing = day["scoring"], day["marketing"]
        print(f"  {day['day']}: {steps} (sum {sum(day['seconds'].values()):.2f} s)")
        print(
            f"    {scoring['contacts']} contacts scored, {scoring['scores_changed']} scores "
            f"and {scoring['band_changes']} bands changed, {day['lifecycle']['moves']} stage "
            f"moves, {marketing['new_contacts']} new marketing statuses, "
            f"{marketing['promoted']} promoted, {marketing['suppressed']} suppressed"
        )
    parts = sum(timers.total(label) for label in ("ingest", "plan", "day task"))
    parts += timers.total("report task")
    print(f"  rest of the flow (Prefect, lock, settings): {wall - parts:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"TOTAL daily flow {wall:.1f} s; peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
