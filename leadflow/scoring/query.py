"""Scores as of a day (README: Scores), computed set-based by DuckDB over the event lake.

The rules of `leadflow.yaml` compile into one SQL query over `targets(email, day, as_of_end)`:
one row per contact and day to score. The query joins each target with its events before
`as_of_end` (one pass, one GROUP BY: every event rule's decayed sum and every condition's event
count are aggregates of it), with the contact properties as they were at `as_of_end`, then adds
the scores in dependency order (a score may read another). The same query serves the daily run
(all contacts, one day), `explain` (one contact, one day) and `history` (one contact, many
days): given the same data, a score depends only on the day.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from leadflow.companies.scores import company_layers
from leadflow.config import (
    Band,
    ConditionRule,
    CountRange,
    EventRule,
    Grid,
    HalfLifeDecay,
    LeadflowConfig,
    StepDecay,
    ValueRule,
    value_key,
)
from leadflow.domain import OTHER_STAGE, STAGES
from leadflow.scoring.conditions import (
    DAY_SECONDS,
    Features,
    condition_sql,
    event_match_sql,
    grid_column,
    property_column,
    quote,
    score_column,
)
from leadflow.store.db import read_arrow

# Suppression (README: Marketing contacts): unsubscribed, hard-bounced or reported spam, for good.
SUPPRESSING_EVENT = (
    "(e.type IN ('email_unsubscribe', 'email_spam_report') OR (e.type = 'email_bounce' AND "
    "json_extract_string(e.properties, '$.bounce_type') = 'hard'))"
)
SUPPRESSION_REASON = (
    "CASE e.type WHEN 'email_unsubscribe' THEN 'unsubscribed' "
    "WHEN 'email_spam_report' THEN 'spam_report' ELSE 'hard_bounce' END"
)
UNSUBSCRIBED_PROPERTY = "unsubscribed_from_all_email"
GRAYMAIL_SENDS_NEVER_ENGAGED = 11
GRAYMAIL_SENDS_ENGAGED = 16


def as_of_end(day: date, config: LeadflowConfig) -> datetime:
    """The end of `day` in the account time zone (the instant events must precede)."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=config.account.tz)


def rule_column(score: str, index: int) -> str:
    return f'"rule:{score}:{index}"'


def raw_column(score: str, index: int) -> str:
    """An event rule's decayed sum before its `max_points` cap: the aggregate that is stored."""
    return f'"raw:{score}:{index}"'


def band_column(score: str) -> str:
    return f'"band_{score}"'


def group_column(score: str, index: int) -> str:
    """A group's subtotal before its limit (groups numbered in the order declared)."""
    return f'"group:{score}:{index}"'


def reset_column(score: str) -> str:
    """The aggregate: when the latest event of the score's `reset_when` occurred (or NULL)."""
    return f'"reset:{score}"'


def reset_at_column(score: str) -> str:
    """The same time on each event row, so that event rules can leave out the events before."""
    return f'"reset_at:{score}"'


@dataclass(frozen=True)
class Additive:
    """An aggregate that is a sum over events, `sum(weight) FILTER (WHERE when)` (a count if
    `weight` is None), with `"n:<column>"` beside it counting the events that matched (so that
    a sum whose events all left its window is NULL again, as a full pass gives). `when` and
    `weight` read `e.age`; from one day's end to a later one the sum is carried as is, or
    multiplied if `half_life` is set (half-life decay), then corrected by the events whose part
    changed otherwise (`leadflow.scoring.ledger`)."""

    column: str
    when: str
    weight: str | None = None
    half_life: float | None = None
    when_before: str | None = None  # `when` on `e.age_before` (the earlier end)
    weight_before: str | None = None  # the weight as carried to the later end

    @property
    def matched(self) -> str:
        return '"n:' + self.column.strip('"') + '"'

    def full_sql(self) -> str:
        if self.weight is None:
            return f"count(*) FILTER (WHERE {self.when}) AS {self.column}"
        return (
            f"sum({self.weight}) FILTER (WHERE {self.when}) AS {self.column}, "
            f"count(*) FILTER (WHERE {self.when}) AS {self.matched}"
        )


