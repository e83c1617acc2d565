"""Benchmark: where the full rescore's query spends its time, and what DuckDB spills.

    python benchmarks/spill.py --contacts 1000000 --days 365
    python benchmarks/spill.py --contacts 1000000 --memory-limit 4GB --threads 1

On the cached data set of `benchmarks/scoring.py` (prepared by `scoring.py --prepare-only`), runs
the compiled query (or `--hand`, the hand-written one) once under DuckDB's JSON profiler, with
leadflow's DuckDB settings (`leadflow.lake.duckdb_connection`) unless overridden, spilling to a
folder of its own. Prints the wall and CPU time, DuckDB's peak buffer memory, the peak size of
its temporary files and the bytes it wrote, and the time of each operator taking over 50 ms.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from scoring import DAY, HAND_WRITTEN, workspace

from leadflow.lake import duckdb_connection
from leadflow.scoring.query import (
    as_of_end,
    compile_model,
    compute_scores,
    load_properties,
    prepare_inputs,
    targets_table,
)
from leadflow.scoring.scores import read_contacts
from leadflow.sql import literal


def print_operators(node: dict, depth: int = 0) -> None:
    if node["timing"] > 0.05:
        rows = node.get("intermediate_rows", 0)
        print(f"  {'  ' * depth}{node['type']:24} {node['timing']:7.2f} s {rows:>13,} rows")
    for child in node.get("children", []):
        print_operators(child, depth + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--memory-limit", help="DuckDB's memory_limit (default: leadflow's)")
    parser.add_argument("--threads", type=int, help="DuckDB's threads (default: its own)")
    parser.add_argument("--hand", action="store_true", help="the hand-written query instead")
    args = parser.parse_args()
    state = args.data / f"scoring-{args.contacts}-{args.days}-state"
    if not (state / "ready").exists():
        parser.error(f"{state} is not prepared: run scoring.py --prepare-only first")
    space = workspace(state)
    events = space.lake.events_sql(space.committed_event_batches())
    end = as_of_end(DAY, space.config)
    model = compile_model(space.config, events, whole_base_at=end)
    folder = Path(tempfile.mkdtemp(prefix="leadflow-spill-"))
    profile = folder / "profile.json"
    try:
        with duckdb_connection() as connection:
            connection.execute(f"SET temp_directory = {literal(str(folder / 'spill'))}")
            if args.memory_limit:
                connection.execute(f"SET memory_limit = {literal(args.memory_limit)}")
            if args.threads:
                connection.execute(f"SET threads = {int(args.threads)}")
            contacts = read_contacts(space)
            properties = load_properties(space.engine, model.features.properties, None)
            targets = targets_table(contacts.column("email"), [DAY], space.config)
            prepare_inputs(connection, space.config, targets, properties)
            sql = (
                HAND_WRITTEN.format(end=end.isoformat(), events=events)
                if args.hand
                else compute_scores(connection, space.config, model).sql_query()
            )
            [(limit, threads)] = connection.execute(
                "SELECT current_setting('memory_limit'), current_setting('threads')"
            ).fetchall()
            connection.execute("SET enable_profiling = 'json'")
            connection.execute(f"SET profiling_output = {literal(str(profile))}")
            started = time.perf_counter()
            rows = connection.sql(sql).to_arrow_table().num_rows
            wall = time.perf_counter() - started
        report = json.loads(profile.read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    system = report["system"]
    peak, temporary = system["peak_buffer_memory"] / 2**20, system["peak_temp_dir_size"] / 2**20
    written = report["io"]["total_bytes_written"] / 2**20
    print(
        f"{'hand-written' if args.hand else 'compiled'} query, {contacts.num_rows} contacts "
        f"({rows} rows), memory_limit {limit}, threads {threads}: wall {wall:.2f} s, "
        f"CPU {report['query']['cpu_time']:.2f} s"
    )
    print(
        f"  peak buffer memory {peak:,.0f} MiB, temporary files at most {temporary:,.0f} MiB, "
        f"written {written:,.0f} MiB"
    )
    for operator in report["operator"]:
        print_operators(operator)


if __name__ == "__main__":
    main()
