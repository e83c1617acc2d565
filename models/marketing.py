"""Marketing contacts: who counts against the paid tier, demotions, suppression.

`marketing_change` is the audit log and the history: every status, suppression and demotion
state change, stamped with the day of the run (or admin command) that made it. The other tables
hold the current state, which can always be rebuilt from that log.
"""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class ContactMarketing(SQLModel, table=True):
    """A contact's current marketing status and suppression."""

    __tablename__ = "contact_marketing"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    status: str  # marketing | non_marketing
    status_rule: str  # what set it: creation_default:<source>, marketing.promote, admin, ...
    status_day: date
    suppressed: bool = False
    suppressed_day: date | None = None


class Demotion(SQLModel, table=True):
    """One request to make a marketing contact non-marketing at `renewal_date`.

    Open while `queued` (before the window) or `scheduled` (inside it); closed when `applied`
    (on the renewal date) or `cancelled`. A contact has at most one open demotion.
    """

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    rule: str  # the demote rule id that opened it, or admin
    state: str = Field(index=True)  # queued | scheduled | applied | cancelled
    opened_day: date = Field(index=True)
    state_day: date
    renewal_date: date
    model_version: str


class MarketingChange(SQLModel, table=True):
    """The audit: one row per change of a contact's status, suppression or demotion state."""

    __tablename__ = "marketing_change"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    day: date = Field(index=True)
    kind: str  # status | suppression | demotion
    demotion_id: int | None = Field(default=None, foreign_key="demotion.id", index=True)
    from_value: str | None = None  # status, true/false, or demotion state (None when opened)
    to_value: str
    rule: str  # the rule or source behind the change, or admin
    reason: str | None = None  # an admin's reason, or what suppressed the contact
    actor: str = "run"  # run | admin: an admin's changes are replayed with late data
    model_version: str
    recorded_at: datetime


class ContractRenewal(SQLModel, table=True):
    """A renewal of the marketing-contact contract that a run went through."""

    __tablename__ = "contract_renewal"

    renewal_date: date = Field(primary_key=True)
    day: date  # the run that applied it (the renewal date itself when runs are daily)
    demotions_applied: int
    next_renewal_date: date