@dataclass(frozen=True)
class Latest:
    """An aggregate of the events matching `when` that new events can only replace (no window,
    no decay): the first, the last, or the newest few; `by` names the `first` it goes with."""

    column: str
    template: str  # the aggregate, `{}` standing for `when`
    when: str
    keeps: str  # first | last | newest
    by: str | None = None

    def full_sql(self) -> str:
        return f"{self.template.format(self.when)} AS {self.column}"


@dataclass
class CompiledModel:
    """The SQL of a configuration's scores, and what it reads.

    `sql` computes everything from the events. It is built from two parts, also used apart by
    the aggregate ledger (`leadflow.scoring.ledger`): `aggregates`, the per-contact aggregates
    of one pass over the events `e` (`sums` and `latest`, described so that the ledger can
    carry them from one day to the next), and `over_aggregates(table)`, the rest of the query
    over a table of those aggregates.
    """

    aggregates: str
    sums: list[Additive]
    latest: list[Latest]
    events_cte: str
    group_by: str
    tail: str  # the CTEs after `a`, given `a`
    features: Features
    scores: list[str]
    # (score, match) of each score's reset_when: see `reset_events_sql`.
    resets: list[tuple[str, str]]

    @property
    def sql(self) -> str:
        return (
            f"WITH e AS ({self.events_cte}),\n"
            f"    a AS (SELECT {self.group_by}, {self.aggregates} FROM e GROUP BY {self.group_by})"
            f"{self.tail}"
        )

    @property
    def windows(self) -> list[float]:
        return sorted(self.features.windows)

    @property
    def steps(self) -> list[float]:
        return sorted(self.features.steps)

    def events_with_resets(self, events: str) -> str:
        """The whole base's events (`whole_base_events_sql`) with the reset times beside."""
        return reset_events_sql(events, "e.email", self.resets)

    def over_aggregates(self, table: str) -> str:
        """The query with the aggregates read from `table` (one row per email, whole base)."""
        return f"WITH a AS (SELECT * FROM {table}){self.tail}"


def decay_sql(decay, age: str = "e.age") -> str:
    match decay:
        case HalfLifeDecay(half_life_days=h):
            return f"pow(0.5, {age} / {quote(h)})"
        case StepDecay(percent=p, every_days=n):
            return f"pow(1 - {quote(p)} / 100, floor({age} / {quote(n)}))"
    return "1.0"


def clamp_sql(expression: str, low: float | None, high: float | None) -> str:
    if low is not None:
        expression = f"greatest({expression}, {quote(low)})"
    if high is not None:
        expression = f"least({expression}, {quote(high)})"
    return expression


def ranges_sql(count: str, ranges: list[CountRange]) -> str:
    """The points of the range `count` falls in (0 in none: the ranges are disjoint)."""
    cases = []
    for item in ranges:
        low, high = item.bounds
        test = f"{count} >= {quote(low)}"
        if high != float("inf"):
            test += f" AND {count} <= {quote(high)}"
        cases.append(f"WHEN {test} THEN {quote(item.points)}")
    return f"CAST(CASE {' '.join(cases)} ELSE 0 END AS DOUBLE)"


def value_table_sql(rule: ValueRule) -> str:
    """The points of the property's value (trimmed; numbers as numbers, text in any case)."""
    value = f"NULLIF(trim({property_column(rule.property)}), '')"
    cases = []
    for key, points in rule.values.items():
        matched = value_key(key)
        test = (
            f"TRY_CAST({value} AS DOUBLE) = {quote(matched)}"
            if isinstance(matched, float)
            else f"lower({value}) = {quote(matched)}"
        )
        cases.append(f"WHEN {test} THEN {quote(points)}")
    return f"CAST(CASE {' '.join(cases)} ELSE {quote(rule.default)} END AS DOUBLE)"


def reset_events_sql(events: str, partition: str, resets: list[tuple[str, str]]) -> str:
    """`events` with, on each row, the time of its contact's latest reset event of each score
    (over the same rows: the events before the end of the day scored)."""
    if not resets:
        return events
    columns = ", ".join(
        f"max(CASE WHEN {match} THEN e.occurred_at END) OVER (PARTITION BY {partition}) "
        f"AS {reset_at_column(score)}"
        for score, match in resets
    )
    return f"SELECT e.*, {columns} FROM ({events}) e"


