"""The days the pipeline has run: the latest one is where the state stands."""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class DayRun(SQLModel, table=True):
    """A day whose scoring, lifecycle and marketing steps all completed."""

    __tablename__ = "day_run"

    day: date = Field(primary_key=True)
    model_version: str
    finished_at: datetime
    marketing_contacts: int | None = None  # the tier use at the end of the day (its chart)


class StateVersion(SQLModel, table=True):
    """One row: a token every transaction that changes scores, stages or marketing state renews
    (`leadflow.db.bump_state_version`), so that the run cache's mirror of that state knows
    whether it is still the state store's. Random, not a counter: a restored backup followed
    by other changes never meets a version the mirror has seen."""

    __tablename__ = "state_version"

    id: int = Field(default=1, primary_key=True)
    token: str = "initial"


class RunReport(SQLModel, table=True):
    """A run's report (`leadflow.report.content`), as JSON: what its artifacts showed, kept
    so that `leadflow report` can show it again, with or without Prefect."""

    __tablename__ = "run_report"

    id: int | None = Field(default=None, primary_key=True)
    title: str
    created_at: datetime
    content: str
