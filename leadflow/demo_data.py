"""Seeded generator of a realistic CRM contact base and its activity, at any size.

Used by `leadflow demo` and the benchmarks. One numpy Generator draws everything, vectorised: a
Python loop runs per campaign, webinar, survey or event type, never per event or contact. So the
same arguments give the same bytes, and 100 k contacts / 2 M events take seconds.

What the data looks like (rates at the default 20 events per contact and year):
- a heavy-tailed engagement propensity per contact: most rarely open or visit, a few are hot;
- weekly marketing emails (newsletter subscribers get most of them) with their deliveries,
  opens (~20 %), clicks (~15 % of opens), bounces (~1 %), unsubscribes and spam reports; a hard
  bounce, unsubscribe or spam report stops later sends to that contact;
- website sessions (pricing pages for the hot, careers pages for job seekers), forms, chats,
  ad clicks, monthly webinars, a sales funnel that engaged contacts enter after a click, a
  pricing page, a webinar or a demo request (meeting, sales_accepted, deal_created, then
  deal_won or deal_lost: so the engagement score predicts the stages) and quarterly NPS
  surveys of customers;
- ~1 % of events from people not in the contacts file, arriving through forms, chats and ads;
- bad rows injected into the first event file, and a whole batch bad enough to be rejected.
"""

import csv
import hashlib
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadflow.domain import (
    CONTACT_STANDARD_PROPERTIES,
    EVENT_COLUMNS,
    EVENT_TYPES,
    NON_MARKETING_SOURCES,
)


@dataclass(frozen=True)
class DemoDataset:
    """The files written by `generate_demo_data`, and what they hold."""

    contacts_file: Path
    hubspot_file: Path
    event_files: list[Path]  # chronological; bad rows are in the first one
    source_files: list[Path]  # a campaign in each email platform's own format (sources/)
    rejected_file: Path  # ~20 % bad rows: ingest must reject it whole
    n_contacts: int
    n_events: int  # good rows over event_files
    n_bad_rows: int  # bad rows injected into event_files[0]
    n_source_events: int  # records of source_files (some ignored by ingest: not modelled)


CONTACT_COLUMNS = (
    ("email", *CONTACT_STANDARD_PROPERTIES)
    + ("created_at", "updated_at", "creation_source", "integration")
    + ("lead_source_detail", "employees")
)
# The export's columns, in order (`Billing Contact` twice, and an empty last one, as HubSpot
# writes association columns and row ends).
HUBSPOT_COLUMNS = (
    "Record ID",
    "Email",
    "First Name",
    "Last Name",
    "Phone Number",
    "Company Name",
    "Job Title",
    "Billing Contact",
    "Lifecycle Stage",
    "Marketing contact status",
    "Create Date",
    "Last Modified Date",
    "Record source",
    "Record source detail 1",
    "Unsubscribed from all email",
    'Date entered "Subscriber (Lifecycle Stage Pipeline)"',
    'Date entered "Lead (Lifecycle Stage Pipeline)"',
    'Date entered "Marketing Qualified Lead (Lifecycle Stage Pipeline)"',
    'Date entered "Customer (Lifecycle Stage Pipeline)"',
    'Date entered "Evangelist (Lifecycle Stage Pipeline)"',
    "Billing Contact",
    "",
)
BAD_KINDS = (
    "malformed_email",
    "unknown_type",
    "unparsable_date",
    "future_date",
    "missing_event_id",
    "duplicate",
    "bad_bounce_type",
    "bad_nps_score",
)

DAY = 86_400
SITE = "https://www.example.com"
BASE_RATE = 20.0  # events per contact and year that the rates below are tuned for

# --- who the contacts are -------------------------------------------------------------------

COUNTRIES = {  # weight, phone prefix, company legal form, top-level domain
    "France": (0.30, "+33 6", "SAS", "fr"),
    "Germany": (0.18, "+49 151", "GmbH", "de"),
    "United Kingdom": (0.15, "+44 7700", "Ltd", "co.uk"),
    "Sweden": (0.12, "+46 70", "AB", "se"),
    "United States": (0.12, "+1 415", "Inc.", "com"),
    "Netherlands": (0.07, "+31 6", "B.V.", "nl"),
    "Spain": (0.06, "+34 6", "S.L.", "es"),
}
FIRST_NAMES = {
    "France": "Camille Léa Manon Chloé Inès Julie Sophie Hélène Émilie Lucas Hugo Louis Théo "
    "Mathieu Nicolas Julien Antoine François",
    "Germany": "Anna Laura Julia Lena Katharina Sabine Jürgen Lukas Jonas Felix Maximilian "
    "Stefan Michael Thomas Andreas Jörg Uwe Klaus",
    "United Kingdom": "Oliver George Harry Jack Charlie Amelia Olivia Isla Emily Poppy Jessica "
    "Sophie James William Thomas Grace",
    "Sweden": "Anna Eva Maria Karin Sara Emma Åsa Linnéa Erik Lars Karl Johan Anders Per Mikael "
    "Björn Oskar Nils",
    "United States": "Michael Jennifer David Sarah Christopher Jessica Daniel Ashley Matthew "
    "Emily Andrew Megan Ryan Lauren Brian Nicole",
    "Netherlands": "Daan Sem Lucas Emma Julia Sophie Tess Lotte Bram Jeroen Sanne Anouk",
    "Spain": "Lucía María Paula Sofía Martina Carmen Javier Alejandro Pablo Daniel Sergio Álvaro",
}
LAST_NAMES = {  # "_" stands for a space inside a name
    "France": "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon "
    "Laurent Lefèvre Michel Garcia Rousseau Fontaine Girard",
    "Germany": "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann "
    "Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann",
    "United Kingdom": "Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright "
    "Thompson Evans Walker White Roberts O'Brien",
    "Sweden": "Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson "
    "Gustafsson Pettersson Lindström Lindqvist Bergström Sjöberg Åberg Holm Lund",
    "United States": "Johnson Williams Miller Davis Garcia Rodriguez Martinez Anderson Taylor "
    "Moore Jackson Lee Harris Clark Lewis Young",
    "Netherlands": "de_Jong Jansen de_Vries van_den_Berg van_Dijk Bakker Janssen Visser Smit "
    "Meijer de_Boer Mulder",
    "Spain": "García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Martín "
    "Jiménez Ruiz",
}
PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "gmx.de", "orange.fr")
COMPANY_PREFIXES = (
    "Nordic",
    "Alpine",
    "Blue",
    "Green",
    "Bright",
    "North",
    "Silver",
    "Iron",
    "Atlas",
    "Nova",
    "Polar",
    "Summit",
    "Vista",
    "Lumière",
    "Rhein",
    "Baltic",
    "Oak",
    "Cedar",
    "Harbor",
    "Pioneer",
    "Quantum",
    "Vector",
    "Orbit",
    "Delta",
    "Helix",
    "Aurora",
    "Granite",
    "Solar",
    "Falcon",
    "Maple",
)
COMPANY_CORES = {  # name part -> industry
    "Analytics": "Software",
    "Systems": "Software",
    "Software": "Software",
    "Logistics": "Logistics",
    "Mobility": "Transportation",
    "Foods": "Food & Beverage",
    "Retail": "Retail",
    "Health": "Healthcare",
    "Pharma": "Healthcare",
    "Labs": "Biotech",
    "Energy": "Energy",
    "Capital": "Financial Services",
    "Finance": "Financial Services",
    "Bank": "Financial Services",
    "Media": "Media",
    "Studio": "Media",
    "Works": "Manufacturing",
    "Robotics": "Manufacturing",
    "Consulting": "Consulting",
    "Academy": "Education",
}
PERSONAS = {  # weight, job titles
    "marketer": (
        0.30,
        [
            "Marketing Manager",
            "Head of Marketing",
            "Growth Marketer",
            "Content Manager",
            "Responsable Marketing",
            "Marknadschef",
        ],
    ),
    "sales_leader": (
        0.18,
        [
            "Sales Director",
            "Account Executive",
            "Head of Sales",
            "Business Developer",
            "Vertriebsleiter",
        ],
    ),
    "executive": (0.12, ["CEO", "COO", "Founder", "Managing Director", "Directeur Général"]),
    "developer": (0.12, ["Software Engineer", "CTO", "Data Engineer", "IT Manager"]),
    "operations": (
        0.15,
        [
            "Operations Manager",
            "RevOps Manager",
            "CRM Administrator",
            "Marketing Operations Specialist",
        ],
    ),
    "finance": (0.07, ["CFO", "Finance Manager", "Controller"]),
    "job_seeker": (0.03, ["Student", "Graduate", "Looking for new opportunities", "Intern"]),
    "": (0.03, [""]),  # persona not known
}
CREATION_SOURCE_MIX = {  # weight, lead_source_detail values
    "form": (0.30, ["Website - newsletter", "Website - contact form", "Website - demo request"]),
    "import": (0.20, ["Trade show list", "Partner list", "Legacy CRM import"]),
    "conversation": (0.06, ["Website chat", "Facebook Messenger"]),
    "integration": (0.10, [""]),  # detail comes from the integration
    "ads": (0.08, ["LinkedIn Ads", "Google Ads", "Meta Ads"]),
    "crm_ui": (0.12, ["Created by sales rep"]),
    "mobile": (0.02, ["HubSpot mobile app"]),
    "email_log": (0.06, ["Logged email (BCC)"]),
    "meeting": (0.03, ["Meetings link"]),
    "email_extension": (0.03, ["Gmail extension", "Outlook add-in"]),
}
INTEGRATIONS = {  # weight, lead_source_detail
    "zoom_webinar": (0.40, "Zoom webinar"),
    "salesforce": (0.30, "Salesforce sync"),
    "typeform": (0.20, "Typeform survey"),
    "linkedin_lead_gen": (0.10, "LinkedIn Lead Gen Form"),
}
HISTORY_YEARS = 3  # contacts were created over this many years before the window, and in it