def bands_case_sql(column: str, bands: list[Band]) -> str:
    """The label of the first band whose `gte` the value meets (NULL under the last `gte`)."""
    cases = [
        f"WHEN {column} >= {quote(band.gte)} THEN {quote(band.label)}"
        if band.gte is not None
        else f"ELSE {quote(band.label)}"
        for band in bands
    ]
    if bands[-1].gte is not None:
        cases.append("ELSE NULL")
    return "CASE " + " ".join(cases) + " END"


def grid_sql(grid: Grid) -> str:
    """A contact's cell: its row band's label then its column band's (NULL if either is)."""
    rows = bands_case_sql(score_column(grid.rows.score), grid.rows.bands)
    columns = bands_case_sql(score_column(grid.columns.score), grid.columns.bands)
    return f"({rows}) || ({columns})"


def compile_model(
    config: LeadflowConfig,
    events_sql: str,
    explain: bool = False,
    whole_base_at: datetime | None = None,
    lifecycle: bool = False,
    marketing: bool = False,
    companies: bool = False,
) -> CompiledModel:
    """The scoring query over `targets`, `events_sql` and `props(email, day, name, value)`.

    With `explain`, also each event rule's matching events (count, newest, oldest). With
    `whole_base_at` (the as_of_end of the one day when every contact is a target), the events
    are aggregated per contact in one scan instead of joined with the targets. With `lifecycle`,
    also `target_stage`: the highest stage whose `lifecycle.promote` condition holds. With
    `marketing`, also `promote` (`marketing.promote` holds), `demote_rule` (the first demote
    rule that holds, else NULL), `suppressed` and `suppression_reason`. With `companies` (or
    when lifecycle or marketing conditions read company scores; the targets must then be every
    contact), also `company` and the company scores and bands (`leadflow.companies.scores`).
    """
    features = Features()
    aggregates: list[str] = []  # explain's
    sums: list[Additive] = []
    latest: list[Latest] = []
    capped: list[str] = []  # event rules' contributions, from their raw sums
    score_layers: list[str] = []
    resets: list[tuple[str, str]] = []
    grids_due = dict(config.grids)  # each grid is added once both its scores are
    done: set[str] = set()
    for name in config.scores_in_dependency_order():
        score = config.scores[name]
        select = []  # condition rules and the total, evaluated per target after aggregation
        since_reset = ""  # event rules leave out the events before the latest reset event
        if score.reset_when is not None:
            reset_match = event_match_sql(score.reset_when)
            at = reset_at_column(name)
            resets.append((name, reset_match))
            latest.append(
                Latest(
                    reset_column(name), "max(e.occurred_at) FILTER (WHERE {})", reset_match, "last"
                )
            )
            since_reset = f" AND (e.{at} IS NULL OR e.occurred_at >= e.{at})"
        for index, rule in enumerate(score.rules):
            column = rule_column(name, index)
            if isinstance(rule, EventRule):
                match = event_match_sql(rule) + since_reset
                match_before = event_match_sql(rule, age="e.age_before") + since_reset
                raw = raw_column(name, index)
                if rule.within_days is not None:
                    features.windows.add(float(rule.within_days))
                if rule.ranges is not None:  # the count of matching events, points by range
                    sums.append(Additive(raw, match, when_before=match_before))
                    capped.append(f"{ranges_sql(f'COALESCE({raw}, 0)', rule.ranges)} AS {column}")
                else:
                    decay = score.decay_of(rule)
                    points = f"{quote(rule.points)} * {decay_sql(decay)}"
                    half_life = decay.half_life_days if isinstance(decay, HalfLifeDecay) else None
                    # Carried from the earlier end: decayed by multiplication, or as it was then.
                    carried_age = "e.age" if half_life is not None else "e.age_before"
                    sums.append(
                        Additive(
                            raw,
                            match,
                            points,
                            half_life,
                            match_before,
                            f"{quote(rule.points)} * {decay_sql(decay, carried_age)}",
                        )
                    )
                    if isinstance(decay, StepDecay):
                        features.steps.add(float(decay.every_days))
                    contribution = f"COALESCE({raw}, 0)"
                    if rule.max_points is not None:
                        cap = quote(rule.max_points)
                        contribution = f"least(greatest({contribution}, -{cap}), {cap})"
                    capped.append(f"{contribution} AS {column}")
                if explain:
                    every = event_match_sql(rule, machines=True) + since_reset
                    aggregates += [
                        f"count(*) FILTER (WHERE ({every}) AND NOT ({match})) "
                        f'AS "machine:{name}:{index}"',
                        f'count(*) FILTER (WHERE {match}) AS "count:{name}:{index}"',
                        f'max(e.occurred_at) FILTER (WHERE {match}) AS "newest:{name}:{index}"',
                        f'min(e.occurred_at) FILTER (WHERE {match}) AS "oldest:{name}:{index}"',
                    ]
            elif isinstance(rule, ValueRule):
                features.properties.add(rule.property)
                select.append(f"{value_table_sql(rule)} AS {column}")
            else:
                assert isinstance(rule, ConditionRule)
                held = condition_sql(rule.when, features)
                select.append(f"CASE WHEN {held} THEN {quote(rule.points)} ELSE 0 END AS {column}")
        # Ungrouped rules add directly; each group adds its subtotal, clamped to its limit.
        members: dict[str | None, list[str]] = {None: [], **{group: [] for group in score.groups}}
        for index, rule in enumerate(score.rules):
            members[rule.group].append(f"COALESCE({rule_column(name, index)}, 0)")
        parts = members.pop(None)
        for group_index, (group, terms) in enumerate(members.items()):
            subtotal = group_column(name, group_index)
            select.append(f"CAST({' + '.join(terms)} AS DOUBLE) AS {subtotal}")
            limit = score.groups[group].limit
            parts.append(clamp_sql(subtotal, limit.min, limit.max))
        total = clamp_sql(" + ".join(parts), score.limit.min, score.limit.max)
        select.append(f"CAST({total} AS DOUBLE) AS {score_column(name)}")
        score_layers.append(", ".join(select))
        done.add(name)
        for grid_name, grid in list(grids_due.items()):
            if {grid.rows.score, grid.columns.score} <= done:
                score_layers.append(f"{grid_sql(grid)} AS {grid_column(grid_name)}")
                del grids_due[grid_name]

    company_at = len(score_layers)  # company scores: after the contact scores, before rules
    if lifecycle:
        score_layers.append(f"{target_stage_sql(config, features)} AS target_stage")
    if marketing:
        if lifecycle:  # stage conditions read the stage after the day's lifecycle step
            score_layers.append(f"* REPLACE ({stage_after_sql('stage', 'target_stage')} AS stage)")
        score_layers.append(marketing_sql(config, features))
    with_companies = config.companies is not None and (companies or features.needs_company_scores)
    if with_companies:
        score_layers[company_at:company_at] = company_layers(config, features)
    for column, match in features.event_counts.items():
        sums.append(
            Additive(
                column,
                event_match_sql(match),
                when_before=event_match_sql(match, age="e.age_before"),
            )
        )
    newest_first = f"(WHERE {{}}), 1, {GRAYMAIL_SENDS_ENGAGED})"
    if features.needs_suppression:
        features.properties.add(UNSUBSCRIBED_PROPERTY)
        latest.append(
            Latest(
                "suppressed_at", "min(e.occurred_at) FILTER (WHERE {})", SUPPRESSING_EVENT, "first"
            )
        )
        latest.append(
            Latest(
                "suppression_reason",
                f"arg_min({SUPPRESSION_REASON}, e.occurred_at) FILTER (WHERE {{}})",
                SUPPRESSING_EVENT,
                "first",
                by="suppressed_at",
            )
        )
    if features.needs_engagement:
        # The graymail rule reads the number of sends and the 16 latest (newest first).
        sums.append(Additive("send_count", "e.type = 'email_sent'"))
        # (An ordered list, then sliced: DuckDB spills its sort; `max(x, 16)` does not spill.)
        latest.append(
            Latest(
                "latest_sends",
                "list_slice(list(e.occurred_at ORDER BY e.occurred_at DESC) FILTER " + newest_first,
                "e.type = 'email_sent'",
                "newest",
            )
        )
        latest.append(
            Latest(
                "last_engaged",
                "max(e.occurred_at) FILTER (WHERE {})",
                "e.type IN ('email_open', 'email_click')",
                "last",
            )
        )
    sums.append(Additive("events_seen", "true"))  # the contact existed: it had events
    aggregates += [item.full_sql() for item in sums] + [item.full_sql() for item in latest]
    aggregate_sql = ",\n               ".join(aggregates)
    property_sql = "".join(
        f",\n               max(p.value) FILTER (WHERE p.name = {quote(name)}) AS "
        f"{property_column(name)}"
        for name in sorted(features.properties)
    )
    unengaged = (
        f""",
               COALESCE(CASE WHEN last_engaged IS NULL
                    THEN send_count >= {GRAYMAIL_SENDS_NEVER_ENGAGED}
                    ELSE send_count >= {GRAYMAIL_SENDS_ENGAGED}
                         AND last_engaged < latest_sends[{GRAYMAIL_SENDS_ENGAGED}] END, false)
                   AS unengaged"""
        if features.needs_engagement
        else ""
    )
    # Suppressed by an event, or by the contact's record (a HubSpot export's "Unsubscribed from
    # all email", the property `unsubscribed_from_all_email`, true as of the day).
    record_unsubscribed = (
        f"COALESCE(lower({property_column(UNSUBSCRIBED_PROPERTY)}) IN ('true', 'yes', '1'), false)"
    )
    suppressed = (
        f", (suppressed_at IS NOT NULL OR {record_unsubscribed}) AS suppressed"
        if features.needs_suppression
        else ""
    )
    if whole_base_at is None:
        # Any targets, any days: each target is joined with its own events.
        events_cte = f"""
        SELECT t.email, t.day, ev.* EXCLUDE (email),
               (epoch(t.as_of_end) - epoch(ev.occurred_at)) / {DAY_SECONDS} AS age
        FROM targets t JOIN {events_sql} AS ev
          ON ev.email = t.email AND ev.occurred_at < t.as_of_end"""
        group_by, join_on = "e.email, e.day", "a.email = t.email AND a.day = t.day"
    else:
        # Every contact, one day (the daily run): one scan of the lake, no join with targets.
        events_cte = whole_base_events_sql(events_sql, whole_base_at)
        group_by, join_on = "e.email", "a.email = t.email"
    events_cte = reset_events_sql(events_cte, group_by, resets)
    tail = f""",
    p AS (
        SELECT p.email, p.day{property_sql}
        FROM props p GROUP BY p.email, p.day
    ),
    joined AS (
        SELECT t.email, t.day, t.stage{", t.as_of_end, t.created_at" if with_companies else ""},
               a.* EXCLUDE ({group_by.replace("e.", "")}),
               p.* EXCLUDE (email, day)
        FROM targets t
        LEFT JOIN a ON {join_on}
        LEFT JOIN p ON p.email = t.email AND p.day = t.day
    ),
    layer0 AS (SELECT *{unengaged}{suppressed}{"".join(", " + item for item in capped)}
               FROM joined)"""
    previous = "layer0"
    for index, layer in enumerate(score_layers, start=1):
        select = layer if layer.startswith("* REPLACE") else f"*, {layer}"
        tail += f""",
    layer{index} AS (SELECT {select} FROM {previous})"""
        previous = f"layer{index}"
    # The send list only feeds `unengaged`: not carried out (a million lists of 16 times).
    dropped = " EXCLUDE (latest_sends)" if features.needs_engagement else ""
    tail += f"\n    SELECT *{dropped} FROM {previous}"
    return CompiledModel(
        aggregate_sql,
        sums,
        latest,
        events_cte,
        group_by,
        tail,
        features,
        config.scores_in_dependency_order(),
        resets,
    )


