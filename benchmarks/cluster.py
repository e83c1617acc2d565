"""Benchmark: one rescore (a full pass) of the demo data's base in 4 partitions, in process and
on a local Dask cluster of 2 worker processes, side by side in one run.

    python benchmarks/cluster.py --contacts 150000 --days 180 --rounds 3

Prepares once (cached in --data, not timed): the demo generator's data set and its ingest into
a SQLite state store and lake, as `benchmarks/backfill.py` does; then, on a copy, the data's
last day run once in process (a day run is what a rescore runs again).

The measurement, in this process (no Prefect server: the command line's runs): a
`distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)` started (timed),
then --rounds rounds of the same rescore (`leadflow.pipeline.runs.rescore`, what `leadflow
rescore` runs), once with the partitions in process and once on the cluster, each after the
partitions' ledgers are deleted: each partition aggregates its contacts' events from the lake
(a full pass), then the coordinator writes the day in one transaction. Reported per run: the
wall time, the day's `read and scan` (the partitions and what the coordinator reads) and the
rest of the day, how the ledgers were read, and the load (`uptime`); at the end, the peak RSS
of this process and of each worker.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml
from backfill import prepare
from warm_prefect import copy_state, leadflow_env

from leadflow.settings import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "leadflow.yaml"
PARTITIONS = 4


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_rss_mib() -> int:
    """This process's peak RSS (VmHWM: its own, where ru_maxrss is inherited from the parent)."""
    status = Path("/proc/self/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
        // 1024
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=150_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    root = args.data.resolve()
    name = f"backfill-{args.contacts}-{args.days}"
    data, state, work = root / name, root / f"{name}-state", root / f"{name}-cluster"
    state.mkdir(parents=True, exist_ok=True)
    prepare(data, state, args.contacts, args.days, args.end)

    config = yaml.safe_load(CONFIG.read_text())
    config["engine"] = {"partitions": PARTITIONS}
    config_path = root / f"{name}-cluster.yaml"
    config_path.write_text(yaml.safe_dump(config))
    copy_state(state, work)
    leadflow_env(work, config_path)

    from distributed import Client, LocalCluster

    from leadflow.cluster import on_cluster
    from leadflow.pipeline import runs
    from leadflow.pipeline.days import run_day
    from leadflow.scoring.partitions import run_in_process
    from leadflow.workspace import Workspace

    space = Workspace.from_settings()
    started = time.perf_counter()
    run_day(space, args.end)
    print(f"the last day run once in process (not measured): {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        print(
            f"LocalCluster of 2 worker processes started in {time.perf_counter() - started:.1f} s"
        )
        runners = {"in process": run_in_process, "LocalCluster": on_cluster(client)}
        walls: dict[str, list[float]] = {where: [] for where in runners}
        for round_ in range(1, args.rounds + 1):
            for where, run_partitions in runners.items():
                shutil.rmtree(work / "lake" / "_cache" / "ledgers", ignore_errors=True)
                steps = runs.LocalSteps(space, run_partitions=run_partitions)
                started = time.perf_counter()
                [day] = runs.rescore(space, steps)["days"]
                wall = time.perf_counter() - started
                walls[where].append(wall)
                scan = day["seconds"]["read and scan"]
                print(
                    f"round {round_}, {where:12}: {wall:5.1f} s (read and scan {scan:5.1f} s, "
                    f"the rest of the day {sum(day['seconds'].values()) - scan:4.1f} s; "
                    f"{day['scoring']['contacts']} contacts; ledgers {day['reads']['ledger']}) "
                    f"| {uptime()}",
                    flush=True,
                )
        workers = client.run(peak_rss_mib)
    print(f"peak RSS: this process {peak_rss_mib()} MiB, workers {sorted(workers.values())} MiB")
    for where, seconds in walls.items():
        print(f"{where:12}: median {statistics.median(seconds):.1f} s of {seconds}")
    ratio = statistics.median(walls["LocalCluster"]) / statistics.median(walls["in process"])
    print(f"LocalCluster / in process: {ratio:.2f}")


if __name__ == "__main__":
    sys.exit(main())
