"""The configuration layer: the shipped example, every kind of error, the model version."""

import re
from datetime import date
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest
import yaml

from leadflow.config import (
    AllCondition,
    AnyCondition,
    ConditionRule,
    ConfigError,
    EventCondition,
    EventRule,
    HalfLifeDecay,
    LeadflowConfig,
    NotCondition,
    ScoreCondition,
    StageCondition,
    StepDecay,
    load_config,
)
from leadflow.domain import STAGES

SHIPPED = Path(__file__).resolve().parents[1] / "leadflow.yaml"

MINIMAL = """\
account: {timezone: Europe/Paris}
contract: {renewal_date: 2027-03-01, marketing_contact_tier: 100}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leadflow.yaml"
    path.write_text(dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> LeadflowConfig:
    return load_config(write(tmp_path, text))


def error_of(path: Path) -> str:
    """The ConfigError message for `path`, checked to be one line naming the file."""
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


# --- The shipped example ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> LeadflowConfig:
    return load_config(SHIPPED)


def test_the_shipped_hubspot_example_uncommented_is_valid(tmp_path: Path) -> None:
    shipped_text = SHIPPED.read_text(encoding="utf-8")
    head, hubspot = shipped_text.split("\nhubspot:\n")
    uncommented = re.sub(r"^  # ", "  ", hubspot, flags=re.MULTILINE)
    grids = """grids:
  lead_grade:
    rows: {score: fit, bands: [{label: A, gte: 5}, {label: B}]}
    columns: {score: engagement, bands: [{label: "1", gte: 60}, {label: "2"}]}
"""  # what hubspot.push.grids names
    config = load_config(write(tmp_path, head + "\nhubspot:\n" + uncommented + grids))
    assert config.hubspot.token_secret == "hubspot-token"
    assert config.hubspot.pull.since == date(2026, 1, 1)
    assert config.hubspot.push.scores == {
        "engagement": "leadflow_engagement",
        "fit": "leadflow_fit",
    }
    assert config.hubspot.push.max_marketing_changes == 1000
    assert config.hubspot.push.grids == {"lead_grade": "leadflow_lead_grade"}


def test_shipped_contract_and_account(shipped: LeadflowConfig) -> None:
    assert shipped.account.timezone == "Europe/Paris"
    assert shipped.account.tz == ZoneInfo("Europe/Paris")
    assert shipped.contract.renewal_date == date(2027, 3, 1)
    assert shipped.contract.billing == "annual"
    assert shipped.contract.marketing_contact_tier == 10000
    assert shipped.contract.demotion_window_days == 90
    assert shipped.ingest.max_bad_fraction == 0.05


def test_shipped_scores(shipped: LeadflowConfig) -> None:
    engagement = shipped.scores["engagement"]
    assert [rule.id for rule in engagement.rules] == [
        "email-open",
        "email-click",
        "bounce",
        "never-opens",
        "pricing-interest",
        "no-visits",
    ]
    assert (engagement.limit.min, engagement.limit.max) == (-200, 200)
    assert engagement.decay == HalfLifeDecay(half_life_days=90)

    open_rule, click, bounce, never_opens, pricing, _ = engagement.rules
    assert isinstance(open_rule, EventRule) and open_rule.event == "email_open"
    assert engagement.decay_of(open_rule) == HalfLifeDecay(half_life_days=90)
    assert click.max_points == 60
    assert bounce.points == -90 and engagement.decay_of(bounce) == "none"

    assert isinstance(never_opens, ConditionRule) and never_opens.points == -20
    assert isinstance(never_opens.when, AllCondition)
    sent, opened = never_opens.when.all
    assert (sent.event, sent.within_days, sent.count.gte) == ("email_sent", 180, 3)
    assert (opened.event, opened.count.eq) == ("email_open", 0)
    assert pricing.when.where["url"].contains == "/pricing"

    fit = shipped.scores["fit"]
    assert [rule.id for rule in fit.rules] == ["phone-known", "job-seeker"]
    assert fit.decay == "none"
    assert [(band.label, band.gte) for band in shipped.bands["engagement"]] == [
        ("hot", 60),
        ("warm", 20),
        ("cold", None),
    ]
    assert shipped.scores_in_dependency_order() == ["engagement", "fit"]


def test_shipped_lifecycle_and_marketing(shipped: LeadflowConfig) -> None:
    promote = shipped.lifecycle.promote
    assert list(promote) == list(STAGES)
    assert promote["subscriber"].where["form_id"].in_ == ["newsletter", "blog"]
    assert promote["lead"].count.gte == 1  # the default count
    mql = promote["marketingqualifiedlead"]
    assert isinstance(mql, AnyCondition)
    assert mql.any[0] == ScoreCondition(score="engagement", gte=60)

    marketing = shipped.marketing
    assert marketing.creation_defaults["form"] == "marketing"
    assert marketing.creation_defaults["import"] == "non_marketing"
    assert marketing.integration_overrides == {"zoom_webinar": "marketing"}
    stage, not_suppressed = marketing.promote.all
    assert isinstance(stage, StageCondition) and isinstance(not_suppressed, NotCondition)
    assert [rule.id for rule in marketing.demote] == [
        "unsubscribed",
        "hard-bounce",
        "unengaged",
        "job-seeker",
    ]
    # A bare value in `where` means eq.
    assert marketing.demote[1].when.where["bounce_type"].eq == "hard"


def test_defaults_of_a_minimal_config(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL + "marketing: {creation_defaults: {import: marketing}}\n")
    assert config.contract.billing == "annual"
    assert config.contract.demotion_window_days == 90
    assert config.ingest.max_bad_fraction == 0.05
    assert config.scores == {} and config.lifecycle.promote == {}
    assert config.marketing.promote is None
    # Unlisted sources keep their default.
    assert config.marketing.creation_defaults == {
        "form": "marketing",
        "import": "marketing",
        "conversation": "non_marketing",
        "integration": "non_marketing",
        "ads": "marketing",
    }


def test_step_decay_and_a_score_reading_another(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        MINIMAL
        + """\
