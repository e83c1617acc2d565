"""The leadflow configuration: one YAML file, validated once, here, at the edge.

Everything downstream receives a `LeadflowConfig` and can trust it: every key is known, every
event type exists, every score a rule names exists and no score depends on itself.
`load_config` turns any problem into a one-line `ConfigError`:

    leadflow.yaml: scores.engagement.rules[2].event: unknown event type 'email_opn'

Reading order: value tests, the condition language (one class per YAML form), score rules and
decays, the sections, then `LeadflowConfig` and `load_config`.
"""

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import date
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from leadflow.domain import (
    CONFIGURABLE_SOURCES,
    EVENT_TYPES,
    MARKETING_STATUSES,
    OTHER_STAGE,
    STAGES,
)
from leadflow.errors import UserError

Stage = Literal[STAGES]
StageOrOther = Literal[(*STAGES, OTHER_STAGE)]
ConfigurableSource = Literal[CONFIGURABLE_SOURCES]
MarketingStatus = Literal[MARKETING_STATUSES]


def _scalar(value: Any) -> bool | int | float | str:
    """One value to compare with (`eq`, `in`); checked by hand for a one-line error message."""
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"expected a text, number or true/false value, got {value!r}")
    return value


ScalarValue = Annotated[bool | int | float | str, PlainValidator(_scalar)]

# Rule ids appear in explanations and audit rows, so they must say something.
RuleId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# Score names become column names (`band_<score>` in exports, SQL), hence the narrow alphabet.
ScoreName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]

# Default marketing status per creation source, merged under the configured ones.
DEFAULT_CREATION_STATUS: dict[str, str] = {
    "form": "marketing",
    "import": "non_marketing",
    "conversation": "non_marketing",
    "integration": "non_marketing",
    "ads": "marketing",
}


class ConfigError(UserError, ValueError):
    """The configuration cannot be used; the message is one line: file, key path, reason."""

    exit_code = 2


def _known_event_type(value: str, info: ValidationInfo) -> str:
    """leadflow's event types, and the configuration's own (`events.custom_types`, handed over
    by `load_config` as the validation context)."""
    custom = (info.context or {}).get("custom_types", ())
    if value not in EVENT_TYPES and value not in custom:
        raise ValueError(f"unknown event type {value!r}")
    return value


EventType = Annotated[str, AfterValidator(_known_event_type)]


class _Section(BaseModel):
    """Base of every config class: a typo is an error, and nothing changes after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)


def _require_any(model: BaseModel, keys: tuple[str, ...]) -> None:
    """Reject a mapping that names its subject but tests nothing (`{property: phone}`)."""
    given = model.model_dump(exclude_none=True)
    if not any(key in given for key in keys):
        raise ValueError(f"give at least one of: {', '.join(keys)}")


# --- Value tests -------------------------------------------------------------------------------


class ValueTest(_Section):
    """Tests on one value (event column, event property or contact property); all must hold."""

    test_keys: ClassVar[tuple[str, ...]] = ("eq", "in", "contains", "gte", "lte")

    eq: ScalarValue | None = None
    in_: list[ScalarValue] | None = Field(None, alias="in", min_length=1)
    contains: str | None = None
    gte: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _has_a_test(self) -> Self:
        _require_any(self, self.test_keys)
        return self


def _bare_value_means_eq(value: Any) -> Any:
    """`where: {bounce_type: hard}` is short for `where: {bounce_type: {eq: hard}}`."""
    return value if isinstance(value, dict | BaseModel) else {"eq": value}


WhereTest = Annotated[ValueTest, BeforeValidator(_bare_value_means_eq)]


class EventCount(_Section):
    """How many matching events the condition needs; all given bounds must hold."""

    eq: NonNegativeInt | None = None
    gte: NonNegativeInt | None = None
    lte: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Self:
        _require_any(self, ("eq", "gte", "lte"))
        return self


# --- The condition language (scores, lifecycle, marketing) -------------------------------------


class EventMatch(_Section):
    """Which events a rule or condition looks at: one type, column/property filters, a window."""

    event: EventType
    where: dict[str, WhereTest] = Field(default_factory=dict)
    # Only events younger than this many days count (age < within_days), age taken at as_of_end.
    within_days: PositiveInt | None = None
    # Opens and clicks made by machines (the vendor's flag, or a click right after delivery):
    # left out (the default, also `exclude`), or counted too (`include`).
    machine: Literal["exclude", "include"] | None = None

    @property
    def counts_machines(self) -> bool:
        return self.machine == "include"


class EventCondition(EventMatch):
    """Holds when the number of matching events meets `count` (default: at least one)."""

    count: EventCount = EventCount(gte=1)


class PropertyCondition(ValueTest):
    """Holds when the contact property, as it was at as_of_end, passes every test."""

    test_keys: ClassVar[tuple[str, ...]] = ("known", *ValueTest.test_keys)

    property: str = Field(min_length=1)
    # true: the property has a non-empty value; false: it has none.
    known: bool | None = None


class _Bounded(_Section):
    """A value within `gte` and/or `lte` (at least one of them)."""

    gte: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Self:
        _require_any(self, ("gte", "lte"))
        return self


class ScoreCondition(_Bounded):
    """Holds when another score, as of the same day, is within the bounds."""

    score: str


class GridCondition(_Section):
    """Holds when the contact's cell of a grid (`grids`), as of the same day, is one of `in`."""

    grid: str
    in_: list[str] = Field(alias="in", min_length=1)


