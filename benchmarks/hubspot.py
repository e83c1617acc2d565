"""Benchmark: a HubSpot portal pulled, scored and pushed back, against the tests' stand-in.

    python benchmarks/hubspot.py --contacts 20000

Fills a stand-in portal (tests/hubspot_standin.py, served by its own process so that it does
not share this one's interpreter) with --contacts contacts and five email events each, then
times, on a fresh SQLite state store: the first pull (every contact and event), the day run,
the first push (every score, band, stage and marketing request), a second push (nothing to
send: the set-based diff alone) and a second pull (nothing new). The client's rate limiter is
off, so the times are leadflow's and the stand-in's work; each step's requests are counted, and
the time HubSpot's documented limits alone would impose on them (100 requests per 10 s, and
search at 5 per second) is printed beside it.
"""

import argparse
import multiprocessing
import re
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadflow.hubspot.client import HubSpotClient  # noqa: E402
from leadflow.hubspot.pull import pull  # noqa: E402
from leadflow.hubspot.push import push  # noqa: E402
from leadflow.pipeline import runs  # noqa: E402
from leadflow.settings import PROJECT_ROOT  # noqa: E402
from leadflow.workspace import Workspace  # noqa: E402
from tests.hubspot_standin import SEARCH, TOKEN, Portal, StandIn  # noqa: E402

PUSH = """  pull:
    since: {since}
    contacts_per_batch: 10000
    events_window_hours: 2400
  push:
    scores: {{engagement: leadflow_engagement, fit: leadflow_fit}}
    bands: {{engagement: leadflow_engagement_band}}
    max_marketing_changes: 100000000
"""


def fill(portal: Portal, contacts: int, day: datetime) -> None:
    """Contacts created 200 days before `day`, each with a delivery and four opens or clicks
    in the last 30 days (set up once, not timed)."""
    for name in ("leadflow_engagement", "leadflow_fit"):
        portal.define_property(name, type_="number", field_type="number")
    portal.define_property("leadflow_engagement_band")
    created = int((day - timedelta(days=200)).timestamp() * 1000)
    stages = ("subscriber", "lead", "lead", "marketingqualifiedlead")
    for n in range(contacts):
        email = f"c{n}@example.com"
        portal.add_contact(
            {
                "email": email,
                "lifecyclestage": stages[n % 4],
                "hs_marketable_status": "true" if n % 3 else "false",
                "hs_object_source": "FORM" if n % 2 else "IMPORT",
                "firstname": f"C{n}",
            },
            created_ms=created,
            modified_ms=created + n,
        )
        sent = day - timedelta(days=n % 30, hours=3)
        portal.add_email_event("DELIVERED", email, int(sent.timestamp() * 1000))
        for k in range(4):
            kind = "CLICK" if (n + k) % 5 == 0 else "OPEN"
            at = int((sent + timedelta(minutes=30 + k)).timestamp() * 1000)
            portal.add_email_event(kind, email, at, url="https://example.com/pricing")


def serve_portal(contacts: int, day: datetime, ready: multiprocessing.Queue) -> None:
    server = StandIn()
    fill(server.portal, contacts, day)
    server.start()
    ready.put(server.base_url)
    while True:
        time.sleep(3600)


def workspace(root: Path, day: datetime) -> Workspace:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shipped = (PROJECT_ROOT / "leadflow.yaml").read_text(encoding="utf-8")
    renewal = (day + timedelta(days=30)).date()
    shipped = re.sub(r"renewal_date: \d{4}-\d{2}-\d{2}", f"renewal_date: {renewal}", shipped)
    shipped = re.sub(r"marketing_contact_tier: \d+", "marketing_contact_tier: 100000000", shipped)
    config = root / "leadflow.yaml"
    since = (day - timedelta(days=365)).date()
    config.write_text(shipped + PUSH.format(since=since), encoding="utf-8")
    return Workspace.in_folder(f"sqlite:///{root / 'state.db'}", root, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20000)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "lf-hubspot")
    args = parser.parse_args()

    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ready: multiprocessing.Queue = multiprocessing.Queue()
    portal = multiprocessing.Process(
        target=serve_portal, args=(args.contacts, day, ready), daemon=True
    )
    portal.start()
    base_url = ready.get(timeout=3600)
    space = workspace(args.root, day)
    offline = replace(
        space,
        config=space.config.model_copy(
            update={"hubspot": space.config.hubspot.model_copy(update={"pull": None, "push": None})}
        ),
    )
    counter = CountingTransport()
    client = HubSpotClient(
        TOKEN, base_url=base_url, max_requests=10**9, search_max_requests=None, transport=counter
    )
    print(f"{args.contacts:,} contacts, {5 * args.contacts:,} email events in the stand-in")

    def step(name: str, work) -> object:
        before = counter.counts()
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        sent, searches, waited = (
            now - then for now, then in zip(counter.counts(), before, strict=True)
        )
        floor = max(sent / 10, searches / 5)
        print(f"{name:<14}{seconds:>9.2f}{waited:>9.2f}{sent:>10,}{searches:>10,}{floor:>14.1f} s")
        return result

    started = time.perf_counter()
    import leadflow.ingest.load  # noqa: F401  Great Expectations: imported once per process

    imported = time.perf_counter() - started
    print(f"(Great Expectations imported first, not counted: {imported:.1f} s)")
    print(
        f"{'step':<14}{'seconds':>9}{'in HTTP':>9}{'requests':>10}{'searches':>10}"
        f"{'HubSpot limits':>16}"
    )
    pulled = step("pull", lambda: pull(space, client))
    step("day run", lambda: runs.daily(offline, runs.LocalSteps(offline), day.date()))
    pushed = step("push", lambda: push(space, client))
    again = step("second push", lambda: push(space, client))
    step("second pull", lambda: pull(space, client))
    print(f"pulled {pulled.contacts:,} contacts and {pulled.events:,} events; pushed {pushed.sent}")
    print(f"second push sent {again.sent or 'nothing'} in {again.requests} requests")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:,.0f} MiB")
    portal.terminate()


class CountingTransport(httpx.HTTPTransport):
    """httpx's transport, counting the requests (and the searches) that go through it and the
    time spent waiting for their answers (the stand-in's work and the socket's)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.searches = 0
        self.waited = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        self.searches += f"{request.method} {request.url.path}" == SEARCH
        started = time.perf_counter()
        response = super().handle_request(request)
        response.read()
        self.waited += time.perf_counter() - started
        return response

    def counts(self) -> tuple[int, int, float]:
        return self.sent, self.searches, self.waited


if __name__ == "__main__":
    main()
