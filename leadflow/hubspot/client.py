"""A small synchronous HubSpot client on httpx: exactly the calls leadflow's closed loop needs.

- contacts modified since a time (CRM search), pulled without loss or repeat across the search
  API's 10,000-result cap and across equal `lastmodifieddate` values;
- the contact property definitions (which lifecycle stages a portal has);
- marketing email events (Email Events API v1, `hasMore`/`offset` paging);
- contact batch updates, at most 100 inputs each, with an outcome per record.

Every request goes through one client-side rate limiter (HubSpot counts per app and account),
searches through a second one (the search endpoints have their own, lower limit), and a retry
loop for 429 (honouring `Retry-After`), 5xx and connection errors. The private-app token is held
by the auth object only: no message, repr or log record of this module contains it, and a
response that echoes it has it masked. Facts and sources: docs/hubspot-api.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from leadflow.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
BATCH_UPDATE_PATH = "/crm/v3/objects/contacts/batch/update"
BATCH_READ_PATH = "/crm/v3/objects/contacts/batch/read"
PROPERTIES_PATH = "/crm/v3/properties/contacts"
EMAIL_EVENTS_PATH = "/email/public/v1/events"

SEARCH_PAGE_MAX = 200  # objects per search page
SEARCH_RESULT_CAP = 10_000  # results one search query can page through
BATCH_UPDATE_MAX = 100  # inputs per batch request (update and read)
EMAIL_EVENTS_PAGE_MAX = 1000  # events per Email Events page
MASK = "***"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


# --- errors ----------------------------------------------------------------------------------


class HubSpotError(UserError):
    """Base of this client's errors. Messages are one line naming the endpoint and status,
    never the token."""

    def __init__(self, message: str, *, endpoint: str, status: int | None):
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class HubSpotAPIError(HubSpotError):
    """HubSpot answered an error that retrying does not cure (4xx other than 429)."""

    def __init__(
        self,
        *,
        endpoint: str,
        status: int,
        category: str,
        message: str,
        correlation_id: str | None = None,
    ):
        text = f"HubSpot {endpoint} answered {status}"
        text += f" {category}: {message}" if category else f": {message}"
        super().__init__(text, endpoint=endpoint, status=status)
        self.category = category
        self.hubspot_message = message
        self.correlation_id = correlation_id


class HubSpotAuthError(HubSpotAPIError):
    """401/403: the token is wrong, expired or lacks a scope. Never retried."""


class HubSpotRetriesExhausted(HubSpotError):
    """Every attempt met a 429, a 5xx or a connection error.

    `partial`, for a batch update, holds the outcome of the batches sent before this one.
    """

    def __init__(self, *, endpoint: str, status: int | None, attempts: int, detail: str):
        last = f"status {status}" if status is not None else "no answer"
        super().__init__(
            f"HubSpot {endpoint}: gave up after {attempts} attempts; last: {last} ({detail})",
            endpoint=endpoint,
            status=status,
        )
        self.attempts = attempts
        self.partial: BatchUpdateResult | None = None


# --- rate limiting ---------------------------------------------------------------------------


class RateLimiter:
    """At most `max_requests` requests in any window of `period` seconds; thread-safe.

    A sliding window counted from when each request *ended*, and with requests still in flight
    counted too: HubSpot counts arrivals, an arrival is always before the end of the request that
    carried it, so whatever the network latency HubSpot never sees more than `max_requests` in a
    window. `clock` and `sleep` are injectable so tests run without waiting.
    """

    def __init__(
        self,
        max_requests: int,
        period: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ):
        if max_requests < 1 or period <= 0:
            raise ValueError("a rate limit needs max_requests >= 1 and period > 0")
        self.max_requests = max_requests
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._ended: deque[float] = deque()
        self._in_flight = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter({self.max_requests} per {self.period} s)"

    def acquire(self) -> None:
        """Block until a request may start; it then holds a slot until release()."""
        while True:
            with self._lock:
                now = self._clock()
                while self._ended and self._ended[0] <= now - self.period:
                    self._ended.popleft()
                if len(self._ended) + self._in_flight < self.max_requests:
                    self._in_flight += 1
                    return
                # Full: wait for the oldest ended request to leave the window (or, if every
                # slot is in flight, poll briefly for one to end).
                wait = self._ended[0] + self.period - now if self._ended else self.period / 20
            self._sleep(max(wait, 1e-4))

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._ended.append(self._clock())


# --- results ---------------------------------------------------------------------------------


def epoch_ms(value: datetime | int) -> int:
    """Epoch milliseconds for a datetime (naive means UTC) or an int already in ms."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)


