"""Benchmark: `leadflow evaluate` on the 100k-contact demo data (issue 15 target: seconds).

    .venv/bin/python benchmarks/evaluate.py --data /work/bench-data     # --runs 3

Prepares once (cached in --data, not timed): the demo generator's data set as in
`benchmarks/backfill.py` (100,000 contacts, 365 days, seed 42, monthly Parquet files ending on
--end), ingested into a SQLite state store and lake, then the days D (--end − 180 days), D + 90
and --end run (`run_day`, in a child process). Each command is then a new process
(`.venv/bin/leadflow evaluate …`), as a user runs it: the median, min and max of --runs runs
(wall), the median CPU time (user + system), with the load average before and after. The
variants: all scores; `--config` another rule set (engagement's opens worth 30, not 10) side
by side; `--suggest`; `--out` the HTML page.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from backfill import prepare

from leadflow.settings import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "leadflow.yaml"
LEADFLOW = Path(sys.executable).with_name("leadflow")

RUN_DAYS = """
import sys
from datetime import date
from leadflow.pipeline.days import run_day
from leadflow.workspace import Workspace
space = Workspace.from_settings()
for day in sys.argv[1:]:
    run_day(space, date.fromisoformat(day))
"""


def timed(args: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system: what a busy machine does not inflate much),
    and the output of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([str(LEADFLOW), *args], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    root = args.data.resolve()
    name = f"evaluate-{args.contacts}-{args.days}"
    data, state = root / name, root / f"{name}-state"
    as_of = args.end - timedelta(days=180)
    days = [as_of, as_of + timedelta(days=90), args.end]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_", "PREFECT_"))}
    env.update(
        LEADFLOW_DATABASE_URL=f"sqlite:///{state / 'state.db'}",
        LEADFLOW_LAKE=str(state / "lake"),
        LEADFLOW_CONFIG=str(CONFIG),
    )
    if not (state / "days-run").exists():
        state.mkdir(parents=True, exist_ok=True)
        print("preparing (not timed) ...", flush=True)
        prepare(data, state, args.contacts, args.days, args.end)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", RUN_DAYS, *map(str, days)], env=env, check=True, cwd=root
        )
        print(f"  ran {', '.join(map(str, days))} in {time.perf_counter() - started:.0f} s")
        (state / "days-run").touch()
    other = state / "other.yaml"
    other.write_text(CONFIG.read_text().replace("points: 10 ", "points: 30 "))
    base = ["evaluate", "--as-of", str(as_of), "--outcome", "salesqualifiedlead"]
    base += ["--horizon-days", "90"]
    variants = {
        "evaluate --json (engagement, fit)": [*base, "--json"],
        "… --config other.yaml --json": [*base, "--config", str(other), "--json"],
        "… --suggest --json": [*base, "--suggest", "--json"],
        "… --config other.yaml --out page.html": [
            *base,
            *("--config", str(other), "--out", str(state / "page.html")),
        ],
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for label, command in variants.items():
        results = [timed(command, env) for _ in range(args.runs)]
        times = [wall for wall, _, _ in results]
        cpu = [seconds for _, seconds, _ in results]
        print(
            f"{label:42} median {statistics.median(times):5.2f} s  min {min(times):5.2f}  "
            f"max {max(times):5.2f}  (CPU median {statistics.median(cpu):5.2f} s)"
        )
        if "--json" in command:
            answer = json.loads(results[0][2])
            engagement = answer["scores"]["engagement"]
            print(
                f"    {answer['contacts']:,} contacts, {answer['converted']:,} converted; "
                f"engagement AUC {engagement['auc']:.3f}, lift {engagement['top_decile_lift']:.2f}"
                + (
                    f"; other rules AUC {answer['compare']['engagement']['auc']:.3f}"
                    if answer["compare"]
                    else ""
                )
                + (
                    f"; suggested held-out AUC "
                    f"{answer['suggest']['engagement']['held_out_auc_suggested']:.3f} vs "
                    f"{answer['suggest']['engagement']['held_out_auc_current']:.3f}"
                    if "suggest" in answer
                    else ""
                )
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
