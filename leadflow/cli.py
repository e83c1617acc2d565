"""The `leadflow` command line: the contract the acceptance tests use (SPEC §7)."""

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from leadflow.config import ConfigError
from leadflow.ingest.load import BatchRejected, InputColumnsError, ingest_file
from leadflow.ingest.readers import InputFileError
from leadflow.settings import get_settings
from leadflow.store.lock import RunInProgress, state_lock

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="State database maintenance.")
app.add_typer(db_app, name="db")
console = Console()
errors = Console(stderr=True)

KNOWN_ERRORS = (ConfigError, InputFileError, InputColumnsError, BatchRejected, FileNotFoundError)


class Kind(StrEnum):
    contacts = "contacts"
    events = "events"


class ExportWhat(StrEnum):
    quarantine = "quarantine"
    scores = "scores"
    contacts = "contacts"


class MarketingStatus(StrEnum):
    marketing = "marketing"
    non_marketing = "non_marketing"


Day = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


def fail(message: str, code: int = 1) -> None:
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def reported():
    """Turn the errors a user can fix into a one-line message and exit code 1."""
    from leadflow.scoring.scores import UnknownContact

    try:
        yield
    except (UnknownContact, RunInProgress) as error:
        fail(str(error))


def workspace():
    from leadflow.workspace import Workspace

    try:
        return Workspace.from_settings()
    except ConfigError as error:
        fail(str(error), 2)


def results_table(title: str, results: list[dict]) -> Table:
    table = Table(title=title)
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    for column in ("rows", "loaded", "known", "quarant.", "new contacts"):
        table.add_column(column, justify="right")
    for item in results:
        if item["status"] in ("rejected", "failed"):
            table.add_row(Path(item["file"]).name, f"[red]{item['status']}[/red]", *[""] * 5)
            continue
        table.add_row(
            Path(item["file"]).name,
            item["status"],
            str(item["rows_total"]),
            str(item["rows_loaded"]),
            str(item["rows_duplicate"]),
            str(item["rows_quarantined"]),
            str(item["contacts_created"]),
        )
    return table


def progress_callback(progress: Progress, bar, verb: str) -> Callable[[object, int, int], None]:
    """A listener `(what, done, total)` that moves `bar` and says `<verb> <what>`."""

    def update(what: object, done: int, total: int) -> None:
        progress.update(bar, completed=done, total=total, description=f"{verb} {what}")

    return update


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV, JSON Lines or Parquet files.")],
    kind: Annotated[Kind | None, typer.Option(help="Default: detected from the columns.")] = None,
) -> None:
    """Load contact or event files; bad rows are quarantined, a bad batch is rejected whole."""
    space = workspace()
    results, failures = [], []
    with (
        reported(),
        state_lock(space.engine, "leadflow ingest"),
        Progress(console=console, transient=True) as progress,
    ):
        bar = progress.add_task("ingest", total=len(files))
        for path in files:
            progress.update(bar, description=f"ingest {path.name}")
            results.append(ingest_one(space, path, kind, failures))
            progress.advance(bar)
    console.print(results_table("ingest", results))
    for message in failures:
        errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(1)


def ingest_one(space, path: Path, kind: Kind | None, failures: list[str]) -> dict:
    try:
        result = ingest_file(space, path, kind=kind.value if kind else None)
    except KNOWN_ERRORS as error:
        failures.append(str(error))
        status = "rejected" if isinstance(error, BatchRejected) else "failed"
        return {"file": str(path), "status": status}
    return {
        "file": result.file,
        "status": result.status,
        "rows_total": result.rows_total,
        "rows_loaded": result.rows_loaded,
        "rows_duplicate": result.rows_duplicate,
        "rows_quarantined": result.rows_quarantined,
        "contacts_created": result.contacts_created,
    }


