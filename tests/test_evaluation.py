"""`leadflow evaluate`: the metrics against hand counts, the cohort and outcomes on SQLite and
PostgreSQL, another rule set on the same contacts, `--suggest`, the command's JSON, and the
demo data's conversions following engagement."""

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.demo_data import generate_demo_data
from leadflow.evaluation import metrics
from leadflow.evaluation.evaluate import evaluate
from leadflow.evaluation.outcomes import EvaluationError
from leadflow.ingest.load import ingest_file
from leadflow.pipeline.days import run_day
from tests.conftest import SHIPPED_CONFIG, make_workspace, snapshot
from tests.test_ingest import EVENT_HEADER, event_row, write_csv

# --- metrics against hand counts ------------------------------------------------------------


def test_auc_perfect_reversed_and_ties():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    converted = np.array([False, False, True, True])
    assert metrics.roc_auc(scores, converted) == 1.0
    assert metrics.roc_auc(-scores, converted) == 0.0
    assert metrics.roc_auc(np.full(4, 7.0), converted) == 0.5


def test_auc_of_a_ranking_with_ties_is_the_hand_count():
    scores = np.array([5, 4, 4, 3, 2, 2, 1], float)
    converted = np.array([1, 0, 1, 1, 0, 0, 1], bool)
    # Converted 5 beats the three others (3); converted 4 ties the other 4 and beats both 2s
    # (2.5); 3 beats both 2s (2); 1 beats none: 7.5 of 4 x 3 pairs.
    assert metrics.roc_auc(scores, converted) == pytest.approx(7.5 / 12)
    fpr, tpr = metrics.roc_curve(scores, converted)
    assert fpr.tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3, 1, 1])
    assert tpr.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 0.75, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(7.5 / 12)  # the area under the points


def test_top_decile_lift_shares_the_boundary_ties():
    # 20 contacts: the decile is 2 places; 10 is in, three contacts tie at 8 for the last one.
    scores = np.array([10, 8, 8, 8, *np.arange(16) / 4], float)  # the others below 4
    converted = np.zeros(20, bool)
    converted[[0, 1, 5, 6]] = True  # 10, one of the 8s, and two low ones: base rate 0.2
    # In the decile: 1 + 1/3 of the tied 8s' one conversion, over 2 places: 2/3; / 0.2.
    assert metrics.top_decile_lift(scores, converted) == pytest.approx((4 / 3 / 2) / 0.2)
    assert metrics.base_rate(converted) == 0.2


def test_band_rates_in_configured_order_with_the_unbanded_last():
    bands = pa.array(["hot", "cold", "hot", None, "cold"])
    converted = np.array([1, 0, 0, 1, 1], bool)
    assert metrics.band_rates(bands, converted, ["hot", "warm", "cold"]) == [
        {"label": "hot", "contacts": 2, "converted": 1, "rate": 0.5},
        {"label": "warm", "contacts": 0, "converted": 0, "rate": None},
        {"label": "cold", "contacts": 2, "converted": 1, "rate": 0.5},
        {"label": None, "contacts": 1, "converted": 1, "rate": 1.0},
    ]


# --- the cohort and outcomes on a hand-built base -------------------------------------------

D = date(2026, 6, 10)
HORIZON = 10  # (D, D + 10] = 11 .. 20 June
CONFIG = """
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
scores:
  engagement:
    limit: {min: -100, max: 100}
    rules:
      - {id: open, event: email_open, points: 30}
bands:
  engagement: [{label: hot, gte: 60}, {label: cold}]
lifecycle:
  promote:
    lead: {event: form_submission}
    salesqualifiedlead: {event: sales_accepted}
    customer: {event: deal_won}
"""
# The other rule set: opens count against (the reverse ranking), its own bands.
OTHER = CONFIG.replace("points: 30", "points: -30").replace(
    "[{label: hot, gte: 60}, {label: cold}]", "[{label: high, gte: -40}, {label: low}]"
)


def on(day: date) -> str:
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC).isoformat()


