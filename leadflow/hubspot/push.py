"""`leadflow hubspot push [--dry-run]`: what changed in leadflow's state since the last push,
written back to the portal's contacts.

What is sent, per contact with a HubSpot Record ID (README: Connect HubSpot):
- each configured score (rounded to `score_decimals`), band and grid cell (from the stored
  scores), into the properties named;
- the lifecycle stage, forward only and only to a stage the portal has: HubSpot's current stage
  is read first, and a contact HubSpot already has at that stage or further is left as it is;
- marketing decisions, as a request in `marketing_property` that the portal's workflows carry
  out (HubSpot's API cannot write the marketing status): `marketing` for a contact leadflow
  promoted (at once, billed from then), `non_marketing_at_renewal` for a scheduled demotion
  (HubSpot's "non-marketing at the next update" marker: never non-marketing inside the billing
  period), and `marketing` again to clear that marker when the demotion is cancelled. HubSpot's
  current status is read first: a request it already fulfils is not sent.

Set-based: the values that differ from what the last push left (`hubspot_pushed`) are selected
in one statement into a temporary table, then sent 100 contacts a request. Each request's
outcome is recorded in its own transaction (`hubspot_push_record`, `hubspot_pushed`): a value
HubSpot refused (a 207 failure) stays different and is sent again next time, a second push sends
nothing, and a push killed midway resumes with what it had not recorded. The marketing changes
are counted before anything is sent: more than `max_marketing_changes` refuses the whole push.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    text,
)
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow.config import Grid, HubSpotPush
from leadflow.errors import UserError
from leadflow.hubspot.client import BATCH_UPDATE_MAX, HubSpotClient, hubspot_value
from leadflow.hubspot.sync import finish_sync, start_sync
from leadflow.marketing import ADMIN_RULES
from leadflow.scoring.query import bands_case_sql
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)

REQUEST_MARKETING = "marketing"
REQUEST_NON_MARKETING_AT_RENEWAL = "non_marketing_at_renewal"
STAGE_PROPERTY = "lifecyclestage"
# The status rules that make a contact marketing by leadflow's decision (not by its creation).
PROMOTION_RULES = ("marketing.promote", *ADMIN_RULES)
SHOWN_ROWS = 10

CANDIDATES = Table(
    "push_candidate",
    MetaData(),
    Column("contact_id", Integer),
    Column("record_id", String),
    Column("email", String),
    Column("kind", String),  # score | band | grid | stage | marketing
    Column("property", String),
    Column("value", String),
    Column("number", Float),  # a score's value, rounded
    prefixes=["TEMPORARY"],
)
# Each batch takes the next contacts by this index (created with the table).
Index("push_candidate_contact", CANDIDATES.c.contact_id)


class PushRefused(UserError, RuntimeError):
    """More marketing changes asked than `hubspot.push.max_marketing_changes` allows."""


@dataclass
class PushSummary:
    dry_run: bool = False
    sent: dict[str, int] = field(default_factory=dict)  # kind (marketing: per request) -> values
    failed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    requests: int = 0  # batch updates sent
    without_record_id: int = 0  # contacts leadflow cannot address in HubSpot
    first: list[dict] = field(default_factory=list)  # the first values (what a dry run shows)
    failures: list[str] = field(default_factory=list)  # the first failures, one line each
    refused: str | None = None  # a dry run's: why the push would be refused

    @property
    def nothing(self) -> bool:
        return not (self.sent or self.failed)


def push(
    workspace: Workspace,
    client: HubSpotClient,
    *,
    dry_run: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> PushSummary:
    """Send what changed; `dry_run` reads HubSpot's current stages and statuses, and says what
    would be sent without sending or recording any of it."""
    from leadflow.hubspot.connection import NotConnected

    settings = workspace.config.hubspot.push
    if settings is None:
        raise NotConnected("hubspot.push is not in the configuration: nothing to push")
    now = datetime.now(UTC)
    summary = PushSummary(dry_run=dry_run)
    sync_id = start_sync(workspace, "push", now)
    try:
        with workspace.engine.connect() as db:
            try:
                _select_candidates(db, settings, workspace.config.grids)
                summary.without_record_id = db.execute(
                    text("SELECT count(*) FROM contact WHERE hubspot_record_id IS NULL")
                ).scalar_one()
                requests = _marketing_requests(db, client, settings, summary)
                _send(db, client, settings, summary, requests, sync_id, on_batch)
            finally:  # the pooled connection outlives the push: so would its temporary table
                db.rollback()
                CANDIDATES.drop(db, checkfirst=True)
                db.commit()
    except PushRefused as refusal:
        finish_sync(workspace, sync_id, "refused", {"error": str(refusal)})
        raise
    except BaseException as error:
        finish_sync(workspace, sync_id, "failed", {**_summary_dict(summary), "error": str(error)})
        raise
    finish_sync(workspace, sync_id, "dry_run" if dry_run else "ok", _summary_dict(summary))
    return summary


def _summary_dict(summary: PushSummary) -> dict:
    return {
        "sent": summary.sent,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "requests": summary.requests,
        "without_record_id": summary.without_record_id,
    }


def _select_candidates(db: Connection, settings: HubSpotPush, grids: dict[str, Grid]) -> None:
    """`push_candidate`: each value of a contact with a Record ID that differs from what the
    last push left in HubSpot."""
    parts, parameters = [], {"decimals": settings.score_decimals}
    for index, (score, prop) in enumerate(settings.scores.items()):
        parts.append(
            f"""SELECT contact_id, 'score' AS kind, CAST(:sp{index} AS VARCHAR) AS property,
                       CAST(NULL AS VARCHAR) AS value,
                       CAST(ROUND(CAST(value AS NUMERIC), :decimals) AS FLOAT) AS number
                FROM contact_score WHERE score = :s{index}"""
        )
        parameters |= {f"sp{index}": prop, f"s{index}": score}
    for index, (score, prop) in enumerate(settings.bands.items()):
        parts.append(
            f"""SELECT contact_id, 'band', CAST(:bp{index} AS VARCHAR), band,
                       CAST(NULL AS FLOAT)
                FROM contact_score WHERE score = :b{index}"""
        )
        parameters |= {f"bp{index}": prop, f"b{index}": score}
    for index, (name, prop) in enumerate(settings.grids.items()):
        grid = grids[name]
        row = bands_case_sql("r.value", grid.rows.bands)
        column = bands_case_sql("c.value", grid.columns.bands)
        parts.append(
            f"""SELECT r.contact_id, 'grid', CAST(:gp{index} AS VARCHAR),
                       ({row}) || ({column}), CAST(NULL AS FLOAT)
                FROM contact_score r
                JOIN contact_score c ON c.contact_id = r.contact_id AND c.score = :gc{index}
                WHERE r.score = :gr{index}"""
        )
        parameters |= {f"gp{index}": prop, f"gr{index}": grid.rows.score}
        parameters[f"gc{index}"] = grid.columns.score
    if settings.lifecycle_stage:
        parts.append(
            "SELECT contact_id, 'stage', CAST(:stage_property AS VARCHAR), stage, "
            "CAST(NULL AS FLOAT) FROM contact_stage"
        )
        parameters["stage_property"] = STAGE_PROPERTY
    if settings.marketing_property:
        promotions = ", ".join(f":promotion{i}" for i in range(len(PROMOTION_RULES)))
        parameters |= {f"promotion{i}": rule for i, rule in enumerate(PROMOTION_RULES)}
        # Asked for: a scheduled demotion's marker; marketing for a contact leadflow made
        # marketing, or whose marker was pushed and whose demotion no longer is scheduled.
        parts.append(
            f"""SELECT m.contact_id, 'marketing', CAST(:marketing_property AS VARCHAR),
                       CASE WHEN d.id IS NOT NULL THEN CAST(:non_marketing AS VARCHAR)
                            WHEN m.status = 'marketing'
                                 AND (m.status_rule IN ({promotions})
                                      OR pm.value = :non_marketing)
                            THEN CAST(:marketing AS VARCHAR)
                       END, CAST(NULL AS FLOAT)
                FROM contact_marketing m
                LEFT JOIN demotion d ON d.contact_id = m.contact_id AND d.state = 'scheduled'
                LEFT JOIN hubspot_pushed pm ON pm.contact_id = m.contact_id
                                           AND pm.property = :marketing_property"""
        )
        parameters |= {
            "marketing_property": settings.marketing_property,
            "marketing": REQUEST_MARKETING,
            "non_marketing": REQUEST_NON_MARKETING_AT_RENEWAL,
        }
    CANDIDATES.create(db)
    if not parts:
        return
    db.execute(
        text(
            f"""INSERT INTO push_candidate (contact_id, record_id, email, kind, property, value,
                                            number)
                SELECT x.contact_id, c.hubspot_record_id, c.email, x.kind, x.property, x.value,
                       x.number
                FROM ({" UNION ALL ".join(parts)}) x
                JOIN contact c ON c.id = x.contact_id AND c.hubspot_record_id IS NOT NULL
                LEFT JOIN hubspot_pushed p ON p.contact_id = x.contact_id
                                          AND p.property = x.property
                WHERE (x.kind = 'score'
                       AND (p.value IS NULL OR CAST(p.value AS NUMERIC) <> x.number))
                   OR (x.kind IN ('band', 'grid')
                       AND COALESCE(x.value, '') <> COALESCE(p.value, ''))
                   OR (x.kind IN ('stage', 'marketing') AND x.value IS NOT NULL
                       AND x.value <> COALESCE(p.value, ''))"""
        ),
        parameters,
    )


@dataclass(frozen=True)
class Decision:
    """What becomes of one candidate value: sent, or left out (`skip`: why)."""

    value: str
    skip: str | None = None


def _marketing_requests(
    db: Connection, client: HubSpotClient, settings: HubSpotPush, summary: PushSummary
) -> dict[int, Decision]:
    """Each marketing request against HubSpot's current status; refuses the push when more
    real changes are asked than the kill-switch allows."""
    rows = db.execute(
        text("SELECT contact_id, record_id, value FROM push_candidate WHERE kind = 'marketing'")
    ).all()
    if not rows:
        return {}
    status = client.read_contacts(
        [record for _, record, _ in rows], ["hs_marketable_status", "hs_marketable_until_renewal"]
    )
    decisions = {}
    for contact_id, record, request in rows:
        current = status.get(record)
        if current is None:
            decisions[contact_id] = Decision(request, "not in HubSpot (deleted or merged)")
            continue
        marketing = current.get("hs_marketable_status") == "true"
        marked = current.get("hs_marketable_until_renewal") == "true"
        skip = None
        if request == REQUEST_MARKETING and marketing and not marked:
            skip = "already a marketing contact"
        elif request == REQUEST_NON_MARKETING_AT_RENEWAL and not marketing:
            skip = "already non-marketing"
        elif request == REQUEST_NON_MARKETING_AT_RENEWAL and marked:
            skip = "already non-marketing at the renewal"
        decisions[contact_id] = Decision(request, skip)
    changes = sum(1 for decision in decisions.values() if decision.skip is None)
    if changes > settings.max_marketing_changes:
        refusal = (
            f"HubSpot push refused: {changes:,} marketing status changes asked, more than "
            f"hubspot.push.max_marketing_changes ({settings.max_marketing_changes:,}); nothing "
            "was sent (check the rules, then raise the limit for this push)"
        )
        if not summary.dry_run:
            raise PushRefused(refusal)
        summary.refused = refusal
    return decisions


def _send(
    db: Connection,
    client: HubSpotClient,
    settings: HubSpotPush,
    summary: PushSummary,
    marketing: dict[int, Decision],
    sync_id: int,
    on_batch: Callable[[int, int], None] | None,
) -> None:
    """The candidates, 100 contacts a request, each request's outcome recorded at once."""
    total = db.execute(text("SELECT count(DISTINCT contact_id) FROM push_candidate")).scalar_one()
    if not total:
        return
    stages = _stage_order(client) if settings.lifecycle_stage else {}
    after, done = -1, 0
    while True:
        rows = db.execute(
            text(
                """SELECT contact_id, record_id, email, kind, property, value, number
                   FROM push_candidate WHERE contact_id IN (
                       SELECT DISTINCT contact_id FROM push_candidate WHERE contact_id > :after
                       ORDER BY contact_id LIMIT :contacts)
                   ORDER BY contact_id, property"""
            ),
            {"after": after, "contacts": BATCH_UPDATE_MAX},
        ).all()
        if not rows:
            return
        after = rows[-1].contact_id
        decided = _decide(client, settings, rows, marketing, stages)
        outcomes = _update(client, summary, decided) if not summary.dry_run else {}
        if not summary.dry_run:
            _record(db, decided, outcomes, sync_id)
            db.commit()
        _count(summary, decided, outcomes)
        done += len({row.contact_id for row in rows})
        if on_batch:
            on_batch(done, total)


