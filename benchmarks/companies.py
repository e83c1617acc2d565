"""Benchmark: what company scores cost (README: Company scores).

    python benchmarks/companies.py --contacts 100000 --days 180

(1) The company layers alone over a million synthetic scoring rows (4,000 company domains, one
address in five free mail, one contact in seven with a `company_domain`, 30 other columns as a
day's scoring rows carry): the rows copied, then the same with the layers (mean_of_top: 3 and
sum, bands). (2) On the demo generator's data set (prepared once, cached in --data: generated
and ingested into a SQLite state store and lake): `prepare_day` of one day with lifecycle and
marketing (a full pass over the lake, every contact), with the shipped rules and with the same
rules plus `companies` and a `company_score` lifecycle condition, alternated, three runs each.
(3) `export companies` and `explain --company` of the largest company on that day.
"""

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

import duckdb
import yaml

from leadflow.companies.scores import companies_as_of, company_layers, explain_company
from leadflow.config import LeadflowConfig
from leadflow.demo_data import generate_demo_data
from leadflow.ingest.load import ingest_file
from leadflow.lake import duckdb_connection
from leadflow.scoring.conditions import Features
from leadflow.scoring.scores import prepare_day, read_contacts
from leadflow.settings import PROJECT_ROOT
from leadflow.workspace import Workspace

DAY = date(2026, 10, 31)
COMPANIES = {
    "scores": {
        "account": {"from": "engagement", "aggregate": {"mean_of_top": 3}},
        "reach": {"from": "engagement", "aggregate": "sum"},
    },
    "bands": {"account": [{"label": "hot", "gte": 60}, {"label": "cold"}]},
}


def with_companies(folder: Path) -> Path:
    config = yaml.safe_load((PROJECT_ROOT / "leadflow.yaml").read_text())
    config["companies"] = COMPANIES
    config["lifecycle"]["promote"]["marketingqualifiedlead"]["any"].append(
        {"company_score": "account", "gte": 60}
    )
    path = folder / "companies.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def workspace(folder: Path, config: Path) -> Workspace:
    return Workspace.in_folder(f"sqlite:///{folder / 'state.db'}", folder, config)


def layers_alone(config: LeadflowConfig, rows: int = 1_000_000) -> None:
    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    padding = ", ".join(f"random() AS pad{k}" for k in range(30))
    connection.execute(
        f"""CREATE TABLE base AS SELECT
              'user' || i || '@' || CASE WHEN i % 5 = 0 THEN 'gmail.com'
                                        ELSE 'co' || (i % 4000) || '.com' END AS email,
              DATE '2026-10-31' AS day, TIMESTAMPTZ '2026-11-01 00:00:00+00' AS as_of_end,
              TIMESTAMPTZ '2026-01-01 00:00:00+00' AS created_at, (i % 3)::BIGINT AS events_seen,
              CASE WHEN i % 7 = 0 THEN 'https://www.x' || (i % 100) || '.com/' END
                  AS "prop:company_domain",
              round(random() * 200 - 50, 6) AS "score:engagement", {padding}
            FROM range({rows}) r(i)"""
    )
    sql, previous = "WITH l0 AS (SELECT * FROM base)", "l0"
    for index, layer in enumerate(company_layers(config, Features()), start=1):
        sql += f", l{index} AS (SELECT *, {layer} FROM {previous})"
        previous = f"l{index}"
    for _ in range(3):
        clock = time.perf_counter()
        connection.execute("CREATE OR REPLACE TABLE out AS SELECT * FROM base")
        copied = time.perf_counter() - clock
        clock = time.perf_counter()
        connection.execute(f"CREATE OR REPLACE TABLE out AS {sql} SELECT * FROM {previous}")
        print(f"{rows:,} rows copied: {copied:.2f} s; with the company layers: "
              f"{time.perf_counter() - clock:.2f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--data", type=Path, default=Path("bench-data/companies"))
    args = parser.parse_args()
    folder = args.data / f"{args.contacts}-{args.days}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "state.db").exists():
        data = generate_demo_data(
            folder / "data", contacts=args.contacts, days=args.days, end=DAY, seed=5,
            events_format="parquet",
        )  # fmt: skip
        space = workspace(folder, PROJECT_ROOT / "leadflow.yaml")
        for path in [data.contacts_file, *data.event_files]:
            ingest_file(space, path)
    plain = workspace(folder, PROJECT_ROOT / "leadflow.yaml")
    companies = workspace(folder, with_companies(folder))
    layers_alone(companies.config)
    contacts = read_contacts(plain)
    times: dict[str, list[float]] = {"shipped rules": [], "with company scores": []}
    for _ in range(3):
        for label, space in (("shipped rules", plain), ("with company scores", companies)):
            with duckdb_connection() as connection:
                clock = time.perf_counter()
                prepare_day(space, connection, DAY, contacts, lifecycle=True, marketing=True)
                times[label].append(time.perf_counter() - clock)
    for label, values in times.items():
        runs = ", ".join(f"{value:.2f}" for value in values)
        print(f"prepare_day, {contacts.num_rows:,} contacts, {label}: median "
              f"{statistics.median(values):.2f} s ({runs})")  # fmt: skip
    clock = time.perf_counter()
    table = companies_as_of(companies, DAY)
    print(f"export companies: {time.perf_counter() - clock:.2f} s, {table.num_rows:,} companies")
    largest = table.sort_by([("contacts", "descending")]).slice(0, 1).to_pylist()[0]
    clock = time.perf_counter()
    explain_company(companies, largest["domain"], DAY)
    print(f"explain --company {largest['domain']} ({largest['contacts']:,} contacts): "
          f"{time.perf_counter() - clock:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
