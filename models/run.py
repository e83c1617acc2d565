"""The days the pipeline has run: the latest one is where the state stands."""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class DayRun(SQLModel, table=True):
    """A day whose scoring, lifecycle and marketing steps all completed."""

    __tablename__ = "day_run"

    day: date = Field(primary_key=True)
    model_version: str
    finished_at: datetime


class StateVersion(SQLModel, table=True):
    """One row: a number every transaction that changes scores, stages or marketing state
    increments (`leadflow.mirror.bump_state_version`), so that the run cache's mirror of that
    state knows whether it is still the state store's."""

    __tablename__ = "state_version"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
