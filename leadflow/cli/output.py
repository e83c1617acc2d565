"""What the commands print: tables that read at 80 columns, and the outcome of a run."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.cli.common import console, errors, short_path


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A bar that moves from the start (a pulse until the total is known)."""
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield progress


def progress_callback(progress: Progress, bar, verb: str) -> Callable[[object, int, int], None]:
    """A listener `(what, done, total)` that moves `bar` and says `<verb> <what>`."""

    def update(what: object, done: int, total: int) -> None:
        progress.update(bar, completed=done, total=total, description=f"{verb} {what}")

    return update


STATUS_WORDS = {"already_ingested": "seen before", "nothing_new": "nothing new"}


def results_table(title: str, results: list[dict]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    table.add_column("file", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in ("rows", "loaded", "known", "ign.", "quar.", "new"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for item in results:
        name = short_path(Path(item["file"]).name, 21)
        if item["status"] == "rejected":
            status = "rejected again" if item.get("again") else "rejected"
            table.add_row(name, f"[red]{status}[/red]", *[""] * 6)
            continue
        table.add_row(
            name,
            STATUS_WORDS.get(item["status"], item["status"]),
            str(item["rows_total"]),
            str(item["rows_loaded"]),
            str(item["rows_duplicate"]),
            str(item.get("rows_ignored", 0)),
            str(item["rows_quarantined"]),
            str(item["contacts_created"]),
        )
    return table


RESULTS_LEGEND = (
    "known: rows already in the state; ign.: a vendor's events leadflow does not model; "
    "quar.: quarantined rows; new: new contacts; seen before: the same file was loaded"
)


def print_results(title: str, results: list[dict]) -> None:
    """The ingest table, its legend, then what reading did to each file."""
    console.print(results_table(title, results))
    console.print(RESULTS_LEGEND, style="dim")
    print_ingest_notes(results)


def print_ingest_notes(results: list[dict]) -> None:
    """What reading and mapping did to each file, and the vendor events left aside."""
    for item in results:
        name = Path(item["file"]).name
        if item.get("format", "leadflow") != "leadflow":
            console.print(f"  {name}: read as {item['format']}", markup=False, highlight=False)
        if item.get("rows_ignored"):
            kinds = ", ".join(f"{kind} {count}" for kind, count in item["ignored"].items())
            console.print(
                f"  {name}: {item['rows_ignored']} events leadflow does not model, ignored "
                f"({kinds})",
                markup=False,
                highlight=False,
            )
        if clicks := item.get("machine_clicks"):
            console.print(
                f"  {name}: {clicks} click{'s' if clicks > 1 else ''} right after "
                "the delivery, kept as a machine's",
                markup=False,
                highlight=False,
            )
        for note in item.get("notes", []):
            console.print(f"  {name}: {note}", markup=False, highlight=False)


def print_errors(messages: list[str]) -> None:
    for message in messages:
        errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


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


def print_demotion_queue(queue, limit: int = 10) -> None:
    table = Table(title=f"demotion queue: {queue.num_rows} open demotions")
    wide = console.width >= 100  # the day it was opened, when there is room
    table.add_column("email", overflow="ellipsis", no_wrap=True, max_width=32)
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column("rule", overflow="ellipsis", no_wrap=True, max_width=16)
    if wide:
        table.add_column("opened", no_wrap=True, min_width=10)
    table.add_column("renewal", no_wrap=True, min_width=10)
    for row in queue.slice(0, limit).to_pylist():
        cells = [row["email"], row["state"], row["rule"]]
        cells += [row["opened_day"]] if wide else []
        table.add_row(*cells, row["renewal_date"])
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
    """What a daily, backfill or rescore run did: files, the plan, each day, the last day."""
    if ingest and outcome["ingest"]:
        print_results("inbox", outcome["ingest"])
    print_synced(outcome, "pull")
    console.print(f"plan: {outcome['plan']}")
    days = outcome["days"]
    if len(days) > 1:
        print_days_table(days)
    if days:
        print_last_day(outcome, space)
    print_synced(outcome, "push")


def print_synced(outcome: dict, direction: str) -> None:
    """The run's HubSpot pull (before its days) or push (after them), if it had one."""
    from leadflow.report.content import hubspot_lines, sync_summary

    result = outcome.get("hubspot", {}).get(direction)
    if result is not None:
        for line in hubspot_lines({direction: sync_summary(direction, result)}):
            console.print(line.replace("**", ""), markup=False, highlight=False)


def print_last_day(outcome: dict, space) -> None:
    from leadflow.marketing import demotion_queue

    days = outcome["days"]
    changes = outcome["changes"]
    if changes["nothing"]:
        console.print("[bold]nothing changed[/]: the state is as it was before the run")
    else:
        console.print(f"[bold]changed[/]: {changes['summary']}")
    last = days[-1]
    print_scoring(SimpleNamespace(**last["scoring"]))
    print_lifecycle(SimpleNamespace(**last["lifecycle"]))
    marketing = last["marketing"]
    if marketing["renewal"]:
        console.print(f"went through the renewal of {marketing['renewal']}")
    print_tier(SimpleNamespace(**marketing["tier"]))
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
    table.add_column("month" if by_month else "day", no_wrap=True)
    for column in ("scores", "bands", "stages", "promoted"):
        table.add_column(column, justify="right")
    table.add_column("demotions")
    for key, (scores, bands, moves, promoted, demotions) in rows.items():
        states = ", ".join(f"{count} {state}" for state, count in demotions.items() if count)
        table.add_row(key, str(scores), str(bands), str(moves), str(promoted), states)
    table.caption = "scores changed, band moves, stage moves and promotions per day"
    console.print(table)


def print_lifecycle(summary) -> None:
    console.print(
        f"lifecycle funnel after {summary.day}: "
        + ", ".join(f"{stage} {count}" for stage, count in summary.funnel.items())
    )


def print_scoring(summary) -> None:
    model = f"model {summary.model_version}" + (
        " (changed: everyone rescored)" if summary.model_changed else ""
    )
    console.print(f"scored {summary.contacts} contacts as of {summary.day}, {model}")
    for score, bands in summary.bands.items():
        shown = ", ".join(
            f"{band} {count}" if band != "-" else f"{count} without a band"
            for band, count in bands.items()
        )
        console.print(f"  {score}: {shown}")