scores:
  total:
    limit: {min: 0, max: 10}
    rules: [{id: engaged, when: {score: engagement, gte: 5}, points: 1}]
  engagement:
    limit: {min: 0, max: 10}
    decay: {percent: 50, every_days: 30}
    rules: [{id: open, event: email_open, points: 1}]
""",
    )
    assert config.scores["engagement"].decay == StepDecay(percent=50, every_days=30)
    assert config.scores_in_dependency_order() == ["engagement", "total"]


# --- Errors ----------------------------------------------------------------------------------

ENGAGEMENT = """\
scores:
  engagement:
    limit: {min: -200, max: 200}
    decay: {half_life_days: 90}
    rules:
      - {id: open, event: email_open, points: 10}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param("scoring: {}\n", "scoring: unknown key", id="unknown-top-level-key"),
        pytest.param(
            ENGAGEMENT.replace("decay:", "decy:"),
            "scores.engagement.decy: unknown key",
            id="unknown-nested-key",
        ),
        pytest.param(
            ENGAGEMENT
            + "      - {id: click, event: email_click, points: 20}\n"
            + "      - {id: typo, event: email_opn, points: 10}\n",
            "scores.engagement.rules[2].event: unknown event type 'email_opn'",
            id="unknown-event-type-in-rule",
        ),
        pytest.param(
            ENGAGEMENT
            + """\
      - id: quiet
        when: {all: [{event: email_sent}, {not: {any: [{event: email_opn}]}}]}
        points: -5
""",
            "scores.engagement.rules[1].when.all[1].not.any[0].event: "
            "unknown event type 'email_opn'",
            id="unknown-event-type-nested",
        ),
        pytest.param(
            ENGAGEMENT + "      - {id: x, when: {evnt: page_view}, points: 1}\n",
            "scores.engagement.rules[1].when: a condition needs exactly one of the keys event, "
            "property, score, grid, company_score, stage, suppressed, unengaged, all, any, not",
            id="condition-of-no-known-form",
        ),
        pytest.param(
            ENGAGEMENT + "      - {id: x, event: page_view, when: {unengaged: true}, points: 1}\n",
            "scores.engagement.rules[1]: a rule needs exactly one of the keys event",
            id="rule-both-event-and-when",
        ),
        pytest.param(
            ENGAGEMENT.replace("{half_life_days: 90}", "{half_life_days: 0}"),
            "scores.engagement.decay.half_life_days: Input should be greater than 0",
            id="decay-half-life-zero",
        ),
        pytest.param(
            ENGAGEMENT.replace("{half_life_days: 90}", "fast"),
            "scores.engagement.decay: decay must be none",
            id="decay-unknown-form",
        ),
        pytest.param(
            ENGAGEMENT.replace("points: 10}", "points: 10, decay: {percent: 150, every_days: 7}}"),
            "scores.engagement.rules[0].decay.percent: Input should be less than or equal to 100",
            id="decay-percent-over-100",
        ),
        pytest.param(
            ENGAGEMENT.replace("{min: -200, max: 200}", "{min: 5, max: 1}"),
            "scores.engagement.limit: min (5) is above max (1)",
            id="limit-inverted",
        ),
        pytest.param(
            ENGAGEMENT + "      - {id: open, event: email_click, points: 20}\n",
            "scores.engagement.rules: duplicate rule id 'open'",
            id="duplicate-rule-id",
        ),
        pytest.param(
            ENGAGEMENT + "bands: {engagement: [{label: hot, gte: 20}, {label: warm, gte: 20}]}\n",
            "bands.engagement: gte must strictly decrease: 'warm' (20) after 'hot' (20)",
            id="bands-not-decreasing",
        ),
        pytest.param(
            ENGAGEMENT + "bands: {engagement: [{label: cold}, {label: hot, gte: 60}]}\n",
            "bands.engagement: only the last band may omit gte, not 'cold'",
            id="bands-gte-missing-before-last",
        ),
        pytest.param(
            ENGAGEMENT + "bands: {engagment: [{label: hot, gte: 60}]}\n",
            "bands.engagment: unknown score 'engagment'",
            id="bands-unknown-score",
        ),
        pytest.param(
            ENGAGEMENT
            + "lifecycle:\n  promote:\n"
            + "    marketingqualifiedlead: {any: [{score: engagment, gte: 60}]}\n",
            "lifecycle.promote.marketingqualifiedlead.any[0].score: unknown score 'engagment'",
            id="unknown-score-in-condition",
        ),
        pytest.param(
            "lifecycle: {promote: {mql: {event: form_submission}}}\n",
            "lifecycle.promote.mql: Input should be 'subscriber', 'lead'",
            id="unknown-stage",
        ),
        pytest.param(
            "marketing: {promote: {stage: {in: [lead, prospect]}}}\n",
            "marketing.promote.stage.in[1]: Input should be 'subscriber'",
            id="unknown-stage-in-condition",
        ),
        pytest.param(
            "marketing: {demote: [{id: gone, when: {property: persona}}]}\n",
            "marketing.demote[0].when: give at least one of: known, eq, in, contains, gte, lte",
            id="property-condition-without-test",
        ),
        pytest.param(
            "ingest: {max_bad_fraction: 1.5}\n",
            "ingest.max_bad_fraction: Input should be less than or equal to 1, got 1.5",
            id="bad-fraction",
        ),
        pytest.param(
            "scores: {Engagement: {limit: {min: 0, max: 1}, rules: [{id: a, when: "
            "{unengaged: true}, points: 1}]}}\n",
            "scores.Engagement: String should match pattern",
            id="score-name-not-a-column-name",
        ),
    ],
)
def test_invalid_config_names_the_key_path(tmp_path: Path, extra: str, expected: str) -> None:
    assert error_of(write(tmp_path, MINIMAL + extra)).startswith(expected)


