"""The HubSpot client against the local stand-in (tests/hubspot_standin.py), over real HTTP.

Clocks: most clients get a fake monotonic clock whose sleep() only records and advances, so
rate-limit waits and retry backoffs cost no time and can be counted; the rate-limit budget test
uses the real clock against the stand-in's own arrival times.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback

import pytest

from leadflow.hubspot.client import (
    BATCH_UPDATE_MAX,
    SEARCH_PAGE_MAX,
    HubSpotAPIError,
    HubSpotAuthError,
    HubSpotClient,
    HubSpotRetriesExhausted,
    RateLimiter,
    SearchCursor,
)
from tests.hubspot_standin import (
    BATCH_UPDATE,
    EMAIL_EVENTS,
    PROPERTY,
    SEARCH,
    TOKEN,
    FakeClock,
    Portal,
    iso_ms,
)

BASE_MS = 1_700_000_000_000


def load_tied_contacts(portal: Portal, block: int, spread: int) -> set[str]:
    """`spread` contacts three to a millisecond, then `block` sharing one millisecond, then
    `spread` more three to a millisecond: ties straddle page and restart boundaries, and the
    block outlasts a query window. Ids go in shuffled, so that id order is not time order."""
    times = [BASE_MS + i // 3 for i in range(spread)]
    times += [BASE_MS + 50_000] * block
    times += [BASE_MS + 60_000 + i // 3 for i in range(spread)]
    order = sorted(range(len(times)), key=lambda i: (i * 7919) % len(times))
    ids = set()
    for n, i in enumerate(order):
        ids.add(
            portal.add_contact({"email": f"c{i}@example.com"}, id=100_000 + n, modified_ms=times[i])
        )
    return ids


def assert_each_once_in_order(contacts, expected: set[str]) -> None:
    ids = [c.id for c in contacts]
    assert len(ids) == len(set(ids)), "a contact was repeated"
    assert set(ids) == expected, f"{len(expected - set(ids))} contacts lost"
    times = [c.modified_ms for c in contacts]
    assert times == sorted(times)


# --- search ----------------------------------------------------------------------------------


def test_full_pull_keyset_paged_over_the_cap_with_ties(client, portal):
    expected = load_tied_contacts(portal, block=450, spread=5100)  # 10,650 contacts
    pulled = list(client.iter_contacts_modified_since(BASE_MS, properties=["email"]))
    assert_each_once_in_order(pulled, expected)
    bodies = portal.bodies(SEARCH)
    assert all(b["limit"] == SEARCH_PAGE_MAX and "after" not in b for b in bodies)
    # The block was drained on its own, keyset-paged on the id.
    drained = [b for b in bodies if b["sorts"][0]["propertyName"] == "hs_object_id"]
    assert len(drained) >= 450 // SEARCH_PAGE_MAX
    assert all(
        f["operator"] in ("EQ", "GT") for b in drained for f in b["filterGroups"][0]["filters"]
    )


def test_full_pull_after_paged_restarts_at_the_cap(client, portal):
    """The middle block alone is over the cap: after the restart it needs the id drain."""
    expected = load_tied_contacts(portal, block=10_050, spread=1200)  # 12,450 contacts
    pulled = list(
        client.iter_contacts_modified_since(BASE_MS, properties=["email"], pages_per_query=None)
    )
    assert_each_once_in_order(pulled, expected)
    bodies = portal.bodies(SEARCH)
    afters = [int(b.get("after", 0)) for b in bodies]
    assert max(afters) == 10_000 - SEARCH_PAGE_MAX  # paged right up to the cap, never past it
    restarts = [b for b in bodies[1:] if "after" not in b]
    assert restarts, "the query was never restarted"
    first_restart = restarts[0]["filterGroups"][0]["filters"][0]
    assert first_restart["operator"] == "GTE"
    assert int(first_restart["value"]) == BASE_MS + 50_000  # from the last lastmodifieddate seen


def test_incremental_pull_from_a_time_and_from_a_cursor(client, portal):
    old = [portal.add_contact({"email": f"o{i}@x.com"}, modified_ms=BASE_MS + i) for i in range(5)]
    tied = [
        portal.add_contact({"email": f"t{i}@x.com"}, modified_ms=BASE_MS + 100) for i in range(3)
    ]
    pulled = list(client.iter_contacts_modified_since(BASE_MS + 3, properties=["email"]))
    assert [c.id for c in pulled][:2] == old[3:]
    assert {c.id for c in pulled[2:]} == set(tied)
    # Resume from a cursor that took two of the three tied contacts: only the third comes.
    cursor = SearchCursor(BASE_MS)
    for contact in pulled[:4]:
        cursor = cursor.advance(contact)
    cursor = SearchCursor.from_dict(json.loads(json.dumps(cursor.to_dict())))
    assert cursor.modified_ms == BASE_MS + 100 and len(cursor.ids_at_modified) == 2
    again = list(client.iter_contacts_modified_since(cursor, properties=["email"]))
    assert [c.id for c in again] == [pulled[4].id]
    # An update bumps lastmodifieddate: the next pull from the cursor brings that contact back.
    assert client.update_contacts([{"id": old[0], "properties": {"firstname": "Ada"}}]).ok
    later = list(client.iter_contacts_modified_since(cursor, properties=["email", "firstname"]))
    assert [c.id for c in later] == [pulled[4].id, old[0]]
    assert later[1].properties["firstname"] == "Ada"


def test_keyset_pull_survives_a_contact_modified_mid_pull_and_after_paging_does_not(client, portal):
    ids = {portal.add_contact({}, modified_ms=BASE_MS + i) for i in range(1000)}
    first_page_contact = str(min(int(i) for i in ids))

    def modify_after_first_search(endpoint, body):
        if endpoint == SEARCH and portal.count(SEARCH) == 2:
            portal.set_modified(first_page_contact, BASE_MS + 5000)

    portal.on_request = modify_after_first_search
    keyset = [c.id for c in client.iter_contacts_modified_since(BASE_MS, properties=["email"])]
    assert set(keyset) == ids
    assert keyset.count(first_page_contact) == 2  # once as it was, once at its new time

    for record_id in ids:  # same data, offset paging: the shift makes one contact slip through
        portal.set_modified(record_id, BASE_MS + int(record_id) - 1001)
    portal.requests.clear()
    offsets = [
        c.id
        for c in client.iter_contacts_modified_since(
            BASE_MS, properties=["email"], pages_per_query=None
        )
    ]
    assert len(set(ids) - set(offsets)) == 1


def test_search_api_shapes_and_limits_of_the_standin(client, portal):
    portal.add_contact({"email": "a@x.com", "firstname": "Alice"})
    page = client.search_contacts(
        filter_groups=[
            {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "alice"}]}
        ],
        properties=["email", "phone"],
    )
    assert page.total == 1 and page.results[0].properties == {"email": "a@x.com", "phone": None}
    with pytest.raises(HubSpotAPIError, match="400 VALIDATION_ERROR.*one sorting rule"):
        client.search_contacts(
            sorts=[{"propertyName": "email"}, {"propertyName": "createdate"}], limit=10
        )
    with pytest.raises(HubSpotAPIError, match="limited to 10000"):
        client.search_contacts(after="10000")
    with pytest.raises(ValueError):
        client.search_contacts(limit=SEARCH_PAGE_MAX + 1)


# --- properties ------------------------------------------------------------------------------


def test_contact_property_definitions(client, portal):
    stages = client.lifecycle_stages()
    assert [s.value for s in stages][:3] == ["subscriber", "lead", "marketingqualifiedlead"]
    names = {p.name for p in client.list_contact_properties()}
    assert {"email", "lifecyclestage", "hs_marketable_status"} <= names
    status = client.get_contact_property("hs_marketable_status")
    assert status.read_only_value and {o.value for o in status.options} == {"true", "false"}
    with pytest.raises(HubSpotAPIError) as error:
        client.get_contact_property("no_such_property")
    assert error.value.status == 404 and error.value.category == "OBJECT_NOT_FOUND"
    assert portal.count(PROPERTY) == 3


# --- email events ----------------------------------------------------------------------------


def test_email_events_follow_has_more_and_offset(client, portal):
    for i in range(2500):
        portal.add_email_event("OPEN" if i % 2 else "SENT", f"r{i % 50}@x.com", BASE_MS + i)
    portal.add_email_event("OPEN", "early@x.com", BASE_MS - 1)
    portal.add_email_event("OPEN", "late@x.com", BASE_MS + 10_000)
    events = list(client.iter_email_events(BASE_MS, BASE_MS + 2499))
    assert len(events) == 2500 and len({e.id for e in events}) == 2500
    assert [e.created_ms for e in events] == sorted((e.created_ms for e in events), reverse=True)
    assert {e.recipient for e in events}.isdisjoint({"early@x.com", "late@x.com"})
    assert portal.count(EMAIL_EVENTS) == 3  # 1000 + 1000 + 500
    requests = [r.params for r in portal.requests if r.endpoint == EMAIL_EVENTS]
    assert "offset" not in requests[0] and requests[1]["offset"] and requests[2]["offset"]
    opens = list(client.iter_email_events(BASE_MS, BASE_MS + 2499, event_type="OPEN"))
    assert len(opens) == 1250 and {e.type for e in opens} == {"OPEN"}


# --- batch update ----------------------------------------------------------------------------


def test_batch_update_splits_into_batches_of_100(client, portal):
    ids = [portal.add_contact({"email": f"b{i}@x.com"}, modified_ms=BASE_MS) for i in range(250)]
    updates = [{"id": i, "properties": {"firstname": f"N{i}"}} for i in ids]
    result = client.update_contacts(updates)
    assert result.ok and sorted(result.succeeded) == sorted(ids) and result.requests == 3
    sizes = [len(b["inputs"]) for b in portal.bodies(BATCH_UPDATE)]
    assert sizes == [BATCH_UPDATE_MAX, BATCH_UPDATE_MAX, 50]
    assert all(
        i["objectWriteTraceId"] == i["id"] for b in portal.bodies(BATCH_UPDATE) for i in b["inputs"]
    )
    contact = portal.contact(ids[7])
    assert contact["firstname"] == f"N{ids[7]}"
    assert contact["lastmodifieddate"] > iso_ms(BASE_MS)  # bumped, as HubSpot does
    with pytest.raises(ValueError, match="twice"):
        client.update_contacts([updates[0], updates[0]])


def test_batch_update_207_names_the_failed_ids(client, portal):
    ids = [portal.add_contact({}) for _ in range(120)]
    portal.fail_ids(ids[3], ids[110], category="VALIDATION_ERROR", message="locked record")
    updates = [{"id": str(i), "properties": {"company": "ACME"}} for i in [*ids, "999999"]]
    result = client.update_contacts(updates)
    assert set(result.failed) == {ids[3], ids[110], "999999"}
    assert result.failed[ids[3]].status == 207 and result.failed[ids[3]].message == "locked record"
    assert result.failed["999999"].category == "OBJECT_NOT_FOUND"
    assert len(result.succeeded) == 118 and ids[3] not in result.succeeded
    assert (
        portal.contact(ids[4])["company"] == "ACME"
        and portal.contact(ids[3]).get("company") is None
    )


def test_batch_refused_whole_fails_every_id_of_that_batch_only(client, portal):
    ids = [portal.add_contact({}) for _ in range(150)]
    updates = [{"id": str(i), "properties": {"firstname": "X"}} for i in ids]
    updates[120] = {
        "id": str(ids[120]),
        "properties": {"hs_marketable_status": "true"},
    }  # read-only
    result = client.update_contacts(updates)
    assert sorted(result.succeeded) == sorted(ids[:100])
    assert set(result.failed) == set(ids[100:])
    failure = result.failed[ids[101]]
    assert failure.status == 400 and failure.category == "VALIDATION_ERROR"
    assert "hs_marketable_status" in failure.message and "read only" in failure.message


# --- retries and rate limiting ---------------------------------------------------------------


def test_a_429_storm_waits_retry_after_each_time(client, portal, clock):
    portal.fail_next(4, 429, retry_after=2)
    assert client.search_contacts(limit=1).total == 0
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0]
    assert portal.count(SEARCH) == 5


def test_5xx_and_connection_errors_back_off_exponentially(standin, portal, clock):
    portal.fail_next(1, 500, retry_after=None)
    portal.fail_next(1, 502, retry_after=None)  # an HTML body, as a gateway sends
    portal.fail_next(1, 503, retry_after=None)
    with HubSpotClient(
        TOKEN, base_url=standin.base_url, clock=clock.monotonic, sleep=clock.sleep, backoff_base=0.5
    ) as hubspot:
        assert hubspot.lifecycle_stages()
    assert clock.sleeps == [0.5, 1.0, 2.0]
    capped = HubSpotClient(TOKEN, backoff_base=10, backoff_max=25)
    assert [capped._backoff(n) for n in (1, 2, 3, 4)] == [10, 20, 25, 25]


def test_attempts_exhausted_raise_one_clear_error(standin, portal, clock):
    portal.fail_next(10, 503, retry_after=None)
    with (
        HubSpotClient(
            TOKEN,
            base_url=standin.base_url,
            clock=clock.monotonic,
            sleep=clock.sleep,
            max_attempts=3,
        ) as hubspot,
        pytest.raises(HubSpotRetriesExhausted) as error,
    ):
        hubspot.search_contacts()
    message = str(error.value)
    assert "POST /crm/v3/objects/contacts/search" in message and "status 503" in message
    assert "3 attempts" in message and error.value.status == 503
    assert portal.count(SEARCH) == 3 and len(clock.sleeps) == 2


def test_batch_update_exhausted_keeps_the_partial_outcome(client, portal):
    ids = [portal.add_contact({}) for _ in range(150)]
    updates = [{"id": str(i), "properties": {"firstname": "Y"}} for i in ids]
    portal.on_request = lambda endpoint, body: (
        portal.fail_next(10, 503, retry_after=None) if portal.count(BATCH_UPDATE) == 2 else None
    )
    with pytest.raises(HubSpotRetriesExhausted) as error:
        client.update_contacts(updates)
    assert error.value.partial is not None and sorted(error.value.partial.succeeded) == sorted(
        ids[:100]
    )


def test_401_is_not_retried(standin, portal, clock):
    with (
        HubSpotClient(
            "pat-wrong", base_url=standin.base_url, clock=clock.monotonic, sleep=clock.sleep
        ) as hubspot,
        pytest.raises(HubSpotAuthError, match="401 INVALID_AUTHENTICATION"),
    ):
        hubspot.list_contact_properties()
    assert portal.count() == 1 and clock.sleeps == []


def test_rate_limiter_never_exceeds_its_budget(standin, portal):
    """Real time: 5 requests per 0.4 s, 4 threads sharing one client; the stand-in enforces the
    same limit and records arrivals, which must never hold 6 in any 0.4 s window."""
    portal.enforce_rate_limit(5, 0.4)
    with HubSpotClient(
        TOKEN, base_url=standin.base_url, max_requests=5, period=0.4, max_attempts=1
    ) as hubspot:
        threads = [
            threading.Thread(target=lambda: [hubspot.list_contact_properties() for _ in range(5)])
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    arrivals = portal.arrivals()
    assert len(arrivals) == 20  # no 429, no retry (max_attempts=1 would have raised)
    assert all(
        later - earlier >= 0.4 for earlier, later in zip(arrivals, arrivals[5:], strict=False)
    )


def test_rate_limiter_sliding_window_with_a_fake_clock():
    clock = FakeClock()
    limiter = RateLimiter(100, 10.0, clock=clock.monotonic, sleep=clock.sleep)
    starts = []
    for _ in range(350):
        limiter.acquire()
        starts.append(clock.now)
        clock.now += 0.01  # the request takes 10 ms
        limiter.release()
    assert all(b - a >= 10.0 for a, b in zip(starts, starts[100:], strict=False))
    assert starts[-1] - starts[0] < 40  # and it does not wait more than it must


def test_search_has_its_own_budget(client, portal, clock):
    for _ in range(12):
        client.search_contacts(limit=1)
    searches = portal.arrivals(SEARCH)
    assert len(searches) == 12
    assert sum(clock.sleeps) >= 2.0  # 5 per second: twelve searches span over two seconds


# --- the token never shows -------------------------------------------------------------------


def test_the_token_appears_in_no_message_repr_or_log(standin, portal, clock, caplog):
    caplog.set_level(logging.DEBUG)
    portal.echo_token = True  # the stand-in quotes the Authorization header in its errors
    seen: list[str] = []

    def record(error: BaseException) -> None:
        seen.extend([str(error), repr(error), "".join(traceback.format_exception(error))])

    def make(token: str, **options) -> HubSpotClient:
        return HubSpotClient(
            token, base_url=standin.base_url, clock=clock.monotonic, sleep=clock.sleep, **options
        )

    wrong = "pat-na1-wrong-token-4242"
    with make(wrong) as hubspot, pytest.raises(HubSpotAuthError) as error:
        hubspot.search_contacts()
    record(error.value)
    with make(TOKEN, max_attempts=2) as hubspot:
        seen.append(repr(hubspot) + repr(vars(hubspot)))
        for status in (429, 500, 502):
            portal.fail_next(2, status)
            with pytest.raises(HubSpotRetriesExhausted) as error:
                hubspot.lifecycle_stages()
            record(error.value)
        with pytest.raises(HubSpotAPIError) as error:
            hubspot.get_contact_property("missing")
        record(error.value)
        ids = [portal.add_contact({}) for _ in range(3)]
        portal.fail_ids(ids[0])
        result = hubspot.update_contacts(
            [
                {"id": str(ids[0]), "properties": {"firstname": "A"}},
                {"id": str(ids[1]), "properties": {"firstname": "B"}},
            ]
        )
        refused = hubspot.update_contacts([{"id": str(ids[2]), "properties": {"nope": "1"}}])
        seen.extend([repr(result), repr(refused)])
        assert "***" in result.failed[ids[0]].message and "***" in refused.failed[ids[2]].message
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with (
        HubSpotClient(
            TOKEN, base_url=f"http://127.0.0.1:{port}", sleep=clock.sleep, max_attempts=2
        ) as hubspot,
        pytest.raises(HubSpotRetriesExhausted, match="no answer") as error,
    ):
        hubspot.list_contact_properties()
    record(error.value)
    text = "\n".join(seen) + caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "HubSpot GET /crm/v3/properties/contacts" in text  # the messages name the endpoint
    assert TOKEN not in text and wrong not in text
    assert any("retrying" in r.getMessage() for r in caplog.records)
