"""Benchmark: ingest + validation of a generated contact base and its year of activity.

    python benchmarks/ingest.py --contacts 100000 --days 365 --split monthly

Generates the data first (in a child process, not timed, cached in --data), then ingests the
contacts, the HubSpot export and every events file into a fresh SQLite state store and lake,
timing each file. Peak memory is this process's maximum RSS (generation excluded).
"""

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from leadflow.ingest.load import ingest_file
from leadflow.settings import PROJECT_ROOT
from leadflow.workspace import Workspace

GENERATE = """
import sys
from pathlib import Path
from leadflow.demo_data import generate_demo_data
out, contacts, days, split, fmt = sys.argv[1:6]
generate_demo_data(
    Path(out), contacts=int(contacts), days=int(days), split=split, events_format=fmt
)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--split", default="monthly", choices=["single", "monthly", "daily"])
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()

    data = args.data / f"{args.contacts}-{args.days}-{args.split}-{args.format}"
    if not (data / "contacts.csv").exists():
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                GENERATE,
                str(data),
                str(args.contacts),
                str(args.days),
                args.split,
                args.format,
            ],
            check=True,
        )
        print(f"generated {data} in {time.perf_counter() - started:.1f} s (not counted)")
    workdir = data.parent / (data.name + "-state")
    shutil.rmtree(workdir, ignore_errors=True)
    space = Workspace.in_folder(
        f"sqlite:///{workdir / 'state.db'}", workdir, PROJECT_ROOT / "leadflow.yaml"
    )
    files = [
        data / "contacts.csv",
        data / "hubspot-contacts.csv",
        *sorted((data / "events").glob("events*")),
    ]
    totals = {"rows": 0, "loaded": 0, "quarantined": 0}
    event_rows, event_seconds = 0, 0.0
    started = time.perf_counter()
    for path in files:
        file_started = time.perf_counter()
        result = ingest_file(space, path)
        seconds = time.perf_counter() - file_started
        totals["rows"] += result.rows_total
        totals["loaded"] += result.rows_loaded
        totals["quarantined"] += result.rows_quarantined
        if result.kind == "events":
            event_rows += result.rows_total
            event_seconds += seconds
        print(f"{path.name:32} {result.kind:8} {result.rows_total:>9} rows {seconds:6.2f} s")
    wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"TOTAL {totals['rows']} rows ({totals['loaded']} loaded, {totals['quarantined']} "
        f"quarantined) in {wall:.1f} s; events: {event_rows} rows in {event_seconds:.1f} s "
        f"({event_rows / event_seconds:,.0f} rows/s); peak RSS {peak_mib:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
