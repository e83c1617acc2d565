"""Benchmark: the same ingest and day runs on a local lake and on an S3 lake, side by side.

    python benchmarks/s3_lake.py --contacts 20000 --days 120
    python benchmarks/s3_lake.py --lakes local        # the local lake only (runs on any tree)
    python benchmarks/s3_lake.py --endpoint http://127.0.0.1:9000   # an S3 server of your own

A demo data set (`generate_demo_data`, cached in --data) is ingested into a fresh SQLite state
store and lake of each kind, in this process, then three days are run (`plan_backfill`: the
first scores everyone, the next two are incremental through the run cache), then `scores_as_of`
(what `export scores` computes). The S3 lake is a moto server started here on 127.0.0.1
(`LEADFLOW_LAKE=s3://…` as a user sets it): moto is Python in this same process, sharing its
cores and its interpreter's lock, and answers at memory speed without a network in between, so
the ratio says what going through s3fs costs, not what a real bucket's latency adds. With
--endpoint, a server of your own instead (e.g. `python -m moto.server -H 127.0.0.1 -p 9000` in
another process, which then has an interpreter of its own), with this script's AWS variables.
Reported: wall seconds of each part, the lake's file count and size, the machine's load.
"""

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from leadflow.demo_data import generate_demo_data
from leadflow.ingest.load import ingest_file
from leadflow.pipeline.days import execute
from leadflow.pipeline.plans import plan_backfill
from leadflow.scoring.scores import scores_as_of
from leadflow.settings import PROJECT_ROOT
from leadflow.workspace import Workspace

END = date(2026, 10, 31)
CONFIG = PROJECT_ROOT / "leadflow.yaml"


def s3_server(endpoint: str | None) -> object | None:
    """The AWS variables pointing at `endpoint`, or at a moto S3 server started here on a free
    port of 127.0.0.1 (returned, to stop)."""
    server = None
    if endpoint is None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="benchmark",
        AWS_SECRET_ACCESS_KEY="benchmark",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return server


def measure(kind: str, data, folder: Path) -> dict:
    lake = None
    if kind == "s3":
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        lake = f"s3://{bucket}/lake"
    url = f"sqlite:///{folder / 'state.db'}"
    space = (
        Workspace.in_folder(url, folder, CONFIG, lake)
        if lake
        else Workspace.in_folder(url, folder, CONFIG)
    )
    seconds = {}
    started = time.perf_counter()
    for path in [data.contacts_file, *data.event_files]:
        ingest_file(space, path)
    seconds["ingest"] = time.perf_counter() - started
    for offset in range(3):
        day = END - timedelta(days=2 - offset)
        started = time.perf_counter()
        execute(space, plan_backfill(space, day, day))
        seconds[f"run {day}"] = time.perf_counter() - started
    started = time.perf_counter()
    rows = scores_as_of(space, END).num_rows
    seconds["scores_as_of"] = time.perf_counter() - started
    files = space.lake.files(space.committed_event_batches())
    size = sum(Path(path).stat().st_size for path in files) if lake is None else None
    if lake:
        size = sum(space.lake.filesystem.size(path) for path in files)
    space.engine.dispose()
    return {
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "lake_files": len(files),
        "lake_mib": round(size / 2**20, 1),
        "scored_contacts": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", type=Path, default=Path("bench-data/s3-lake"))
    parser.add_argument("--lakes", default="local,s3", help="comma-separated: local, s3")
    parser.add_argument("--endpoint", help="an S3 server's URL (default: moto, in process)")
    args = parser.parse_args()
    data_dir = args.data / f"{args.contacts}-{args.days}-{args.seed}"
    data = generate_demo_data(
        data_dir, contacts=args.contacts, days=args.days, seed=args.seed, end=END
    )
    kinds = args.lakes.split(",")
    server = s3_server(args.endpoint) if "s3" in kinds else None
    results = {
        "load_before": os.getloadavg()[0],
        "events": data.n_events,
        "s3_server": args.endpoint or "moto, in this process",
    }
    try:
        for kind in kinds:
            folder = Path(tempfile.mkdtemp(prefix=f"leadflow-bench-{kind}-"))
            try:
                results[kind] = measure(kind, data, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if server:
            server.stop()
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
