"""State-store tables, one module per aggregate. Importing this package registers them all."""

from sqlmodel import SQLModel

from models.contact import Contact, ContactPropertyHistory
from models.ingest import IngestBatch, QuarantinedRow
from models.score import BandChange, ContactScore, ScoringRun

__all__ = [
    "BandChange",
    "Contact",
    "ContactPropertyHistory",
    "ContactScore",
    "IngestBatch",
    "QuarantinedRow",
    "SQLModel",
    "ScoringRun",
]