def parse_datetime_ms(text: str) -> int:
    """HubSpot datetimes come as ISO-8601 (`2024-09-11T13:27:39.356Z`) or epoch ms strings."""
    text = str(text).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(frozen=True)
class Contact:
    """A contact as the search API returns it: the `properties` asked for, as strings or None."""

    id: str
    properties: Mapping[str, str | None]
    created_at: str | None = None
    updated_at: str | None = None
    archived: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Contact:
        return cls(
            id=str(data["id"]),
            properties=dict(data.get("properties") or {}),
            created_at=data.get("createdAt"),
            updated_at=data.get("updatedAt"),
            archived=bool(data.get("archived", False)),
        )

    @property
    def modified_ms(self) -> int:
        """`lastmodifieddate` in epoch ms: the key the incremental pull orders on."""
        value = self.properties.get("lastmodifieddate") or self.updated_at
        if not value:
            raise ValueError(f"contact {self.id} has no lastmodifieddate")
        return parse_datetime_ms(value)


@dataclass(frozen=True)
class SearchPage:
    total: int
    results: tuple[Contact, ...]
    next_after: str | None


@dataclass(frozen=True)
class SearchCursor:
    """Where an incremental pull resumes: contacts modified at or after `modified_ms`, except
    the ids already taken at exactly that millisecond. Persist it with to_dict/from_dict."""

    modified_ms: int
    ids_at_modified: frozenset[str] = frozenset()

    def advance(self, contact: Contact) -> SearchCursor:
        """The cursor after `contact` was taken (contacts come in `lastmodifieddate` order)."""
        ms = contact.modified_ms
        if ms > self.modified_ms:
            return SearchCursor(ms, frozenset({contact.id}))
        if ms == self.modified_ms:
            return SearchCursor(ms, self.ids_at_modified | {contact.id})
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"modified_ms": self.modified_ms, "ids": sorted(self.ids_at_modified)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchCursor:
        return cls(int(data["modified_ms"]), frozenset(str(i) for i in data.get("ids", ())))


@dataclass(frozen=True)
class PropertyOption:
    value: str
    label: str
    display_order: int | None = None
    hidden: bool = False


@dataclass(frozen=True)
class PropertyDefinition:
    """A contact property's definition; `options` are an enumeration's internal values."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str | None = None
    options: tuple[PropertyOption, ...] = ()
    hubspot_defined: bool = False
    read_only_value: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> PropertyDefinition:
        options = tuple(
            PropertyOption(
                value=str(o.get("value")),
                label=str(o.get("label", "")),
                display_order=o.get("displayOrder"),
                hidden=bool(o.get("hidden", False)),
            )
            for o in data.get("options") or ()
        )
        metadata = data.get("modificationMetadata") or {}
        return cls(
            name=data["name"],
            label=data.get("label", ""),
            type=data.get("type", ""),
            field_type=data.get("fieldType", ""),
            group_name=data.get("groupName"),
            options=options,
            hubspot_defined=bool(data.get("hubspotDefined", False)),
            read_only_value=bool(metadata.get("readOnlyValue", False)),
        )


@dataclass(frozen=True)
class EmailEvent:
    """One Email Events API event; `raw` keeps every field the type carries (url, category…)."""

    id: str
    created_ms: int
    type: str
    recipient: str | None
    email_campaign_id: int | None
    raw: Mapping[str, Any]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> EmailEvent:
        return cls(
            id=str(data["id"]),
            created_ms=int(data["created"]),
            type=str(data.get("type", "")),
            recipient=data.get("recipient"),
            email_campaign_id=data.get("emailCampaignId"),
            raw=dict(data),
        )

    @property
    def created_at(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.created_ms)


@dataclass(frozen=True)
class RecordFailure:
    """Why one record of a batch update was not updated."""

    id: str
    status: int  # HTTP status of the answer that named it (207 for a partial failure)
    category: str
    message: str


@dataclass
class BatchUpdateResult:
    """Per-record outcome of update_contacts: every input id is in exactly one of the two."""

    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, RecordFailure] = field(default_factory=dict)
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def hubspot_value(value: Any) -> str:
    """A property value as HubSpot takes it: strings; "" clears; booleans are "true"/"false"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "f").rstrip("0").rstrip(".") if value == value else ""
    return str(value)