class CompanyScoreCondition(_Bounded):
    """Holds when the score of the contact's company (`companies.scores`), as of the same day,
    is within the bounds; never for a contact without a company (README: Company scores)."""

    company_score: str


class StageSet(_Section):
    """The stages a `stage` condition accepts."""

    in_: list[StageOrOther] = Field(alias="in", min_length=1)


class StageCondition(_Section):
    """Holds when the contact's current lifecycle stage is one of `stage.in`."""

    stage: StageSet


class SuppressedCondition(_Section):
    """Holds when the contact's suppression (unsubscribe, hard bounce, spam) equals the value."""

    suppressed: bool


class UnengagedCondition(_Section):
    """Holds when HubSpot's graymail rule says the contact is unengaged, or not."""

    unengaged: bool


class AllCondition(_Section):
    """Holds when every sub-condition holds."""

    all: list["Condition"] = Field(min_length=1)


class AnyCondition(_Section):
    """Holds when at least one sub-condition holds."""

    any: list["Condition"] = Field(min_length=1)


class NotCondition(_Section):
    """Holds when the sub-condition does not."""

    not_: "Condition" = Field(alias="not")


# Pydantic puts the tag of the union member it chose into error locations; `_key_path` hides
# these tags so that paths read like the YAML. Tags are class names such as EventRule.
_UNION_TAGS: set[str] = set()


def _tagged(member: Any, tag: str) -> Any:
    _UNION_TAGS.add(tag)
    return Annotated[member, Tag(tag)]


def _class_by_key(forms: dict[str, type[BaseModel]]) -> Callable[[Any], str | None]:
    """Discriminator: the class whose key the mapping has; None (an error) unless exactly one."""

    def form_of(value: Any) -> str | None:
        if isinstance(value, BaseModel):
            return type(value).__name__
        if not isinstance(value, dict):
            return None
        matches = [cls.__name__ for key, cls in forms.items() if key in value]
        return matches[0] if len(matches) == 1 else None

    return form_of


_CONDITION_FORMS: dict[str, type[BaseModel]] = {
    "event": EventCondition,
    "property": PropertyCondition,
    "score": ScoreCondition,
    "grid": GridCondition,
    "company_score": CompanyScoreCondition,
    "stage": StageCondition,
    "suppressed": SuppressedCondition,
    "unengaged": UnengagedCondition,
    "all": AllCondition,
    "any": AnyCondition,
    "not": NotCondition,
}

Condition = Annotated[
    _tagged(EventCondition, "EventCondition")
    | _tagged(PropertyCondition, "PropertyCondition")
    | _tagged(ScoreCondition, "ScoreCondition")
    | _tagged(GridCondition, "GridCondition")
    | _tagged(CompanyScoreCondition, "CompanyScoreCondition")
    | _tagged(StageCondition, "StageCondition")
    | _tagged(SuppressedCondition, "SuppressedCondition")
    | _tagged(UnengagedCondition, "UnengagedCondition")
    | _tagged(AllCondition, "AllCondition")
    | _tagged(AnyCondition, "AnyCondition")
    | _tagged(NotCondition, "NotCondition"),
    Discriminator(
        _class_by_key(_CONDITION_FORMS),
        custom_error_type="condition_form",
        custom_error_message="a condition needs exactly one of the keys "
        + ", ".join(_CONDITION_FORMS),
    ),
]

