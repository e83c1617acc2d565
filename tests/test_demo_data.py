"""The demo data generator: deterministic, sized as asked, realistic, and bad where it says."""

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from leadflow.demo_data import CONTACT_COLUMNS, HUBSPOT_COLUMNS, generate_demo_data
from leadflow.domain import CREATION_SOURCES, EVENT_COLUMNS, EVENT_TYPES

END = date(2026, 4, 30)  # the window spans summer and winter time
STOP = pd.Timestamp(END + timedelta(days=1), tz="UTC")  # end of the last day
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def read_events(path: Path) -> pd.DataFrame:
    """An event file as text, empty cells as ''; occurred_at parsed into `when` (NaT if bad)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path).fillna("")
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["when"] = pd.to_datetime(
        frame["occurred_at"], format="ISO8601", utc=True, errors="coerce"
    )
    return frame


def bad_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows that ingest must quarantine (README: Ingest), found independently of the generator."""
    props = frame["properties"].map(json.loads)
    bounce_type = props.map(lambda p: p.get("bounce_type"))
    score = props.map(lambda p: p.get("score"))
    return (
        ~frame["email"].str.match(EMAIL)
        | ~frame["type"].isin(EVENT_TYPES)
        | frame["when"].isna()
        | (frame["when"] >= STOP)
        | (frame["event_id"] == "")
        | frame.duplicated(["source", "event_id"])
        | ((frame["type"] == "email_bounce") & ~bounce_type.isin(["hard", "soft"]))
        | ((frame["type"] == "nps_response") & ~score.isin(range(11)))
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_demo_data(
        tmp_path_factory.mktemp("demo"), contacts=600, days=180, seed=7, end=END
    )


@pytest.fixture(scope="module")
def events(dataset) -> pd.DataFrame:
    """Good event rows of every file, with the file's position."""
    frames = []
    for number, path in enumerate(dataset.event_files):
        frame = read_events(path)
        frames.append(frame[~bad_rows(frame)].assign(file=number))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def contacts(dataset) -> pd.DataFrame:
    return pd.read_csv(dataset.contacts_file, dtype=str, keep_default_na=False)


def all_bytes(dataset) -> dict[str, bytes]:
    files = [
        dataset.contacts_file,
        dataset.hubspot_file,
        dataset.rejected_file,
        *dataset.event_files,
        *dataset.source_files,
    ]
    return {path.name: path.read_bytes() for path in files}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    args = {"contacts": 200, "days": 40, "end": END}
    first = generate_demo_data(tmp_path / "a", seed=3, **args)
    again = generate_demo_data(tmp_path / "b", seed=3, **args)
    other = generate_demo_data(tmp_path / "c", seed=4, **args)
    assert all_bytes(first) == all_bytes(again)
    assert first.contacts_file.read_bytes() != other.contacts_file.read_bytes()
    assert first.event_files[-1].read_bytes() != other.event_files[-1].read_bytes()


def test_parquet_holds_the_same_rows_as_csv(tmp_path):
    args = {"contacts": 200, "days": 40, "end": END, "split": "single"}
    csv = generate_demo_data(tmp_path / "csv", **args)
    parquet = generate_demo_data(tmp_path / "parquet", events_format="parquet", **args)
    for csv_file, parquet_file in [
        (csv.event_files[0], parquet.event_files[0]),
        (csv.rejected_file, parquet.rejected_file),
    ]:
        pd.testing.assert_frame_equal(read_events(csv_file), read_events(parquet_file))


def test_columns_exactly_as_specified(dataset, contacts):
    assert list(contacts.columns) == list(CONTACT_COLUMNS)
    assert CONTACT_COLUMNS[:13] == (
        "email",
        "first_name",
        "last_name",
        "phone",
        "company",
        "job_title",
        "persona",
        "industry",
        "country",
        "created_at",
        "updated_at",
        "creation_source",
        "integration",
    )
    with dataset.hubspot_file.open(newline="") as handle:
        assert next(csv.reader(handle)) == list(HUBSPOT_COLUMNS)
    for path in [*dataset.event_files, dataset.rejected_file]:
        assert pd.read_csv(path, nrows=0).columns.tolist() == list(EVENT_COLUMNS)


def test_sizes_scale_with_contacts_and_days(tmp_path):
    def n_events(contacts: int, days: int) -> int:
        out = tmp_path / f"{contacts}-{days}"
        return generate_demo_data(out, contacts=contacts, days=days, end=END).n_events

    base = n_events(600, 60)
    assert 15 <= base / (600 * 60 / 365) <= 30  # events per contact and year, default 20
    assert 1.5 <= n_events(1200, 60) / base <= 2.5
    assert 1.5 <= n_events(600, 120) / base <= 2.5


def test_every_event_type_appears(tmp_path):
    dataset = generate_demo_data(tmp_path, contacts=500, days=90, seed=11, end=END, split="single")
    assert set(read_events(dataset.event_files[0])["type"]) >= set(EVENT_TYPES)


def test_bad_rows_only_in_first_file_and_counted(dataset):
    counts = [int(bad_rows(read_events(path)).sum()) for path in dataset.event_files]
    assert counts[0] == dataset.n_bad_rows > 0
    assert counts[1:] == [0] * (len(counts) - 1)
    total = sum(len(read_events(path)) for path in dataset.event_files)
    assert total == dataset.n_events + dataset.n_bad_rows


def test_first_file_has_every_kind_of_bad_row(dataset):
    first = read_events(dataset.event_files[0])
    props = first["properties"]
    assert (~first["email"].str.match(EMAIL)).any()
    assert (~first["type"].isin(EVENT_TYPES)).any()
    assert first["when"].isna().any()
    assert (first["when"] >= STOP + pd.Timedelta(days=2)).any()
    assert (first["event_id"] == "").any()
    assert first.duplicated(["source", "event_id"]).any()
    assert (props == '{"bounce_type": "medium"}').any()
    assert (props == '{"score": 14}').any()


def test_rejected_file_is_bad_enough_to_be_rejected(dataset):
    rejected = read_events(dataset.rejected_file)
    assert 150 <= len(rejected) <= 250
    assert bad_rows(rejected).mean() > 0.05


def test_events_within_the_window(events):
    first_day = pd.Timestamp(END - timedelta(days=179), tz="UTC")
    assert events["when"].min() >= first_day
    assert events["when"].max() < STOP


def test_event_ids_unique_per_source(events):
    assert not events.duplicated(["source", "event_id"]).any()
    assert events["event_id"].str.startswith(("hs-", "web-", "zm-", "sf-", "ad-")).all()


def test_occurred_at_styles_and_paris_offsets(events):
    suffix = events["occurred_at"].str.extract(r"(Z|[+-]\d\d:\d\d)$")[0].fillna("naive")
    assert set(suffix) == {"Z", "+00:00", "+01:00", "+02:00", "naive"}
    assert suffix.isin(["Z", "+00:00"]).mean() > 0.7
    paris = events[suffix.isin(["+01:00", "+02:00"])]
    zone = ZoneInfo("Europe/Paris")
    expected = [
        f"+0{int(t.astimezone(zone).utcoffset().total_seconds()) // 3600}:00" for t in paris["when"]
    ]
    assert (paris["occurred_at"].str[-6:] == expected).all()


def test_engagement_is_heavy_tailed(events, contacts):
    opens = events[events["type"] == "email_open"]["email"].value_counts()
    opens = opens.reindex(contacts["email"], fill_value=0).sort_values(ascending=False)
    top = opens.iloc[: len(opens) // 20]
    assert opens.median() <= 1
    assert top.min() >= 3
    assert top.sum() >= 0.35 * opens.sum()


def test_email_rates_are_plausible(events):
    count = events["type"].value_counts()
    sent = count["email_sent"]
    assert 0.95 <= count["email_delivered"] / sent <= 0.99
    assert 0.15 <= count["email_open"] / count["email_delivered"] <= 0.27
    assert 0.08 <= count["email_click"] / count["email_open"] <= 0.25
    assert 0.003 <= count["email_bounce"] / sent <= 0.03
    bounce_types = events[events["type"] == "email_bounce"]["properties"].map(json.loads)
    assert {p["bounce_type"] for p in bounce_types} == {"hard", "soft"}


def test_suppressed_contacts_get_no_later_sends(events):
    bounce_type = events["properties"].str.extract(r'"bounce_type": "(\w+)"')[0]
    stops = events[
        events["type"].isin(["email_unsubscribe", "email_spam_report"]) | (bounce_type == "hard")
    ]
    suppressed_at = stops.groupby("email")["when"].min()
    sends = events[events["type"] == "email_sent"]
    later = sends["when"] > sends["email"].map(suppressed_at)
    assert len(suppressed_at) > 0
    assert not later.any()


def test_funnel_steps_in_order(events):
    funnel = events[
        events["type"].isin(["sales_accepted", "deal_created", "deal_won", "deal_lost"])
    ]
    when = funnel.pivot_table(index="email", columns="type", values="when", aggfunc="min")
    assert len(when) > 0 and when["deal_won"].notna().any() and when["deal_lost"].notna().any()
    created = when["deal_created"]
    assert (when["sales_accepted"] <= created)[created.notna()].all()
    # A journey is cut only at the window's end (a deal comes within 20 days of acceptance).
    cut = when["sales_accepted"][created.isna()]
    assert (cut >= STOP - pd.Timedelta(days=20)).all()
    assert not (when["deal_won"] < when["deal_created"]).any()
    assert not (when["deal_lost"] < when["deal_created"]).any()
    assert not (when["deal_won"].notna() & when["deal_lost"].notna()).any()


def test_nps_and_forms_values(events):
    scores = events[events["type"] == "nps_response"]["properties"].map(json.loads)
    assert {p["score"] for p in scores} <= set(range(11))
    forms = set(events[events["type"] == "form_submission"]["form_id"])
    assert forms == {"newsletter", "blog", "demo-request", "contact-us", "webinar"}
    assert events[events["type"] == "ad_click"]["campaign_id"].ne("").all()


def test_contacts_are_plausible(contacts):
    assert contacts["email"].is_unique
    assert (contacts["email"] == contacts["email"].str.lower()).all()
    assert contacts["email"].str.match(EMAIL).all()
    assert 0.3 <= (contacts["phone"] != "").mean() <= 0.5
    assert 0.005 <= (contacts["persona"] == "job_seeker").mean() <= 0.07
    assert set(contacts["creation_source"]) <= set(CREATION_SOURCES)
    is_integration = contacts["creation_source"] == "integration"
    assert ((contacts["integration"] != "") == is_integration).all()
    created = pd.to_datetime(contacts["created_at"], utc=True)
    updated = pd.to_datetime(contacts["updated_at"], utc=True)
    assert (created <= updated).all() and (updated < STOP).all()


def test_job_seekers_look_at_careers(events, contacts):
    seekers = set(contacts[contacts["persona"] == "job_seeker"]["email"])
    views = events[events["type"] == "page_view"]
    careers = views["url"].str.contains("/careers")
    assert careers[views["email"].isin(seekers)].mean() > 0.3
    assert careers[~views["email"].isin(seekers)].mean() < 0.05


def test_some_events_come_from_unknown_people(events, contacts):
    unknown = events[~events["email"].isin(contacts["email"])]
    assert 0.003 <= len(unknown) / len(events) <= 0.03
    first = unknown.sort_values("when").groupby("email")["type"].first()
    assert set(first) <= {"form_submission", "chat_started", "ad_click"}


def test_hubspot_export(dataset, contacts):
    raw = dataset.hubspot_file.read_text()
    assert raw.splitlines()[1].startswith('"') and raw.splitlines()[1].endswith(',""')
    hubspot = pd.read_csv(dataset.hubspot_file, dtype=str, keep_default_na=False)
    assert 0.03 <= len(hubspot) / len(contacts) <= 0.08
    assert hubspot["Record ID"].is_unique
    with_email = hubspot[hubspot["Email"] != ""]
    assert with_email["Email"].str.strip().str.lower().isin(contacts["email"]).all()
    assert 1 <= (hubspot["Email"] == "").sum() <= len(hubspot) // 10  # phone-only contacts
    labels = {"Subscriber", "Lead", "Marketing Qualified Lead", "Customer", "Evangelist"}
    assert set(hubspot["Lifecycle Stage"]) <= labels | {"Other", ""}
    assert set(hubspot["Marketing contact status"]) == {
        "Marketing contact",
        "Non-marketing contact",
    }
    assert set(hubspot["Unsubscribed from all email"]) <= {"true", "false", ""}
    date_format = r"^\d{4}-\d\d-\d\d \d\d:\d\d$"
    assert hubspot["Create Date"].str.match(date_format).all()
    assert hubspot["Last Modified Date"].str.match(date_format).all()
    # The day the contact entered its stage, in the column of that stage only.
    entered = with_email['Date entered "Lead (Lifecycle Stage Pipeline)"']
    assert ((entered != "") == (with_email["Lifecycle Stage"] == "Lead")).all()


def test_one_file_per_email_platform(dataset):
    names = [path.name for path in dataset.source_files]
    assert names == [
        "sendgrid-events.json",
        "hubspot-email-events.json",
        "mailchimp-email-activity.json",
        "segment-tracks.jsonl",
    ]
    sendgrid = json.loads(dataset.source_files[0].read_text())
    assert {event["event"] for event in sendgrid} >= {"processed", "delivered", "bounce"}
    hubspot = json.loads(dataset.source_files[1].read_text())
    assert set(hubspot) == {"hasMore", "offset", "events"}
    mailchimp = json.loads(dataset.source_files[2].read_text())
    assert mailchimp["total_items"] == len(mailchimp["emails"])
    segment = [json.loads(line) for line in dataset.source_files[3].read_text().splitlines()]
    assert {line["type"] for line in segment} == {"track"}


@pytest.mark.parametrize("split", ["daily", "single"])
def test_split(tmp_path, split):
    dataset = generate_demo_data(tmp_path, contacts=400, days=20, end=END, split=split)
    if split == "single":
        assert [path.name for path in dataset.event_files] == ["events.csv"]
        return
    assert 15 <= len(dataset.event_files) <= 20  # a quiet weekend day may have no events
    for path in dataset.event_files[1:]:
        days = read_events(path)["when"].dt.strftime("%Y-%m-%d")
        assert set(days) == {path.stem.removeprefix("events-")}


def test_end_defaults_to_yesterday(tmp_path):
    dataset = generate_demo_data(tmp_path, contacts=1000, days=10, bad_row_fraction=0)
    today = pd.Timestamp(datetime.now(UTC).date(), tz="UTC")
    last = read_events(dataset.event_files[-1])["when"].max()
    assert today - pd.Timedelta(days=3) <= last < today
    assert dataset.n_bad_rows == 0


def test_progress_is_reported_step_by_step_up_to_the_total(tmp_path):
    steps = []
    data = generate_demo_data(
        tmp_path, contacts=50, days=70, end=END, on_step=lambda *step: steps.append(step)
    )
    done = [count for _, count, _ in steps]
    assert done == list(range(1, len(steps) + 1))
    assert steps[-1][1] == steps[-1][2] == 7 + len(data.event_files) + 2
    assert [what for what, _, _ in steps if what.startswith("wrote events")] == [
        f"wrote {path.name}" for path in data.event_files
    ]
