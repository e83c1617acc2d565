"""The `leadflow` command line.

Commands are grouped by what they work on (`data`, `runs`, `scores`, `evaluate`, `admin`,
`hubspot`); each module registers its commands on `app`. Importing this package imports typer
and rich only.
"""

import os
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="leadflow keeps a CRM contact base honest every day: it ingests contacts and their "
    "activity, validates them, scores every contact, moves lifecycle stages and manages "
    "marketing-contact billing. Start with `leadflow demo`, or `leadflow init` for a project "
    "of your own. Settings come from LEADFLOW_* variables (see the README).",
    rich_markup_mode=None,
)


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a failure (LEADFLOW_DEBUG=1).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Print the run's log lines (Prefect's included).")
    ] = False,
) -> None:
    if debug:
        os.environ["LEADFLOW_DEBUG"] = "1"
    if verbose:
        os.environ["LEADFLOW_VERBOSE"] = "1"
    if os.environ.get("LEADFLOW_VERBOSE", "") not in ("", "0"):
        from leadflow.cli.common import show_log_lines

        show_log_lines()


from leadflow.cli import admin, data, evaluate, hubspot, runs, scores  # noqa: E402, F401  (commands)


def main() -> None:
    app()
