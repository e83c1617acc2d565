"""Lifecycle stages: where each contact stands, when it entered each stage, and every move."""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class ContactStage(SQLModel, table=True):
    """The contact's current stage, since `day` (stamped with the day of the run or command)."""

    __tablename__ = "contact_stage"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    stage: str
    day: date


class StageEntry(SQLModel, table=True):
    """`date_entered_<stage>`: the first day the contact reached the stage (or passed it)."""

    __tablename__ = "stage_entry"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    stage: str = Field(primary_key=True)
    day: date


class StageMove(SQLModel, table=True):
    """The audit of every stage change: by a rule (forward only) or by an admin, with a reason."""

    __tablename__ = "stage_move"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    from_stage: str | None = None
    to_stage: str
    day: date = Field(index=True)
    rule: str  # lifecycle.promote.<stage>, or admin
    model_version: str
    reason: str | None = None
    recorded_at: datetime
