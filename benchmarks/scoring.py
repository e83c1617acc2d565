"""Benchmark: full rescore of a large contact base, engine vs a hand-written DuckDB query.

    python benchmarks/scoring.py --contacts 1000000 --days 365

Prepares once (cached in --data): generates the data set with the demo generator in a child
process and ingests it into a SQLite state store and lake. Then, in one run and on the same
lake: (1) the hand-written DuckDB query computing the shipped engagement and fit scores;
(2) leadflow's compiled query for the same scores (compute only, results materialised);
(3) the full `score_day` (compute + write-back of the changed scores) four times: from an empty
score table (writes every score), the same day again (nothing changes: the diff alone), the
next day (the decay moves many scores a little), and that day again after a rule change (the
email open's points from 10 to 12: a new model version, so every score is rewritten and many
bands move). Peak memory is this process's maximum RSS.
"""

import argparse
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
from warm_prefect import ingest_prepared

from leadflow.lake import duckdb_connection
from leadflow.scoring.query import (
    as_of_end,
    compile_model,
    compute_scores,
    load_properties,
    prepare_inputs,
    targets_table,
)
from leadflow.scoring.scores import read_contacts, score_day
from leadflow.settings import PROJECT_ROOT
from leadflow.store.db import read_arrow
from leadflow.workspace import Workspace

GENERATE = """
import sys
from datetime import date
from pathlib import Path
from leadflow.demo_data import generate_demo_data
out, contacts, days = sys.argv[1:4]
generate_demo_data(Path(out), contacts=int(contacts), days=int(days), split="monthly",
                   events_format="parquet", end=date(2026, 10, 31))
"""
DAY = date(2026, 10, 31)
RULE = "points: 10                # points per event, before decay"  # the email open's

# The shipped leadflow.yaml's scores, written by hand (the README's example), over the same inputs
# as the engine: `targets(email, day, as_of_end)`, `props(email, day, name, value)`, the lake.
HAND_WRITTEN = """
WITH t AS (SELECT email FROM targets),
e AS (
  SELECT ev.email, ev.type, ev.url, ev.properties,
         (epoch(TIMESTAMPTZ '{end}') - epoch(ev.occurred_at)) / 86400.0 AS age
  FROM {events} ev WHERE ev.occurred_at < TIMESTAMPTZ '{end}'
),
a AS (
  SELECT email,
    sum(10 * pow(0.5, age / 90)) FILTER (WHERE type = 'email_open') AS opens,
    least(COALESCE(sum(20 * pow(0.5, age / 90)) FILTER (WHERE type = 'email_click'), 0), 60)
      AS clicks,
    sum(-90) FILTER (WHERE type = 'email_bounce') AS bounces,
    count(*) FILTER (WHERE type = 'email_sent' AND age < 180) AS sends,
    count(*) FILTER (WHERE type = 'email_open' AND age < 180) AS opens_180,
    count(*) FILTER (WHERE type = 'page_view' AND contains(url, '/pricing') AND age < 60)
      AS pricing,
    count(*) FILTER (WHERE type = 'page_view' AND age < 180) AS visits
  FROM e GROUP BY email
),
p AS (
  SELECT email,
    max(value) FILTER (WHERE name = 'phone') AS phone,
    max(value) FILTER (WHERE name = 'persona') AS persona
  FROM props GROUP BY email
),
s AS (
  SELECT t.email,
    least(greatest(COALESCE(opens, 0) + COALESCE(clicks, 0) + COALESCE(bounces, 0)
      + CASE WHEN COALESCE(sends, 0) >= 3 AND COALESCE(opens_180, 0) = 0 THEN -20 ELSE 0 END
      + CASE WHEN COALESCE(pricing, 0) >= 3 THEN 15 ELSE 0 END
      + CASE WHEN COALESCE(visits, 0) = 0 THEN -10 ELSE 0 END, -200), 200) AS engagement,
    least(greatest(CASE WHEN phone IS NOT NULL THEN 5 ELSE 0 END
      + CASE WHEN persona = 'job_seeker' THEN -100 ELSE 0 END, -200), 100) AS fit
  FROM t LEFT JOIN a USING (email) LEFT JOIN p USING (email)
)
SELECT *, CASE WHEN engagement >= 60 THEN 'hot' WHEN engagement >= 20 THEN 'warm'
               ELSE 'cold' END AS band_engagement
FROM s
"""


def workspace(state: Path) -> Workspace:
    return Workspace.in_folder(
        f"sqlite:///{state / 'state.db'}", state, PROJECT_ROOT / "leadflow.yaml"
    )


def prepare(data: Path, state: Path, contacts: int, days: int) -> None:
    if not (data / "contacts.csv").exists():
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", GENERATE, str(data), str(contacts), str(days)], check=True
        )
        print(f"generated in {time.perf_counter() - started:.0f} s")
    if (state / "ready").exists():
        return
    space = workspace(state)
    ingest_prepared(
        space, [data / "contacts.csv", *sorted((data / "events").glob("events*"))], state / "ready"
    )


def timed(label: str, function):
    started = time.perf_counter()
    value = function()
    seconds = time.perf_counter() - started
    print(f"{label:52} {seconds:7.2f} s")
    return value, seconds


