"""Contacts and the history of their property values.

Properties (first_name, phone, persona, any extra column...) live only in the history table,
one row per change, stamped with the record's own update time: a rule can then read a property
as it was at any past instant, and the current value is simply the latest row.
"""

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class Contact(SQLModel, table=True):
    """One person, keyed by normalised (trimmed, lower-cased) email."""

    id: int | None = Field(default=None, primary_key=True)
    # The key: the email, trimmed and lower-cased; `hubspot:<Record ID>` for a HubSpot contact
    # without one (it is matched by its record id and gets no email events).
    email: str = Field(unique=True, index=True)
    hubspot_record_id: str | None = Field(default=None, unique=True, index=True)
    creation_source: str
    # True when the source was inferred from a first event: a contact record may then correct it.
    creation_source_inferred: bool = False
    integration: str | None = None
    created_at: datetime
    # From a HubSpot export: where the contact stood before leadflow managed it.
    initial_stage: str | None = None
    initial_marketing_status: str | None = None
    first_batch_id: str = Field(foreign_key="ingest_batch.id")


class ContactPropertyHistory(SQLModel, table=True):
    """A property value taking effect at `valid_from` (UTC), until the next row of the same name."""

    __tablename__ = "contact_property_history"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    name: str = Field(primary_key=True)
    valid_from: datetime = Field(primary_key=True)
    value: str
    batch_id: str = Field(foreign_key="ingest_batch.id")


class ContactInitialStageEntry(SQLModel, table=True):
    """When the contact entered a stage before leadflow managed it, as its record says (a
    HubSpot export's `Date entered "<Stage> (Lifecycle Stage Pipeline)"`)."""

    __tablename__ = "contact_initial_stage_entry"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    stage: str = Field(primary_key=True)
    day: date