for _recursive in (AllCondition, AnyCondition, NotCondition):
    _recursive.model_rebuild()


def walk_condition(condition: Condition, path: str) -> Iterator[tuple[str, Condition]]:
    """The condition and every condition nested in it, each with its key path."""
    yield path, condition
    match condition:
        case AllCondition(all=children):
            for index, child in enumerate(children):
                yield from walk_condition(child, f"{path}.all[{index}]")
        case AnyCondition(any=children):
            for index, child in enumerate(children):
                yield from walk_condition(child, f"{path}.any[{index}]")
        case NotCondition(not_=child):
            yield from walk_condition(child, f"{path}.not")


# --- Decay and score rules ---------------------------------------------------------------------


class HalfLifeDecay(_Section):
    """An event's points halve every `half_life_days`: factor 0.5 ** (age / h)."""

    half_life_days: PositiveFloat


class StepDecay(_Section):
    """An event's points lose `percent` % every `every_days`: (1 - p/100) ** floor(age / n)."""

    percent: float = Field(gt=0, le=100)
    every_days: PositiveInt


_decay_class_by_key = _class_by_key({"half_life_days": HalfLifeDecay, "percent": StepDecay})


def _decay_form(value: Any) -> str | None:
    return "NoDecay" if value == "none" else _decay_class_by_key(value)


Decay = Annotated[
    _tagged(HalfLifeDecay, "HalfLifeDecay")
    | _tagged(StepDecay, "StepDecay")
    | _tagged(Literal["none"], "NoDecay"),
    Discriminator(
        _decay_form,
        custom_error_type="decay_form",
        custom_error_message="decay must be none, {half_life_days: H} "
        "or {percent: P, every_days: N}",
    ),
]


class CountRange(_Section):
    """`points` when the number of matching events is within `count`."""

    count: EventCount
    points: float

    @property
    def bounds(self) -> tuple[float, float]:
        """The counts it takes, as a closed interval (empty if low > high)."""
        low = max(self.count.gte or 0, self.count.eq if self.count.eq is not None else 0)
        high = min(
            float("inf") if self.count.lte is None else self.count.lte,
            float("inf") if self.count.eq is None else self.count.eq,
        )
        return low, high


def _describe_range(low: float, high: float) -> str:
    return f"{low:g}+" if high == float("inf") else f"{low:g}-{high:g}"