def property_names(config: LeadflowConfig) -> set[str]:
    """The contact properties the rules read (scores, lifecycle and marketing)."""
    return compile_model(config, "events", lifecycle=True, marketing=True).features.properties


def whole_base_events_sql(events_sql: str, end: datetime, where: str = "true") -> str:
    """The events before `end` with their `age` at `end` in days (and `where`)."""
    at = f"{quote(end.isoformat())}::TIMESTAMPTZ"
    return f"""
        SELECT ev.*, (epoch({at}) - epoch(ev.occurred_at)) / {DAY_SECONDS} AS age
        FROM {events_sql} AS ev WHERE ev.occurred_at < {at} AND ({where})"""


def stage_rank(column: str) -> str:
    """The position of a stage in the lifecycle order (NULL for `other` and for no stage)."""
    whens = " ".join(f"WHEN '{stage}' THEN {rank}" for rank, stage in enumerate(STAGES, start=1))
    return f"CASE {column} {whens} END"


def moves_forward_sql(current: str, target: str) -> str:
    """Whether a rule moves a contact from `current` to `target`: forward only, never out of
    `other` (admins only)."""
    return (
        f"({target} IS NOT NULL AND ({current} IS NULL OR {current} <> '{OTHER_STAGE}' "
        f"AND {stage_rank(target)} > {stage_rank(current)}))"
    )


