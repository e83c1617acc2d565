"""A local HubSpot stand-in for tests: the endpoints leadflow uses, in HubSpot's documented shapes.

A FastAPI app over an in-memory portal (contacts, property definitions, marketing email events),
served by uvicorn on 127.0.0.1 (a free port) in a background thread. Tests load the portal, inject
faults and read what was asked:

- `POST /crm/v3/objects/contacts/search`: filterGroups (AND inside a group, OR between groups,
  HubSpot's operators and limits), one sort rule, `limit` up to 200, `after` paging, the 10,000
  result cap (400 beyond it). Ties of the sort value come in an order that depends on the query,
  as nothing in HubSpot's docs promises more;
- `GET /crm/v3/properties/contacts` and `GET /crm/v3/properties/contacts/{name}`;
- `GET /email/public/v1/events`: newest first, `startTimestamp`/`endTimestamp` inclusive,
  `limit` up to 1000, an opaque `offset` tied to the query, `hasMore`;
- `POST /crm/v3/objects/contacts/batch/read`: at most 100 ids, the `properties` asked for;
  unknown ids are left out of `results` and named in `errors` (207 Multi-Status);
- `POST /crm/v3/objects/contacts/batch/update`: at most 100 inputs; invalid, unknown or
  read-only properties refuse the whole batch (400, HubSpot's error body); unknown or
  test-chosen ids fail alone (207 Multi-Status); `lastmodifieddate` is bumped on update; the
  lifecycle stage moves forward only (a move back is ignored unless cleared first); the
  `leadflow_marketing_request` property is acted on as a HubSpot workflow would.

Every endpoint wants `Authorization: Bearer <token>` (401 with HubSpot's body otherwise).
Faults: `fail_next` (429 with Retry-After, or a 5xx, for the next N requests), `fail_ids`
(ids failing inside a batch), `enforce_rate_limit` (429 beyond N requests in a window),
`echo_token` (error messages quote the Authorization header, to test the client's masking).
Records: `requests` (endpoint, body, params, arrival time), `count(endpoint)`, `bodies(endpoint)`.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import operator
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

TOKEN = "pat-na1-standin-0000-secret-token"

SEARCH = "POST /crm/v3/objects/contacts/search"
BATCH_UPDATE = "POST /crm/v3/objects/contacts/batch/update"
BATCH_READ = "POST /crm/v3/objects/contacts/batch/read"
PROPERTIES = "GET /crm/v3/properties/contacts"
PROPERTY = "GET /crm/v3/properties/contacts/{propertyName}"
EMAIL_EVENTS = "GET /email/public/v1/events"

SEARCH_CAP = 10_000
SEARCH_PAGE_MAX = 200
BATCH_MAX = 100
EVENTS_PAGE_MAX = 1000
DEFAULT_SEARCH_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def iso_ms(ms: int) -> str:
    """HubSpot's datetime format: `2024-09-11T13:27:39.356Z`."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _property(
    name: str,
    label: str,
    type_: str = "string",
    field_type: str = "text",
    options: tuple[tuple[str, str], ...] = (),
    read_only: bool = False,
    hubspot_defined: bool = True,
    group: str = "contactinformation",
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": "",
        "groupName": group,
        "options": [
            {"label": text, "value": value, "displayOrder": i, "hidden": False}
            for i, (value, text) in enumerate(options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": name == "hs_object_id",
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "createdAt": "2020-01-01T00:00:00.000Z",
        "updatedAt": "2020-01-01T00:00:00.000Z",
        "archived": False,
    }


BOOL = (("true", "Yes"), ("false", "No"))


def default_properties() -> dict[str, dict[str, Any]]:
    """The contact properties of a fresh portal (the ones leadflow reads or writes)."""
    definitions = [
        _property("email", "Email"),
        _property("firstname", "First Name"),
        _property("lastname", "Last Name"),
        _property("phone", "Phone Number", field_type="phonenumber"),
        _property("mobilephone", "Mobile Phone Number", field_type="phonenumber"),
        _property("company", "Company Name"),
        _property("jobtitle", "Job Title"),
        _property("industry", "Industry"),
        _property("country", "Country/Region"),
        _property(
            "hs_persona",
            "Persona",
            "enumeration",
            "radio",
            (("persona_1", "Job seeker"), ("persona_2", "Buyer")),
        ),
        _property(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            tuple((s, s.title()) for s in STAGES),
        ),
        _property(
            "hs_marketable_status",
            "Marketing contact status",
            "enumeration",
            "booleancheckbox",
            BOOL,
            read_only=True,
        ),
        _property(
            "hs_marketable_until_renewal",
            "Marketing contact until next update",
            "enumeration",
            "booleancheckbox",
            BOOL,
            read_only=True,
        ),
        _property("createdate", "Create Date", "datetime", "date", read_only=True),
        _property("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
        _property("hs_object_id", "Record ID", "number", "number", read_only=True),
        _property("hs_object_source", "Record source", read_only=True),
        _property("hs_object_source_label", "Record source label", read_only=True),
        _property("hs_object_source_detail_1", "Record source detail 1", read_only=True),
        _property(
            "hs_analytics_source",
            "Original Source",
            "enumeration",
            "select",
            tuple(
                (v, v.replace("_", " ").title())
                for v in (
                    "ORGANIC_SEARCH",
                    "PAID_SEARCH",
                    "EMAIL_MARKETING",
                    "SOCIAL_MEDIA",
                    "REFERRALS",
                    "OTHER_CAMPAIGNS",
                    "DIRECT_TRAFFIC",
                    "OFFLINE",
                    "PAID_SOCIAL",
                )
            ),
        ),
        _property("hs_analytics_source_data_1", "Original Source Drill-Down 1", read_only=True),
        _property(
            "hs_email_optout", "Unsubscribed from all email", "enumeration", "booleancheckbox", BOOL
        ),
        *(
            _property(
                f"hs_v2_date_entered_{stage}",
                f'Date entered "{stage.title()} (Lifecycle Stage Pipeline)"',
                "datetime",
                "date",
                read_only=True,
            )
            for stage in STAGES
        ),
        _property(
            "leadflow_marketing_request",
            "leadflow marketing request",
            "enumeration",
            "select",
            (("marketing", "Marketing"), ("non_marketing_at_renewal", "Non-marketing at renewal")),
            hubspot_defined=False,
            group="leadflow",
        ),
    ]
    return {d["name"]: d for d in definitions}


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error body: status, message, correlationId, category (+ errors, context…)."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


@dataclass
class Fault:
    status: int
    retry_after: float | None
    endpoint: str | None


@dataclass
class RequestRecord:
    endpoint: str
    body: Any
    params: dict[str, str]
    at: float  # time.monotonic() at arrival


class FakeClock:
    """The client's monotonic() and sleep() for one thread: waits cost nothing, are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Portal:
    """The in-memory HubSpot account behind the stand-in; every method is thread-safe."""

    def __init__(self, token: str = TOKEN) -> None:
        self.lock = threading.RLock()
        self.reset(token)

    # --- state ---------------------------------------------------------------------------

    def reset(self, token: str = TOKEN) -> None:
        with self.lock:
            self.token = token
            self.contacts: dict[str, dict[str, Any]] = {}
            self.properties = default_properties()
            self.email_events: list[dict[str, Any]] = []
            self.next_id = 1001
            self.version = 0  # bumped on every change: invalidates the cached result orders
            self._order_cache: dict[str, tuple[int, list[tuple[str, dict[str, Any]]]]] = {}
            self.faults: deque[Fault] = deque()
            self.failing_ids: dict[str, tuple[str, str]] = {}
            self.requests: list[RequestRecord] = []
            self.rate_limit: tuple[int, float] | None = None
            self.echo_token = False
            self.lifecycle_forward_only = True
            self.marketing_workflow = True
            self.on_request: Callable[[str, Any], None] | None = None
            self.now_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    def define_property(
        self,
        name: str,
        label: str | None = None,
        type_: str = "string",
        field_type: str = "text",
        options: tuple[tuple[str, str], ...] = (),
        read_only: bool = False,
    ) -> None:
        with self.lock:
            self.properties[name] = _property(
                name, label or name, type_, field_type, options, read_only, hubspot_defined=False
            )

    def add_contact(
        self,
        properties: dict[str, Any] | None = None,
        *,
        id: str | int | None = None,
        created_ms: int | None = None,
        modified_ms: int | None = None,
    ) -> str:
        """Add a contact; returns its id. Times default to now; values are kept as strings."""
        with self.lock:
            if id is None:
                id = self.next_id
            record_id = str(id)
            self.next_id = max(self.next_id, int(record_id)) + 1
            created = created_ms if created_ms is not None else self.now_ms()
            modified = modified_ms if modified_ms is not None else created
            props = {k: None if v is None else str(v) for k, v in (properties or {}).items()}
            props.update(
                hs_object_id=record_id,
                createdate=iso_ms(created),
                lastmodifieddate=iso_ms(modified),
            )
            self.version += 1
            self.contacts[record_id] = {
                "properties": props,
                "_created": created,
                "_id": int(record_id),
                "_tie": hash(("tie", record_id)),
                "_modified": modified,
            }
            return record_id

    def add_email_event(
        self, type_: str, recipient: str, created_ms: int, **fields: Any
    ) -> dict[str, Any]:
        """An Email Events API event (id, created, type, recipient, portalId, appId…)."""
        with self.lock:
            event = {
                "id": fields.pop("id", str(uuid.uuid4())),
                "created": created_ms,
                "type": type_,
                "recipient": recipient,
                "portalId": 62515,
                "appId": 113,
                "appName": "BatchEmail",
                "emailCampaignId": fields.pop("emailCampaignId", 2001),
                "sentBy": {"id": str(uuid.uuid4()), "created": created_ms},
                **fields,
            }
            self.email_events.append(event)
            return event

    def contact(self, record_id: str | int) -> dict[str, Any]:
        with self.lock:
            return dict(self.contacts[str(record_id)]["properties"])

    def set_modified(self, record_id: str | int, modified_ms: int) -> None:
        """Move a contact's lastmodifieddate, as an edit in HubSpot would."""
        with self.lock:
            record = self.contacts[str(record_id)]
            record["_modified"] = modified_ms
            record["properties"]["lastmodifieddate"] = iso_ms(modified_ms)
            self.version += 1

    def renew(self) -> None:
        """A contract renewal: contacts marked non-marketing at the next update become so."""
        with self.lock:
            for record in self.contacts.values():
                props = record["properties"]
                if props.get("hs_marketable_until_renewal") == "true":
                    props["hs_marketable_status"] = "false"
                    props["hs_marketable_until_renewal"] = "false"
                    self._touch(record)

    # --- faults and records --------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 429,
        *,
        retry_after: float | None = 1,
        endpoint: str | None = None,
    ) -> None:
        """The next `count` requests (to `endpoint`, or any) answer `status`."""
        with self.lock:
            self.faults.extend(Fault(status, retry_after, endpoint) for _ in range(count))

    def fail_ids(
        self,
        *ids: str | int,
        category: str = "VALIDATION_ERROR",
        message: str = "Record could not be updated",
    ) -> None:
        """These ids fail inside a batch update (207) while the others succeed."""
        with self.lock:
            for record_id in ids:
                self.failing_ids[str(record_id)] = (category, message)

    def enforce_rate_limit(self, max_requests: int, period: float) -> None:
        """Answer 429 to a request arriving when `max_requests` already arrived in `period` s."""
        with self.lock:
            self.rate_limit = (max_requests, period)

    def count(self, endpoint: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if endpoint in (None, r.endpoint))

    def bodies(self, endpoint: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests if r.endpoint == endpoint]

    def arrivals(self, endpoint: str | None = None) -> list[float]:
        with self.lock:
            return [r.at for r in self.requests if endpoint in (None, r.endpoint)]

    # --- request handling ----------------------------------------------------------------

    def _message(self, text: str, authorization: str) -> str:
        return f"{text} (Authorization was: {authorization})" if self.echo_token else text

    def admit(
        self, endpoint: str, body: Any, params: dict[str, str], authorization: str
    ) -> Response | None:
        """Record the request; answer it here if the rate limit, auth or a fault says so."""
        at = time.monotonic()
        with self.lock:
            self.requests.append(RequestRecord(endpoint, body, params, at))
            hook = self.on_request
        if hook is not None:
            hook(endpoint, body)
        with self.lock:
            if self.rate_limit is not None:
                limit, period = self.rate_limit
                recent = [r.at for r in self.requests[:-1] if r.at > at - period]
                if len(recent) >= limit:
                    wait = max(recent[-limit] + period - at, 0.001)
                    body = error_body(
                        "RATE_LIMIT",
                        self._message(
                            "You have reached your ten_secondly_rolling limit.", authorization
                        ),
                        errorType="RATE_LIMIT",
                        policyName="TEN_SECONDLY_ROLLING",
                    )
                    return JSONResponse(body, 429, headers={"Retry-After": f"{wait:.3f}"})
            if authorization != f"Bearer {self.token}":
                text = (
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at "
                    "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
                )
                body = error_body("INVALID_AUTHENTICATION", self._message(text, authorization))
                return JSONResponse(body, 401)
            for fault in self.faults:
                if fault.endpoint in (None, endpoint):
                    self.faults.remove(fault)
                    return self._fault_response(fault, authorization)
        return None

    def _fault_response(self, fault: Fault, authorization: str) -> Response:
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.status == 429:
            body = error_body(
                "RATE_LIMIT",
                self._message("You have reached your secondly limit.", authorization),
                errorType="RATE_LIMIT",
                policyName="SECONDLY",
            )
            return JSONResponse(body, 429, headers=headers)
        if fault.status == 502:
            text = self._message("502 Bad Gateway", authorization)
            return Response(f"<html><body>{text}</body></html>", 502, media_type="text/html")
        text = self._message("internal error", authorization)
        return JSONResponse(error_body("INTERNAL_ERROR", text), fault.status, headers=headers)

    def _validation(self, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(error_body("VALIDATION_ERROR", message, **extra), 400)

    # --- search --------------------------------------------------------------------------

    def _getter(self, name: str) -> Callable[[dict[str, Any]], Any]:
        """Reads a property typed for comparison: ms for datetimes, float for numbers, strings
        lower-cased except enumerations (HubSpot compares those case-sensitively)."""
        if name == "lastmodifieddate":
            return operator.itemgetter("_modified")
        if name == "createdate":
            return operator.itemgetter("_created")
        if name == "hs_object_id":
            return operator.itemgetter("_id")
        typed = self._typer(name)

        def get(record: dict[str, Any]) -> Any:
            raw = record["properties"].get(name)
            return None if raw is None or raw == "" else typed(raw)

        return get

    def _typer(self, name: str) -> Callable[[Any], Any]:
        kind = self.properties[name]["type"]
        if kind in ("datetime", "date"):
            return to_ms
        if kind == "number":
            return float
        if kind in ("enumeration", "bool"):
            return str
        return lambda value: str(value).lower()

    def _predicate(self, flt: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
        """One filter compiled once per request (12,000 contacts are scanned per page)."""
        name, op = flt["propertyName"], flt.get("operator", "EQ")
        get, typed = self._getter(name), self._typer(name)
        if op == "HAS_PROPERTY":
            return lambda r: get(r) is not None
        if op == "NOT_HAS_PROPERTY":
            return lambda r: get(r) is None
        if op in ("IN", "NOT_IN"):
            values = {typed(v) for v in flt.get("values") or ()}
            return lambda r: (get(r) in values) == (op == "IN")
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(flt.get("value", "")).lower()

            def contains(r: dict[str, Any]) -> bool:
                value = get(r)
                found = value is not None and fnmatch.fnmatch(str(value).lower(), pattern)
                return found == (op == "CONTAINS_TOKEN")

            return contains
        low = typed(flt.get("value"))
        if op == "BETWEEN":
            high = typed(flt.get("highValue"))
            return lambda r: (v := get(r)) is not None and low <= v <= high
        if op == "NEQ":
            return lambda r: get(r) != low
        compare = {
            "EQ": operator.eq,
            "LT": operator.lt,
            "LTE": operator.le,
            "GT": operator.gt,
            "GTE": operator.ge,
        }[op]
        return lambda r: (v := get(r)) is not None and compare(v, low)

    def search(self, body: Any, raw_size: int) -> Response:
        if not isinstance(body, dict):
            return self._validation("Invalid input JSON on line 1")
        if raw_size > 3000:
            return self._validation("Query exceeds the 3000 character limit.")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= SEARCH_PAGE_MAX:
            return self._validation(f"limit must be between 1 and {SEARCH_PAGE_MAX}, got {limit}")
        try:
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            return self._validation("after must be formatted as an integer")
        if after >= SEARCH_CAP:
            return self._validation(
                f"The search endpoints are limited to {SEARCH_CAP} total results; "
                f"cannot page beyond after={after}"
            )
        groups = body.get("filterGroups") or []
        counts = [len(g.get("filters") or []) for g in groups]
        if len(groups) > 5 or any(c > 6 for c in counts) or sum(counts) > 18:
            return self._validation(
                "Too many filterGroups or filters (max 5 groups, 6 per group, 18)"
            )
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return self._validation("Only one sorting rule can be applied to any search.")
        names = [f["propertyName"] for g in groups for f in g.get("filters") or []]
        sort = sorts[0] if sorts else None
        if isinstance(sort, str):  # the official client sends sort strings: "prop" / "-prop"
            sort = {
                "propertyName": sort.lstrip("-"),
                "direction": "DESCENDING" if sort.startswith("-") else "ASCENDING",
            }
        unknown = [
            n
            for n in [*names, *([sort["propertyName"]] if sort else [])]
            if n not in self.properties
        ]
        if unknown:
            return self._validation(f"Unable to find property {unknown[0]}")
        wanted = body.get("properties") or list(DEFAULT_SEARCH_PROPERTIES)
        salt = json.dumps([groups, sorts], sort_keys=True)
        with self.lock:
            cached = self._order_cache.get(salt)
            if cached is not None and cached[0] == self.version:
                matching = cached[1]  # the same query paged on: same order, as HubSpot keeps it
            else:
                try:
                    matching = self._ordered(groups, sort, hash(salt))
                except (TypeError, ValueError, KeyError):
                    return self._validation("There was a problem with a filter value.")
                self._order_cache = {salt: (self.version, matching)}
            total = len(matching)
            page = matching[after : after + limit]
            results = [self._object(record_id, record, wanted) for record_id, record in page]
        payload: dict[str, Any] = {"total": total, "results": results}
        if after + limit < total:
            payload["paging"] = {
                "next": {"after": str(after + limit), "link": f"?after={after + limit}"}
            }
        return JSONResponse(payload)

    def _ordered(
        self, groups: list[dict[str, Any]], sort: dict[str, Any] | None, salt: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """The matching contacts in result order. Equal sort values come in an order that
        depends on the query (`salt`): HubSpot documents no tie order."""
        compiled = [[self._predicate(f) for f in g.get("filters") or []] for g in groups]
        matching = [
            (record_id, record)
            for record_id, record in self.contacts.items()
            if not compiled or any(all(p(record) for p in g) for g in compiled)
        ]
        if sort is None:
            matching.sort(key=lambda item: item[1]["_id"])
            return matching
        get = self._getter(sort["propertyName"])

        def key(item: tuple[str, dict[str, Any]]) -> tuple[bool, Any, int]:
            value = get(item[1])
            return (value is None, 0 if value is None else value, item[1]["_tie"] ^ salt)

        matching.sort(key=key, reverse=sort.get("direction", "ASCENDING") == "DESCENDING")
        return matching

    def _object(self, record_id: str, record: dict[str, Any], wanted: Any) -> dict[str, Any]:
        props = record["properties"]
        return {
            "id": record_id,
            "properties": {name: props.get(name) for name in wanted},
            "createdAt": props["createdate"],
            "updatedAt": props["lastmodifieddate"],
            "archived": False,
        }

    # --- batch update --------------------------------------------------------------------

    def _touch(self, record: dict[str, Any]) -> None:
        """HubSpot bumps lastmodifieddate on every change (strictly later here)."""
        self.version += 1
        record["_modified"] = max(self.now_ms(), record["_modified"] + 1)
        record["properties"]["lastmodifieddate"] = iso_ms(record["_modified"])

    def _invalid_properties(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = []
        for item in inputs:
            for name, value in (item.get("properties") or {}).items():
                definition = self.properties.get(name)
                if definition is None:
                    problems.append(
                        (name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                    )
                elif definition["modificationMetadata"]["readOnlyValue"]:
                    problems.append(
                        (
                            name,
                            "READ_ONLY_VALUE",
                            f'"{name}" is a read only property; its value cannot be set.',
                        )
                    )
                elif definition["type"] == "enumeration" and value not in ("", None):
                    allowed = {o["value"] for o in definition["options"]}
                    if value not in allowed:
                        problems.append(
                            (
                                name,
                                "INVALID_OPTION",
                                f"{value} was not one of the allowed options: {sorted(allowed)}",
                            )
                        )
        return [
            {"isValid": False, "message": message, "error": code, "name": name}
            for name, code, message in problems
        ]

    def batch_update(self, body: Any, authorization: str) -> Response:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return self._validation("inputs must be a non-empty list")
        if len(inputs) > BATCH_MAX:
            return self._validation(f"Batch input limit exceeded: {len(inputs)} > {BATCH_MAX}")
        ids = [str(item.get("id")) for item in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            return self._validation(
                f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique"
            )
        with self.lock:
            problems = self._invalid_properties(inputs)
            if problems:
                first = problems[0]
                return self._validation(
                    self._message(
                        f"Property values were not valid: {json.dumps(problems)}", authorization
                    ),
                    errors=[
                        {
                            "message": p["message"],
                            "code": p["error"],
                            "context": {"propertyName": [p["name"]]},
                        }
                        for p in problems
                    ],
                    context={"propertyName": [first["name"]]},
                )
            started = iso_ms(self.now_ms())
            results, errors = [], []
            for item in inputs:
                record_id = str(item["id"])
                trace = item.get("objectWriteTraceId")
                context = (
                    {"objectWriteTraceId": [str(trace)]}
                    if trace is not None
                    else {"ids": [record_id]}
                )
                if record_id in self.failing_ids or record_id not in self.contacts:
                    category, message = self.failing_ids.get(
                        record_id, ("OBJECT_NOT_FOUND", f"Object with id {record_id} not found")
                    )
                    errors.append(
                        {
                            "status": "error",
                            "category": category,
                            "message": self._message(message, authorization),
                            "context": context,
                        }
                    )
                    continue
                record = self.contacts[record_id]
                changed = self._apply(record, item.get("properties") or {})
                results.append(
                    self._object(record_id, record, [*changed, "lastmodifieddate", "hs_object_id"])
                )
        return self._batch_answer(results, errors, started)

    def batch_read(self, body: Any, authorization: str) -> Response:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return self._validation("inputs must be a non-empty list")
        if len(inputs) > BATCH_MAX:
            return self._validation(f"Batch input limit exceeded: {len(inputs)} > {BATCH_MAX}")
        wanted = body.get("properties") or list(DEFAULT_SEARCH_PROPERTIES)
        started = iso_ms(self.now_ms())
        results, errors = [], []
        with self.lock:
            for item in inputs:
                record_id = str(item.get("id"))
                record = self.contacts.get(record_id)
                if record is None:
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "message": self._message(
                                "Could not get some CONTACT objects, they "
                                "may be deleted or not exist.",
                                authorization,
                            ),
                            "context": {"ids": [record_id]},
                        }
                    )
                    continue
                results.append(self._object(record_id, record, wanted))
        return self._batch_answer(results, errors, started)

    def _batch_answer(self, results: list, errors: list, started: str) -> Response:
        """A batch endpoint's answer: 200 with the results, or 207 with the errors beside them."""
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso_ms(self.now_ms()),
        }
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
        return JSONResponse(payload, 207 if errors else 200)

    def _apply(self, record: dict[str, Any], properties: dict[str, Any]) -> list[str]:
        props = record["properties"]
        for name, value in properties.items():
            value = None if value in ("", None) else str(value)
            if (
                name == "lifecyclestage"
                and self.lifecycle_forward_only
                and value
                and props.get(name)
            ):
                current = props[name]
                if (
                    current in STAGES
                    and value in STAGES
                    and STAGES.index(value) < STAGES.index(current)
                ):
                    continue  # HubSpot ignores a move back that was not cleared first
            props[name] = value
            if name == "leadflow_marketing_request" and self.marketing_workflow and value:
                self._marketing_workflow(props, value)
        self._touch(record)
        return list(properties)

    @staticmethod
    def _marketing_workflow(props: dict[str, Any], request: str) -> None:
        """What a 'Set marketing contact status' workflow on the request property does."""
        if request == "marketing":
            props["hs_marketable_status"] = "true"
            props["hs_marketable_until_renewal"] = "false"
        elif request == "non_marketing_at_renewal" and props.get("hs_marketable_status") == "true":
            props["hs_marketable_until_renewal"] = "true"

    # --- email events --------------------------------------------------------------------

    def email_events_page(self, params: dict[str, str]) -> Response:
        try:
            limit = int(params.get("limit", 10))
            start = int(params["startTimestamp"]) if "startTimestamp" in params else None
            end = int(params["endTimestamp"]) if "endTimestamp" in params else None
        except ValueError:
            return self._validation("startTimestamp, endTimestamp and limit must be integers")
        if not 1 <= limit <= EVENTS_PAGE_MAX:
            return self._validation(f"limit must be between 1 and {EVENTS_PAGE_MAX}")
        query = {k: v for k, v in params.items() if k not in ("offset", "limit")}
        query_key = json.dumps(query, sort_keys=True)
        position = 0
        if "offset" in params:
            try:
                token = json.loads(base64.urlsafe_b64decode(params["offset"]))
                position = int(token["p"])
            except (ValueError, KeyError, TypeError):
                return self._validation("Invalid offset")
            if token.get("q") != query_key:
                return self._validation("offset does not belong to this query")
        with self.lock:
            selected = [
                e
                for e in self.email_events
                if (start is None or e["created"] >= start)
                and (end is None or e["created"] <= end)
                and params.get("eventType") in (None, e["type"])
                and params.get("recipient") in (None, e["recipient"])
                and params.get("campaignId") in (None, str(e["emailCampaignId"]))
            ]
        selected.sort(key=lambda e: (-e["created"], e["id"]))
        page = selected[position : position + limit]
        following = position + len(page)
        offset = base64.urlsafe_b64encode(
            json.dumps({"p": following, "q": query_key}).encode()
        ).decode()
        return JSONResponse(
            {"events": page, "hasMore": following < len(selected), "offset": offset}
        )


def build_app(portal: Portal) -> FastAPI:
    app = FastAPI(title="HubSpot stand-in", docs_url=None, redoc_url=None, openapi_url=None)

    async def admitted(request: Request, endpoint: str) -> tuple[Any, int, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        params = dict(request.query_params)
        authorization = request.headers.get("authorization", "")
        return body, len(raw), portal.admit(endpoint, body, params, authorization)

    @app.post("/crm/v3/objects/contacts/search")
    async def search(request: Request) -> Response:
        body, size, early = await admitted(request, SEARCH)
        return early or portal.search(body, size)

    @app.post("/crm/v3/objects/contacts/batch/update")
    async def batch_update(request: Request) -> Response:
        body, _, early = await admitted(request, BATCH_UPDATE)
        return early or portal.batch_update(body, request.headers.get("authorization", ""))

    @app.post("/crm/v3/objects/contacts/batch/read")
    async def batch_read(request: Request) -> Response:
        body, _, early = await admitted(request, BATCH_READ)
        return early or portal.batch_read(body, request.headers.get("authorization", ""))

    @app.get("/crm/v3/properties/contacts")
    async def properties(request: Request) -> Response:
        _, _, early = await admitted(request, PROPERTIES)
        with portal.lock:
            return early or JSONResponse({"results": list(portal.properties.values())})

    @app.get("/crm/v3/properties/contacts/{name}")
    async def one_property(name: str, request: Request) -> Response:
        _, _, early = await admitted(request, PROPERTY)
        if early:
            return early
        with portal.lock:
            definition = portal.properties.get(name)
        if definition is None:
            body = error_body(
                "OBJECT_NOT_FOUND", f"Unable to find property {name} for object contacts"
            )
            return JSONResponse(body, 404)
        return JSONResponse(definition)

    @app.get("/email/public/v1/events")
    async def email_events(request: Request) -> Response:
        _, _, early = await admitted(request, EMAIL_EVENTS)
        return early or portal.email_events_page(dict(request.query_params))

    return app


class StandIn:
    """The app served by uvicorn on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self) -> None:
        self.portal = Portal()
        self.app = build_app(self.portal)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="hubspot-standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the HubSpot stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)


@contextmanager
def serve() -> Iterator[StandIn]:
    """A running stand-in for the duration of the block (a session fixture wraps this)."""
    server = StandIn().start()
    try:
        yield server
    finally:
        server.stop()