class EventRule(EventMatch):
    """Every matching event adds `points × decay(age)`; the rule's total is capped at
    ±`max_points`. `decay` overrides the score's default. With `ranges` instead of `points`:
    the points of the range the number of matching events falls in, once, undecayed."""

    id: RuleId
    points: float | None = None
    ranges: list[CountRange] | None = Field(None, min_length=1)
    max_points: PositiveFloat | None = None
    decay: Decay | None = None
    group: str | None = None

    @field_validator("ranges")
    @classmethod
    def _ranges_disjoint(cls, ranges: list[CountRange] | None) -> list[CountRange] | None:
        """A count must fall in one range at most, so that the points are never ambiguous."""
        for index, item in enumerate(ranges or []):
            low, high = item.bounds
            if low > high:
                raise ValueError(f"[{index}].count matches no number of events")
            for earlier in range(index):
                other_low, other_high = ranges[earlier].bounds
                if low <= other_high and other_low <= high:
                    raise ValueError(
                        f"[{index}] (count {_describe_range(low, high)}) overlaps [{earlier}] "
                        f"(count {_describe_range(other_low, other_high)})"
                    )
        return ranges

    @model_validator(mode="after")
    def _points_or_ranges(self) -> Self:
        if (self.points is None) == (self.ranges is None):
            raise ValueError("give points (per event) or ranges (points by count), one of them")
        if self.ranges is not None:
            for key in ("max_points", "decay"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: not with ranges (a range's points count once)")
        return self


class ConditionRule(_Section):
    """Adds `points` once when the condition holds as of the day scored."""

    id: RuleId
    when: Condition
    points: float
    group: str | None = None


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def value_key(key: bool | int | float | str) -> float | str:
    """What a value table's key matches: a number (`10`, "10", "1e1": any value equal to it
    as a number), else the text trimmed and in lower case (true/false for booleans)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return float(key)
    text = key.strip()
    return float(text) if _NUMBER.fullmatch(text) else text.lower()


class ValueRule(_Section):
    """The points of the contact property's value as of the day scored, `default` for any
    other value or none (README: Scores, value tables)."""

    id: RuleId
    property: str = Field(min_length=1)
    values: dict[ScalarValue, float] = Field(min_length=1)
    default: float = 0
    group: str | None = None

    @field_validator("values")
    @classmethod
    def _keys_distinct(cls, values: dict) -> dict:
        seen: dict[float | str, Any] = {}
        for key in values:
            matched = value_key(key)
            if matched in seen:
                raise ValueError(
                    f"{seen[matched]!r} and {key!r} are the same value (matching ignores case "
                    "and surrounding spaces, and compares numbers as numbers)"
                )
            seen[matched] = key
        return values


Rule = Annotated[
    _tagged(EventRule, "EventRule")
    | _tagged(ConditionRule, "ConditionRule")
    | _tagged(ValueRule, "ValueRule"),
    Discriminator(
        _class_by_key({"event": EventRule, "when": ConditionRule, "property": ValueRule}),
        custom_error_type="rule_form",
        custom_error_message="a rule needs exactly one of the keys event (event rule), "
        "when (condition rule), property (value table)",
    ),
]


def _unique_ids(rules: list[EventRule | ConditionRule | ValueRule] | list["DemotionRule"]) -> None:
    """Rule ids name rules in explanations and audits, so they must not repeat."""
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ValueError(f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)


class Limit(_Section):
    """The score's total is clamped to [min, max]."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class GroupLimit(_Section):
    """A group's subtotal is clamped to [min, max]; either bound may be left out."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _require_any(self, ("min", "max"))
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class Group(_Section):
    """Rules naming the group add up to its subtotal, clamped before the score's limit."""

    limit: GroupLimit


class ResetMatch(EventMatch):
    """The event that resets a score's event rules: the latest one matching, as of the day."""

    @model_validator(mode="after")
    def _no_window(self) -> Self:
        if self.within_days is not None:
            raise ValueError("within_days: not allowed (the latest matching event ever resets)")
        return self


class Score(_Section):
    """A named score: the sum of its rules' contributions as of a day, clamped (README: Scores)."""

    limit: Limit
    # Decay of event rules that do not set their own.
    decay: Decay = "none"
    # Group name -> its limit; a rule naming a group adds to the group's capped subtotal.
    groups: dict[RuleId, Group] = Field(default_factory=dict)
    # Events of the event rules before the latest event matching this count for nothing.
    reset_when: ResetMatch | None = None
    rules: list[Rule] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _ids_unique(
        cls, rules: list[EventRule | ConditionRule | ValueRule]
    ) -> list[EventRule | ConditionRule | ValueRule]:
        _unique_ids(rules)
        return rules

    def decay_of(self, rule: EventRule) -> HalfLifeDecay | StepDecay | Literal["none"]:
        """The decay that applies to an event rule of this score."""
        return self.decay if rule.decay is None else rule.decay

    def conditions(self) -> Iterator[tuple[str, Condition]]:
        """Every condition in this score's rules, nested ones included, with its path."""
        for index, rule in enumerate(self.rules):
            if isinstance(rule, ConditionRule):
                yield from walk_condition(rule.when, f"rules[{index}].when")


# --- Sections ----------------------------------------------------------------------------------


class Account(_Section):
    """Who the CRM belongs to; its time zone decides where every day starts and ends."""

    timezone: str

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
            ) from None
        return name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Contract(_Section):
    """The paid marketing-contact tier and when it renews (README: Marketing contacts)."""

    renewal_date: date
    # How renewal_date rolls forward when a renewal is applied.
    billing: Literal["annual", "monthly"] = "annual"
    marketing_contact_tier: NonNegativeInt
    # Demotions become `scheduled` this many days before renewal_date.
    demotion_window_days: int = Field(90, ge=1, le=366)


class Band(_Section):
    """A label for scores >= `gte`; a band without `gte` takes everything below."""

    label: str = Field(min_length=1)
    gte: float | None = None


def _check_band_order(bands: list[Band]) -> list[Band]:
    """Bands are read top-down (first whose `gte` is met wins), so they must strictly descend."""
    labels = [band.label for band in bands]
    if len(set(labels)) != len(labels):
        raise ValueError(f"band labels repeat: {', '.join(labels)}")
    for band in bands[:-1]:
        if band.gte is None:
            raise ValueError(f"only the last band may omit gte, not {band.label!r}")
    thresholds = [band for band in bands if band.gte is not None]
    for upper, lower in zip(thresholds, thresholds[1:], strict=False):
        if lower.gte >= upper.gte:
            raise ValueError(
                f"gte must strictly decrease: {lower.label!r} ({lower.gte:g}) "
                f"after {upper.label!r} ({upper.gte:g})"
            )
    return bands


BandList = Annotated[list[Band], Field(min_length=1), AfterValidator(_check_band_order)]


class GridAxis(_Section):
    """One side of a grid: a score and its bands (labels, highest first)."""

    score: str
    bands: BandList


class Grid(_Section):
    """Each contact's cell: the row band's label, then the column band's (`A` + `1` = `A1`)."""

    rows: GridAxis
    columns: GridAxis

    @property
    def labels(self) -> list[str]:
        return [r.label + c.label for r in self.rows.bands for c in self.columns.bands]

    @model_validator(mode="after")
    def _labels_distinct(self) -> Self:
        labels = self.labels
        for label in labels:
            if labels.count(label) > 1:
                raise ValueError(f"two cells are both labelled {label!r}: rename a band")
        return self


class Lifecycle(_Section):
    """Each run moves a contact forward to the highest stage whose condition holds."""

    promote: dict[Stage, Condition] = Field(default_factory=dict)


class DemotionRule(_Section):
    """A marketing contact meeting `when` gets an open demotion to non-marketing."""

    id: RuleId
    when: Condition


class Marketing(_Section):
    """Who counts against the paid tier: creation defaults, promotion, demotion."""

    # Status of a new contact by creation source; unlisted sources keep DEFAULT_CREATION_STATUS.
    creation_defaults: dict[ConfigurableSource, MarketingStatus] = Field(
        default_factory=lambda: dict(DEFAULT_CREATION_STATUS)
    )
    # Status of a new contact created by the named integration, overriding creation_defaults.
    integration_overrides: dict[str, MarketingStatus] = Field(default_factory=dict)
    # None: no rule ever promotes a contact to marketing.
    promote: Condition | None = None
    demote: list[DemotionRule] = Field(default_factory=list)

    @field_validator("creation_defaults")
    @classmethod
    def _fill_defaults(cls, given: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_CREATION_STATUS, **given}

    @field_validator("demote")
    @classmethod
    def _ids_unique(cls, rules: list[DemotionRule]) -> list[DemotionRule]:
        _unique_ids(rules)
        return rules


class Ingest(_Section):
    """How much bad input a batch may carry before it is rejected whole (README: Ingest)."""

    # Fraction of rows of one file that may be quarantined while the good rows still load.
    max_bad_fraction: float = Field(0.05, ge=0, le=1)
    # From when a contact's first known value of a property counts: its record's created_at,
    # its updated_at, or the load time. None: the file format's default (README: Ingest).
    first_values_at: Literal["created_at", "updated_at", "load_time"] | None = None
    # A click this many seconds (or fewer) after its email's delivery is a machine's (a link
    # scanner's): flagged, and counted by no rule unless it says `machine: include`. 0: never.
    machine_click_seconds: float = Field(10, ge=0)


class EngineSection(_Section):
    """How a day's computation is split (README: Scaling out): never what it computes, so not
    part of the model version."""

    # Contact-hash partitions, each scored on its own under DuckDB's memory limit: a number, or
    # "auto" (one per CONTACTS_PER_PARTITION contacts of the base, `leadflow.scoring.partitions`).
    partitions: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = "auto"  # lake.BUCKETS


EventTypeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class Events(_Section):
    """Event types of your own, valid in ingest and in every condition beside leadflow's."""

    custom_types: list[EventTypeName] = Field(default_factory=list)

    @field_validator("custom_types")
    @classmethod
    def _new_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if name in EVENT_TYPES:
                raise ValueError(f"{name!r} is one of leadflow's own event types")
        if len(set(names)) != len(names):
            raise ValueError("a custom event type is listed twice")
        return names


class Segment(_Section):
    """Segment track calls: the name of a track -> the event type it loads as (adding to, or
    overriding, the names of Segment's Email spec)."""

    track_types: dict[str, EventType] = Field(default_factory=dict)


# A HubSpot property's internal name (HubSpot's own rule: lower case, digits, underscores).
HubSpotProperty = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]


