"""State-store tables, one module per aggregate. Importing this package registers them all."""

from sqlmodel import SQLModel

from models.contact import Contact, ContactInitialStageEntry, ContactPropertyHistory
from models.hubspot import HubSpotCursor, HubSpotPushed, HubSpotPushRecord, HubSpotSync
from models.ingest import IngestBatch, QuarantinedRow
from models.lifecycle import ContactStage, StageEntry, StageMove
from models.marketing import ContactMarketing, ContractRenewal, Demotion, MarketingChange
from models.replay import Replay, ReplayAdminChange, RunLockHolder
from models.run import DayRun, RunReport, StateVersion
from models.score import BandChange, ContactScore, ScoringRun

__all__ = [
    "DayRun",
    "HubSpotCursor",
    "HubSpotPushRecord",
    "HubSpotPushed",
    "HubSpotSync",
    "BandChange",
    "Contact",
    "ContactInitialStageEntry",
    "ContactMarketing",
    "ContactPropertyHistory",
    "ContactScore",
    "ContactStage",
    "ContractRenewal",
    "Demotion",
    "IngestBatch",
    "MarketingChange",
    "QuarantinedRow",
    "Replay",
    "ReplayAdminChange",
    "RunReport",
    "RunLockHolder",
    "SQLModel",
    "ScoringRun",
    "StageEntry",
    "StageMove",
    "StateVersion",
]
