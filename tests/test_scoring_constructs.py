"""Groups, value tables, frequency ranges, the grid and resets (README: Scores), each against
hand-computed values on a real lake and state store; their configuration errors; `explain`."""

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.exports import contacts_as_of
from leadflow.ingest.load import ingest_file
from leadflow.scoring.scores import explain_contact, history, scores_as_of
from tests.conftest import make_workspace
from tests.test_config import MINIMAL, error_of, write
from tests.test_ingest import EVENT_HEADER, event_row
from tests.test_ingest import write_csv as write_rows

DAY = date(2026, 6, 30)
END = datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # midnight after DAY in Paris (CEST)
RANGES = (
    "[{count: {gte: 1, lte: 2}, points: 5}, {count: {gte: 3, lte: 5}, points: 10},"
    " {count: {gte: 6}, points: 20}]"
)
CONFIG = f"""
account: {{timezone: Europe/Paris}}
contract: {{renewal_date: 2027-03-01, marketing_contact_tier: 100}}
scores:
  engagement:
    limit: {{min: -50, max: 100}}
    groups:
      email: {{limit: {{max: 25}}}}
      web: {{limit: {{min: -5, max: 30}}}}
    reset_when: {{event: deal_lost, where: {{reason: {{in: [price, timing]}}}}}}
    rules:
      - {{id: open, event: email_open, points: 10, group: email}}
      - {{id: click, event: email_click, points: 20, group: email}}
      - {{id: visits, event: page_view, within_days: 7, group: web, ranges: {RANGES}}}
      - {{id: unsubscribed, event: email_unsubscribe, points: -10, group: web}}
      - {{id: webinar, event: webinar_attended, points: 8}}
      - {{id: met, when: {{event: meeting_booked}}, points: 3}}
  fit:
    limit: {{min: -100, max: 100}}
    rules:
      - id: industry
        property: industry
        values: {{software: 20, " Finance ": 15, 10: 7}}
        default: -1
  priority:
    limit: {{min: 0, max: 100}}
    rules:
      - {{id: top-cell, when: {{grid: lead_grade, in: [A1, A2, B1]}}, points: 10}}
grids:
  lead_grade:
    rows: {{score: fit, bands: [{{label: A, gte: 15}}, {{label: B, gte: 5}}, {{label: C}}]}}
    columns:
      score: engagement
      bands: [{{label: "1", gte: 30}}, {{label: "2", gte: 10}}, {{label: "3"}}]
  fit_sign:
    rows: {{score: fit, bands: [{{label: X, gte: 10}}, {{label: Y}}]}}
    columns: {{score: fit, bands: [{{label: "+", gte: 0}}]}}
"""
NOW = datetime(2026, 7, 15, tzinfo=UTC)


def at(days_before_end: float) -> str:
    return (END - timedelta(days=days_before_end)).isoformat()


def events(email: str, kind: str, *ages: float) -> list[dict]:
    return [{"email": email, "type_": kind, "occurred_at": at(age)} for age in ages]


EVENTS = (
    # a: 3 opens and a click (50 -> the email group's 25), 3 visits in 7 days (10), a webinar.
    events("a@x.com", "email_open", 1, 2, 3)
    + events("a@x.com", "email_click", 1)
    + events("a@x.com", "page_view", 1, 2, 3, 8)
    + events("a@x.com", "webinar_attended", 20)
    # r: opens, a deal lost on price 4 days ago, an open since, a deal lost for a reason that
    # resets nothing; a meeting (a condition: not reset).
    + events("r@x.com", "email_open", 10, 9, 5.5, 2)
    + [
        {**event, "properties": '{"reason": "price"}'}
        for event in events("r@x.com", "deal_lost", 4)
    ]
    + [
        {**event, "properties": '{"reason": "merger"}'}
        for event in events("r@x.com", "deal_lost", 1)
    ]
    + events("r@x.com", "meeting_booked", 6)
    # u: an unsubscribe: -10 in the web group, whose floor is -5.
    + events("u@x.com", "email_unsubscribe", 1)
    # v: 7 visits in the week, the oldest ones leaving the window day by day.
    + events("v@x.com", "page_view", 0.5, 1, 2, 3, 4, 5, 6.5)
)
CONTACTS = [
    {"email": "a@x.com", "industry": "Software"},
    {"email": "f@x.com", "industry": "FINANCE"},
    {"email": "n@x.com", "industry": "10.0"},
    {"email": "e@x.com", "industry": "1e1"},
    {"email": "o@x.com", "industry": "retail"},
    {"email": "z@x.com"},
]


