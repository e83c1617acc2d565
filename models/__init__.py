"""State-store tables, one module per aggregate. Importing this package registers them all."""

from sqlmodel import SQLModel

from models.contact import Contact, ContactPropertyHistory
from models.ingest import IngestBatch, QuarantinedRow

__all__ = ["Contact", "ContactPropertyHistory", "IngestBatch", "QuarantinedRow", "SQLModel"]
