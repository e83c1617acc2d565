"""Changes by hand, audited: `stage set`, `marketing set`; and `db upgrade`."""

from enum import StrEnum
from typing import Annotated

import typer

from leadflow.cli import app
from leadflow.cli.common import Day, console, handled, workspace

stage_app = typer.Typer(no_args_is_help=True, help="Lifecycle stages by hand (audited).")
app.add_typer(stage_app, name="stage")
marketing_app = typer.Typer(no_args_is_help=True, help="Marketing status by hand (audited).")
app.add_typer(marketing_app, name="marketing")
db_app = typer.Typer(no_args_is_help=True, help="State database maintenance.")
app.add_typer(db_app, name="db")

Email = Annotated[str, typer.Argument(help="The contact's email.")]
Reason = Annotated[str, typer.Option(help="Why: kept in the audit with the change.")]


class MarketingStatus(StrEnum):
    marketing = "marketing"
    non_marketing = "non_marketing"


@stage_app.command("set")
@handled
def stage_set(
    email: Email,
    stage: Annotated[
        str, typer.Argument(help="subscriber, lead, …, evangelist, or other.", metavar="STAGE")
    ],
    reason: Reason,
    as_of: Day = None,
) -> None:
    """Move a contact to any stage on --as-of (default yesterday), backward included: the only
    way back. The move is audited with the reason, and kept through later replays."""
    from leadflow.lifecycle import set_stage
    from leadflow.pipeline.replay import refuse_during_replay
    from leadflow.scoring.scores import yesterday
    from leadflow.store.lock import state_lock

    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    with state_lock(space.engine, "leadflow stage set"):
        refuse_during_replay(space)
        previous = set_stage(space, email, stage, reason, day)
    console.print(f"{email}: {previous or 'no stage'} -> {stage} on {day} (audited)")


@marketing_app.command("set")
@handled
def marketing_set(
    email: Email,
    status: Annotated[MarketingStatus, typer.Argument(help="marketing or non_marketing.")],
    reason: Reason,
    as_of: Day = None,
) -> None:
    """marketing: at once, cancelling a pending demotion. non_marketing: only requests a
    demotion, applied at the next renewal (never inside the current billing period)."""
    from leadflow.marketing import set_marketing_status
    from leadflow.pipeline.replay import refuse_during_replay
    from leadflow.scoring.scores import yesterday
    from leadflow.store.lock import state_lock

    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    with state_lock(space.engine, "leadflow marketing set"):
        refuse_during_replay(space)
        done = set_marketing_status(space, email, status.value, reason, day)
    console.print(f"{email}: {done} (on {day}, audited)", soft_wrap=True)


@db_app.command("upgrade")
@handled
def db_upgrade() -> None:
    """Apply the schema migrations to the state database (also done on first use), and give
    the files of a lake begun by an earlier version their contact buckets (README: Scaling
    out)."""
    from leadflow.lake import open_lake
    from leadflow.settings import get_settings
    from leadflow.store.db import make_engine, upgrade

    settings = get_settings()
    upgrade(make_engine(settings.database_url))
    console.print("database schema is up to date")
    lake = open_lake(settings.lake, settings.lake_local)
    if not lake.bucketed and lake.events_dir.exists():
        with lake.connection() as connection:
            rewritten = lake.add_buckets(connection)
        console.print(f"lake: {rewritten} file(s) rewritten with their contact buckets")
