"""The log of pulls and pushes (`hubspot_sync`): each one is recorded when it starts and when it
ends, so that a sync killed midway shows as `interrupted` (the next one marks it so); and a
pull or a push with a client of its own, as the runs call them."""

import json
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow.workspace import Workspace


def start_sync(workspace: Workspace, kind: str, now: datetime) -> int:
    with workspace.engine.begin() as db:
        db.execute(text("UPDATE hubspot_sync SET status = 'interrupted' WHERE status = 'running'"))
        return db.execute(
            text(
                """INSERT INTO hubspot_sync (kind, started_at, status, summary)
                   VALUES (:kind, :now, 'running', '{}') RETURNING id"""
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"kind": kind, "now": now},
        ).scalar_one()


def finish_sync(workspace: Workspace, sync_id: int, status: str, summary: dict) -> None:
    with workspace.engine.begin() as db:
        db.execute(
            text(
                """UPDATE hubspot_sync SET status = :status, summary = :summary,
                                           finished_at = :now WHERE id = :id"""
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {
                "status": status,
                "summary": json.dumps(summary, default=str),
                "now": datetime.now(UTC),
                "id": sync_id,
            },
        )


def run_pull(workspace: Workspace, token: str | None = None, on_batch=None) -> dict:
    """A pull with a client of its own, as plain data (the run's outcome, artifacts)."""
    from leadflow.hubspot.connection import open_client
    from leadflow.hubspot.pull import pull

    with open_client(workspace.config.hubspot, token) as client:
        summary = pull(workspace, client, on_batch=on_batch)
    return {"status": "ok", **asdict(summary)}


def run_push(
    workspace: Workspace, token: str | None = None, dry_run: bool = False, on_batch=None
) -> dict:
    """A push with a client of its own, as plain data."""
    from leadflow.hubspot.connection import open_client
    from leadflow.hubspot.push import push

    with open_client(workspace.config.hubspot, token) as client:
        summary = push(workspace, client, dry_run=dry_run, on_batch=on_batch)
    status = "dry_run" if dry_run else "ok"
    return {"status": status, **asdict(summary), "nothing": summary.nothing}