@app.command()
def export(
    what: Annotated[ExportWhat, typer.Argument()],
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
    as_of: Day = None,
) -> None:
    """Export as CSV. quarantine: file, row, reason, raw. scores: email, one column per score,
    band_<score> per banded score, as of --as-of (default yesterday). contacts: email,
    lifecycle_stage, marketing_status, demotion, suppressed, creation_source,
    date_entered_<stage>, as the runs up to --as-of left them."""
    from leadflow.exports import contacts_as_of, export_quarantine, write_csv
    from leadflow.scoring.scores import scores_as_of, yesterday

    space = workspace()
    if what is ExportWhat.quarantine:
        count = export_quarantine(space.engine, out)
        console.print(f"{count} quarantined rows written to {out}")
        return
    day = as_of.date() if as_of else yesterday(space)
    with reported():
        table = (scores_as_of if what is ExportWhat.scores else contacts_as_of)(space, day)
    write_csv(table, out)
    console.print(f"{what.value} of {table.num_rows} contacts as of {day} written to {out}")


@app.command()
def run(as_of: Day = None) -> None:
    """The daily flow as of --as-of (default yesterday in the account zone): ingest the inbox
    ($LEADFLOW_INBOX), then score every contact, move stages, update marketing status and
    demotions, and report. Missed days are caught up; a day already run is replayed (late data),
    with every later day."""
    space = workspace()
    from flows.daily import daily_flow

    with reported():
        outcome = daily_flow(as_of=as_of.date() if as_of else None)
    print_outcome(outcome, space)


@app.command()
def backfill(
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD.")],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day, YYYY-MM-DD.")],
) -> None:
    """Replay every day from --start to --end in order (and on up to the latest day already
    run, whose changes are undone first), as the daily runs would have."""
    space = workspace()
    if end < start:
        fail(f"--end {end.date()} is before --start {start.date()}")
    from flows.backfill import backfill_flow
    from flows.days import day_listeners

    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("backfill", total=None)

        advance = progress_callback(progress, bar, "backfill")
        day_listeners.append(advance)
        try:
            with reported():
                outcome = backfill_flow(start=start.date(), end=end.date())
        finally:
            day_listeners.remove(advance)
    print_outcome(outcome, space)


@app.command()
def rescore(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the impact only.")] = False,
    as_of: Day = None,
) -> None:
    """Rescore everyone with the current rules as of the latest day run (the rescore flow);
    --dry-run shows the impact only (as of --as-of, default the last day scored)."""
    from leadflow.scoring.scores import last_scored_day, rescore_impact, yesterday

    space = workspace()
    if not dry_run:
        if as_of:
            fail("--as-of goes with --dry-run; a rescore runs the latest day run")
        from flows.rescore import rescore_flow

        with reported():
            outcome = rescore_flow()
        print_outcome(outcome, space)
        return
    day = as_of.date() if as_of else (last_scored_day(space) or yesterday(space))
    with reported():
        impact = rescore_impact(space, day)
    table = Table(title=f"rescore impact as of {day} (model {space.config.model_version})")
    for column in ("score", "band", "now", "after rescore"):
        table.add_column(column, justify="left" if column in ("score", "band") else "right")
    for row in impact.bands:
        table.add_row(*[str(value) for value in row])
    console.print(table)
    movers = Table(title="biggest movers")
    for column in ("email", "score", "now", "after", "change"):
        movers.add_column(column, justify="left" if column in ("email", "score") else "right")
    for row in impact.movers:
        movers.add_row(row[0], row[1], f"{row[2]:.2f}", f"{row[3]:.2f}", f"{row[4]:+.2f}")
    console.print(movers)
    console.print(f"{impact.band_changes} contacts would change band; nothing was written")