# --- what they do ---------------------------------------------------------------------------

SOURCE_OF_TYPE = {
    **{t: "hubspot" for t in EVENT_TYPES if t.startswith("email_")},
    "page_view": "website",
    "form_submission": "website",
    "chat_started": "website",
    "ad_click": "ads",
    "webinar_registration": "zoom",
    "webinar_attended": "zoom",
    "meeting_booked": "hubspot",
    "nps_response": "hubspot",
    "sales_accepted": "salesforce",
    "deal_created": "salesforce",
    "deal_won": "salesforce",
    "deal_lost": "salesforce",
}
SOURCES = {"hubspot": "hs", "website": "web", "zoom": "zm", "salesforce": "sf", "ads": "ad"}
TYPE_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
SOURCE_CODE = {name: code for code, name in enumerate(SOURCES)}

# UTC hour-of-day weights of activity: a European audience at work.
HOUR_WEIGHTS = np.array(
    [
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.5,
        1.5,
        3,
        5,
        6,
        6,
        5.5,
        4.5,
        5.5,
        6,
        5.5,
        4.5,
        3.5,
        2.5,
        2,
        1.8,
        1.4,
        0.9,
        0.5,
    ]
)
WEEKDAY_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.4, 0.3])  # Monday first

# Per-campaign send probability by mailing class (scaled with events_per_contact_year).
SEND_PROBABILITY = {"newsletter": 0.6, "marketing": 0.12, "other": 0.05, "never": 0.0}
NEWSLETTER_SHARE = 0.5  # of contacts created as marketing contacts
CAMPAIGN_KINDS = (
    ("newsletter", "/blog/"),
    ("product-update", "/product/"),
    ("newsletter", "/blog/"),
    ("event-invite", "/webinars/"),
)
BLOG_SLUGS = (
    "what-is-a-marketing-contact",
    "lead-scoring-basics",
    "lifecycle-stages-explained",
    "email-deliverability-checklist",
    "graymail-and-engagement",
    "gdpr-and-your-crm",
    "mql-vs-sql",
    "scoring-decay",
    "cleaning-your-contact-base",
    "webinar-playbook",
    "abm-for-small-teams",
    "nps-that-matters",
)
PRODUCT_PAGES = ("scoring", "automation", "integrations", "reporting")
CAREERS_PAGES = (
    "/careers",
    "/careers/data-engineer",
    "/careers/account-executive",
    "/careers/marketing-intern",
)
OTHER_PAGES = {
    "/": 0.22,
    "/customers": 0.07,
    "/about": 0.05,
    "/docs/getting-started": 0.06,
    "/contact": 0.04,
}  # plus /blog/* 0.34 and /product/* 0.22, below
FORMS = {
    "newsletter": (0.35, "/newsletter"),
    "blog": (0.30, "/blog/"),
    "contact-us": (0.20, "/contact"),
    "demo-request": (0.15, "/demo"),
}
AD_CAMPAIGNS = (
    ("li-abm-emea", "linkedin", "/product/scoring"),
    ("google-brand", "google", "/"),
    ("google-lead-scoring", "google", "/product/scoring"),
    ("meta-retargeting", "meta", "/pricing"),
    ("li-webinar-promo", "linkedin", "/webinars"),
)
WEBINARS = (
    "lead-scoring-101",
    "marketing-contacts-explained",
    "lifecycle-stages-in-practice",
    "graymail-and-deliverability",
    "revops-roundtable",
    "crm-hygiene",
)
NPS_SCORE_WEIGHTS = np.array([2, 1, 2, 3, 3, 6, 8, 15, 22, 20, 18], float)

# Activity per contact and year for an average contact (engagement weight 1).
RATES = {"sessions": 1.8, "forms": 0.3, "chats": 0.08, "ads": 0.25, "meetings": 0.03}
FUNNEL_SHARE = 0.1  # of contacts entering the sales funnel per year (roughly)
CUSTOMER_SHARE = 0.03  # existing customers, surveyed for NPS quarterly

# How occurred_at is written: UTC as "+00:00" or "Z", Europe/Paris local time, naive UTC.
TIME_STYLES = {"+00:00": 0.55, "Z": 0.30, "paris": 0.13, "": 0.02}
TIME_SUFFIXES = ("+00:00", "Z", "+01:00", "+02:00", "")  # indexed by style, Paris is 2 or 3


class _Clock:
    """Draws timestamps (epoch seconds) the way people act: on weekdays, in office hours."""

    def __init__(self, first_day: date, last_day: date) -> None:
        self.origin = _epoch(first_day)
        n_days = (last_day - first_day).days + 1
        weekday = (first_day.weekday() + np.arange(n_days)) % 7
        weights = WEEKDAY_WEIGHTS[weekday]
        self.cdf = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])

    def sample(self, rng: np.random.Generator, lo, hi, size: int | None = None) -> np.ndarray:
        """One time in [lo, hi) per element (bounds are epoch seconds, arrays or scalars)."""
        lo, hi = np.broadcast_arrays(np.asarray(lo, np.int64), np.asarray(hi, np.int64))
        if size is not None:
            lo, hi = np.broadcast_to(lo, size), np.broadcast_to(hi, size)
        first, last = (lo - self.origin) // DAY, (hi - 1 - self.origin) // DAY
        u = rng.uniform(self.cdf[first], self.cdf[last + 1])
        day = np.clip(np.searchsorted(self.cdf, u, side="right") - 1, first, last)
        hour = rng.choice(24, size=day.shape, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
        t = self.origin + day * DAY + hour * 3600 + rng.integers(0, 3600, day.shape)
        return np.clip(t, lo, hi - 1)


class _Vocab:
    """The distinct strings of one event column; events hold int32 codes into it."""

    def __init__(self, *values: str) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}
        for value in values:
            self.code(value)

    def code(self, value: str) -> int:
        if value not in self._codes:
            self._codes[value] = len(self.values)
            self.values.append(value)
        return self._codes[value]

    def codes(self, values) -> np.ndarray:
        return np.array([self.code(value) for value in values], np.int32)