def print_existing(space: Workspace, contacts, scored: int) -> None:
    """How many of the contacts read exist on DAY (README: Scores): created before its end in
    the account zone, or with an event before it. The generator creates contacts up to the
    end of DAY in UTC, which is after the end of DAY in Paris: those created in between have
    no score as of DAY (the next day scores them). Any other missing score is a bug."""
    end = as_of_end(DAY, space.config)
    stored = read_arrow(
        space.engine,
        "SELECT DISTINCT contact_id FROM contact_score",
        pa.schema([("contact_id", pa.int64())]),
    )
    with duckdb_connection() as connection:
        connection.register("contacts", contacts)
        connection.register("stored", stored)
        [(created, later, missing)] = connection.execute(
            """SELECT count(*) FILTER (WHERE created_at::TIMESTAMPTZ < $end),
                      count(*) FILTER (WHERE created_at::TIMESTAMPTZ >= $end),
                      count(*) FILTER (WHERE created_at::TIMESTAMPTZ < $end
                                         AND contact_id NOT IN (SELECT contact_id FROM stored))
               FROM contacts""",
            {"end": end},
        ).fetchall()
    print(
        f"  {scored} contacts scored. Created before the end of {DAY} ({end}): {created}, "
        f"of which not scored: {missing}; created after it: {later}, of which scored "
        f"(an event before the end): {scored - (created - missing)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--prepare-only", action="store_true")
    args = parser.parse_args()
    data = args.data / f"scoring-{args.contacts}-{args.days}"
    state = args.data / f"scoring-{args.contacts}-{args.days}-state"
    state.mkdir(parents=True, exist_ok=True)
    prepare(data, state, args.contacts, args.days)
    if args.prepare_only:
        return
    space = workspace(state)
    committed = space.committed_event_batches()
    events = space.lake.events_sql(committed)
    model = compile_model(space.config, events, whole_base_at=as_of_end(DAY, space.config))
    with duckdb_connection() as connection:
        end = as_of_end(DAY, space.config).isoformat()
        [(n_events,)] = connection.execute(f"SELECT count(*) FROM {events}").fetchall()

        def load_inputs():
            contacts = read_contacts(space)
            properties = load_properties(space.engine, model.features.properties, None)
            targets = targets_table(contacts.column("email"), [DAY], space.config)
            prepare_inputs(connection, space.config, targets, properties)
            return contacts

        contacts, _ = timed("inputs: contacts and properties from SQLite", load_inputs)
        print(f"{contacts.num_rows} contacts, {n_events} events in the lake")
        hand = HAND_WRITTEN.format(end=end, events=events)
        hand_scores, hand_seconds = timed(
            "hand-written DuckDB query (engagement + fit)",
            lambda: connection.sql(hand).to_arrow_table(),
        )
        engine_scores, engine_seconds = timed(
            "leadflow compiled query (engagement + fit)",
            lambda: compute_scores(connection, space.config, model).to_arrow_table(),
        )
        connection.register("hand_scores", hand_scores)
        connection.register("engine_scores", engine_scores)
        differences = connection.execute(
            """SELECT count(*) FROM hand_scores h JOIN engine_scores e USING (email)
               WHERE abs(h.engagement - e."score:engagement") > 1e-9
                  OR abs(h.fit - e."score:fit") > 1e-9
                  OR h.band_engagement IS DISTINCT FROM e.band_engagement"""
        ).fetchone()[0]
    print(
        f"ratio engine / hand-written: {engine_seconds / hand_seconds:.2f}; "
        f"contacts whose scores differ: {differences}"
    )
    with space.engine.begin() as connection:  # start from no stored score
        for table in ("band_change", "contact_score", "scoring_run"):
            connection.exec_driver_sql(f"DELETE FROM {table}")
    first, _ = timed("score_day, first run (writes every score)", lambda: score_day(space, DAY))
    print(
        f"  {first.scores_changed} scores written, {first.band_changes} band changes; "
        f"compute {first.compute_seconds:.1f} s, write-back {first.write_seconds:.1f} s"
    )
    print_existing(space, contacts, first.contacts)
    again, _ = timed("score_day, same day again (nothing to write)", lambda: score_day(space, DAY))
    print(f"  {again.scores_changed} scores written")
    later = date.fromordinal(DAY.toordinal() + 1)
    following, _ = timed(
        "score_day, the next day (decay moves many scores)", lambda: score_day(space, later)
    )
    print(
        f"  {following.scores_changed} scores written, {following.band_changes} band changes; "
        f"compute {following.compute_seconds:.1f} s, write-back {following.write_seconds:.1f} s"
    )
    changed_rules = state / "leadflow-rule-change.yaml"
    shipped = (PROJECT_ROOT / "leadflow.yaml").read_text()
    changed_rules.write_text(shipped.replace(RULE, RULE.replace("10", "12"), 1))
    changed = Workspace.in_folder(f"sqlite:///{state / 'state.db'}", state, changed_rules)
    assert changed.config.model_version != space.config.model_version
    rescored, _ = timed(
        "score_day, that day after a rule change (every score)", lambda: score_day(changed, later)
    )
    print(
        f"  {rescored.scores_changed} scores written, {rescored.band_changes} band changes; "
        f"compute {rescored.compute_seconds:.1f} s, write-back {rescored.write_seconds:.1f} s"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