class HubSpotPull(_Section):
    """What `leadflow hubspot pull` (and the daily run, when this is set) reads from the portal:
    contacts through the CRM API and marketing email events, each since its last pull."""

    # The first pull starts here (contacts modified, events sent since); None: all history.
    since: date | None = None
    # HubSpot properties to keep beside the ones leadflow maps (internal names).
    properties: list[HubSpotProperty] = Field(default_factory=list)
    email_events: bool = True
    # One ingest batch per this many contacts, or per this many hours of email events.
    contacts_per_batch: int = Field(10_000, ge=1)
    events_window_hours: float = Field(24, gt=0)
    # Each events pull goes back this far before the last one's end: events HubSpot reports
    # late still arrive (those already loaded are known by their id).
    events_overlap_minutes: float = Field(60, ge=0)


class HubSpotPush(_Section):
    """What `leadflow hubspot push` (and the daily run, when this is set) writes to the portal:
    scores and bands into the properties named, lifecycle stages (forward only), and marketing
    decisions through `marketing_property` (README: Connect HubSpot)."""

    scores: dict[ScoreName, HubSpotProperty] = Field(default_factory=dict)
    bands: dict[ScoreName, HubSpotProperty] = Field(default_factory=dict)
    # Each grid's cell (`A1`), from the contact's stored scores, into the property named.
    grids: dict[str, HubSpotProperty] = Field(default_factory=dict)
    # Scores are sent rounded to this many decimals (a change below it is not sent).
    score_decimals: int = Field(0, ge=0, le=4)
    lifecycle_stage: bool = True
    # The contact property a HubSpot workflow acts on (`marketing`, `non_marketing_at_renewal`):
    # HubSpot's API cannot write the marketing status itself. None: no marketing decision sent.
    marketing_property: HubSpotProperty | None = "leadflow_marketing_request"
    # A push asked to change more marketing statuses than this is refused whole.
    max_marketing_changes: int = Field(1000, ge=0)


