"""Benchmark: how fast the command line answers (issue 12 targets, a quiet machine).

    .venv/bin/python benchmarks/cli.py            # --runs 7 --data bench-data

`leadflow --help` and every `COMMAND --help` (target < 0.5 s), and, on the demo's workspace
(`leadflow demo` with its defaults, 2,000 contacts and a year, made once in --data/cli-demo,
not timed): `tier --json`, `explain`, `history` (30 days), `export scores` (target < 2 s).
Each command is a new process (`.venv/bin/leadflow`), as a user runs it; the median, min and
max of --runs runs are printed, with the load average before and after.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

LEADFLOW = Path(sys.executable).with_name("leadflow")
COMMANDS = [
    "ingest",
    "export",
    "generate",
    "init",
    "run",
    "backfill",
    "rescore",
    "demo",
    "serve",
    "explain",
    "history",
    "tier",
    "report",
    "evaluate",
    "stage set",
    "marketing set",
    "db upgrade",
]


def timed(args: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([str(LEADFLOW), *args], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def row(label: str, times: list[float], target: float) -> None:
    median = statistics.median(times)
    verdict = "ok" if median < target else "OVER"
    print(
        f"{label:48} median {median:5.2f} s  min {min(times):5.2f}  max {max(times):5.2f}  "
        f"(< {target} s: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    demo = (args.data / "cli-demo").resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_", "PREFECT_"))}
    env["LEADFLOW_CONFIG"] = str(Path(__file__).resolve().parent.parent / "leadflow.yaml")
    if not (demo / "ready").exists():
        shutil.rmtree(demo, ignore_errors=True)
        demo.mkdir(parents=True)
        print("making the demo's workspace (leadflow demo, not timed) ...", flush=True)
        subprocess.run([str(LEADFLOW), "demo"], cwd=demo, env=env, check=True, capture_output=True)
        (demo / "ready").touch()
    email = subprocess.run(
        [sys.executable, "-c", "import sqlite3; print(sqlite3.connect("
         "'.leadflow/leadflow.db').execute('SELECT min(email) FROM contact').fetchone()[0])"],
        cwd=demo, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    row("leadflow --help", [timed(["--help"], demo, env) for _ in range(args.runs)], 0.5)
    for command in COMMANDS:
        times = [timed([*command.split(), "--help"], demo, env) for _ in range(args.runs)]
        row(f"leadflow {command} --help", times, 0.5)
    reads = {
        "tier --json": ["tier", "--json"],
        "explain EMAIL": ["explain", email],
        "history EMAIL (30 days)":
            ["history", email, "--start", "2026-11-01", "--end", "2026-11-30"],
        "export scores": ["export", "scores", "--out", str(demo / "scores.csv")],
    }  # fmt: skip
    for label, command in reads.items():
        row(f"leadflow {label}", [timed(command, demo, env) for _ in range(args.runs)], 2.0)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
