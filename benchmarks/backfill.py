"""Benchmark: a year's backfill (365 days) of the 100k-contact / 2M-event demo data.

    python benchmarks/backfill.py --contacts 100000 --days 365
    python benchmarks/backfill.py --run-days 30     # the first 30 days only, extrapolated

Prepares once (cached in --data, not timed): the demo generator's data set as in
`benchmarks/ingest.py` (100,000 contacts, 365 days, seed 42, monthly files, here Parquet and
ending on a fixed day, --end, so that the cache stays valid), ingested by leadflow (contacts,
the HubSpot export, every events file) into a SQLite state store and lake, in a child process.

The measurement, on a fresh copy of that state (nothing run yet), on a real Prefect server
started for the run (`prefect server start`, a free port, a private PREFECT_HOME) and warmed by
a small flow: `flows.backfill.backfill_flow(start, end)` over the data's days (--run-days of
them from the first), called in this process. Reported: the total, the wall time of each day's
task (median, p90, max, and by quarter of the range: a day reads every event before it, so
later days cost more), the steps `run_day` times, and this process's peak RSS.
"""

import argparse
import resource
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from warm_prefect import (
    Timers,
    copy_state,
    ingest_prepared,
    leadflow_env,
    prefect_server,
    timed,
    warm_up,
)

from leadflow.settings import PROJECT_ROOT
from leadflow.workspace import Workspace

CONFIG = PROJECT_ROOT / "leadflow.yaml"

GENERATE = """
import sys
from datetime import date
from pathlib import Path
from leadflow.demo_data import generate_demo_data
out, contacts, days, end = sys.argv[1:5]
generate_demo_data(Path(out), contacts=int(contacts), days=int(days), split="monthly",
                   events_format="parquet", end=date.fromisoformat(end))
"""


def prepare(data: Path, state: Path, contacts: int, days: int, end: date) -> None:
    """Generate (child process) and ingest the data set into `state`, once."""
    if not (data / "contacts.csv").exists():
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", GENERATE, str(data), str(contacts), str(days), str(end)],
            check=True,
        )
        print(f"generated in {time.perf_counter() - started:.0f} s")
    if (state / "ready").exists():
        return
    space = Workspace.in_folder(f"sqlite:///{state / 'state.db'}", state, CONFIG)
    files = [data / "contacts.csv", data / "hubspot-contacts.csv"]
    ingest_prepared(space, [*files, *sorted((data / "events").glob("events*"))], state / "ready")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--run-days", type=int, help="backfill only this many days from the first")
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--prepare-only", action="store_true")
    args = parser.parse_args()
    data_root = args.data.resolve()
    name = f"backfill-{args.contacts}-{args.days}"
    data, state = data_root / name, data_root / f"{name}-state"
    if args.prepare_only:
        state.mkdir(parents=True, exist_ok=True)
        prepare(data, state, args.contacts, args.days, args.end)
        return
    if not (state / "ready").exists():  # ingest in a child: its memory is not measured
        print("preparing (not timed) ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--prepare-only",
                *("--contacts", str(args.contacts), "--days", str(args.days)),
                *("--end", str(args.end), "--data", str(data_root)),
            ],
            check=True,
        )
    start = args.end - timedelta(days=args.days - 1)
    run_days = min(args.run_days or args.days, args.days)
    end = start + timedelta(days=run_days - 1)
    work = data_root / f"{name}-work"

    with prefect_server(data_root / f"{name}-prefect.log"):
        copy_state(state, work)
        leadflow_env(work, CONFIG)

        import flows.backfill
        import flows.steps

        print(f"warm-up flow (twice): {warm_up():.1f} s")
        timers = Timers()
        timers.wrap(flows.steps, "run_day_task", "day task")
        started = time.perf_counter()

        def progress(day: date, done: int, total: int) -> None:
            if done % 30 == 0 or done == total:
                last = timers.calls["day task"][-1]
                print(
                    f"  {done:3}/{total} days ({day}): {time.perf_counter() - started:6.0f} s, "
                    f"this day {last:.2f} s",
                    flush=True,
                )

        flows.steps.day_listeners.append(progress)
        result, wall = timed(
            f"backfill flow {start}..{end}", lambda: flows.backfill.backfill_flow(start, end)
        )
        flows.steps.day_listeners.remove(progress)
        timers.restore()

    per_day = timers.calls["day task"]
    days = result["days"]
    print(f"  plan: {result['plan']}; {len(days)} days")
    print(
        f"  per day (task wall): median {statistics.median(per_day):.2f} s, "
        f"p90 {percentile(per_day, 0.9):.2f} s, max {max(per_day):.2f} s, "
        f"first day {per_day[0]:.2f} s, total {sum(per_day):.1f} s"
    )
    quarter = max(1, len(per_day) // 4)
    for first in range(0, len(per_day), quarter):
        chunk = per_day[first : first + quarter]
        print(
            f"    days {first + 1}-{first + len(chunk)} ({days[first]['day']}..): "
            f"median {statistics.median(chunk):.2f} s"
        )
    steps = days[0]["seconds"].keys()
    for step in steps:
        values = [day["seconds"][step] for day in days]
        print(
            f"  {step:14} median {statistics.median(values):.2f} s, "
            f"p90 {percentile(values, 0.9):.2f} s, total {sum(values):.1f} s"
        )
    print(
        f"  over the run: {sum(d['scoring']['scores_changed'] for d in days)} score changes, "
        f"{sum(d['scoring']['band_changes'] for d in days)} band changes, "
        f"{sum(d['lifecycle']['moves'] for d in days)} stage moves, "
        f"{sum(d['marketing']['promoted'] for d in days)} promoted"
    )
    print(f"  rest of the flow (plan, Prefect, report): {wall - sum(per_day):.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"TOTAL backfill of {len(days)} days {wall:.1f} s; peak RSS {peak:,.0f} MiB")
    if run_days < args.days and run_days > 1:
        print(
            f"EXTRAPOLATED to {args.days} days: {wall * args.days / run_days:.0f} s "
            "(a lower bound: later days read more history)"
        )


if __name__ == "__main__":
    main()