class HubSpot(_Section):
    """The HubSpot portal: its exports' times are in its time zone; `pull` and `push` connect
    leadflow to its API (token: $HUBSPOT_ACCESS_TOKEN, or the Prefect Secret block named by
    `token_secret` in deployments)."""

    # IANA zone of the portal's exports; default: account.timezone.
    timezone: str | None = None
    token_secret: str | None = None
    pull: HubSpotPull | None = None
    push: HubSpotPush | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str | None) -> str | None:
        return None if name is None else Account._known_timezone(name)


class MeanOfTop(_Section):
    """The mean of the company's N highest contact scores (of all of them if it has fewer)."""

    mean_of_top: PositiveInt


def _aggregate_form(value: Any) -> str | None:
    if value in ("sum", "max"):
        return "SumOrMax"
    return "MeanOfTop" if isinstance(value, MeanOfTop | dict) else None


CompanyAggregate = Annotated[
    _tagged(Literal["sum", "max"], "SumOrMax") | _tagged(MeanOfTop, "MeanOfTop"),
    Discriminator(
        _aggregate_form,
        custom_error_type="aggregate_form",
        custom_error_message="aggregate must be sum, max or {mean_of_top: N}",
    ),
]


class CompanyScore(_Section):
    """A company's score as of a day, from one contact score of its contacts that day."""

    from_: ScoreName = Field(alias="from")
    aggregate: CompanyAggregate


class Companies(_Section):
    """Company scores built from their contacts' scores, and their bands (README: Company
    scores)."""

    scores: dict[ScoreName, CompanyScore] = Field(min_length=1)
    bands: dict[str, BandList] = Field(default_factory=dict)


# Sections whose change means "the model changed, rescore everyone" (README: Scores, rule changes).
_RULE_SECTIONS = {"scores", "bands", "grids", "lifecycle", "marketing", "companies"}