@pytest.fixture
def base(database_url, tmp_path: Path):
    """a reached the stage before D (left out); b reaches it inside the horizon, e reaches a
    later stage (customer) inside it, c reaches it after it, d never; f is a customer by its
    record, undated (left out). Opens before D: c 3, b 2, e 1, d 1, f 1. Days run: D, D + 10,
    D + 20 (and a day before any contact existed)."""
    config = tmp_path / "leadflow.yaml"
    config.write_text(CONFIG)
    space = make_workspace(database_url, tmp_path, config)
    record = [{"Record ID": "1", "Email": "f@x.com", "Lifecycle Stage": "Customer"}]
    ingest_file(
        space, write_csv(tmp_path / "hubspot.csv", record), now=datetime(2026, 7, 1, tzinfo=UTC)
    )
    opens = {"a@x.com": 1, "b@x.com": 2, "c@x.com": 3, "d@x.com": 1, "e@x.com": 1, "f@x.com": 1}
    rows = [
        {"email": email, "type_": "email_open", "occurred_at": on(date(2026, 6, 1 + i))}
        for email, count in opens.items()
        for i in range(count)
    ]
    rows += [
        {"email": "a@x.com", "type_": "sales_accepted", "occurred_at": on(date(2026, 6, 5))},
        {"email": "b@x.com", "type_": "sales_accepted", "occurred_at": on(date(2026, 6, 15))},
        {"email": "e@x.com", "type_": "deal_won", "occurred_at": on(date(2026, 6, 18))},
        {"email": "c@x.com", "type_": "sales_accepted", "occurred_at": on(date(2026, 6, 25))},
    ]
    events = [event_row(f"ev-{i}", **row) for i, row in enumerate(rows)]
    ingest_file(
        space,
        write_csv(tmp_path / "events.csv", events, EVENT_HEADER),
        now=datetime(2026, 7, 1, tzinfo=UTC),
    )
    for day in (date(2026, 5, 1), D, D + timedelta(days=10), D + timedelta(days=20)):
        run_day(space, day)
    yield space, tmp_path
    space.engine.dispose()


def test_cohort_outcomes_and_another_rule_set_on_the_same_contacts(base):
    space, folder = base
    other = folder / "other.yaml"
    other.write_text(OTHER)
    before = snapshot(space)
    result = evaluate(space, D, "salesqualifiedlead", HORIZON, other=other)
    assert snapshot(space) == before  # nothing written
    # a and f left out; b and e converted; c (after the horizon) and d did not.
    assert (result.contacts, result.converted, result.base_rate) == (4, 2, 0.5)
    engagement = result.scores["engagement"]
    # b 60 vs c 90 lost, vs d 30 won; e 30 vs c lost, vs d tied: 1.5 of 4 pairs.
    assert engagement.auc == pytest.approx(1.5 / 4)
    assert engagement.bands == [
        {"label": "hot", "contacts": 2, "converted": 1, "rate": 0.5},  # c 90, b 60
        {"label": "cold", "contacts": 2, "converted": 1, "rate": 0.5},  # e 30, d 30
    ]
    # The decile is 0.4 of a place: c alone scores highest, not converted.
    assert engagement.top_decile_lift == 0.0
    compared = result.compare["engagement"]
    assert compared.auc == pytest.approx(2.5 / 4)  # the reverse ranking, the tie kept
    assert compared.bands == [
        {"label": "high", "contacts": 2, "converted": 1, "rate": 0.5},  # e -30, d -30
        {"label": "low", "contacts": 2, "converted": 1, "rate": 0.5},  # b -60, c -90
    ]
    # The decile: 0.4 of a place shared by e and d, tied at -30 (one converted): 0.2 / 0.4.
    assert compared.top_decile_lift == pytest.approx((0.2 / 0.4) / 0.5)
    # A longer horizon takes c in; a later stage counts as reaching it (e: customer).
    longer = evaluate(space, D, "salesqualifiedlead", 20)
    assert (longer.contacts, longer.converted) == (4, 3)
    customers = evaluate(space, D, "customer", HORIZON)
    assert (customers.contacts, customers.converted) == (5, 1)  # a is before customer, not f


def test_refusals_are_one_line(base):
    space, folder = base
    cases = {
        ("lead_", D, 10): "unknown outcome stage 'lead_'",
        ("other", D, 10): "stands outside the order of stages",
        ("salesqualifiedlead", date(2026, 6, 11), 5): "--as-of 2026-06-11 was never run",
        ("salesqualifiedlead", D, 21): "2026-07-01 is after the last day run (2026-06-30)",
        ("salesqualifiedlead", date(2026, 5, 1), 40): "no contact scored as of 2026-05-01",
        ("evangelist", D, 10): "none of the 6 contacts before stage evangelist",  # f too
    }
    for (stage, day, horizon), message in cases.items():
        with pytest.raises(EvaluationError, match=re.escape(message)) as raised:
            evaluate(space, day, stage, horizon)
        assert "\n" not in str(raised.value)
    with pytest.raises(EvaluationError, match="unknown score 'fitt'"):
        evaluate(space, D, "salesqualifiedlead", 10, score="fitt")


# --- the demo: conversions follow engagement; the command; --suggest -------------------------

DEMO_END = date(2026, 11, 30)
DEMO_DAY = date(2026, 5, 31)
DEMO_DAYS = (DEMO_DAY, date(2026, 8, 29), date(2026, 11, 27))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """400 demo contacts and their year, the days D, D + 90 and D + 180 run (SQLite)."""
    root = tmp_path_factory.mktemp("evaluate-demo")
    data = generate_demo_data(root / "demo", contacts=400, end=DEMO_END)
    space = make_workspace(f"sqlite:///{root / 'state.db'}", root)
    for path in (data.contacts_file, data.hubspot_file, *data.event_files):
        ingest_file(space, path, now=datetime(2026, 12, 1, tzinfo=UTC))
    for day in DEMO_DAYS:
        run_day(space, day)
    yield space, root
    space.engine.dispose()