# --- the client ------------------------------------------------------------------------------


class _BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer …` at send time; the token lives here and nowhere else."""

    def __init__(self, token: str):
        self._token = token

    def __repr__(self) -> str:
        return "_BearerAuth(***)"

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def mask(self, text: str) -> str:
        return text.replace(self._token, MASK) if self._token else text


class HubSpotClient:
    """HubSpot's API for leadflow: search, properties, email events, batch updates.

    `max_requests`/`period`: the client-side budget for every request (HubSpot's private-app
    burst limit is 100 per 10 s on Free/Starter, 190 on Professional/Enterprise).
    `search_max_requests`/`search_period`: the extra budget of the search endpoint (documented
    at 5 per second per account; None turns it off). Retries: at most `max_attempts` attempts per
    request; a 429 waits its `Retry-After` (seconds, capped at `retry_after_max`), other
    retryable failures wait `backoff_base * 2**(attempt-1)` capped at `backoff_max`.
    `transport`, `clock` and `sleep` are for tests.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        max_requests: int = 100,
        period: float = 10.0,
        search_max_requests: int | None = 5,
        search_period: float = 1.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 120.0,
        timeout: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        if not token:
            raise ValueError("a HubSpot private-app token is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self._sleep = sleep
        self._auth = _BearerAuth(token)
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=self._auth,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self.limiter = RateLimiter(max_requests, period, clock=clock, sleep=sleep)
        self.search_limiter = (
            RateLimiter(search_max_requests, search_period, clock=clock, sleep=sleep)
            if search_max_requests
            else None
        )

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport, retries ------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After")
        try:
            seconds = float(header) if header is not None else None
        except ValueError:
            seconds = None  # an HTTP-date, or garbage: fall back to the backoff
        if seconds is None:
            return self._backoff(attempt)
        return min(max(seconds, 0.0), self.retry_after_max)

    def _error_fields(self, response: httpx.Response) -> tuple[str, str, str | None]:
        """(category, message, correlationId) of an error answer, token masked."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            category = str(body.get("category") or body.get("errorType") or "")
            message = str(body.get("message") or "")
            correlation = body.get("correlationId")
        else:
            category, message, correlation = "", response.text.strip()[:300], None
        message = self._auth.mask(message or response.reason_phrase or "")
        return self._auth.mask(category), message, correlation

    def _api_error(self, endpoint: str, response: httpx.Response) -> HubSpotAPIError:
        category, message, correlation = self._error_fields(response)
        kind = HubSpotAuthError if response.status_code in (401, 403) else HubSpotAPIError
        return kind(
            endpoint=endpoint,
            status=response.status_code,
            category=category,
            message=message,
            correlation_id=correlation,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        search: bool = False,
        client_errors: bool = False,
    ) -> httpx.Response:
        """Send with rate limiting and retries. `client_errors`: return 4xx answers (not 401,
        403, 429) instead of raising, for the batch update's per-record outcome."""
        endpoint = f"{method} {path}"
        limiters = [self.limiter] + (
            [self.search_limiter] if search and self.search_limiter else []
        )
        status: int | None = None
        detail = ""
        for attempt in range(1, self.max_attempts + 1):
            with ExitStack() as held:
                for limiter in limiters:
                    limiter.acquire()
                    held.callback(limiter.release)
                try:
                    response = self._http.request(method, path, json=json, params=params)
                except httpx.TransportError as error:
                    status, detail = None, f"{type(error).__name__}: {self._auth.mask(str(error))}"
                    delay = self._backoff(attempt)
                    response = None
            if response is not None:
                status = response.status_code
                if status < 400:
                    return response
                if status == 429 or status >= 500:
                    category, message, _ = self._error_fields(response)
                    detail = f"{category}: {message}" if category else message
                    delay = (
                        self._retry_after(response, attempt)
                        if status == 429
                        else self._backoff(attempt)
                    )
                elif client_errors and status not in (401, 403):
                    return response
                else:
                    raise self._api_error(endpoint, response)
            if attempt == self.max_attempts:
                break
            log.warning(
                "HubSpot %s: %s on attempt %d of %d; retrying in %.2f s",
                endpoint,
                f"status {status}" if status is not None else "no answer",
                attempt,
                self.max_attempts,
                delay,
            )
            self._sleep(delay)
        raise HubSpotRetriesExhausted(
            endpoint=endpoint, status=status, attempts=self.max_attempts, detail=detail
        )

    def _json(self, endpoint: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise HubSpotAPIError(
                endpoint=endpoint,
                status=response.status_code,
                category="INVALID_RESPONSE",
                message="the answer is not JSON",
            ) from None

    # --- search ------------------------------------------------------------------------------

    def search_contacts(
        self,
        *,
        filter_groups: Sequence[Mapping[str, Any]] = (),
        sorts: Sequence[Mapping[str, str]] = (),
        properties: Sequence[str] = (),
        limit: int = SEARCH_PAGE_MAX,
        after: str | None = None,
    ) -> SearchPage:
        """One page of `POST /crm/v3/objects/contacts/search`, in HubSpot's request shape."""
        if not 1 <= limit <= SEARCH_PAGE_MAX:
            raise ValueError(f"a search page holds 1 to {SEARCH_PAGE_MAX} contacts, not {limit}")
        body: dict[str, Any] = {"filterGroups": list(filter_groups), "limit": limit}
        if sorts:
            body["sorts"] = list(sorts)
        if properties:
            body["properties"] = list(properties)
        if after is not None:
            body["after"] = after
        endpoint = f"POST {SEARCH_PATH}"
        data = self._json(endpoint, self._request("POST", SEARCH_PATH, json=body, search=True))
        next_page = (data.get("paging") or {}).get("next") or {}
        return SearchPage(
            total=int(data.get("total", 0)),
            results=tuple(Contact.from_api(item) for item in data.get("results") or ()),
            next_after=str(next_page["after"]) if next_page.get("after") is not None else None,
        )

    def _query_window(
        self,
        filters: list[dict[str, Any]],
        sort_property: str,
        properties: Sequence[str],
        page_size: int,
        pages_per_query: int | None,
    ) -> Iterator[tuple[Contact, bool]]:
        """The results of one query, paged with `after` up to `pages_per_query` pages or the
        10,000 cap; yields (contact, False), and finally (last contact, True) if more remain."""
        after: str | None = None
        pages = 0
        last: Contact | None = None
        while True:
            page = self.search_contacts(
                filter_groups=[{"filters": filters}],
                sorts=[{"propertyName": sort_property, "direction": "ASCENDING"}],
                properties=properties,
                limit=page_size,
                after=after,
            )
            pages += 1
            for contact in page.results:
                last = contact
                yield contact, False
            if page.next_after is None or last is None:
                return
            if (pages_per_query is not None and pages >= pages_per_query) or int(
                page.next_after
            ) >= SEARCH_RESULT_CAP:
                yield last, True
                return
            after = page.next_after

    def iter_contacts_modified_since(
        self,
        since: datetime | int | SearchCursor,
        *,
        properties: Sequence[str],
        page_size: int = SEARCH_PAGE_MAX,
        pages_per_query: int | None = 1,
    ) -> Iterator[Contact]:
        """Every contact with `lastmodifieddate` at or after `since`, in that order, each once.

        HubSpot allows one sort rule per search and caps a query at 10,000 results, so the pull
        is keyset-paged: each query asks for `lastmodifieddate >= T` sorted ascending, T being
        the newest value taken so far, and the contacts already taken at exactly T are skipped.
        When a whole query window holds nothing but contacts at T (more than a window share one
        millisecond), T is drained on its own: `lastmodifieddate = T`, sorted by `hs_object_id`,
        keyset-paged on the id; the pull then goes on from `lastmodifieddate > T`.

        `pages_per_query=1` (default) starts a fresh query for every page, so a contact modified
        during the pull (it moves to the end of the order) cannot shift the offsets of the next
        page and make another contact slip through; `None` pages each query with `after` up to
        the 10,000 cap. A contact modified during the pull is yielded again at its new time.
        """
        cursor = since if isinstance(since, SearchCursor) else SearchCursor(epoch_ms(since))
        properties = list(dict.fromkeys([*properties, "lastmodifieddate", "hs_object_id"]))
        lower, taken = cursor.modified_ms, set(cursor.ids_at_modified)
        operator = "GTE"
        while True:
            filters = [
                {"propertyName": "lastmodifieddate", "operator": operator, "value": str(lower)}
            ]
            query_lower, only_ties, more = lower, True, False
            for contact, truncated in self._query_window(
                filters, "lastmodifieddate", properties, page_size, pages_per_query
            ):
                if truncated:
                    more = True
                    break
                ms = contact.modified_ms
                if ms != query_lower:
                    only_ties = False
                if ms < lower or (ms == lower and contact.id in taken):
                    continue
                if ms > lower:
                    lower, taken = ms, set()
                taken.add(contact.id)
                yield contact
            if not more:
                return
            if only_ties:
                yield from self._drain_instant(
                    query_lower, taken, properties, page_size, pages_per_query
                )
                lower, taken, operator = query_lower, set(), "GT"
            else:
                operator = "GTE"

    def _drain_instant(
        self,
        ms: int,
        taken: set[str],
        properties: Sequence[str],
        page_size: int,
        pages_per_query: int | None,
    ) -> Iterator[Contact]:
        """Every contact modified at exactly `ms` not in `taken`, sorted and restarted on the id
        (paged as the main query is)."""
        after_id: int | None = None
        while True:
            filters: list[dict[str, Any]] = [
                {"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(ms)}
            ]
            if after_id is not None:
                filters.append(
                    {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)}
                )
            more = False
            for contact, truncated in self._query_window(
                filters, "hs_object_id", properties, page_size, pages_per_query
            ):
                if truncated:
                    more = True
                    break
                after_id = max(after_id or 0, int(contact.id))
                if contact.id not in taken and contact.modified_ms == ms:
                    taken.add(contact.id)
                    yield contact
            if not more:
                return

    # --- properties --------------------------------------------------------------------------

    def list_contact_properties(self) -> list[PropertyDefinition]:
        """`GET /crm/v3/properties/contacts`: every contact property definition."""
        endpoint = f"GET {PROPERTIES_PATH}"
        data = self._json(endpoint, self._request("GET", PROPERTIES_PATH))
        return [PropertyDefinition.from_api(item) for item in data.get("results") or ()]

    def get_contact_property(self, name: str) -> PropertyDefinition:
        """`GET /crm/v3/properties/contacts/{name}`."""
        path = f"{PROPERTIES_PATH}/{name}"
        return PropertyDefinition.from_api(self._json(f"GET {path}", self._request("GET", path)))

    def lifecycle_stages(self) -> list[PropertyOption]:
        """The portal's lifecycle stages (internal value and label), in display order."""
        options = [o for o in self.get_contact_property("lifecyclestage").options if not o.hidden]
        return sorted(options, key=lambda o: (o.display_order is None, o.display_order or 0))

    # --- email events ------------------------------------------------------------------------

    def iter_email_events(
        self,
        start: datetime | int,
        end: datetime | int,
        *,
        event_type: str | None = None,
        page_size: int = EMAIL_EVENTS_PAGE_MAX,
    ) -> Iterator[EmailEvent]:
        """Marketing email events created in [start, end] (both inclusive, as the API has it).

        HubSpot returns them newest first, and its `offset` token is short-lived and tied to
        the same parameters: pull a closed window in one go, and dedupe on the event id.
        """
        if not 1 <= page_size <= EMAIL_EVENTS_PAGE_MAX:
            raise ValueError(f"an events page holds 1 to {EMAIL_EVENTS_PAGE_MAX}, not {page_size}")
        params: dict[str, Any] = {
            "startTimestamp": epoch_ms(start),
            "endTimestamp": epoch_ms(end),
            "limit": page_size,
        }
        if event_type:
            params["eventType"] = event_type
        endpoint = f"GET {EMAIL_EVENTS_PATH}"
        offset: str | None = None
        while True:
            query = dict(params, offset=offset) if offset is not None else params
            data = self._json(endpoint, self._request("GET", EMAIL_EVENTS_PATH, params=query))
            for item in data.get("events") or ():
                yield EmailEvent.from_api(item)
            if not data.get("hasMore"):
                return
            following = data.get("offset")
            if following is None or following == offset:
                raise HubSpotAPIError(
                    endpoint=endpoint,
                    status=200,
                    category="INVALID_RESPONSE",
                    message="hasMore without a new offset",
                )
            offset = str(following)

    # --- batch read --------------------------------------------------------------------------

    def read_contacts(
        self, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, Mapping[str, str | None]]:
        """`POST /crm/v3/objects/contacts/batch/read`, 100 ids a request: each found id's
        `properties`. An id HubSpot does not have (archived, merged away) is absent."""
        endpoint = f"POST {BATCH_READ_PATH}"
        found: dict[str, Mapping[str, str | None]] = {}
        for start in range(0, len(ids), BATCH_UPDATE_MAX):
            inputs = [{"id": str(i)} for i in ids[start : start + BATCH_UPDATE_MAX]]
            body = {"inputs": inputs, "properties": list(properties)}
            data = self._json(endpoint, self._request("POST", BATCH_READ_PATH, json=body))
            for item in data.get("results") or ():
                found[str(item["id"])] = dict(item.get("properties") or {})
        return found

    # --- batch update ------------------------------------------------------------------------

    def update_contacts(self, updates: Iterable[Mapping[str, Any]]) -> BatchUpdateResult:
        """Update contacts, `{"id": ..., "properties": {...}}` each, in batches of at most 100.

        Each input carries `objectWriteTraceId` = its id, which asks HubSpot for a 207
        Multi-Status answer naming the failed inputs; a whole batch refused with a 4xx (other
        than 401/403/429) fails every id of that batch with HubSpot's message. One id may
        appear once per call (send a clear-then-set as two calls). If a batch exhausts its
        retries, the exception's `partial` holds the outcome of the batches before it.
        """
        inputs = []
        seen: set[str] = set()
        duplicates: set[str] = set()
        for update in updates:
            record_id = str(update["id"])
            (duplicates if record_id in seen else seen).add(record_id)
            properties = {str(k): hubspot_value(v) for k, v in update["properties"].items()}
            inputs.append(
                {"id": record_id, "properties": properties, "objectWriteTraceId": record_id}
            )
        if duplicates:
            raise ValueError(f"ids updated twice in one call: {sorted(duplicates)}")
        result = BatchUpdateResult()
        for start in range(0, len(inputs), BATCH_UPDATE_MAX):
            try:
                self._update_batch(inputs[start : start + BATCH_UPDATE_MAX], result)
            except HubSpotRetriesExhausted as error:
                error.partial = result
                raise
        return result

    def _update_batch(self, inputs: list[dict[str, Any]], result: BatchUpdateResult) -> None:
        endpoint = f"POST {BATCH_UPDATE_PATH}"
        ids = [item["id"] for item in inputs]
        response = self._request(
            "POST", BATCH_UPDATE_PATH, json={"inputs": inputs}, client_errors=True
        )
        result.requests += 1
        status = response.status_code
        if status >= 400:
            category, message, _ = self._error_fields(response)
            for record_id in ids:
                result.failed[record_id] = RecordFailure(record_id, status, category, message)
            log.info(
                "HubSpot %s refused a batch of %d: %s %s", endpoint, len(ids), status, category
            )
            return
        data = self._json(endpoint, response)
        updated = {str(item.get("id")) for item in data.get("results") or ()}
        failed: dict[str, RecordFailure] = {}
        unattributed: list[RecordFailure] = []
        for error in data.get("errors") or ():
            context = error.get("context") or {}
            named = [
                str(i)
                for key in ("ids", "objectWriteTraceId", "id")
                for i in context.get(key) or ()
            ]
            category = self._auth.mask(str(error.get("category") or ""))
            message = self._auth.mask(str(error.get("message") or ""))
            targets = [i for i in named if i in ids]
            if not targets:
                unattributed.append(RecordFailure("", status, category, message))
            for record_id in targets:
                failed[record_id] = RecordFailure(record_id, status, category, message)
        for record_id in ids:
            if record_id in failed:
                result.failed[record_id] = failed[record_id]
            elif record_id in updated:
                result.succeeded.append(record_id)
            else:
                cause = unattributed[0] if unattributed else None
                result.failed[record_id] = RecordFailure(
                    record_id,
                    status,
                    cause.category if cause else "MISSING_FROM_RESPONSE",
                    cause.message if cause else "HubSpot's answer names no result for this id",
                )
        failures = sum(1 for record_id in ids if record_id in result.failed)
        if failures:
            log.info("HubSpot %s: %d of %d inputs failed", endpoint, failures, len(ids))