@app.command()
def explain(
    email: str,
    as_of: Day = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
) -> None:
    """Why a contact has its scores: each rule's contribution, summing to the score."""
    from leadflow.scoring.scores import explain as explain_scores
    from leadflow.scoring.scores import yesterday

    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    with reported():
        explanations = explain_scores(space, email, day)
    if as_json:
        print(json.dumps([asdict(item) for item in explanations], default=str, indent=2))
        return
    for item in explanations:
        table = Table(
            title=f"{item.score} of {item.email} as of {item.day}: {item.value:g}"
            + (f" ({item.band})" if item.band else "")
        )
        for column in ("rule", "kind", "points", "contribution", "events", "newest", "oldest"):
            table.add_column(column)
        for rule in item.rules:
            table.add_row(
                rule.rule,
                rule.kind,
                f"{rule.points:g}",
                f"{rule.contribution:.4f}",
                "" if rule.events is None else str(rule.events),
                str(rule.newest or ""),
                str(rule.oldest or ""),
            )
        table.add_row("total", "", "", f"{item.total_before_limit:.4f}", "", "", "")
        console.print(table)
        console.print(f"limit {item.limit[0]:g}..{item.limit[1]:g} -> {item.value:g}")


@app.command()
def history(
    email: str,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])],
    out: Annotated[Path | None, typer.Option(help="CSV file instead of a table.")] = None,
) -> None:
    """A contact's score path: one row per day per score, band changes marked."""
    from leadflow.exports import write_csv
    from leadflow.scoring.scores import UnknownContact
    from leadflow.scoring.scores import history as score_history

    try:
        table = score_history(workspace(), email, start.date(), end.date())
    except (UnknownContact, ValueError) as error:
        fail(str(error))
    if out:
        write_csv(table, out)
        console.print(f"{table.num_rows} rows written to {out}")
        return
    view = Table(title=f"score history of {email}")
    for column in ("day", "score", "value", "band", "band change"):
        view.add_column(column)
    for row in table.to_pylist():
        change = (
            f"{row['previous_band']} -> {row['band']}"
            if row["previous_band"] is not None and row["previous_band"] != row["band"]
            else ""
        )
        view.add_row(
            str(row["day"]), row["score"], f"{row['value']:.4f}", row["band"] or "", change
        )
    console.print(view)


stage_app = typer.Typer(no_args_is_help=True, help="Lifecycle stages by hand (audited).")
app.add_typer(stage_app, name="stage")


@stage_app.command("set")
def stage_set(
    email: str,
    stage: str,
    reason: Annotated[str, typer.Option(help="Why: kept in the audit.")],
    as_of: Day = None,
) -> None:
    """Move a contact to any stage, backward included: the only way back, audited."""
    from leadflow.lifecycle import StageError, set_stage
    from leadflow.scoring.scores import UnknownContact, yesterday

    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    try:
        with state_lock(space.engine, "leadflow stage set"):
            previous = set_stage(space, email, stage, reason, day)
    except (StageError, UnknownContact, RunInProgress) as error:
        fail(str(error))
    console.print(f"{email}: {previous or 'no stage'} -> {stage} on {day} (audited)")


marketing_app = typer.Typer(no_args_is_help=True, help="Marketing status by hand (audited).")
app.add_typer(marketing_app, name="marketing")


