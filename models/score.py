"""Scores: the current value per contact and score, band changes, and the log of scoring runs.

Only the current score is stored (and rewritten only when it changes): a score's daily path is
recomputed on demand from the lake, which is cheaper than a row per contact per day.
"""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class ContactScore(SQLModel, table=True):
    __tablename__ = "contact_score"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    score: str = Field(primary_key=True)
    value: float  # rounded to 4 decimals
    band: str | None = None
    day: date  # the day it was computed as of
    model_version: str


class BandChange(SQLModel, table=True):
    """A contact's band of a score changed on `day` (old_band is None the first time)."""

    __tablename__ = "band_change"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    score: str
    day: date = Field(index=True)
    value: float
    old_band: str | None = None
    new_band: str | None = None
    model_version: str


class ScoringRun(SQLModel, table=True):
    """One scoring of every contact as of `day`: what changed, with which model."""

    __tablename__ = "scoring_run"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    model_version: str
    contacts: int
    scores_changed: int
    band_changes: int
    model_changed: bool
    started_at: datetime
    finished_at: datetime
