"""HubSpot: `hubspot pull`, `hubspot push [--dry-run]` (README: Connect HubSpot).

Both run in this process, under the run lock, with the token of $HUBSPOT_ACCESS_TOKEN; the
daily run does the same when `hubspot.pull` / `hubspot.push` are configured.
"""

from typing import Annotated

import typer

from leadflow.cli import app
from leadflow.cli.common import console, fail, handled, workspace
from leadflow.cli.output import print_results, progress_bar

hubspot_app = typer.Typer(
    no_args_is_help=True,
    help="Connect HubSpot: pull its contacts and email events, push scores, stages and "
    "marketing decisions back (token: $HUBSPOT_ACCESS_TOKEN).",
)
app.add_typer(hubspot_app, name="hubspot")


@hubspot_app.command("pull")
@handled
def pull() -> None:
    """Pull the contacts changed and the marketing email events sent since the last pull, into
    the same ingest as files (validation, quarantine, lake), one batch per page range. A pull
    stopped midway resumes after the last batch it loaded."""
    from leadflow.pipeline import runs

    with progress_bar() as progress:
        bar = progress.add_task("hubspot pull: starting", total=None)
        space = workspace()

        def pulled(batch: dict) -> None:
            progress.update(bar, description=f"hubspot pull: {batch['kind']} batch loaded")

        steps = runs.LocalSteps(space, on_pulled=pulled)
        summary = runs.hubspot_pull(space, steps)
    if summary["batches"]:
        print_results("hubspot pull", summary["batches"])
    console.print(
        f"pulled {summary['contacts']} contacts (changed up to "
        f"{summary['contacts_until'] or 'n/a'}) and {summary['events']} email events (up to "
        f"{summary['events_until'] or 'n/a'})",
        highlight=False,
    )


@hubspot_app.command("push")
@handled
def push(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be sent; send and record nothing.")
    ] = False,
) -> None:
    """Push what changed since the last push: scores and bands, lifecycle stages (forward
    only), marketing decisions (a promotion at once; a scheduled demotion as HubSpot's
    non-marketing-at-renewal marker only). Values HubSpot refuses are sent again next time."""
    from leadflow.pipeline import runs

    with progress_bar() as progress:
        bar = progress.add_task("hubspot push: starting", total=None)
        space = workspace()

        def pushed(done: int, total: int) -> None:
            progress.update(bar, total=total, completed=done, description="hubspot push")

        steps = runs.LocalSteps(space, on_pushed=pushed)
        summary = runs.hubspot_push(space, steps, dry_run)
    print_push(summary)
    if summary["failed"]:
        count = sum(summary["failed"].values())
        fail(f"{count} value(s) refused by HubSpot; the next push sends them again")


def print_push(summary: dict) -> None:
    from rich import box
    from rich.table import Table

    dry_run = summary["status"] == "dry_run"
    if summary.get("refused"):
        console.print(f"dry run: {summary['refused']}", markup=False, highlight=False)
    kinds = sorted({*summary["sent"], *summary["failed"], *summary["skipped"]})
    if not kinds:
        console.print("nothing to push: HubSpot has every value leadflow would send")
    else:
        table = Table(title="hubspot push" + (" (dry run)" if dry_run else ""), box=box.SIMPLE_HEAD)
        table.add_column("value")
        for column in ("would send" if dry_run else "sent", "failed", "left out"):
            table.add_column(column, justify="right")
        for kind in kinds:
            table.add_row(
                kind,
                *(str(summary[key].get(kind, 0)) for key in ("sent", "failed", "skipped")),
            )
        console.print(table)
    if dry_run and summary["first"]:
        first = Table(title="first values that would be sent", box=box.SIMPLE_HEAD)
        for column in ("contact", "record_id", "property", "value"):
            first.add_column(column)
        for row in summary["first"]:
            first.add_row(*(str(row[column]) for column in ("contact", "record_id", "property",
                                                            "value")))  # fmt: skip
        console.print(first)
    for line in summary["failures"]:
        console.print(f"  failed: {line}", markup=False, highlight=False)
    if summary["without_record_id"]:
        console.print(
            f"{summary['without_record_id']} contacts have no HubSpot Record ID: not pushed",
            style="dim",
        )
    if not dry_run:
        console.print(f"{summary['requests']} batch update request(s) sent", style="dim")