def test_demo_engagement_predicts_sales_acceptance(demo):
    space, _ = demo
    result = evaluate(space, DEMO_DAY, "salesqualifiedlead", 180)
    assert result.converted >= 8
    assert result.scores["engagement"].auc > 0.6
    assert result.scores["engagement"].top_decile_lift > 1.5


def test_suggest_measures_on_a_held_out_half_and_changes_no_configuration(demo):
    space, _ = demo
    config_before = SHIPPED_CONFIG.read_bytes()
    state_before = snapshot(space)
    result = evaluate(space, DEMO_DAY, "salesqualifiedlead", 180, score="engagement", suggest=True)
    assert SHIPPED_CONFIG.read_bytes() == config_before
    assert snapshot(space) == state_before
    suggestion = result.suggestions["engagement"]
    rules = space.config.scores["engagement"].rules
    assert [rule.rule for rule in suggestion.rules] == [rule.id for rule in rules]
    assert [rule.points for rule in suggestion.rules] == [rule.points for rule in rules]
    assert suggestion.held_out_contacts == (result.contacts + 1) // 2  # half, rounded up
    assert 0.0 <= suggestion.held_out_auc_suggested <= 1.0
    assert 0.5 < suggestion.held_out_auc_current <= 1.0
    # On the current scale: the suggested points' absolute values sum to the current ones'.
    fired = [rule for rule in suggestion.rules if rule.suggested is not None]
    assert sum(abs(rule.suggested) for rule in fired) == pytest.approx(
        sum(abs(rule.points) for rule in rules), abs=0.05
    )


def test_the_command_prints_the_json_keys_and_writes_the_page(demo, monkeypatch):
    space, root = demo
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{root / 'state.db'}")
    monkeypatch.setenv("LEADFLOW_LAKE", str(root / "lake"))
    monkeypatch.setenv("LEADFLOW_CONFIG", str(SHIPPED_CONFIG))
    other = root / "other.yaml"
    other.write_text(SHIPPED_CONFIG.read_text().replace("points: 10 ", "points: 30 "))
    page = root / "evaluation.html"
    runner = CliRunner()
    args = ["evaluate", "--as-of", str(DEMO_DAY), "--outcome", "salesqualifiedlead"]
    result = runner.invoke(
        app, [*args, "--horizon-days", "180", "--config", str(other), "--json", "--out", str(page)]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert list(answer) == [
        "as_of",
        "outcome",
        "horizon_days",
        "contacts",
        "converted",
        "base_rate",
        "scores",
        "compare",
    ]
    assert (answer["as_of"], answer["outcome"], answer["horizon_days"]) == (
        "2026-05-31",
        "salesqualifiedlead",
        180,
    )
    assert list(answer["scores"]) == list(answer["compare"]) == ["engagement", "fit"]
    engagement = answer["scores"]["engagement"]
    assert list(engagement) == ["auc", "top_decile_lift", "bands"]
    assert [band["label"] for band in engagement["bands"]] == ["hot", "warm", "cold"]
    assert sum(band["contacts"] for band in engagement["bands"]) == answer["contacts"]
    assert sum(band["converted"] for band in engagement["bands"]) == answer["converted"]
    assert answer["compare"]["engagement"]["auc"] != engagement["auc"]  # opens weigh more
    assert answer["compare"]["fit"]["auc"] == answer["scores"]["fit"]["auc"]  # unchanged
    html = page.read_text()
    assert html.count("<svg") == 1 + 2  # the ROC curves, a band chart per banded score
    assert 'id="roc-0-engagement-current"' in html and 'id="band-base-rate"' in html
    result = runner.invoke(app, [*args, "--horizon-days", "365"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --as-of 2026-05-31 + 365 days = 2027-05-31 is after")
    assert result.output.count("\n") == 1
    result = runner.invoke(app, [*args, "--horizon-days", "180", "--score", "nope"])
    assert result.exit_code == 1 and "unknown score 'nope'" in result.output
    broken = root / "broken.yaml"
    broken.write_text(SHIPPED_CONFIG.read_text().replace("event: email_open", "event: email_opn"))
    result = runner.invoke(app, [*args, "--horizon-days", "180", "--config", str(broken)])
    assert result.exit_code == 2, result.output  # a configuration error, as everywhere
    assert result.output.startswith(
        f"error: {broken}: scores.engagement.rules[0].event: unknown event type 'email_opn'"
    )
    assert result.output.count("\n") == 1