def test_bad_timezone(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("Europe/Paris", "Europe/Pariss"))
    assert error_of(path).startswith("account.timezone: unknown time zone 'Europe/Pariss'")


def test_bad_date_names_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("2027-03-01", "2027-02-30"))
    assert error_of(path).startswith("contract.renewal_date: Input should be a valid date")


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("renewal_date: 2027-03-01, ", ""))
    assert error_of(path) == "contract.renewal_date: required key is missing"


@pytest.mark.parametrize(
    ("scores", "cycle"),
    [
        pytest.param(
            "{a: {limit: {min: 0, max: 1}, rules: [{id: r, when: {score: a, gte: 1}, points: 1}]}}",
            ["a"],
            id="self",
        ),
        pytest.param(
            "{a: {limit: {min: 0, max: 1}, rules: [{id: r, when: {score: b, gte: 1}, points: 1}]},"
            " b: {limit: {min: 0, max: 1}, rules: [{id: r, when: {not: {score: a, lte: 0}},"
            " points: 1}]}}",
            ["a", "b"],
            id="through-another-score",
        ),
    ],
)
def test_score_cycle(tmp_path: Path, scores: str, cycle: list[str]) -> None:
    message = error_of(write(tmp_path, MINIMAL + f"scores: {scores}\n"))
    assert message.startswith("scores: rules refer to each other in a cycle: ")
    named = message.rsplit(": ", 1)[1].split(" -> ")
    assert sorted(set(named)) == cycle and named[0] == named[-1]