@pytest.fixture
def space(database_url, tmp_path: Path):
    config = tmp_path / "leadflow.yaml"
    config.write_text(CONFIG)
    space = make_workspace(database_url, tmp_path, config)
    created = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    contacts = [{**row, **created} for row in CONTACTS]
    ingest_file(space, write_rows(tmp_path / "contacts.csv", contacts), now=NOW)
    rows = [event_row(str(i), **row) for i, row in enumerate(EVENTS)]
    ingest_file(space, write_rows(tmp_path / "events.csv", rows, EVENT_HEADER), now=NOW)
    yield space
    space.engine.dispose()


def test_every_construct_against_hand_computed_scores(space):
    rows = {row["email"]: row for row in scores_as_of(space, DAY).to_pylist()}
    engagement = {email: row["engagement"] for email, row in rows.items()}
    assert engagement == {
        "a@x.com": 25 + 10 + 8,
        "r@x.com": 10 + 3,  # only the open after the deal lost; the meeting's condition holds
        "u@x.com": -5,
        "v@x.com": 20,
        **{email: 0 for email in ("f@x.com", "n@x.com", "e@x.com", "o@x.com", "z@x.com")},
    }
    fit = {email: row["fit"] for email, row in rows.items()}
    assert fit == {
        "a@x.com": 20,
        "f@x.com": 15,  # " Finance " matches FINANCE: trimmed, any case
        "n@x.com": 7,  # the key 10 matches "10.0" and "1e1": numbers as numbers
        "e@x.com": 7,
        "o@x.com": -1,  # any other value: the default
        "z@x.com": -1,  # no value: the default too
        "r@x.com": -1,
        "u@x.com": -1,
        "v@x.com": -1,
    }
    grades = {email: row["grid_lead_grade"] for email, row in rows.items()}
    assert grades["a@x.com"] == "A1" and grades["f@x.com"] == "A3" and grades["n@x.com"] == "B3"
    assert grades["r@x.com"] == "C2" and grades["u@x.com"] == "C3" and grades["v@x.com"] == "C2"
    # A column under its last gte: no cell.
    assert (rows["a@x.com"]["grid_fit_sign"], rows["o@x.com"]["grid_fit_sign"]) == ("X+", None)
    priority = {email for email, row in rows.items() if row["priority"] == 10}
    assert priority == {"a@x.com"}  # the one contact in A1, A2 or B1


def test_a_past_day_is_exact_across_a_reset_and_a_moving_window(space):
    # Five days earlier the deal was not lost yet: opens at 10 and 9 days (5.5 is at 0.5 days
    # before that day's end) -> 30, the email group's 25, and the meeting's 3.
    before = {row["email"]: row for row in scores_as_of(space, DAY - timedelta(days=5)).to_pylist()}
    assert before["r@x.com"]["engagement"] == 25 + 3
    # v's visits leave the 7-day window one by one: 7, 6 (both 6+: 20), then 4 (3-5: 10).
    path = history(space, "v@x.com", DAY, DAY + timedelta(days=2)).to_pylist()
    assert [row["value"] for row in path if row["score"] == "engagement"] == [20, 20, 10]
    assert [row["band"] for row in path if row["score"] == "engagement"] == [None] * 3


def test_explain_shows_groups_ranges_values_resets_and_grids(space):
    explained = explain_contact(space, "a@x.com", DAY)
    engagement, fit, priority = explained.scores
    assert [(g.group, g.subtotal, g.capped, g.limited) for g in engagement.groups] == [
        ("email", 50, 25, True),
        ("web", 10, 10, False),
    ]
    assert engagement.total_before_limit == 43 == engagement.value
    visits = engagement.rules[2]
    assert (visits.kind, visits.events, visits.contribution) == ("ranges", 3, 10)
    assert visits.detail == "3 events: range 3-5" and visits.group == "web"
    [industry] = fit.rules
    assert (industry.kind, industry.contribution, industry.detail) == (
        "value",
        20,
        "industry = 'Software'",
    )
    assert priority.value == 10
    [grade, _] = explained.grids
    assert (grade.label, grade.rows, grade.columns) == (
        "A1",
        ("fit", 20, "A"),
        ("engagement", 43, "1"),
    )

    [reset, *_] = explain_contact(space, "r@x.com", DAY).scores
    assert reset.reset_at == END - timedelta(days=4)
    assert [rule.events for rule in reset.rules[:2]] == [1, 0]  # opens since the reset only
    assert reset.rules[5].contribution == 3