def stage_after_sql(current: str, target: str) -> str:
    """The stage after the lifecycle step."""
    return f"CASE WHEN {moves_forward_sql(current, target)} THEN {target} ELSE {current} END"


def target_stage_sql(config: LeadflowConfig, features: Features) -> str:
    """The highest stage whose promote condition holds (NULL if none does)."""
    cases = []
    for stage in reversed(STAGES):
        condition = config.lifecycle.promote.get(stage)
        if condition is None:
            continue
        cases.append(f"WHEN {condition_sql(condition, features)} THEN {quote(stage)}")
    return "CASE " + " ".join(cases) + " END" if cases else "NULL::VARCHAR"


def marketing_sql(config: LeadflowConfig, features: Features) -> str:
    """The `marketing` columns of compile_model (suppression is always computed)."""
    features.needs_suppression = True
    promote = config.marketing.promote
    promote_sql = condition_sql(promote, features) if promote is not None else "false"
    demote_sql = (
        "CASE "
        + " ".join(
            f"WHEN {condition_sql(rule.when, features)} THEN {quote(rule.id)}"
            for rule in config.marketing.demote
        )
        + " END"
        if config.marketing.demote
        else "NULL::VARCHAR"
    )
    return f"{promote_sql} AS promote, {demote_sql} AS demote_rule"