def _stage_order(client: HubSpotClient) -> dict[str, int]:
    """The portal's lifecycle stages (internal values), in its order."""
    return {option.value: index for index, option in enumerate(client.lifecycle_stages())}


def _decide(client, settings, rows, marketing, stages) -> list[tuple]:
    """(row, Decision) for each candidate of a batch of contacts."""
    stage_records = [row.record_id for row in rows if row.kind == "stage"]
    current = client.read_contacts(stage_records, [STAGE_PROPERTY]) if stage_records else {}
    decided = []
    for row in rows:
        if row.kind == "marketing":
            decided.append((row, marketing[row.contact_id]))
        elif row.kind == "score":
            decided.append((row, Decision(_number_text(row.number, settings.score_decimals))))
        elif row.kind in ("band", "grid"):
            decided.append((row, Decision(row.value or "")))
        else:
            decided.append((row, _stage_decision(row, current, stages)))
    return decided


def _stage_decision(row, current: dict, stages: dict[str, int]) -> Decision:
    if row.value not in stages:
        return Decision(row.value, f"HubSpot has no lifecycle stage {row.value!r}")
    if row.record_id not in current:
        return Decision(row.value, "not in HubSpot (deleted or merged)")
    there = current[row.record_id].get(STAGE_PROPERTY)
    if there and there in stages and stages[there] >= stages[row.value]:
        return Decision(row.value, f"HubSpot has it at {there} (stages move forward only)")
    return Decision(row.value)