def test_explain_and_exports_on_the_command_line(space, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADFLOW_CONFIG", str(tmp_path / "leadflow.yaml"))
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", str(space.engine.url.render_as_string(False)))
    monkeypatch.setenv("LEADFLOW_LAKE", str(tmp_path / "lake"))
    runner = CliRunner()
    result = runner.invoke(app, ["explain", "a@x.com", "--as-of", str(DAY)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "group email" in result.stdout and "limit ..25 -> 25.0000" in result.stdout
    assert "3 events: range 3-5" in result.stdout and "industry = 'Software'" in result.stdout
    assert "grid lead_grade: A1 (rows fit 20 -> A, columns engagement 43 -> 1)" in result.stdout
    result = runner.invoke(app, ["explain", "r@x.com", "--as-of", str(DAY), "--json"])
    *scores, grade, _ = json.loads(result.stdout)
    assert scores[0]["reset_at"].startswith("2026-06-26 22:00")
    assert grade["grid"] == "lead_grade" and grade["label"] == "C2"

    out = tmp_path / "contacts.csv"
    result = runner.invoke(app, ["export", "contacts", "--as-of", str(DAY), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        exported = {row["email"]: row["grid_lead_grade"] for row in csv.DictReader(handle)}
    assert exported["a@x.com"] == "A1" and exported["z@x.com"] == "C3"


def test_the_contacts_export_has_the_grid_of_the_day_asked(space):
    def grades(day: date) -> dict[str, str]:
        return {
            row["email"]: row["grid_lead_grade"] for row in contacts_as_of(space, day).to_pylist()
        }

    # Five days earlier a had one visit in the week (5) and its webinar (8): 13, column 2.
    assert grades(DAY - timedelta(days=5))["a@x.com"] == "A2"
    assert grades(DAY)["a@x.com"] == "A1" and grades(DAY)["o@x.com"] == "C3"


SCORE = "scores:\n  s:\n    limit: {min: -100, max: 100}\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            SCORE + "    rules: [{id: o, event: email_open, points: 1, group: emial}]\n",
            "scores.s.rules[0].group: unknown group 'emial' (groups: none declared)",
            id="undeclared-group",
        ),
        pytest.param(
            SCORE + "    groups: {email: {limit: {max: 5}}, web: {limit: {max: 5}}}\n"
            "    rules: [{id: o, event: email_open, points: 1, group: email}]\n",
            "scores.s.groups.web: no rule names this group",
            id="group-without-rules",
        ),
        pytest.param(
            SCORE + "    groups: {email: {limit: {}}}\n"
            "    rules: [{id: o, event: email_open, points: 1, group: email}]\n",
            "scores.s.groups.email.limit: give at least one of: min, max",
            id="group-limit-empty",
        ),
        pytest.param(
            SCORE + "    rules: [{id: v, event: page_view, ranges: [{count: {gte: 1, lte: 3}, "
            "points: 1}, {count: {gte: 3}, points: 2}]}]\n",
            "scores.s.rules[0].ranges: [1] (count 3+) overlaps [0] (count 1-3)",
            id="overlapping-ranges",
        ),
        pytest.param(
            SCORE + "    rules: [{id: v, event: page_view, points: 1, "
            "ranges: [{count: {gte: 1}, points: 2}]}]\n",
            "scores.s.rules[0]: give points (per event) or ranges (points by count), one of them",
            id="points-and-ranges",
        ),
        pytest.param(
            SCORE + "    rules: [{id: v, event: page_view, decay: none, "
            "ranges: [{count: {gte: 1}, points: 2}]}]\n",
            "scores.s.rules[0]: decay: not with ranges",
            id="ranges-with-decay",
        ),
        pytest.param(
            SCORE
            + "    rules: [{id: i, property: industry, values: {Software: 1, software: 2}}]\n",
            "scores.s.rules[0].values: 'Software' and 'software' are the same value",
            id="value-keys-equal",
        ),
        pytest.param(
            SCORE + "    rules: [{id: i, property: size, values: {10: 1, '10.0': 2}}]\n",
            "scores.s.rules[0].values: 10 and '10.0' are the same value",
            id="value-keys-equal-as-numbers",
        ),
        pytest.param(
            SCORE + "    reset_when: {event: deal_lost, within_days: 30}\n"
            "    rules: [{id: o, event: email_open, points: 1}]\n",
            "scores.s.reset_when: within_days: not allowed",
            id="reset-with-window",
        ),
        pytest.param(
            SCORE + "    reset_when: {event: deal_lsot}\n"
            "    rules: [{id: o, event: email_open, points: 1}]\n",
            "scores.s.reset_when.event: unknown event type 'deal_lsot'",
            id="reset-unknown-event",
        ),
        pytest.param(
            SCORE + "    rules: [{id: o, event: email_open, points: 1}]\n"
            "grids: {g: {rows: {score: s, bands: [{label: A}]}, "
            "columns: {score: t, bands: [{label: '1'}]}}}\n",
            "grids.g.columns.score: unknown score 't'",
            id="grid-unknown-score",
        ),
        pytest.param(
            SCORE + "    rules: [{id: o, event: email_open, points: 1}]\n"
            "grids: {g: {rows: {score: s, bands: [{label: A, gte: 1}, {label: B}]}, "
            "columns: {score: s, bands: [{label: '1'}]}}}\n"
            "lifecycle: {promote: {lead: {grid: g, in: [A1, C1]}}}\n",
            "lifecycle.promote.lead.in: 'C1' is not a cell of grid 'g' (A1, B1)",
            id="grid-unknown-cell",
        ),
        pytest.param(
            SCORE + "    rules: [{id: o, event: email_open, points: 1}]\n"
            "marketing: {promote: {grid: h, in: [A1]}}\n",
            "marketing.promote.grid: unknown grid 'h'",
            id="grid-unknown",
        ),
        pytest.param(
            SCORE + "    rules: [{id: o, event: email_open, points: 1}]\n"
            "grids: {g: {rows: {score: s, bands: [{label: A}, {label: AB}]}, "
            "columns: {score: s, bands: [{label: B1}, {label: '1'}]}}}\n",
            "grids.g.rows.bands: only the last band may omit gte, not 'A'",
            id="grid-bands-checked",
        ),
        pytest.param(
            SCORE + "    rules: [{id: o, event: email_open, points: 1}]\n"
            "grids: {g: {rows: {score: s, bands: [{label: A, gte: 1}, {label: AB}]}, "
            "columns: {score: s, bands: [{label: B1, gte: 1}, {label: '1'}]}}}\n",
            "grids.g: two cells are both labelled 'AB1': rename a band",
            id="grid-cells-ambiguous",
        ),
    ],
)
def test_construct_errors_name_the_key_path(tmp_path: Path, extra: str, expected: str) -> None:
    assert error_of(write(tmp_path, MINIMAL + extra)).startswith(expected)


def test_a_score_reading_its_own_grid_is_a_cycle(tmp_path: Path) -> None:
    text = MINIMAL + (
        SCORE + "    rules: [{id: top, when: {grid: g, in: [A1]}, points: 1}]\n"
        "grids: {g: {rows: {score: s, bands: [{label: A}]}, columns: {score: s, "
        "bands: [{label: '1'}]}}}\n"
    )
    assert error_of(write(tmp_path, text)) == "scores: rules refer to each other in a cycle: s -> s"


def test_every_new_key_changes_the_model_version(tmp_path: Path) -> None:
    from leadflow.config import load_config

    base = CONFIG
    variants = [
        base.replace("{max: 25}", "{max: 26}"),
        base.replace("points: 10, group: email}", "points: 10}"),
        base.replace("reset_when: {event: deal_lost,", "reset_when: {event: deal_won,"),
        base.replace("points: 20}]", "points: 21}]"),
        base.replace("default: -1", "default: 0"),
        base.replace("software: 20", "software: 19"),
        base.replace("{label: A, gte: 15}", "{label: A, gte: 16}"),
        base.replace("in: [A1, A2, B1]", "in: [A1, A2]"),
    ]
    versions = set()
    for index, text in enumerate([base, *variants]):
        path = tmp_path / f"v{index}.yaml"
        path.write_text(text)
        versions.add(load_config(path).model_version)
    assert len(versions) == len(variants) + 1
