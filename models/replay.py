"""What an interrupted replay still has to do, kept in the state store (not in memory).

A run that undoes days (late data, a backfill over days already run) records, in the undo's own
transaction, how far the replay must go (`replay`) and sets the admins' changes it undid aside
(`replay_admin_change`). Each replayed day makes its admin changes again in its own transaction
and deletes them here; the day that reaches `through` deletes the `replay` row. A run killed in
between leaves both behind, and the next run finishes the replay first.
"""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class Replay(SQLModel, table=True):
    """The replay under way (at most one row): days after `undo_after` up to `through`."""

    id: int = Field(default=1, primary_key=True)
    undo_after: date
    through: date
    model_version: str  # the rules it replays with
    batches: int  # committed ingest batches when it started: late data since means start again
    started_at: datetime


class ReplayAdminChange(SQLModel, table=True):
    """An admin's change undone by a replay, to be made again on its day."""

    __tablename__ = "replay_admin_change"

    id: int | None = Field(default=None, primary_key=True)  # the order they were made in
    day: date = Field(index=True)
    kind: str  # stage | marketing
    contact_id: int = Field(foreign_key="contact.id")
    value: str  # the stage, or marketing | non_marketing
    reason: str
    recorded_at: datetime  # when the admin first made it


class RunLockHolder(SQLModel, table=True):
    """Who holds the PostgreSQL run lock (an advisory lock says only that it is held):
    `token` is also the holder session's application_name."""

    __tablename__ = "run_lock_holder"

    token: str = Field(primary_key=True)
    holder: str  # e.g. "daily flow run furious-otter (pid 123 on vm, since 2026-…)"
