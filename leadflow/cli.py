"""The `leadflow` command line: the contract the acceptance tests use (SPEC §7)."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from leadflow.config import ConfigError
from leadflow.ingest import BatchRejected, InputColumnsError, ingest_file
from leadflow.readers import InputFileError
from leadflow.settings import get_settings

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


def fail(message: str, code: int = 1) -> None:
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV, JSON Lines or Parquet files.")],
    kind: Annotated[Kind | None, typer.Option(help="Default: detected from the columns.")] = None,
) -> None:
    """Load contact or event files; bad rows are quarantined, a bad batch is rejected whole."""
    space = workspace()
    results, failures = [], []
    for path in files:
        try:
            result = ingest_file(space, path, kind=kind.value if kind else None)
        except KNOWN_ERRORS as error:
            failures.append(str(error))
            status = "rejected" if isinstance(error, BatchRejected) else "failed"
            results.append({"file": str(path), "status": status})
            continue
        results.append(
            {
                "file": result.file,
                "status": result.status,
                "rows_total": result.rows_total,
                "rows_loaded": result.rows_loaded,
                "rows_duplicate": result.rows_duplicate,
                "rows_quarantined": result.rows_quarantined,
                "contacts_created": result.contacts_created,
            }
        )
    console.print(results_table("ingest", results))
    for message in failures:
        errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(1)


@app.command()
def export(
    what: Annotated[ExportWhat, typer.Argument()],
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
) -> None:
    """Export a table as CSV (quarantine: file, row, reason, raw)."""
    from leadflow.exports import export_quarantine

    count = export_quarantine(workspace().engine, out)
    console.print(f"{count} quarantined rows written to {out}")


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

    with console.status(f"generating {contacts} contacts over {days} days"):
        dataset = generate_demo_data(
            out, contacts=contacts, days=days, seed=seed, events_format=events_format, split=split
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
    workspace()  # a bad configuration fails here, before Prefect starts
    from flows.demo import demo_flow

    results = demo_flow(out_dir=out, contacts=contacts, days=days, seed=seed)
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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the state database (also done on first use)."""
    from leadflow.db import make_engine, upgrade

    upgrade(make_engine(get_settings().database_url))
    console.print("database schema is up to date")
