"""The days the pipeline has run: the latest one is where the state stands."""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class DayRun(SQLModel, table=True):
    """A day whose scoring, lifecycle and marketing steps all completed."""

    __tablename__ = "day_run"

    day: date = Field(primary_key=True)
    model_version: str
    finished_at: datetime