def band_sql(config: LeadflowConfig, name: str) -> str:
    bands = config.bands.get(name)
    return bands_case_sql(score_column(name), bands) if bands else "NULL"


def load_properties(engine: Engine, names: set[str], email: str | None) -> pa.Table:
    """The history of the named contact properties, of one contact or of everyone (day runs
    read it from the run cache's mirror instead)."""
    if not names:
        return PROPERTY_SCHEMA.empty_table()
    where = f"h.name IN ({', '.join(quote(name) for name in sorted(names))})"
    if email is not None:
        where += f" AND c.email = {quote(email)}"
    return _read_properties(engine, where)


def _read_properties(engine: Engine, where: str) -> pa.Table:
    return read_arrow(
        engine,
        "SELECT c.email, h.name, h.value, CAST(h.valid_from AS TEXT) "
        f"FROM contact_property_history h JOIN contact c ON c.id = h.contact_id WHERE {where}",
        PROPERTY_SCHEMA,
    )


STAGES_SCHEMA = pa.schema([("email", pa.string()), ("stage", pa.string())])
PROPERTY_SCHEMA = pa.schema(
    [
        ("email", pa.string()),
        ("name", pa.string()),
        ("value", pa.string()),
        ("valid_from", pa.string()),
    ]
)


def prepare_inputs(
    connection: duckdb.DuckDBPyConnection,
    config: LeadflowConfig,
    targets: pa.Table,
    property_history: pa.Table | str,
    stages: pa.Table | None = None,
    created: pa.Table | None = None,
) -> None:
    """Register `targets(email, day, as_of_end, stage, created_at)` and `props(email, day, name,
    value)`; `stages(email, stage)`, when given, is where each contact stands (for stage
    conditions), `created(email, created_at)` when each was created (for company scores).
    `property_history` (a table, or the name of a relation such as the run cache's mirror) has
    PROPERTY_SCHEMA's columns, `valid_from` as text or already a timestamp. Where the targets
    and the history have a `bucket` column (`leadflow.lake.bucket_sql` of the email, as the run
    cache's mirror stores it), `targets` and the one day's `props` keep it: the partitions'
    inputs are then split without hashing every email again."""
    connection.register("targets_arrow", targets)
    connection.register(
        "stages_arrow", stages if stages is not None else STAGES_SCHEMA.empty_table()
    )
    created_at, created_join = "NULL::TIMESTAMPTZ", ""
    if created is not None:  # only where company scores are computed: no join otherwise
        connection.register("created_arrow", created)
        created_at = "c.created_at::TIMESTAMPTZ"
        created_join = " LEFT JOIN created_arrow c USING (email)"
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE targets AS "
        "SELECT t.email, t.day, t.as_of_end::TIMESTAMPTZ AS as_of_end, s.stage, "
        f"{created_at} AS created_at{', t.bucket' if 'bucket' in targets.schema.names else ''} "
        f"FROM targets_arrow t LEFT JOIN stages_arrow s USING (email){created_join}"
    )
    if not isinstance(property_history, str):
        connection.register("property_history", property_history)
        property_history = "property_history"
    # A property as it was at as_of_end: the newest value set strictly before it.
    ends = pc.unique(targets.column("as_of_end"))
    if len(ends) == 1:  # one day (the daily run): no join with the targets; extra rows unread
        history_columns = connection.sql(f"SELECT * FROM {property_history} LIMIT 0").columns
        bucket = ", h.bucket" if "bucket" in history_columns else ""
        connection.execute(
            f"""CREATE OR REPLACE TEMP TABLE props AS
               SELECT h.email, $day AS day, h.name,
                      arg_max(h.value, h.valid_from::TIMESTAMPTZ) AS value{bucket}
               FROM {property_history} h WHERE h.valid_from::TIMESTAMPTZ < $end
               GROUP BY h.email, h.name{bucket}""",
            {"day": targets.column("day")[0].as_py(), "end": ends[0].as_py()},
        )
        return
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE props AS
           SELECT t.email, t.day, h.name, arg_max(h.value, h.valid_from::TIMESTAMPTZ) AS value
           FROM targets t JOIN {property_history} h
             ON h.email = t.email AND h.valid_from::TIMESTAMPTZ < t.as_of_end
           GROUP BY t.email, t.day, h.name"""
    )


def targets_table(
    emails: pa.Array | pa.ChunkedArray,
    days: list[date],
    config: LeadflowConfig,
    buckets: pa.Array | pa.ChunkedArray | None = None,
) -> pa.Table:
    """Every (email, day) pair, with the end of the day in the account zone (and each email's
    bucket, if given: `prepare_inputs`)."""
    parts = [
        pa.table(
            {
                "email": emails,
                "day": pa.repeat(pa.scalar(day, pa.date32()), len(emails)),
                "as_of_end": pa.repeat(
                    pa.scalar(as_of_end(day, config), pa.timestamp("us", tz="UTC")), len(emails)
                ),
                **({"bucket": buckets} if buckets is not None else {}),
            }
        )
        for day in days
    ]
    return pa.concat_tables(parts)


def compute_scores(
    connection: duckdb.DuckDBPyConnection,
    config: LeadflowConfig,
    model: CompiledModel,
    sql: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """Scores, bands and per-rule contributions of every registered target, as a relation
    (`sql`: the model's query, or a variant of it such as `model.over_aggregates`)."""
    bands = ", ".join(f"{band_sql(config, name)} AS {band_column(name)}" for name in model.scores)
    return connection.sql(f"SELECT *, {bands} FROM ({sql or model.sql})")