class LeadflowConfig(_Section):
    """The whole leadflow.yaml, cross-checked: every name a rule uses refers to something real."""

    account: Account
    contract: Contract
    scores: dict[ScoreName, Score] = Field(default_factory=dict)
    bands: dict[str, BandList] = Field(default_factory=dict)
    grids: dict[ScoreName, Grid] = Field(default_factory=dict)
    lifecycle: Lifecycle = Lifecycle()
    marketing: Marketing = Marketing()
    ingest: Ingest = Ingest()
    events: Events = Events()
    segment: Segment = Segment()
    hubspot: HubSpot = HubSpot()
    engine: EngineSection = EngineSection()
    # None (no section): no company scores, and the model version of a config without them.
    companies: Companies | None = None

    @property
    def event_types(self) -> tuple[str, ...]:
        """Every valid event type: leadflow's and the configuration's own."""
        return (*EVENT_TYPES, *self.events.custom_types)

    @property
    def portal_timezone(self) -> str:
        return self.hubspot.timezone or self.account.timezone

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        for path, condition in self.conditions():
            if isinstance(condition, ScoreCondition) and condition.score not in self.scores:
                raise ValueError(f"{path}.score: unknown score {condition.score!r}")
            if isinstance(condition, StageCondition) and not path.startswith("marketing."):
                raise ValueError(
                    f"{path}.stage: stage conditions are allowed in marketing rules only "
                    "(scores and lifecycle rules decide the stage, so they cannot read it)"
                )
        for name in self.bands:
            if name not in self.scores:
                raise ValueError(f"bands.{name}: unknown score {name!r}")
        push = self.hubspot.push
        for key, names in (("scores", push.scores), ("bands", push.bands)) if push else ():
            for name in names:
                if name not in self.scores:
                    raise ValueError(f"hubspot.push.{key}.{name}: unknown score {name!r}")
                if key == "bands" and name not in self.bands:
                    raise ValueError(f"hubspot.push.bands.{name}: the score {name!r} has no bands")
        for name in push.grids if push else ():
            if name not in self.grids:
                raise ValueError(f"hubspot.push.grids.{name}: unknown grid {name!r}")
        self.scores_in_dependency_order()
        return self

    @model_validator(mode="after")
    def _groups_and_grids_resolve(self) -> Self:
        for name, score in self.scores.items():
            named = {rule.group for rule in score.rules if rule.group is not None}
            for index, rule in enumerate(score.rules):
                if rule.group is not None and rule.group not in score.groups:
                    declared = ", ".join(score.groups) or "none declared"
                    raise ValueError(
                        f"scores.{name}.rules[{index}].group: unknown group {rule.group!r} "
                        f"(groups: {declared})"
                    )
            for group in score.groups:
                if group not in named:
                    raise ValueError(f"scores.{name}.groups.{group}: no rule names this group")
        for name, grid in self.grids.items():
            for axis in ("rows", "columns"):
                score = getattr(grid, axis).score
                if score not in self.scores:
                    raise ValueError(f"grids.{name}.{axis}.score: unknown score {score!r}")
        for path, condition in self.conditions():
            if isinstance(condition, GridCondition):
                grid = self.grids.get(condition.grid)
                if grid is None:
                    raise ValueError(f"{path}.grid: unknown grid {condition.grid!r}")
                for label in condition.in_:
                    if label not in grid.labels:
                        raise ValueError(
                            f"{path}.in: {label!r} is not a cell of grid {condition.grid!r} "
                            f"({', '.join(grid.labels)})"
                        )
        return self

    @model_validator(mode="after")
    def _company_references_resolve(self) -> Self:
        """Company scores read contact scores, so contact score rules cannot read them."""
        companies = self.companies
        for name, company_score in companies.scores.items() if companies else ():
            if company_score.from_ not in self.scores:
                raise ValueError(
                    f"companies.scores.{name}.from: unknown score {company_score.from_!r}"
                )
        for name in companies.bands if companies else ():
            if name not in companies.scores:
                raise ValueError(f"companies.bands.{name}: unknown company score {name!r}")
        for path, condition in self.conditions():
            if not isinstance(condition, CompanyScoreCondition):
                continue
            if path.startswith("scores."):
                raise ValueError(
                    f"{path}.company_score: company score conditions are allowed in lifecycle "
                    "and marketing rules only (company scores are built from contact scores)"
                )
            if companies is None or condition.company_score not in companies.scores:
                raise ValueError(
                    f"{path}.company_score: unknown company score {condition.company_score!r}"
                )
        return self

    def conditions(self) -> Iterator[tuple[str, Condition]]:
        """Every condition of the config, nested ones included, with its key path."""
        for name, score in self.scores.items():
            for path, condition in score.conditions():
                yield f"scores.{name}.{path}", condition
        for stage, condition in self.lifecycle.promote.items():
            yield from walk_condition(condition, f"lifecycle.promote.{stage}")
        if self.marketing.promote is not None:
            yield from walk_condition(self.marketing.promote, "marketing.promote")
        for index, rule in enumerate(self.marketing.demote):
            yield from walk_condition(rule.when, f"marketing.demote[{index}].when")

    def scores_in_dependency_order(self) -> list[str]:
        """Score names, each after the scores its rules' `score` conditions read (and the
        scores of the grids its `grid` conditions read)."""
        dependencies = {name: set() for name in self.scores}
        for name, score in self.scores.items():
            for _, condition in score.conditions():
                if isinstance(condition, ScoreCondition):
                    dependencies[name].add(condition.score)
                grid = (
                    self.grids.get(condition.grid) if isinstance(condition, GridCondition) else None
                )
                if grid is not None:
                    dependencies[name] |= {grid.rows.score, grid.columns.score}
        try:
            return list(TopologicalSorter(dependencies).static_order())
        except CycleError as error:
            cycle = " -> ".join(error.args[1])
            raise ValueError(f"scores: rules refer to each other in a cycle: {cycle}") from None

    @property
    def model_version(self) -> str:
        """Hash of the rule-bearing sections as validated: blind to YAML comments, layout and
        key order, changed by any rule change (README: Scores, rule changes)."""
        rules = self.model_dump(mode="json", include=_RULE_SECTIONS, exclude_none=True)
        canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# --- Loading -----------------------------------------------------------------------------------


