"""The condition language (README: Configuration) compiled to DuckDB SQL, set-based.

A compiled condition is a boolean SQL expression over one row per (contact, day) target. What
it reads is collected on the way into a `Features` registry: counts of matching events (one
aggregate each, computed in the single pass over the events), contact properties as of the day,
other scores. The scoring engine computes those feature columns, then evaluates the
expressions; lifecycle and marketing reuse the same compiler.
"""

import json
from dataclasses import dataclass, field

from leadflow.config import (
    AllCondition,
    AnyCondition,
    CompanyScoreCondition,
    Condition,
    EventCondition,
    EventMatch,
    GridCondition,
    NotCondition,
    PropertyCondition,
    ScoreCondition,
    StageCondition,
    SuppressedCondition,
    UnengagedCondition,
    ValueTest,
)
from leadflow.sql import identifier, literal

# Event columns a `where` may name directly; any other name is read from `properties`.
EVENT_COLUMNS = ("event_id", "source", "email", "type", "url", "form_id", "campaign_id")
DAY_SECONDS = 86400.0


def json_path(key: str) -> str:
    """The JSON path of one key of an object, whatever the key holds."""
    return "$." + json.dumps(key, ensure_ascii=False)


def quote(value: object) -> str:
    """A SQL literal for a YAML scalar (numbers as floats: they compare as numbers)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return literal(float(value))
    return literal(value)


def text_literal(value: object) -> str:
    """A scalar as the text it is compared with (JSON text of booleans is true/false)."""
    if isinstance(value, bool):
        return quote("true" if value else "false")
    if isinstance(value, float) and value.is_integer():
        return quote(str(int(value)))
    return quote(str(value))


def value_test_sql(expression: str, test: ValueTest) -> str:
    """`test` applied to a text expression; numbers compare as numbers. NULL never passes."""
    number = f"TRY_CAST({expression} AS DOUBLE)"
    parts = []
    if test.eq is not None:
        if isinstance(test.eq, int | float) and not isinstance(test.eq, bool):
            parts.append(f"{number} = {quote(test.eq)}")
        else:
            parts.append(f"{expression} = {text_literal(test.eq)}")
    if test.in_ is not None:
        parts.append(f"{expression} IN ({', '.join(text_literal(v) for v in test.in_)})")
    if test.contains is not None:
        parts.append(f"contains({expression}, {quote(test.contains)})")
    if test.gte is not None:
        parts.append(f"{number} >= {quote(test.gte)}")
    if test.lte is not None:
        parts.append(f"{number} <= {quote(test.lte)}")
    return "COALESCE(" + " AND ".join(parts) + ", false)"


def event_field_sql(name: str) -> str:
    if name in EVENT_COLUMNS:
        return f"e.{identifier(name)}"
    return f"json_extract_string(e.properties, {literal(json_path(name))})"


MACHINE_TYPES = ("email_open", "email_click")  # the events a machine makes: opens and clicks


def event_match_sql(match: EventMatch, age: str = "e.age", machines: bool | None = None) -> str:
    """A boolean over one event row `e` for type, where and within_days (on `age`, in days);
    opens and clicks made by machines are left out unless the match says `machine: include`
    (`machines` overrides it: True counts them too)."""
    parts = [f"e.type = {quote(match.event)}"]
    counts_machines = match.counts_machines if machines is None else machines
    if match.event in MACHINE_TYPES and not counts_machines:
        parts.append("NOT e.machine")
    parts += [value_test_sql(event_field_sql(name), test) for name, test in match.where.items()]
    if match.within_days is not None:
        parts.append(f"{age} < {quote(match.within_days)}")
    return " AND ".join(parts)


@dataclass
class Features:
    """What compiled conditions read: event-count aggregates and property names."""

    event_counts: dict[str, EventMatch] = field(default_factory=dict)  # column -> match
    windows: set[float] = field(default_factory=set)  # within_days of every event match
    steps: set[float] = field(default_factory=set)  # every_days of every step decay
    properties: set[str] = field(default_factory=set)
    needs_suppression: bool = False
    needs_engagement: bool = False
    needs_stage: bool = False
    needs_company_scores: bool = False  # the company layers (leadflow.companies.scores)

    def count_column(self, match: EventMatch) -> str:
        for column, existing in self.event_counts.items():
            if event_match_sql(existing) == event_match_sql(match):
                return column
        column = f"n_{len(self.event_counts)}"
        self.event_counts[column] = match
        if match.within_days is not None:
            self.windows.add(float(match.within_days))
        return column


def property_column(name: str) -> str:
    return identifier(f"prop:{name}")


def score_column(name: str) -> str:
    return identifier(f"score:{name}")


def grid_column(name: str) -> str:
    return identifier(f"grid:{name}")


def company_score_column(name: str) -> str:
    return identifier(f"company_score:{name}")


def bounds_sql(
    expression: str, eq: float | None = None, gte: float | None = None, lte: float | None = None
) -> str:
    """The given bounds on a numeric expression, all of which must hold."""
    parts = [
        f"{expression} {operator} {quote(bound)}"
        for operator, bound in (("=", eq), (">=", gte), ("<=", lte))
        if bound is not None
    ]
    return "(" + " AND ".join(parts) + ")"


def condition_sql(condition: Condition, features: Features) -> str:
    """A boolean SQL expression over a target row; registers the features it reads."""
    match condition:
        case EventCondition(count=count):
            column = f"COALESCE({features.count_column(condition)}, 0)"
            return bounds_sql(column, eq=count.eq, gte=count.gte, lte=count.lte)
        case PropertyCondition(property=name, known=known):
            features.properties.add(name)
            column = property_column(name)
            parts = []
            if known is not None:
                parts.append(f"{column} IS {'NOT ' if known else ''}NULL")
            if any(
                getattr(condition, key) is not None
                for key in ("eq", "in_", "contains", "gte", "lte")
            ):
                parts.append(value_test_sql(column, condition))
            return "(" + " AND ".join(parts) + ")"
        case ScoreCondition(score=name, gte=gte, lte=lte):
            return bounds_sql(score_column(name), gte=gte, lte=lte)
        case GridCondition(grid=name, in_=labels):
            # The grid's cell, computed once both its scores are (scores that read it come after).
            cells = ", ".join(quote(label) for label in labels)
            return f"COALESCE({grid_column(name)} IN ({cells}), false)"
        case CompanyScoreCondition(company_score=name, gte=gte, lte=lte):
            # NULL for a contact without a company: the condition does not hold (its `not` does).
            features.needs_company_scores = True
            return f"COALESCE({bounds_sql(company_score_column(name), gte=gte, lte=lte)}, false)"
        case SuppressedCondition(suppressed=wanted):
            features.needs_suppression = True
            return f"({'' if wanted else 'NOT '}COALESCE(suppressed, false))"
        case UnengagedCondition(unengaged=wanted):
            features.needs_engagement = True
            return "unengaged" if wanted else "NOT unengaged"
        case AllCondition(all=children):
            return "(" + " AND ".join(condition_sql(c, features) for c in children) + ")"
        case AnyCondition(any=children):
            return "(" + " OR ".join(condition_sql(c, features) for c in children) + ")"
        case NotCondition(not_=child):
            return f"(NOT {condition_sql(child, features)})"
        case StageCondition(stage=stages):
            # The stage the contact stands at after the day's lifecycle step (marketing only:
            # the configuration rejects stage conditions in scores and lifecycle rules).
            features.needs_stage = True
            return f"COALESCE(stage IN ({', '.join(quote(name) for name in stages.in_)}), false)"
    raise TypeError(f"unknown condition {condition!r}")
