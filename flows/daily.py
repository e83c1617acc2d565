"""The daily flow: ingest the inbox, then score, lifecycle and marketing as of a day, report."""

from datetime import date

from prefect import flow

from flows.steps import PrefectSteps
from leadflow.pipeline import runs
from leadflow.settings import get_settings
from leadflow.workspace import Workspace


@flow(name="daily")
def daily_flow(as_of: date | None = None) -> dict:
    """Ingest new files from the inbox, then run `as_of` (default: yesterday in the account
    zone), catching up on missed days, or replaying from `as_of` if it was already run."""
    settings = get_settings()
    space = Workspace.from_settings(settings)
    return runs.daily(space, PrefectSteps(), as_of, settings.inbox)
