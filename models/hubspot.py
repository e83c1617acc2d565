"""The HubSpot connection: where each pull stands, what each push sent, and every sync run.

`hubspot_cursor` moves in the same transaction as the batch it pulled, so a pull killed midway
resumes where its last batch ended. `hubspot_pushed` holds the value each contact's property
last took in HubSpot (the push sends what differs from it); `hubspot_push_record` is the audit of
every value a push sent, failed to send or left out, with HubSpot's answer.
"""

from datetime import datetime

from sqlmodel import Field, SQLModel


class HubSpotSync(SQLModel, table=True):
    """One pull or push: when, how it ended, and what it did (`summary`, JSON)."""

    __tablename__ = "hubspot_sync"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # pull | push
    started_at: datetime
    finished_at: datetime | None = None
    status: str  # running | ok | failed | refused | dry_run
    summary: str = "{}"


class HubSpotCursor(SQLModel, table=True):
    """Where a pull stands (`contacts`: the search cursor; `email_events`: the time pulled up
    to), as JSON."""

    __tablename__ = "hubspot_cursor"

    name: str = Field(primary_key=True)
    value: str
    updated_at: datetime


class HubSpotPushed(SQLModel, table=True):
    """The value a contact's HubSpot property took from leadflow's last successful push."""

    __tablename__ = "hubspot_pushed"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    property: str = Field(primary_key=True)
    value: str
    pushed_at: datetime
    sync_id: int = Field(foreign_key="hubspot_sync.id")


class HubSpotPushRecord(SQLModel, table=True):
    """One value a push sent (`sent`), could not send (`failed`, retried by the next push) or
    left out (`skipped`: HubSpot is already there or ahead, or has no such stage)."""

    __tablename__ = "hubspot_push_record"

    id: int | None = Field(default=None, primary_key=True)
    sync_id: int = Field(foreign_key="hubspot_sync.id", index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    record_id: str
    property: str
    value: str
    outcome: str  # sent | failed | skipped
    detail: str | None = None  # HubSpot's answer to a failure, or why it was left out
    at: datetime