@marketing_app.command("set")
def marketing_set(
    email: str,
    status: Annotated[MarketingStatus, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why: kept in the audit.")],
    as_of: Day = None,
) -> None:
    """marketing: at once, cancelling a pending demotion. non_marketing: only requests a
    demotion, applied at the next renewal (never inside the current billing period)."""
    from leadflow.marketing import MarketingError, set_marketing_status
    from leadflow.scoring.scores import UnknownContact, yesterday

    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    try:
        with state_lock(space.engine, "leadflow marketing set"):
            done = set_marketing_status(space, email, status.value, reason, day)
    except (MarketingError, UnknownContact, RunInProgress) as error:
        fail(str(error))
    console.print(f"{email}: {done} (on {day}, audited)", soft_wrap=True)


@app.command()
def tier(
    as_of: Day = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
) -> None:
    """Marketing contacts against the paid tier as of --as-of (default yesterday): use in %,
    scheduled demotions and the count projected after the next renewal."""
    from leadflow.marketing import tier_report
    from leadflow.scoring.scores import yesterday

    space = workspace()
    report = tier_report(space, as_of.date() if as_of else yesterday(space))
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        return
    print_tier(report)


def print_tier(report) -> None:
    used = "n/a (tier 0)" if report.used_pct is None else f"{report.used_pct:.1f}%"
    style = {"ok": "green", "warning": "yellow", "alert": "bold red"}[report.level]
    console.print(
        f"tier as of {report.as_of}: {report.marketing_contacts} marketing contacts of "
        f"{report.tier} paid, {used} used [{style}]{report.level}[/]"
    )
    console.print(
        f"  demotions: {report.queued_demotions} queued, {report.scheduled_demotions} scheduled "
        f"for the renewal of {report.renewal_date}; projected after renewal: "
        f"{report.projected_after_renewal} (saving {report.saving})"
    )


def print_marketing(summary) -> None:
    demotions = ", ".join(f"{count} {state}" for state, count in summary.demotions.items())
    renewal = f"; went through the renewal of {summary.renewal}" if summary.renewal else ""
    console.print(
        f"marketing as of {summary.day}: {summary.new_contacts} new contacts given a status, "
        f"{summary.promoted} promoted, {summary.suppressed} suppressed; "
        f"demotions {demotions}{renewal}"
    )
    print_tier(summary.tier)


def print_demotion_queue(queue, limit: int = 10) -> None:
    table = Table(title=f"demotion queue: {queue.num_rows} open demotions")
    for column in ("email", "state", "rule", "opened", "renewal"):
        table.add_column(column)
    for row in queue.slice(0, limit).to_pylist():
        table.add_row(*(row[name] for name in queue.column_names))
    if queue.num_rows > limit:
        table.caption = f"first {limit} shown; `leadflow export contacts` lists every contact"
    console.print(table)
    by_rule: dict[str, int] = {}
    for rule in queue.column("rule").to_pylist():
        by_rule[rule] = by_rule.get(rule, 0) + 1
    if by_rule:
        console.print(
            "  by rule: " + ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items()))
        )


def print_outcome(outcome: dict, space, ingest: bool = True) -> None:
    """What a daily, backfill or rescore flow did: files, the plan, each day, the last day."""
    from leadflow.marketing import demotion_queue

    if ingest and outcome["ingest"]:
        console.print(results_table("inbox", outcome["ingest"]))
    console.print(f"plan: {outcome['plan']}")
    days = outcome["days"]
    if len(days) > 1:
        print_days_table(days)
    if not days:
        return
    last = days[-1]
    print_scoring(SimpleNamespace(**last["scoring"]))
    print_lifecycle(SimpleNamespace(**last["lifecycle"]))
    marketing = last["marketing"]
    print_marketing(SimpleNamespace(**{**marketing, "tier": SimpleNamespace(**marketing["tier"])}))
    print_demotion_queue(demotion_queue(space))


def print_days_table(days: list[dict], most_rows: int = 31) -> None:
    """One row per day, or per month when there are more days than `most_rows`."""
    by_month = len(days) > most_rows
    rows: dict[str, list[int | dict]] = {}
    for day in days:
        key = str(day["day"])[:7] if by_month else str(day["day"])
        row = rows.setdefault(key, [0, 0, 0, 0, {}])
        row[0] += day["scoring"]["scores_changed"]
        row[1] += day["scoring"]["band_changes"]
        row[2] += day["lifecycle"]["moves"]
        row[3] += day["marketing"]["promoted"]
        for state, count in day["marketing"]["demotions"].items():
            row[4][state] = row[4].get(state, 0) + count
    table = Table(title=f"{len(days)} days run" + (", by month" if by_month else ""))
    table.add_column("month" if by_month else "day")
    for column in ("scores changed", "band moves", "stage moves", "promoted"):
        table.add_column(column, justify="right")
    table.add_column("demotions")
    for key, (scores, bands, moves, promoted, demotions) in rows.items():
        states = ", ".join(f"{count} {state}" for state, count in demotions.items() if count)
        table.add_row(key, str(scores), str(bands), str(moves), str(promoted), states)
    console.print(table)