def test_several_errors_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "ingest: {max_bad_fraction: 2}\nscoring: {}\nbandz: {}\n")
    assert error_of(path).endswith("(+2 more)")


def test_yaml_syntax_error_gives_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "scores:\n  engagement: {limit: [\n")
    message = error_of(path)
    assert message.startswith("line ") and "invalid YAML" in message
    path = write(tmp_path, MINIMAL + "ingest:\n  max_bad_fraction: 0.1\n bad indent: 1\n")
    assert error_of(path).startswith("line 5: invalid YAML")


def test_duplicate_yaml_key_is_an_error_not_last_wins(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "ingest: {max_bad_fraction: 0.1}\ningest: {}\n")
    assert error_of(path) == "line 4: invalid YAML: duplicate key 'ingest'"


def test_missing_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert error_of(tmp_path / "absent.yaml").startswith("file not found (`leadflow init`")
    assert error_of(write(tmp_path, "# only a comment\n")) == "the file is empty"
    assert error_of(write(tmp_path, "- account\n")).startswith("expected a mapping of sections")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- Model version ----------------------------------------------------------------------------


def test_model_version_ignores_layout_comments_and_key_order(tmp_path: Path) -> None:
    shipped = load_config(SHIPPED)
    # The shipped file without any comment, in block style, every mapping's keys sorted.
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    reformatted = load_config(flat)
    assert reformatted.model_version == shipped.model_version
    assert len(shipped.model_version) == 12
    int(shipped.model_version, 16)


def test_model_version_follows_rules_only(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    version = load_config(SHIPPED).model_version

    def version_after(old: str, new: str) -> str:
        assert text.count(old) == 1
        return load_text(tmp_path, text.replace(old, new)).model_version

    assert version_after("points: 10  ", "points: 11  ") != version
    assert version_after("{label: warm, gte: 20}", "{label: warm, gte: 25}") != version
    assert version_after("zoom_webinar: marketing", "zoom_webinar: non_marketing") != version
    # Same rule spelled differently: same model.
    assert version_after("where: {bounce_type: hard}", "where: {bounce_type: {eq: hard}}") == (
        version
    )
    # Not a rule: the contract and ingest sections do not change the model.
    assert version_after("marketing_contact_tier: 10000", "marketing_contact_tier: 2000") == (
        version
    )
    assert version_after("max_bad_fraction: 0.05", "max_bad_fraction: 0.1") == version


def test_event_condition_default_count() -> None:
    condition = EventCondition.model_validate({"event": "deal_won"})
    assert condition.count.gte == 1 and condition.count.eq is None
