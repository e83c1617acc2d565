"""`leadflow hubspot pull`: the portal's contacts and marketing email events, through the same
ingest as files (validation, quarantine, lake, machine flags), one batch per page range.

Contacts come from the CRM search in `lastmodifieddate` order (`HubSpotClient.iter_contacts_
modified_since`, keyset-paged past the 10,000 cap); every `contacts_per_batch` of them are
written as JSON Lines under HubSpot's internal property names and ingested as `hubspot-contacts`
(`leadflow.ingest.hubspot_export` maps them). Email events come window by window
(`events_window_hours`), from the last pull's end less `events_overlap_minutes` up to now; each
window's pages are one `hubspot-email-events` batch. Each batch's cursor is written in that
batch's own transaction (`ingest_file(commit_with=...)`), so a pull killed midway resumes after
the last batch it committed and loads nothing twice (events are known by their id; a contact
loaded again changes nothing). A batch the ingest rejects stops the pull there, cursor unmoved.
"""

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from leadflow.config import HubSpotPull, LeadflowConfig, PropertyCondition
from leadflow.errors import UserError
from leadflow.hubspot.client import HubSpotClient, SearchCursor, epoch_ms
from leadflow.hubspot.sync import finish_sync, start_sync
from leadflow.ingest import hubspot_export
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)

CONTACTS_CURSOR = "contacts"
EVENTS_CURSOR = "email_events"
# Without `since`, the first pull of email events goes back this far (contacts: all of them).
FIRST_EVENTS_DAYS = 365
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PullStopped(UserError, RuntimeError):
    """The ingest rejected a pulled batch: the pull stops there, its cursor unmoved."""


@dataclass
class PullSummary:
    contacts: int = 0  # contacts pulled (a contact changed during the pull counts twice)
    events: int = 0
    batches: list[dict] = field(default_factory=list)  # each batch's ingest outcome
    contacts_until: str | None = None  # the newest lastmodifieddate pulled, ISO
    events_until: str | None = None  # email events are pulled up to this time, ISO


def pull_properties(config: LeadflowConfig) -> list[str]:
    """What a contacts pull asks HubSpot for: what the export mapping reads, the properties the
    rules test (leadflow's names of HubSpot's standard ones mapped back), and the extras."""
    tested = [
        hubspot_export.internal_name(condition.property)
        for _, condition in config.conditions()
        if isinstance(condition, PropertyCondition)
    ]
    extras = config.hubspot.pull.properties if config.hubspot.pull else []
    return list(dict.fromkeys([*hubspot_export.internal_names(), *tested, *extras]))


def pull(
    workspace: Workspace,
    client: HubSpotClient,
    *,
    now: datetime | None = None,
    on_batch: Callable[[dict], None] | None = None,
) -> PullSummary:
    """Contacts, then email events (if configured), each from where the last pull stopped."""
    settings = _settings(workspace.config)
    now = now or datetime.now(UTC)
    summary = PullSummary()
    sync_id = start_sync(workspace, "pull", now)
    try:
        _pull_contacts(workspace, client, settings, summary, on_batch)
        if settings.email_events:
            _pull_events(workspace, client, settings, summary, now, on_batch)
    except BaseException as error:
        finish_sync(workspace, sync_id, "failed", {**_summary_dict(summary), "error": str(error)})
        raise
    finish_sync(workspace, sync_id, "ok", _summary_dict(summary))
    return summary


def _settings(config: LeadflowConfig) -> HubSpotPull:
    from leadflow.hubspot.connection import NotConnected

    if config.hubspot.pull is None:
        raise NotConnected("hubspot.pull is not in the configuration: nothing to pull")
    return config.hubspot.pull


def _summary_dict(summary: PullSummary) -> dict:
    return {
        "contacts": summary.contacts,
        "events": summary.events,
        "batches": len(summary.batches),
        "contacts_until": summary.contacts_until,
        "events_until": summary.events_until,
    }


def _pull_contacts(
    workspace: Workspace,
    client: HubSpotClient,
    settings: HubSpotPull,
    summary: PullSummary,
    on_batch: Callable[[dict], None] | None,
) -> None:
    stored = read_cursor(workspace, CONTACTS_CURSOR)
    start = _since_ms(settings, None) or 0
    cursor = SearchCursor.from_dict(stored) if stored else SearchCursor(start)
    properties = pull_properties(workspace.config)
    labels = enumeration_labels(client, properties)
    contacts = client.iter_contacts_modified_since(cursor, properties=properties)
    lines: list[str] = []
    for contact in contacts:
        record = {**contact.properties, "hs_object_id": contact.id}
        for name, options in labels.items():
            if record.get(name):
                record[name] = ";".join(options.get(v, v) for v in record[name].split(";"))
        lines.append(json.dumps(record))
        cursor = cursor.advance(contact)
        if len(lines) >= settings.contacts_per_batch:
            batch = _load_batch(workspace, "contacts", lines, CONTACTS_CURSOR, cursor.to_dict())
            _count(summary, batch, on_batch)
            lines = []
    if lines:
        batch = _load_batch(workspace, "contacts", lines, CONTACTS_CURSOR, cursor.to_dict())
        _count(summary, batch, on_batch)
    if cursor.modified_ms:
        summary.contacts_until = _iso(cursor.modified_ms)


