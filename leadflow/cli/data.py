"""Data in and out: `ingest`, `export`, `generate`."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from leadflow.cli import app
from leadflow.cli.common import Day, console, errors, fail, handled, workspace
from leadflow.cli.output import (
    print_errors,
    print_results,
    progress_bar,
    progress_callback,
)


class Kind(StrEnum):
    contacts = "contacts"
    events = "events"


class Format(StrEnum):
    """The formats `leadflow ingest --format` names (leadflow.ingest.sources.FORMAT_NAMES)."""

    leadflow = "leadflow"
    hubspot_contacts = "hubspot-contacts"
    sendgrid = "sendgrid"
    hubspot_email_events = "hubspot-email-events"
    mailchimp = "mailchimp"
    segment = "segment"


class ExportWhat(StrEnum):
    quarantine = "quarantine"
    scores = "scores"
    contacts = "contacts"
    companies = "companies"


@app.command()
@handled
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help="CSV, JSON Lines, JSON or Parquet files, in order.")
    ],
    kind: Annotated[
        Kind | None, typer.Option(help="contacts or events (default: told from the columns).")
    ] = None,
    format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            help="What the files are (default: told from each file): leadflow's columns, a "
            "HubSpot contacts export, or a vendor's email events.",
        ),
    ] = None,
) -> None:
    """Load contact or event files, each in one all-or-nothing batch: bad rows are quarantined
    with their reason, and a file with too many bad rows is rejected whole (nothing of it is
    loaded). Reads leadflow's own columns, HubSpot contacts exports as HubSpot writes them, and
    SendGrid, HubSpot, Mailchimp and Segment email events. Give contacts before the events that
    mention them."""
    from leadflow.store.lock import state_lock

    with progress_bar() as progress:
        bar = progress.add_task("ingest: starting", total=len(files))
        from leadflow.pipeline.runs import ingest_outcome

        space = workspace()
        results = []
        with state_lock(space.engine, "leadflow ingest"):
            for path in files:
                progress.update(bar, description=f"ingest {path.name}")
                results.append(
                    ingest_outcome(
                        space, path, kind.value if kind else None, format.value if format else None
                    )
                )
                progress.advance(bar)
    print_results("ingest", results)
    failures = [item["reason"] for item in results if item["status"] == "rejected"]
    print_errors(failures)
    if failures:
        raise typer.Exit(1)


@app.command()
@handled
def export(
    what: Annotated[ExportWhat, typer.Argument(help="quarantine, scores, contacts or companies.")],
    out: Annotated[Path, typer.Option(help="The CSV file to write.")],
    as_of: Day = None,
) -> None:
    """Write a CSV file. quarantine: every quarantined row (file, row, reason, raw). scores:
    email, one column per score and band_<score> per banded score, computed as of --as-of
    (default yesterday). contacts: email, lifecycle_stage, marketing_status, demotion,
    suppressed, creation_source and date_entered_<stage>, as the runs up to --as-of left them.
    companies: domain, contacts, each company score and band_<score> per banded one, computed
    as of --as-of."""
    from leadflow.exports import contacts_as_of, export_quarantine, write_csv
    from leadflow.scoring.scores import scores_as_of, yesterday

    space = workspace()
    if what is ExportWhat.quarantine:
        count = export_quarantine(space.engine, out)
        console.print(f"{count} quarantined rows written to {out}")
        return
    day = as_of.date() if as_of else yesterday(space)
    if what is ExportWhat.companies:
        from leadflow.companies.scores import companies_as_of

        table = companies_as_of(space, day)
        write_csv(table, out)
        console.print(f"{table.num_rows} companies as of {day} written to {out}")
        return
    if what is ExportWhat.contacts:
        from leadflow.pipeline.plans import coverage_note

        note = coverage_note(space, day)
        if note:
            errors.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    table = (scores_as_of if what is ExportWhat.scores else contacts_as_of)(space, day)
    write_csv(table, out)
    scores = "scores of " if what is ExportWhat.scores else ""
    console.print(f"{scores}{table.num_rows} contacts as of {day} written to {out}")


@app.command()
@handled
def generate(
    out: Annotated[Path, typer.Option(help="Folder for the generated files.")] = Path("demo-data"),
    contacts: Annotated[int, typer.Option(min=1, help="How many contacts.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="How many days of activity.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same files.")] = 42,
    events_format: Annotated[str, typer.Option(help="csv or parquet.")] = "csv",
    split: Annotated[str, typer.Option(help="Events files: single, monthly or daily.")] = "monthly",
) -> None:
    """Write a realistic sample contact base and its activity, without loading it."""
    with progress_bar() as progress:
        bar = progress.add_task(f"generating {contacts} contacts over {days} days", total=None)
        from leadflow.demo_data import generate_demo_data

        dataset = generate_demo_data(
            out,
            contacts=contacts,
            days=days,
            seed=seed,
            events_format=events_format,
            split=split,
            on_step=progress_callback(progress, bar, "generated"),
        )
    console.print(
        f"{dataset.n_contacts} contacts, {dataset.n_events} events "
        f"({dataset.n_bad_rows} deliberately bad) and {dataset.n_source_events} records in "
        f"email platforms' own formats (sources/) in {out}"
    )


@app.command()
@handled
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write leadflow.yaml.")] = Path("."),
) -> None:
    """Start a project of your own: write a complete, commented leadflow.yaml (the example
    the demo runs) into FOLDER, to edit."""
    from leadflow.settings import EXAMPLE_CONFIG

    target = folder / "leadflow.yaml"
    if target.exists():
        fail(f"{target} exists: not overwritten (edit it, or remove it first)")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    console.print(
        f"wrote {target}. Edit: account.timezone (your CRM's zone), contract.renewal_date, "
        "contract.marketing_contact_tier and billing (your HubSpot contract), then the "
        "scores, bands, lifecycle and marketing rules (each is commented). Then: "
        "`leadflow ingest` your files and `leadflow run`; settings are LEADFLOW_* variables "
        "(README, Settings).",
        soft_wrap=False,
    )