def print_lifecycle(summary) -> None:
    console.print(f"lifecycle as of {summary.day}: {summary.moves} contacts moved forward")
    console.print(
        "  funnel: " + ", ".join(f"{stage} {count}" for stage, count in summary.funnel.items())
    )


def print_scoring(summary) -> None:
    model = f"model {summary.model_version}" + (
        " (changed: everyone rescored)" if summary.model_changed else ""
    )
    console.print(
        f"scored {summary.contacts} contacts as of {summary.day}, {model}: "
        f"{summary.scores_changed} scores changed, {summary.band_changes} band changes"
    )
    for score, bands in summary.bands.items():
        console.print(
            f"  {score}: " + ", ".join(f"{band} {count}" for band, count in bands.items())
        )


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder for the generated files.")] = Path("demo-data"),
    contacts: Annotated[int, typer.Option(min=1)] = 2000,
    days: Annotated[int, typer.Option(min=1)] = 365,
    seed: int = 42,
    events_format: Annotated[str, typer.Option(help="csv or parquet")] = "csv",
    split: Annotated[str, typer.Option(help="single, monthly or daily")] = "monthly",
) -> None:
    """Write a realistic sample contact base and its activity, without loading it."""
    from leadflow.demo_data import generate_demo_data

    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"generating {contacts} contacts over {days} days", total=None)

        advance = progress_callback(progress, bar, "generated")
        dataset = generate_demo_data(
            out,
            contacts=contacts,
            days=days,
            seed=seed,
            events_format=events_format,
            split=split,
            on_step=advance,
        )
    console.print(
        f"{dataset.n_contacts} contacts, {dataset.n_events} events "
        f"({dataset.n_bad_rows} deliberately bad) in {out}"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the sample files.")] = Path(
        ".leadflow/demo"
    ),
    contacts: Annotated[int, typer.Option(min=1)] = 2000,
    days: Annotated[int, typer.Option(min=1)] = 365,
    seed: int = 42,
) -> None:
    """Generate a realistic sample data set and run the pipeline on it, in a Prefect flow."""
    space = workspace()  # a bad configuration fails here, before Prefect starts
    from flows.days import day_listeners
    from flows.demo import demo_flow, generation_listeners

    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("demo: generating the sample data", total=None)

        generated = progress_callback(progress, bar, "generated")
        ran = progress_callback(progress, bar, "ran")

        generation_listeners.append(generated)
        day_listeners.append(ran)
        try:
            outcome = demo_flow(out_dir=out, contacts=contacts, days=days, seed=seed)
        finally:
            generation_listeners.remove(generated)
            day_listeners.remove(ran)
    results = outcome["ingest"]
    console.print(results_table("demo: ingest", results))
    loaded = sum(item.get("rows_loaded", 0) for item in results)
    quarantined = sum(item.get("rows_quarantined", 0) for item in results)
    rejected = [item for item in results if item["status"] == "rejected"]
    console.print(
        f"ingested {loaded} rows, quarantined {quarantined} rows, "
        f"rejected {len(rejected)} batch(es) whole:"
    )
    for item in rejected:
        console.print(f"  {item['reason']}", markup=False, highlight=False, soft_wrap=True)
    print_outcome(outcome, space, ingest=False)


@app.command()
def serve() -> None:
    """Serve the daily (scheduled), backfill and rescore deployments from this process, without
    a work pool, until interrupted (needs a Prefect server: PREFECT_API_URL)."""
    from prefect import serve as prefect_serve

    from leadflow.deployments import runner_deployments

    prefect_serve(*runner_deployments(workspace().config))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the state database (also done on first use)."""
    from leadflow.store.db import make_engine, upgrade

    upgrade(make_engine(get_settings().database_url))
    console.print("database schema is up to date")