# Enumerations whose internal values the export mapping reads as they are.
VALUES_AS_GIVEN = {
    *(key for key in hubspot_export.COLUMNS if hubspot_export.is_internal(key)),
    "hs_email_optout",
}


def enumeration_labels(client: HubSpotClient, properties: list[str]) -> dict[str, dict[str, str]]:
    """value -> label of the pulled enumerations (`hs_persona`'s `persona_1` is "Job seeker"):
    the pull writes labels, as an export has them, so that rules read both alike."""
    wanted = set(properties) - VALUES_AS_GIVEN
    return {
        definition.name: {option.value: option.label for option in definition.options}
        for definition in client.list_contact_properties()
        if definition.name in wanted and definition.options and definition.type == "enumeration"
    }


def _pull_events(
    workspace: Workspace,
    client: HubSpotClient,
    settings: HubSpotPull,
    summary: PullSummary,
    now: datetime,
    on_batch: Callable[[dict], None] | None,
) -> None:
    stored = read_cursor(workspace, EVENTS_CURSOR)
    end = epoch_ms(now)
    if stored:
        start = int(stored["until_ms"]) - int(settings.events_overlap_minutes * 60_000)
    else:
        start = _since_ms(settings, now - timedelta(days=FIRST_EVENTS_DAYS))
    window = int(settings.events_window_hours * 3_600_000)
    while start < end:
        until = min(start + window, end)
        # The API's bounds are both inclusive: this window ends a millisecond before the next.
        events = client.iter_email_events(start, until - 1)
        lines = [json.dumps(event.raw) for event in events]
        cursor = {"until_ms": until}
        if lines:
            batch = _load_batch(workspace, "email-events", lines, EVENTS_CURSOR, cursor)
            _count(summary, batch, on_batch)
        else:
            with workspace.engine.begin() as db:
                save_cursor(db, EVENTS_CURSOR, cursor)
        summary.events_until = _iso(until)
        start = until


def _count(summary: PullSummary, batch: dict, on_batch: Callable[[dict], None] | None) -> None:
    summary.batches.append(batch)
    if batch["kind"] == "contacts":
        summary.contacts += batch["rows_total"]
    else:
        summary.events += batch["rows_total"]
    if on_batch:
        on_batch(batch)


def _load_batch(
    workspace: Workspace, what: str, lines: Iterable[str], cursor_name: str, cursor: dict
) -> dict:
    """Ingest one pulled page range, the cursor moving with it (the file is removed after);
    returns the ingest's outcome."""
    from leadflow.ingest.load import BatchRejected, ingest_file
    from leadflow.ingest.readers import InputFileError
    from leadflow.ingest.sources import InputColumnsError

    folder = pulled_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{what}-{stamp}.jsonl"
    partial = path.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)
    format_name = "hubspot-contacts" if what == "contacts" else "hubspot-email-events"

    def move_cursor(db: Connection) -> None:
        save_cursor(db, cursor_name, cursor)

    try:
        result = ingest_file(workspace, path, format=format_name, commit_with=move_cursor)
    except (BatchRejected, InputFileError, InputColumnsError) as rejection:
        raise PullStopped(
            f"HubSpot pull stopped: {rejection} (the pull resumes from this batch next time)"
        ) from None
    finally:
        path.unlink(missing_ok=True)
    if result.status != "loaded":  # nothing new in it: nothing to commit it with
        with workspace.engine.begin() as db:
            move_cursor(db)
    log.info("HubSpot %s: %s, %d rows", what, result.status, result.rows_total)
    return result.summary()


def pulled_dir(workspace: Workspace) -> Path:
    """Where pulled pages wait for their ingest (on this machine; empty between pulls)."""
    return workspace.local_dir / "hubspot" / "pulled"


def read_cursor(workspace: Workspace, name: str) -> dict | None:
    with workspace.engine.connect() as db:
        value = db.execute(
            text("SELECT value FROM hubspot_cursor WHERE name = :name"), {"name": name}
        ).scalar_one_or_none()
    return json.loads(value) if value else None


def save_cursor(db: Connection, name: str, value: dict) -> None:
    db.execute(
        text(
            """INSERT INTO hubspot_cursor (name, value, updated_at) VALUES (:name, :value, :at)
               ON CONFLICT (name) DO UPDATE SET value = excluded.value,
                                                updated_at = excluded.updated_at"""
        ).bindparams(bindparam("at", type_=UTCDateTime())),
        {"name": name, "value": json.dumps(value), "at": datetime.now(UTC)},
    )


def _since_ms(settings: HubSpotPull, default: datetime | None) -> int | None:
    if settings.since is not None:
        return epoch_ms(datetime(settings.since.year, settings.since.month, settings.since.day))
    return epoch_ms(default) if default is not None else None


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="seconds")