class _ConfigLoader(yaml.SafeLoader):
    """yaml.safe_load with two changes: a key repeated in one mapping is an error (not
    last-wins), and dates stay text so that pydantic parses them and names the key of a bad one.
    """


_ConfigLoader.yaml_implicit_resolvers = {
    first_char: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first_char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping_without_duplicate_keys(loader: _ConfigLoader, node: yaml.MappingNode) -> dict:
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_ConfigLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicate_keys
)

_PLAIN_REASONS = {"extra_forbidden": "unknown key", "missing": "required key is missing"}


def _key_path(loc: tuple[int | str, ...]) -> str:
    """Pydantic's loc as YAML: ('rules', 2, 'EventRule', 'event') -> rules[2].event."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _UNION_TAGS and part != "[key]":
            path += f".{part}" if path else part
    return path


def _describe(source: str, error: ValidationError) -> str:
    """The first pydantic error as `source: key.path: reason (+N more)`."""
    errors = error.errors(include_url=False)
    first = errors[0]
    if first["type"] == "value_error":
        reason = str(first["ctx"]["error"])
    else:
        reason = _PLAIN_REASONS.get(first["type"], first["msg"])
        if first["type"] not in _PLAIN_REASONS and isinstance(first["input"], str | int | float):
            reason += f", got {first['input']!r}"
    path = _key_path(first["loc"])
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {path + ': ' if path else ''}{reason}{more}"


def load_config(path: Path) -> LeadflowConfig:
    """Read and validate the configuration file; any problem raises a one-line ConfigError."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: file not found (`leadflow init` writes one to edit; or point "
            "LEADFLOW_CONFIG at yours)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot read: {error}") from error
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{source}: {where}invalid YAML: {error.problem}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: invalid YAML: {error}".replace("\n", " ")) from error
    if data is None:
        raise ConfigError(f"{source}: the file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (account, contract, ...)")
    events = data.get("events")
    custom = events.get("custom_types") if isinstance(events, dict) else None
    context = {"custom_types": tuple(custom) if isinstance(custom, list) else ()}
    try:
        return LeadflowConfig.model_validate(data, context=context)
    except ValidationError as error:
        raise ConfigError(_describe(source, error).replace("\n", " ")) from error