def _number_text(number: float, decimals: int) -> str:
    return str(round(number)) if decimals == 0 else hubspot_value(round(number, decimals))


def _update(client: HubSpotClient, summary: PushSummary, decided: list[tuple]) -> dict[str, str]:
    """Send one batch update; returns record id -> HubSpot's refusal, for the failed ones."""
    inputs: dict[str, dict[str, str]] = {}
    for row, decision in decided:
        if decision.skip is None:
            inputs.setdefault(row.record_id, {})[row.property] = decision.value
    if not inputs:
        return {}
    result = client.update_contacts(
        [{"id": record, "properties": properties} for record, properties in inputs.items()]
    )
    summary.requests += result.requests
    return {
        record: f"{failure.category}: {failure.message}" if failure.category else failure.message
        for record, failure in result.failed.items()
    }


def _record(db: Connection, decided: list[tuple], failed: dict[str, str], sync_id: int) -> None:
    """The audit of a batch, and the values HubSpot now has (sent, or already there)."""
    now = datetime.now(UTC)
    audit, settled = [], []
    for row, decision in decided:
        outcome = "skipped" if decision.skip else ("failed" if row.record_id in failed else "sent")
        detail = decision.skip or failed.get(row.record_id)
        audit.append(
            {
                "sync": sync_id,
                "contact": row.contact_id,
                "record": row.record_id,
                "property": row.property,
                "value": decision.value,
                "outcome": outcome,
                "detail": detail,
                "at": now,
            }
        )
        if outcome != "failed":
            settled.append(
                {
                    "contact": row.contact_id,
                    "property": row.property,
                    "value": decision.value,
                    "at": now,
                    "sync": sync_id,
                }
            )
    db.execute(
        text(
            """INSERT INTO hubspot_push_record (sync_id, contact_id, record_id, property, value,
                                                outcome, detail, at)
               VALUES (:sync, :contact, :record, :property, :value, :outcome, :detail, :at)"""
        ).bindparams(bindparam("at", type_=UTCDateTime())),
        audit,
    )
    if settled:
        db.execute(
            text(
                """INSERT INTO hubspot_pushed (contact_id, property, value, pushed_at, sync_id)
                   VALUES (:contact, :property, :value, :at, :sync)
                   ON CONFLICT (contact_id, property) DO UPDATE SET
                     value = excluded.value, pushed_at = excluded.pushed_at,
                     sync_id = excluded.sync_id"""
            ).bindparams(bindparam("at", type_=UTCDateTime())),
            settled,
        )


def _count(summary: PushSummary, decided: list[tuple], failed: dict[str, str]) -> None:
    for row, decision in decided:
        kind = f"marketing: {decision.value}" if row.kind == "marketing" else row.kind
        if decision.skip:
            bucket = summary.skipped
        elif row.record_id in failed:
            bucket = summary.failed
            if len(summary.failures) < SHOWN_ROWS:
                summary.failures.append(
                    f"{row.email or row.record_id} ({row.property}): {failed[row.record_id]}"
                )
        else:
            bucket = summary.sent
            if len(summary.first) < SHOWN_ROWS:
                summary.first.append(
                    {
                        "contact": row.email or f"record {row.record_id}",
                        "record_id": row.record_id,
                        "property": row.property,
                        "value": decision.value,
                    }
                )
        bucket[kind] = bucket.get(kind, 0) + 1