class _EventLog:
    """Events as integer columns (who, type, when, codes into vocabularies) until written."""

    def __init__(self) -> None:
        self.url, self.form, self.campaign = _Vocab(), _Vocab(), _Vocab()
        self.props = _Vocab("{}")  # code 0: no properties
        self._columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("type", "person", "t", "url", "form", "campaign", "props")
        }

    def add(self, event_type: str, person, t, *, url=-1, form=-1, campaign=-1, props=0) -> None:
        n = len(person)
        values = {
            "type": TYPE_CODE[event_type],
            "person": person,
            "t": t,
            "url": url,
            "form": form,
            "campaign": campaign,
            "props": props,
        }
        for name, value in values.items():
            dtype = {"type": np.int8, "t": np.int64}.get(name, np.int32)
            self._columns[name].append(np.broadcast_to(np.asarray(value, dtype), (n,)))

    def moments(self, *kinds: tuple[str, int | None]) -> tuple[np.ndarray, np.ndarray]:
        """(person, t) of the events so far of each `(type, url code or None: any url)`."""
        type_ = np.concatenate(self._columns["type"])
        url = np.concatenate(self._columns["url"])
        match = np.zeros(len(type_), bool)
        for event_type, url_code in kinds:
            match |= (type_ == TYPE_CODE[event_type]) & (url_code is None or url == url_code)
        person = np.concatenate(self._columns["person"])[match]
        return person, np.concatenate(self._columns["t"])[match]

    def collect(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """All events in [start, stop) by time; the sort is stable so output is reproducible.

        Column by column, so that memory holds one column twice at most.
        """
        t = np.concatenate(self._columns["t"])
        keep = np.flatnonzero((t >= start) & (t < stop))
        order = keep[np.argsort(t[keep], kind="stable")]
        del t, keep
        return {
            name: np.concatenate(self._columns.pop(name))[order] for name in list(self._columns)
        }


@dataclass(frozen=True)
class _People:
    """The contacts, one array element each; `emails` also has the newcomers after them."""

    contacts: pd.DataFrame  # the contacts file
    emails: pa.Array  # contacts, then people unknown to the contacts file
    created: np.ndarray  # epoch seconds
    propensity: np.ndarray  # engagement propensity in (0, 1), mean ~0.2
    send_probability: np.ndarray  # chance to be in a given weekly campaign
    job_seeker: np.ndarray
    customer: np.ndarray  # existing customer at the start of the window


def generate_demo_data(
    out_dir: Path,
    *,
    contacts: int = 2000,
    days: int = 365,
    seed: int = 42,
    end: date | None = None,
    events_per_contact_year: float = 20.0,
    bad_row_fraction: float = 0.003,
    events_format: Literal["csv", "parquet"] = "csv",
    split: Literal["single", "monthly", "daily"] = "monthly",
    on_step: Callable[[str, int, int], None] | None = None,
) -> DemoDataset:
    """Write a contact base and `days` days of its activity, ending with the day `end`.
    `on_step(what, done, total)` is called after each step (a progress bar hangs there).

    `end` defaults to yesterday (UTC). Files go to `out_dir`: contacts.csv, hubspot-contacts.csv,
    events/events-<period>.<fmt> (one per UTC month or day, or events.<fmt>; earlier files there
    are removed) and rejected-batch.<fmt>. The same arguments always give the same bytes.

    `events_per_contact_year` is a target, met roughly. Injected "future" rows are 2 to 30 days
    after `end`: they are in the future for an ingest run soon after `end`, as in the demo.
    Parquet files hold the same text columns as CSV files, so that bad rows survive in them.
    """
    if contacts < 1 or days < 1:
        raise ValueError("contacts and days must be at least 1")
    end = end or datetime.now(UTC).date() - timedelta(days=1)
    first_day = end - timedelta(days=days - 1)
    start, stop = _epoch(first_day), _epoch(end + timedelta(days=1))
    clock = _Clock(first_day - timedelta(days=365 * HISTORY_YEARS), end)
    rng = np.random.default_rng(seed)
    scale = events_per_contact_year / BASE_RATE

    newcomer_events = 0.01 * events_per_contact_year * contacts * days / 365
    n_newcomers = max(1, round(newcomer_events / 3))  # ~3 events each
    steps = _Steps(on_step, total=GENERATION_STEPS + 3)  # + the files, known later
    people = _make_people(rng, clock, contacts, n_newcomers, start, stop, scale)
    steps.done("contacts")

    log = _EventLog()
    _creation_events(rng, log, people, start)
    _email_campaigns(rng, log, people, start, stop)
    steps.done("email campaigns")
    _web_activity(rng, log, clock, people, start, stop, scale)
    steps.done("web activity")
    _webinars(rng, log, clock, people, start, stop, days, scale)
    steps.done("webinars")
    customers = _sales_funnel(rng, log, people, start, days, scale)
    steps.done("sales funnel")
    _nps_surveys(rng, log, customers, start, stop)
    steps.done("NPS surveys")
    _newcomers(rng, log, clock, contacts, n_newcomers, start, stop)
    events = log.collect(start, stop)
    steps.done("new contacts")

    out_dir = Path(out_dir)
    events_dir = out_dir / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    for stale in events_dir.glob("events*.*"):  # an earlier run's files would be ingested too
        stale.unlink()
    writer = _EventWriter(rng, log, people.emails, events, stop, events_format)
    event_files, n_bad = [], 0
    periods = list(_split(events["t"], split))
    steps.total = GENERATION_STEPS + len(periods) + 2
    for number, (label, rows) in enumerate(periods):
        path = events_dir / f"{label}.{events_format}"
        bad, n_rows = 0, rows.stop - rows.start
        if number == 0 and bad_row_fraction > 0:
            # At least one of each kind while that keeps the file well under the 5 % threshold.
            bad = max(round(bad_row_fraction * n_rows), min(len(BAD_KINDS), n_rows // 25))
        writer.write(path, rows, bad)
        event_files.append(path)
        n_bad += bad
        steps.done(f"wrote {path.name}")
    rejected = out_dir / f"rejected-batch.{events_format}"
    sample = np.sort(rng.choice(len(events["t"]), min(160, len(events["t"])), replace=False))
    writer.write(rejected, sample, 40)
    steps.done(f"wrote {rejected.name}")

    contacts_file, hubspot_file = out_dir / "contacts.csv", out_dir / "hubspot-contacts.csv"
    _write_csv(people.contacts, contacts_file)
    _write_hubspot_export(_hubspot_export(rng, people, clock), hubspot_file)
    source_files = _source_files(rng, people, stop, out_dir / "sources")
    steps.done(f"wrote {contacts_file.name}, {hubspot_file.name} and {len(source_files)} more")
    return DemoDataset(
        contacts_file,
        hubspot_file,
        event_files,
        source_files,
        rejected,
        contacts,
        len(events["t"]),
        n_bad,
        sum(len(_source_events(path)) for path in source_files),
    )


GENERATION_STEPS = 7  # contacts, then the six kinds of activity (files come after)


class _Steps:
    """Counts the steps of a generation for `on_step`."""

    def __init__(self, on_step: Callable[[str, int, int], None] | None, total: int):
        self.on_step, self.total, self.count = on_step, total, 0

    def done(self, what: str) -> None:
        self.count += 1
        if self.on_step:
            self.on_step(what, self.count, self.total)


# --- contacts -------------------------------------------------------------------------------


def _make_people(rng, clock, n_contacts, n_newcomers, start, stop, scale) -> _People:
    """The contacts file, plus the email addresses of `n_newcomers` people not in it."""
    n = n_contacts + n_newcomers
    countries = list(COUNTRIES)
    weights = np.array([COUNTRIES[c][0] for c in countries])

    company_name, company_domain, industry, employees, company_country = _companies(rng, n_contacts)
    popularity = 1.0 / (np.arange(len(company_name)) + 5)  # a few big accounts, a long tail
    company = rng.choice(len(company_name), n, p=popularity / popularity.sum())

    persona_names = list(PERSONAS)
    persona = rng.choice(len(persona_names), n, p=[PERSONAS[p][0] for p in persona_names])
    job_seeker = persona == persona_names.index("job_seeker")
    personal = job_seeker | (rng.random(n) < 0.2)  # a gmail-style address, not the company's
    has_company = ~personal | ((rng.random(n) < 0.5) & ~job_seeker)
    country = np.where(
        personal, rng.choice(len(countries), n, p=weights / weights.sum()), company_country[company]
    )

    first, first_ascii = _draw_names(rng, FIRST_NAMES, countries, country)
    last, last_ascii = _draw_names(rng, LAST_NAMES, countries, country)
    initial = pd.Series(first_ascii).str[0]
    first_part = pd.Series(np.where(rng.random(n) < 0.2, initial, first_ascii))
    separator = pd.Series(rng.choice([".", "_", ""], n, p=[0.7, 0.1, 0.2]))
    local = first_part + separator + pd.Series(last_ascii)
    number = pd.Series(rng.integers(1, 99, n)).astype(str)
    local = local.where(~personal | (rng.random(n) < 0.5), local + number)
    email_domain = np.where(personal, rng.choice(PERSONAL_DOMAINS, n), company_domain[company])
    emails = _unique_emails(local, pd.Series(email_domain))

    sources = list(CREATION_SOURCE_MIX)
    source = rng.choice(len(sources), n, p=[CREATION_SOURCE_MIX[s][0] for s in sources])
    integrations = list(INTEGRATIONS)
    integration = rng.choice(len(integrations), n, p=[INTEGRATIONS[i][0] for i in integrations])
    is_integration = source == sources.index("integration")
    detail = np.empty(n, object)
    for code, name in enumerate(sources):
        mask = source == code
        detail[mask] = rng.choice(CREATION_SOURCE_MIX[name][1], mask.sum())
    integration_detail = np.array([INTEGRATIONS[i][1] for i in integrations], object)
    detail[is_integration] = integration_detail[integration[is_integration]]

    created = clock.sample(rng, clock.origin, stop, size=n)
    updated = created + (rng.random(n) * (stop - 1 - created)).astype(np.int64)
    phone_prefix = np.array([COUNTRIES[c][1] for c in countries], object)[country]
    digits = pd.Series(rng.integers(0, 10**7, n)).astype(str).str.zfill(7)
    phone = pd.Series(phone_prefix) + " " + digits.str[:3] + " " + digits.str[3:]
    job_title = np.empty(n, object)
    for code, name in enumerate(persona_names):
        mask = persona == code
        job_title[mask] = rng.choice(PERSONAS[name][1], mask.sum())

    frame = pd.DataFrame(
        {
            "email": emails,
            "first_name": first,
            "last_name": last,
            "phone": phone.where(rng.random(n) < 0.4, None),
            "company": np.where(has_company, company_name[company], None),
            "job_title": job_title,
            "persona": np.array(persona_names, object)[persona],
            "industry": np.where(has_company, industry[company], None),
            "country": np.array(countries, object)[country],
            "created_at": _iso(created, "Z"),
            "updated_at": _iso(updated, "Z"),
            "creation_source": np.array(sources, object)[source],
            "integration": np.where(
                is_integration, np.array(integrations, object)[integration], None
            ),
            "lead_source_detail": detail,
            "employees": pd.array(np.where(has_company, employees[company], np.nan), dtype="Int64"),
        },
        columns=CONTACT_COLUMNS,
    )

    # Engagement: most contacts rarely engage, a few are hot (mean 0.2, median ~0.07).
    propensity = rng.beta(0.35, 1.4, n)
    # Who gets marketing email: contacts created as marketing contacts by the example config.
    marketing = (
        frame["creation_source"].isin(["form", "ads"]) | (frame["integration"] == "zoom_webinar")
    ).to_numpy()
    never = frame["creation_source"].isin(NON_MARKETING_SOURCES).to_numpy()
    newsletter = marketing & (rng.random(n) < NEWSLETTER_SHARE)
    send = np.select(
        [newsletter, marketing, never],
        [SEND_PROBABILITY["newsletter"], SEND_PROBABILITY["marketing"], SEND_PROBABILITY["never"]],
        SEND_PROBABILITY["other"],
    )
    customer = (rng.random(n) < CUSTOMER_SHARE) & (created < start) & ~job_seeker
    c = slice(0, n_contacts)
    return _People(
        frame.iloc[c].reset_index(drop=True),
        pa.array(emails, pa.string()),
        created[c],
        propensity[c],
        np.minimum(send[c] * scale, 1.0),
        job_seeker[c],
        customer[c],
    )


def _companies(rng, n_contacts: int):
    """Company names, domains, industries, sizes and countries: distinct (prefix, core, country)."""
    countries = list(COUNTRIES)
    cores = list(COMPANY_CORES)
    n_triples = len(COMPANY_PREFIXES) * len(cores) * len(countries)
    triple = rng.choice(n_triples, min(n_triples, max(20, n_contacts // 5)), replace=False)
    prefix = triple % len(COMPANY_PREFIXES)
    core = triple // len(COMPANY_PREFIXES) % len(cores)
    country = triple // (len(COMPANY_PREFIXES) * len(cores))
    parts = [
        (COMPANY_PREFIXES[p], cores[c], countries[k])
        for p, c, k in zip(prefix, core, country, strict=True)
    ]
    name = np.array([f"{p} {c} {COUNTRIES[k][2]}" for p, c, k in parts], object)
    domain = np.array([f"{_ascii(p + c)}.{COUNTRIES[k][3]}" for p, c, k in parts], object)
    industry = np.array([COMPANY_CORES[c] for _, c, _ in parts], object)
    employees = np.clip(np.rint(rng.lognormal(4.0, 1.6, len(triple))), 2, 200_000)
    return name, domain, industry, employees, country


def _draw_names(rng, pool: dict[str, str], countries: list[str], country: np.ndarray):
    """Names drawn from each person's country, and their ASCII spelling for email addresses."""
    lists = [[name.replace("_", " ") for name in pool[c].split()] for c in countries]
    sizes = np.array([len(names) for names in lists])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = np.array([name for names in lists for name in names], object)
    flat_ascii = np.array([_ascii(name) for name in flat], object)
    index = offsets[country] + rng.integers(0, sizes[country])
    return flat[index], flat_ascii[index]


def _ascii(text: str) -> str:
    """Lower-case ASCII letters only: 'Lefèvre' -> 'lefevre', "O'Brien" -> 'obrien'."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _unique_emails(local: pd.Series, domain: pd.Series) -> np.ndarray:
    """local@domain, a counter appended to the local part of any address seen before."""
    emails = local + "@" + domain
    while emails.duplicated().any():
        rank = emails.groupby(emails, sort=False).cumcount()
        local = local.where(rank == 0, local + (rank + 1).astype(str))
        emails = local + "@" + domain
    return emails.to_numpy(object)


# --- events ---------------------------------------------------------------------------------


def _creation_events(rng, log: _EventLog, people: _People, start: int) -> None:
    """A contact created in the window by a form, an ad or a chat has that event at creation."""
    new = people.created >= start
    source = people.contacts["creation_source"].to_numpy()
    detail = people.contacts["lead_source_detail"].to_numpy()
    for detail_value, form in (
        ("Website - newsletter", "newsletter"),
        ("Website - contact form", "contact-us"),
        ("Website - demo request", "demo-request"),
    ):
        who = np.flatnonzero(new & (detail == detail_value))
        log.add(
            "form_submission",
            who,
            people.created[who],
            url=log.url.code(SITE + FORMS[form][1]),
            form=log.form.code(form),
        )
    who = np.flatnonzero(new & (source == "ads"))
    urls, campaigns = _ad_codes(log)
    ad = rng.integers(0, len(AD_CAMPAIGNS), len(who))
    log.add("ad_click", who, people.created[who], url=urls[ad], campaign=campaigns[ad])
    who = np.flatnonzero(new & (source == "conversation"))
    log.add("chat_started", who, people.created[who], url=log.url.code(SITE + "/"))


def _email_campaigns(rng, log: _EventLog, people: _People, start: int, stop: int) -> None:
    """Weekly campaigns on Tuesday or Thursday morning, and what each recipient did with them.

    A hard bounce, an unsubscribe or a spam report suppresses the contact from later sends.
    """
    n = len(people.created)
    suppressed = np.zeros(n, bool)
    hard_props, soft_props = log.props.codes(['{"bounce_type": "hard"}', '{"bounce_type": "soft"}'])
    first_tuesday = start + (1 - _weekday(start)) % 7 * DAY + 8 * 3600
    for week, tuesday in enumerate(range(first_tuesday, stop, 7 * DAY)):
        send_at = tuesday + week % 2 * 2 * DAY
        kind, path = CAMPAIGN_KINDS[week % len(CAMPAIGN_KINDS)]
        page = {"/blog/": BLOG_SLUGS, "/product/": PRODUCT_PAGES, "/webinars/": WEBINARS}[path]
        landing = log.url.code(SITE + path + page[week % len(page)])
        campaign = log.campaign.code(f"{_day(send_at)}-{kind}")
        eligible = (people.created < send_at) & ~suppressed
        who = np.flatnonzero(eligible & (rng.random(n) < people.send_probability))
        m = len(who)
        everyone = np.ones(m, bool)
        sent = send_at + rng.integers(0, 1800, m)
        hard = rng.random(m) < 0.0035
        soft = ~hard & (rng.random(m) < 0.0065)
        if week == 0:  # so that rare outcomes appear in any dataset
            _at_least_one(rng, hard, everyone)
            _at_least_one(rng, soft, ~hard)
        bounced = hard | soft
        delivered = ~bounced & (rng.random(m) >= 0.021)  # the rest were deferred: no event
        delivered_at = sent + rng.integers(1, 90, m)
        opened = delivered & (rng.random(m) < people.propensity[who])
        open_delay = np.minimum(rng.lognormal(np.log(3 * 3600), 1.3, m), 5 * DAY)
        opened_at = delivered_at + open_delay.astype(np.int64)
        clicked = opened & (rng.random(m) < 0.15)
        clicked_at = opened_at + rng.integers(5, 300, m)
        unsubscribed = delivered & (rng.random(m) < 0.002)
        spam = delivered & ~unsubscribed & (rng.random(m) < 0.0002)
        if week == 0:
            _at_least_one(rng, unsubscribed, delivered)
            _at_least_one(rng, spam, delivered & ~unsubscribed)
        reacted_at = np.where(opened, opened_at, delivered_at) + rng.integers(60, DAY, m)
        visited = clicked & (rng.random(m) < 0.85)

        log.add("email_sent", who, sent, campaign=campaign)
        log.add("email_delivered", who[delivered], delivered_at[delivered], campaign=campaign)
        log.add(
            "email_bounce",
            who[bounced],
            sent[bounced] + 30,
            campaign=campaign,
            props=np.where(hard, hard_props, soft_props)[bounced],
        )
        log.add("email_open", who[opened], opened_at[opened], campaign=campaign)
        log.add("email_click", who[clicked], clicked_at[clicked], url=landing, campaign=campaign)
        log.add("page_view", who[visited], clicked_at[visited] + 2, url=landing)
        log.add("email_unsubscribe", who[unsubscribed], reacted_at[unsubscribed], campaign=campaign)
        log.add("email_spam_report", who[spam], reacted_at[spam], campaign=campaign)
        suppressed[who[hard | unsubscribed | spam]] = True


def _web_activity(rng, log: _EventLog, clock: _Clock, people: _People, start, stop, scale):
    """Visits, forms, chats, ad clicks and meetings, as Poisson counts per contact.

    Each contact's rate is proportional to its engagement propensity and to the part of the
    window it existed in.
    """
    lo = np.maximum(people.created, start)
    weight = people.propensity / people.propensity.mean()
    years = (stop - lo) / (365 * DAY)

    def draw(rate: float) -> tuple[np.ndarray, np.ndarray]:
        counts = rng.poisson(rate * scale * weight * years)
        who = np.repeat(np.arange(len(counts)), counts)
        return who, clock.sample(rng, lo[who], stop)

    who, t = draw(RATES["sessions"])
    session, t = _trail(rng, t, rng.geometric(0.5, len(who)), include_first=False)
    _page_views(rng, log, people, who[session], t)

    who, t = draw(RATES["forms"])
    names = list(FORMS)
    form = rng.choice(len(names), len(who), p=[FORMS[f][0] for f in names])
    urls = log.url.codes(SITE + FORMS[f][1] for f in names)[form]
    blog = np.array(names)[form] == "blog"
    urls[blog] = log.url.codes(SITE + "/blog/" + s for s in BLOG_SLUGS)[
        rng.integers(0, len(BLOG_SLUGS), blog.sum())
    ]
    log.add("form_submission", who, t, url=urls, form=log.form.codes(names)[form])

    who, t = draw(RATES["chats"])
    chat_pages = log.url.codes(SITE + p for p in ("/pricing", "/product/scoring", "/", "/contact"))
    log.add("chat_started", who, t, url=chat_pages[rng.integers(0, len(chat_pages), len(who))])

    who, t = draw(RATES["ads"])
    urls, campaigns = _ad_codes(log)
    ad = rng.integers(0, len(AD_CAMPAIGNS), len(who))
    log.add("ad_click", who, t, url=urls[ad], campaign=campaigns[ad])
    landed = rng.random(len(who)) < 0.8
    log.add("page_view", who[landed], t[landed] + 3, url=urls[ad][landed])

    who, t = draw(RATES["meetings"])
    log.add("meeting_booked", who, t)


def _page_views(rng, log: _EventLog, people: _People | None, who, t) -> None:
    """Page views of `who` (contacts, or newcomers when `people` is None) at times `t`.

    Hot contacts look at /pricing more, job seekers mostly at /careers.
    """
    blog, product = len(BLOG_SLUGS), len(PRODUCT_PAGES)
    paths = (
        [*OTHER_PAGES]
        + [f"/blog/{s}" for s in BLOG_SLUGS]
        + [f"/product/{p}" for p in PRODUCT_PAGES]
    )
    weights = np.array([*OTHER_PAGES.values()] + [0.34 / blog] * blog + [0.22 / product] * product)
    urls = log.url.codes(SITE + p for p in paths)[
        rng.choice(len(paths), len(who), p=weights / weights.sum())
    ]
    if people is None:
        pricing_p, careers_p = 0.08, 0.01
    else:
        pricing_p = 0.03 + 0.3 * people.propensity[who]
        careers_p = np.where(people.job_seeker[who], 0.6, 0.005)
    urls[rng.random(len(who)) < pricing_p] = log.url.code(SITE + "/pricing")
    careers = rng.random(len(who)) < careers_p
    urls[careers] = log.url.codes(SITE + p for p in CAREERS_PAGES)[
        rng.integers(0, len(CAREERS_PAGES), careers.sum())
    ]
    log.add("page_view", who, t, url=urls)


def _webinars(rng, log: _EventLog, clock: _Clock, people: _People, start, stop, days, scale):
    """A webinar every 30 days: registrations in the two weeks before, attendance on the day."""
    n = len(people.created)
    register_p = np.minimum(0.01 * scale * people.propensity / people.propensity.mean(), 1.0)
    webinar_form = log.form.code("webinar")
    for number, day in enumerate(range(20, days, 30)):
        at = start + day * DAY + 15 * 3600
        slug = WEBINARS[number % len(WEBINARS)]
        url = log.url.code(f"{SITE}/webinars/{slug}")
        campaign = log.campaign.code(f"webinar-{_day(at)}-{slug}")
        alive = people.created < at - DAY
        registered = alive & (rng.random(n) < register_p)
        _at_least_one(rng, registered, alive)
        who = np.flatnonzero(registered)
        lo = np.maximum(np.maximum(people.created[who], start), at - 14 * DAY)
        registered_at = clock.sample(rng, lo, at - 3600)
        log.add("webinar_registration", who, registered_at, url=url, campaign=campaign)
        by_form = rng.random(len(who)) < 0.6
        log.add(
            "form_submission",
            who[by_form],
            registered_at[by_form],
            url=url,
            form=webinar_form,
            campaign=campaign,
        )
        attended = rng.random(len(who)) < 0.3 + 0.4 * people.propensity[who]
        _at_least_one(rng, attended, np.ones(len(who), bool))
        joined_at = at + rng.integers(-300, 900, attended.sum())
        log.add("webinar_attended", who[attended], joined_at, url=url, campaign=campaign)


def _sales_funnel(rng, log: _EventLog, people: _People, start, days, scale):
    """Engaged contacts going meeting -> sales_accepted -> deal_created -> deal_won | deal_lost.

    Sales hears of a contact through what it does: each email click, pricing page view,
    webinar attended or demo request may start its journey (the same small chance each), a
    contact's first such moment starts it, and sales accepts it within days. So the contacts
    about to convert are the engaged ones, as in a real funnel, and the engagement score
    predicts the stages `sales_accepted`, `deal_created` and `deal_won` lead to. Journeys
    that end after the window are cut there.

    Returns when each contact became a customer (int64 max if never): existing customers
    before the window, the funnel's winners when they won.
    """
    n = len(people.created)
    customer_since = np.full(n, np.iinfo(np.int64).max)
    customer_since[people.customer] = start - 1
    person, t = log.moments(
        ("email_click", None),
        ("webinar_attended", None),
        ("page_view", log.url.code(SITE + "/pricing")),
        ("form_submission", log.url.code(SITE + FORMS["demo-request"][1])),
    )
    eligible = ~people.customer & ~people.job_seeker
    inside = (person < n) & (t >= start)
    person, t = person[inside], t[inside]
    keep = eligible[person]
    person, t = person[keep], t[keep]
    target = max(8, round(FUNNEL_SHARE * scale * n * days / 365))
    started = rng.random(len(person)) < min(1.0, target / max(len(person), 1))
    person, t = person[started], t[started]
    order = np.lexsort((t, person))
    who, first = np.unique(person[order], return_index=True)
    heard_at = t[order][first]
    size = len(who)
    if size == 0:
        return customer_since
    step = min(1.0, days / 365) * DAY  # shorter steps in a short window
    met_at = heard_at + (rng.uniform(0.1, 2, size) * step).astype(np.int64)
    accepted_at = met_at + (rng.uniform(0.5, 5, size) * step).astype(np.int64)
    created_at = accepted_at + (rng.uniform(1, 20, size) * step).astype(np.int64)
    closed_at = created_at + (rng.uniform(7, 60, size) * step).astype(np.int64)
    outcome = rng.permutation(np.resize(np.array(["won", "lost", "won", "lost", "open"]), size))
    deal = pd.Series(np.arange(1, size + 1)).astype(str).str.zfill(6)
    amount = pd.Series(np.round(rng.lognormal(9.6, 0.8, size), -2).astype(np.int64)).astype(str)
    props = log.props.codes('{"deal_id": "D-' + deal + '", "amount": ' + amount + "}")

    met = rng.random(size) < 0.75
    log.add("meeting_booked", who[met], met_at[met])
    log.add("sales_accepted", who, accepted_at)
    log.add("deal_created", who, created_at, props=props)
    for result in ("won", "lost"):
        mask = outcome == result
        log.add(f"deal_{result}", who[mask], closed_at[mask], props=props[mask])
    won = outcome == "won"
    customer_since[who[won]] = closed_at[won]
    return customer_since


def _nps_surveys(rng, log: _EventLog, customer_since, start, stop) -> None:
    """A quarterly NPS survey of customers, answered by about a third of them within days."""
    score_props = log.props.codes(f'{{"score": {score}}}' for score in range(11))
    for number, at in enumerate(range(start + 14 * DAY, stop, 91 * DAY)):
        eligible = customer_since < at
        responded = eligible & (rng.random(len(eligible)) < 0.35)
        if number == 0:
            _at_least_one(rng, responded, eligible)
        who = np.flatnonzero(responded)
        score = rng.choice(11, len(who), p=NPS_SCORE_WEIGHTS / NPS_SCORE_WEIGHTS.sum())
        answered_at = at + rng.integers(600, 5 * DAY, len(who))
        log.add("nps_response", who, answered_at, props=score_props[score])


def _newcomers(rng, log: _EventLog, clock: _Clock, first, count, start, stop) -> None:
    """People unknown to the contacts file: a form, chat or ad click, then a few page views."""
    who = first + np.arange(count)
    t = clock.sample(rng, start, stop, size=count)
    entry = rng.choice(3, count, p=[0.5, 0.2, 0.3])
    forms = ["newsletter", "contact-us", "demo-request"]
    form = rng.integers(0, len(forms), count)
    form_urls = log.url.codes(SITE + FORMS[f][1] for f in forms)
    by = entry == 0
    log.add(
        "form_submission",
        who[by],
        t[by],
        url=form_urls[form[by]],
        form=log.form.codes(forms)[form[by]],
    )
    by = entry == 1
    log.add("chat_started", who[by], t[by], url=log.url.code(SITE + "/pricing"))
    by = entry == 2
    urls, campaigns = _ad_codes(log)
    ad = rng.integers(0, len(AD_CAMPAIGNS), by.sum())
    log.add("ad_click", who[by], t[by], url=urls[ad], campaign=campaigns[ad])
    visit, visit_at = _trail(rng, t, rng.poisson(2.0, count), include_first=True)
    _page_views(rng, log, None, who[visit], visit_at)


def _trail(rng, t0, counts, *, include_first: bool) -> tuple[np.ndarray, np.ndarray]:
    """`counts[i]` times a few minutes apart from each `t0[i]` (the pages of a visit).

    Returns the index i of each time, and the times; the first is `t0[i]` itself unless
    `include_first` moves it on too.
    """
    index = np.repeat(np.arange(len(t0)), counts)
    gaps = rng.integers(10, 300, len(index))
    first = np.cumsum(counts) - counts
    if not include_first:
        gaps[first[counts > 0]] = 0
    elapsed = np.concatenate([[0], np.cumsum(gaps)])
    return index, t0[index] + elapsed[1:] - np.repeat(elapsed[first], counts)


def _ad_codes(log: _EventLog) -> tuple[np.ndarray, np.ndarray]:
    """Landing-page URL and campaign codes of each ad campaign."""
    urls = log.url.codes(
        f"{SITE}{path}?utm_source={network}&utm_campaign={name}"
        for name, network, path in AD_CAMPAIGNS
    )
    return urls, log.campaign.codes(name for name, _, _ in AD_CAMPAIGNS)


def _at_least_one(rng, mask: np.ndarray, eligible: np.ndarray) -> None:
    """Set one random eligible element of `mask` if none is set (rare outcomes must appear)."""
    if not mask.any() and eligible.any():
        mask[rng.choice(np.flatnonzero(eligible))] = True


# --- files ----------------------------------------------------------------------------------


EVENT_SCHEMA = pa.schema([(name, pa.string()) for name in EVENT_COLUMNS])


class _EventWriter:
    """Writes chosen rows of the events as files; spoils some rows on request."""

    def __init__(self, rng, log: _EventLog, emails: pa.Array, events, stop, fmt) -> None:
        self.rng, self.events, self.emails, self.stop, self.fmt = rng, events, emails, stop, fmt
        self.vocab = {
            name: pa.array(getattr(log, name).values, pa.string())
            for name in ("url", "form", "campaign", "props")
        }
        source_of_type = np.array([SOURCE_CODE[SOURCE_OF_TYPE[t]] for t in EVENT_TYPES], np.int8)
        self.source = source_of_type[events["type"]]
        # Event ids count up per source in time order; spoiled rows take the next ones.
        self.seq = np.zeros(len(self.source), np.int32)
        self.next_seq = {}
        for code, name in enumerate(SOURCES):
            mask = self.source == code
            self.seq[mask] = np.arange(1, mask.sum() + 1)
            self.next_seq[name] = int(mask.sum()) + 1
        self.style = rng.choice(
            len(TIME_STYLES), len(self.source), p=[*TIME_STYLES.values()]
        ).astype(np.int8)

    def write(self, path: Path, rows: np.ndarray | slice, n_bad: int) -> None:
        table = self._table(rows)
        if n_bad and table.num_rows:
            table = self._spoil(table, n_bad)
        if self.fmt == "csv":
            pacsv.write_csv(table, path)
        else:
            pq.write_table(table, path)

    def _table(self, rows: np.ndarray | slice) -> pa.Table:
        e = {name: column[rows] for name, column in self.events.items()}
        source = self.source[rows]
        prefixes = pa.array([f"{prefix}-" for prefix in SOURCES.values()])
        numbers = pc.utf8_lpad(pc.cast(pa.array(self.seq[rows]), pa.string()), 9, "0")
        columns = {
            "event_id": pc.binary_join_element_wise(pc.take(prefixes, source), numbers, ""),
            "source": pc.take(pa.array(list(SOURCES)), source),
            "email": pc.take(self.emails, e["person"]),
            "type": pc.take(pa.array(EVENT_TYPES), e["type"]),
            "occurred_at": _event_times(e["t"], self.style[rows]),
            "url": _take(self.vocab["url"], e["url"]),
            "form_id": _take(self.vocab["form"], e["form"]),
            "campaign_id": _take(self.vocab["campaign"], e["campaign"]),
            "properties": _take(self.vocab["props"], e["props"]),
        }
        return pa.table(columns, schema=EVENT_SCHEMA)

    def _spoil(self, table: pa.Table, n_bad: int) -> pa.Table:
        """`table` with `n_bad` bad rows (copies of random rows, spoilt) spliced in."""
        rng, n = self.rng, table.num_rows
        kinds = rng.permutation(np.resize(np.array(BAD_KINDS), n_bad))
        templates = rng.integers(0, n, n_bad)
        rows = table.take(templates).to_pylist()
        for row, kind in zip(rows, kinds, strict=True):
            self._spoil_row(row, kind)
        bad = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
        # Each bad row goes after a random good row; a duplicate after its original.
        after = rng.integers(0, n, n_bad)
        after = np.where(kinds == "duplicate", np.maximum(after, templates), after)
        order = np.argsort(np.concatenate([np.arange(n) * 2, after * 2 + 1]), kind="stable")
        return pa.concat_tables([table, bad]).take(order)

    def _spoil_row(self, row: dict, kind: str) -> None:
        """Make `row` bad in the one way `kind` says, as ingest must catch (README: Ingest)."""
        rng = self.rng
        if kind == "duplicate":
            return  # an exact copy of a row of the same file
        if kind == "bad_bounce_type":
            row.update(
                source="hubspot",
                type="email_bounce",
                url=None,
                form_id=None,
                properties='{"bounce_type": "medium"}',
            )
        elif kind == "bad_nps_score":
            row.update(
                source="hubspot",
                type="nps_response",
                url=None,
                form_id=None,
                campaign_id=None,
                properties='{"score": 14}',
            )
        elif kind == "malformed_email":
            local, domain = row["email"].split("@")
            row["email"] = rng.choice(
                [f"{local}@@{domain}", f"{local}.{domain}", f"{local}@", f"{local} @{domain}"]
            )
        elif kind == "unknown_type":
            row["type"] = rng.choice(["email_opened", "pageview", "form_submit", "webinar_joined"])
        elif kind == "unparsable_date":
            row["occurred_at"] = rng.choice(
                ["2025-13-45T25:61:00Z", "not a date", "yesterday", "2026-02-30T10:00:00+01:00"]
            )
        elif kind == "future_date":
            ahead = self.stop + int(rng.integers(2 * DAY, 30 * DAY))
            row["occurred_at"] = _iso(np.array([ahead]), "+00:00")[0]
        row["event_id"] = None if kind == "missing_event_id" else self._next_id(row["source"])

    def _next_id(self, source: str) -> str:
        number = self.next_seq[source]
        self.next_seq[source] += 1
        return f"{SOURCES[source]}-{number:09d}"


def _split(t: np.ndarray, split: str):
    """(file label, slice of rows) per file with events; `t` is sorted."""
    if split == "single":
        yield "events", slice(0, len(t))
        return
    if len(t) == 0:
        return
    unit = "datetime64[M]" if split == "monthly" else "datetime64[D]"
    first, last = t[[0, -1]].astype("datetime64[s]").astype(unit)
    periods = np.arange(first, last + 2)  # each period's start, and the end of the last one
    bounds = np.searchsorted(t, periods.astype("datetime64[s]").astype(np.int64))
    for period, begin, end in zip(periods[:-1], bounds[:-1], bounds[1:], strict=True):
        if end > begin:
            yield f"events-{period}", slice(begin, end)


def _event_times(t: np.ndarray, style: np.ndarray) -> pa.Array:
    """ISO-8601 text of epoch seconds `t`, written in each row's style (see TIME_STYLES)."""
    paris = style == list(TIME_STYLES).index("paris")
    offset = np.where(paris, _paris_offset_hours(t), 0)
    text = _iso_text(t + offset * 3600)
    suffix_code = np.where(paris, offset + 1, np.where(style > 2, 4, style))  # TIME_SUFFIXES
    suffix = pc.take(pa.array(TIME_SUFFIXES), suffix_code)
    return pc.binary_join_element_wise(text, suffix, "")


def _paris_offset_hours(t: np.ndarray) -> np.ndarray:
    """UTC offset of Europe/Paris at each epoch second: +2 in EU summer time, else +1."""
    year = t.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970
    years = np.unique(year)
    position = np.searchsorted(years, year)
    begins = np.array([_last_sunday_1am_utc(y, 3) for y in years], np.int64)[position]
    ends = np.array([_last_sunday_1am_utc(y, 10) for y in years], np.int64)[position]
    return np.where((t >= begins) & (t < ends), 2, 1)


def _last_sunday_1am_utc(year: int, month: int) -> int:
    day = date(year, month, 31)
    return _epoch(day - timedelta(days=(day.weekday() + 1) % 7)) + 3600


STAGE_LABELS = {
    "subscriber": "Subscriber",
    "lead": "Lead",
    "marketingqualifiedlead": "Marketing Qualified Lead",
    "customer": "Customer",
    "evangelist": "Evangelist",
    "other": "Other",
    "": "",
}
RECORD_SOURCE_LABELS = {
    "form": "Forms",
    "import": "Import",
    "conversation": "Conversations",
    "integration": "Integration",
    "ads": "Ads",
    "crm_ui": "CRM UI",
    "mobile": "Mobile iOS",
    "email_log": "BCC'd Email",
    "meeting": "Meetings",
    "email_extension": "Sales email extension",
}
PORTAL_ZONE = "Europe/Paris"  # the shipped configuration's account zone: the portal's too


def _hubspot_export(rng, people: _People, clock: _Clock) -> pd.DataFrame:
    """~5 % of the contacts as a HubSpot export shows them: labels, not values; the portal's
    local times; record sources; stage entry dates; a few unsubscribed from all email; a few
    phone-only contacts without email (keyed by Record ID); association columns repeated."""
    n = len(people.contacts)
    rows = np.sort(rng.choice(n, max(1, round(0.05 * n)), replace=False))
    c = people.contacts.iloc[rows].reset_index(drop=True)
    size = len(rows)
    # Emails as people typed them: some capitalised, a few padded (ingest trims, lower-cases).
    email = c["email"].where(rng.random(size) >= 0.08, c["email"].str.title())
    email = email.where(rng.random(size) >= 0.02, " " + email + " ")
    stage = rng.choice(["subscriber", "lead", "other", ""], size, p=[0.35, 0.45, 0.05, 0.15])
    stage = np.where(people.propensity[rows] > 0.5, "marketingqualifiedlead", stage)
    customer = rng.choice(["customer", "evangelist"], size, p=[0.85, 0.15])
    stage = np.where(people.customer[rows], customer, stage)
    marketing = c["creation_source"].isin(["form", "ads"]) | (c["integration"] == "zoom_webinar")

    def local(times: pd.Series) -> pd.Series:
        zoned = pd.to_datetime(times, utc=True).dt.tz_convert(PORTAL_ZONE)
        return zoned.dt.strftime("%Y-%m-%d %H:%M")

    created = local(c["created_at"])
    frame = pd.DataFrame(
        {
            "Record ID": (10_000_000 + np.sort(rng.choice(90_000_000, size, replace=False))).astype(
                str
            ),
            "Email": email,
            "First Name": c["first_name"],
            "Last Name": c["last_name"],
            "Phone Number": c["phone"],
            "Company Name": c["company"],
            "Job Title": c["job_title"],
            "Lifecycle Stage": pd.Series(stage).map(STAGE_LABELS),
            "Marketing contact status": np.where(
                marketing, "Marketing contact", "Non-marketing contact"
            ),
            "Create Date": created,
            "Last Modified Date": local(c["updated_at"]),
            "Record source": c["creation_source"].map(RECORD_SOURCE_LABELS).fillna(""),
            "Record source detail 1": c["integration"].fillna(""),
            "Unsubscribed from all email": np.where(rng.random(size) < 0.03, "true", "false"),
        }
    )
    for name, label in STAGE_LABELS.items():  # the day the contact entered its stage
        if label and name != "other":
            header = f'Date entered "{label} (Lifecycle Stage Pipeline)"'
            frame[header] = np.where(stage == name, created, "")
    phone_only = max(1, size // 20)  # chat and phone contacts: no email, a Record ID
    extra = pd.DataFrame(
        {
            "Record ID": [str(9_000_000 + i) for i in range(phone_only)],
            "Email": "",
            "First Name": c["first_name"].iloc[:phone_only].to_numpy(),
            "Last Name": c["last_name"].iloc[:phone_only].to_numpy(),
            "Phone Number": [f"+33 6 {10 + i:02d} 00 00 00" for i in range(phone_only)],
            "Lifecycle Stage": "Lead",
            "Marketing contact status": "Non-marketing contact",
            "Create Date": created.iloc[:phone_only].to_numpy(),
            "Last Modified Date": created.iloc[:phone_only].to_numpy(),
            "Record source": "Conversations",
        }
    )
    frame = pd.concat([frame, extra], ignore_index=True).fillna("")
    frame.insert(7, "Billing Contact", frame["Company Name"])  # association columns, repeated
    frame["Billing Contact (2)"] = ""
    return frame[[name if name else "Billing Contact (2)" for name in HUBSPOT_COLUMNS[:-2]]
                 + ["Billing Contact (2)"]]  # fmt: skip


def _write_hubspot_export(frame: pd.DataFrame, path: Path) -> None:
    """As HubSpot writes an export: every value quoted, association columns under one repeated
    name, and a comma ending each row (an empty last header)."""
    header = ["Billing Contact" if name == "Billing Contact (2)" else name for name in frame]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow([*header, ""])
        writer.writerows([*row, ""] for row in frame.itertuples(index=False))


# --- each email platform's own files ------------------------------------------------------------


def _source_files(rng, people: _People, stop: int, folder: Path) -> list[Path]:
    """A campaign of the last fortnight in each email platform's own format, as a user exports
    it: SendGrid's Event Webhook posts, a HubSpot Email Events page, a Mailchimp email-activity
    report, Segment track calls. Each platform has its own recipients, ids and events (a few
    opens by mail-privacy proxies, a few clicks by link scanners, and events leadflow does not
    model, which ingest counts as ignored)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(people.contacts)
    emails = people.emails.to_pylist()[:n]
    writers = (_sendgrid_file, _hubspot_events_file, _mailchimp_file, _segment_file)
    paths = []
    for number, write in enumerate(writers):
        who = np.sort(rng.choice(n, max(4, round(0.04 * n)), replace=False))
        sent = stop - (3 + 3 * number) * DAY + 9 * 3600 + rng.integers(0, 1800, len(who))
        opened = rng.random(len(who)) < np.clip(people.propensity[who] * 2, 0.1, 0.9)
        machine = opened & (rng.random(len(who)) < 0.2)
        clicked = opened & (rng.random(len(who)) < 0.3)
        bounced = ~opened & (rng.random(len(who)) < 0.04)
        bounced[0] = True  # so that each file has one
        recipients = [
            {
                "email": emails[i],
                "sent": int(t),
                "open": int(t + 1800 + rng.integers(0, 3 * 3600)) if o else None,
                "machine": bool(m),
                "click": int(t + 2 * 3600 + rng.integers(0, 3600)) if k else None,
                "scanner": bool(k and rng.random() < 0.2),
                "bounce": bool(b),
                "index": j,
            }
            for j, (i, t, o, m, k, b) in enumerate(
                zip(who, sent, opened, machine, clicked, bounced, strict=True)
            )
        ]
        paths.append(write(folder, recipients, f"{_day(int(sent[0]))}-source-{number}"))
    return paths


def _iso_seconds(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sendgrid_file(folder: Path, recipients: list[dict], campaign: str) -> Path:
    events = []

    def add(r: dict, kind: str, t: int, **fields) -> None:
        events.append(
            {"email": r["email"], "category": [campaign], "sg_message_id": f"m{r['index']}",
             "event": kind, "timestamp": t, "sg_event_id": f"sg-{campaign}-{len(events)}",
             **fields}
        )  # fmt: skip

    for r in recipients:
        add(r, "processed", r["sent"])  # ignored: leadflow does not model it
        if r["bounce"]:
            add(r, "bounce", r["sent"] + 20, type="bounce", reason="550 5.1.1 unknown user")
            continue
        add(r, "delivered", r["sent"] + 5)
        if r["open"]:
            add(r, "open", r["open"], sg_machine_open=r["machine"], useragent="Mozilla/5.0")
        if r["click"]:
            at = r["sent"] + 8 if r["scanner"] else r["click"]  # a link scanner, at once
            add(r, "click", at, url="https://www.leadflow.example/pricing")
    path = folder / "sendgrid-events.json"
    path.write_text(json.dumps(events, indent=1), encoding="utf-8")
    return path


def _hubspot_events_file(folder: Path, recipients: list[dict], campaign: str) -> Path:
    events = []
    campaign_id = 25_000_000 + int(hashlib.md5(campaign.encode()).hexdigest()[:6], 16) % 100_000

    def add(kind: str, r: dict, t: int, **fields) -> None:
        events.append(
            {"id": f"hs-{len(events):06d}", "created": t * 1000, "type": kind,
             "recipient": r["email"], "emailCampaignId": campaign_id, "portalId": 62515,
             "appName": "Batch", **fields}
        )  # fmt: skip

    for r in recipients:
        add("PROCESSED", r, r["sent"])  # ignored
        add("SENT", r, r["sent"] + 1)
        if r["bounce"]:
            add("BOUNCE", r, r["sent"] + 20, category="UNKNOWN_USER", status="550")
            continue
        add("DELIVERED", r, r["sent"] + 5)
        if r["open"]:
            add("OPEN", r, r["open"], filteredEvent=r["machine"], browser={"name": "Firefox"})
        if r["click"]:
            add(
                "CLICK",
                r,
                r["click"],
                url="https://www.leadflow.example/blog/",
                filteredEvent=False,
            )
    page = {"hasMore": False, "offset": "aWQ6ZW5k", "events": events}
    path = folder / "hubspot-email-events.json"
    path.write_text(json.dumps(page, indent=1), encoding="utf-8")
    return path


def _mailchimp_file(folder: Path, recipients: list[dict], campaign: str) -> Path:
    campaign_id = hashlib.md5(campaign.encode()).hexdigest()[:10]
    emails = []
    for r in recipients:
        activity = []
        if r["bounce"]:
            activity.append({"action": "bounce", "type": "hard",
                             "timestamp": _iso_seconds(r["sent"] + 20)})  # fmt: skip
        if r["open"]:
            activity.append({"action": "open", "timestamp": _iso_seconds(r["open"]),
                             "ip": "192.0.2.1", "is_proxy_open": r["machine"]})  # fmt: skip
        if r["click"]:
            url = "https://www.leadflow.example/webinars/"
            activity.append({"action": "click", "timestamp": _iso_seconds(r["click"]),
                             "url": url, "ip": "192.0.2.1"})  # fmt: skip
        emails.append(
            {"campaign_id": campaign_id, "list_id": "4ca5becb8d", "list_is_active": True,
             "email_id": hashlib.md5(r["email"].encode()).hexdigest(),
             "email_address": r["email"], "activity": activity}
        )  # fmt: skip
    report = {"emails": emails, "campaign_id": campaign_id, "total_items": len(emails)}
    path = folder / "mailchimp-email-activity.json"
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return path


def _segment_file(folder: Path, recipients: list[dict], campaign: str) -> Path:
    lines = []

    def add(name: str, r: dict, t: int, **properties) -> None:
        lines.append(
            {"type": "track", "event": name, "messageId": f"seg-{len(lines):06d}",
             "userId": f"u{r['index']}", "timestamp": _iso_seconds(t),
             "context": {"traits": {"email": r["email"]}},
             "properties": {"campaign_id": campaign, **properties}}
        )  # fmt: skip

    for r in recipients:
        if r["bounce"]:
            add("Email Bounced", r, r["sent"] + 20, bounce_type="hard")
            continue
        add("Email Delivered", r, r["sent"] + 5)
        if r["open"]:
            add("Email Opened", r, r["open"])
        if r["click"]:
            add("Email Link Clicked", r, r["click"], link_url="https://www.leadflow.example/")
            add("Trial Started", r, r["click"] + 600, plan="pro")  # ignored unless configured
    path = folder / "segment-tracks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _source_events(path: Path) -> list:
    """The records of a source file (to count the demo's events)."""
    text_ = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [line for line in text_.splitlines() if line.strip()]
    document = json.loads(text_)
    if isinstance(document, list):
        return document
    if "events" in document:
        return document["events"]
    return [item for email in document["emails"] for item in email["activity"]]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)


def _take(values: pa.Array, codes: np.ndarray) -> pa.Array:
    """values[codes], null where the code is -1."""
    return pc.take(values, pa.array(codes, mask=codes < 0))


def _iso(t: np.ndarray, suffix: str) -> np.ndarray:
    return pc.binary_join_element_wise(_iso_text(t), suffix, "").to_numpy(zero_copy_only=False)


def _iso_text(t: np.ndarray) -> pa.Array:
    """'YYYY-MM-DDTHH:MM:SS' of epoch seconds (Arrow's cast: ten times faster than strftime)."""
    text = pc.cast(pa.array(t.astype("datetime64[s]")), pa.string())
    return pc.utf8_replace_slice(text, 10, 11, "T")


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _weekday(t: int) -> int:
    return (t // DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0


def _day(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()
