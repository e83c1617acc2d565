"""`leadflow evaluate`: the cohort and outcomes (`outcomes`), the scores as of D of the current
rules and optionally of another rule set, and their metrics (`metrics`)."""

import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from leadflow.config import LeadflowConfig, load_config
from leadflow.evaluation import metrics
from leadflow.evaluation.outcomes import EvaluationError, check_window, outcomes, scored
from leadflow.scoring.query import load_properties, property_names
from leadflow.scoring.scores import read_contacts
from leadflow.workspace import Workspace


@dataclass
class ScoreResult:
    """One score's metrics over the cohort, and what the charts draw."""

    auc: float
    top_decile_lift: float
    bands: list[dict]
    roc: tuple[np.ndarray, np.ndarray] = field(repr=False)

    def as_json(self) -> dict:
        return {
            "auc": _number(self.auc),
            "top_decile_lift": _number(self.top_decile_lift),
            "bands": self.bands,
        }


@dataclass
class Evaluation:
    as_of: date
    outcome: str
    horizon_days: int
    contacts: int
    converted: int
    base_rate: float
    scores: dict[str, ScoreResult]
    compare: dict[str, ScoreResult] | None
    compare_config: Path | None
    suggestions: dict | None = None  # score -> leadflow.evaluation.suggest.Suggestion

    def as_json(self) -> dict:
        result = {
            "as_of": self.as_of.isoformat(),
            "outcome": self.outcome,
            "horizon_days": self.horizon_days,
            "contacts": self.contacts,
            "converted": self.converted,
            "base_rate": self.base_rate,
            "scores": {name: item.as_json() for name, item in self.scores.items()},
            "compare": None
            if self.compare is None
            else {name: item.as_json() for name, item in self.compare.items()},
        }
        if self.suggestions is not None:
            result["suggest"] = {name: item.as_json() for name, item in self.suggestions.items()}
        return result


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def score_names(config: LeadflowConfig, score: str | None, where: str) -> list[str]:
    if score is None:
        return list(config.scores)
    if score not in config.scores:
        raise EvaluationError(
            f"unknown score {score!r} in {where}: one of {', '.join(config.scores)}"
        )
    return [score]


def score_results(
    config: LeadflowConfig, table: pa.Table, names: list[str], converted: np.ndarray
) -> dict[str, ScoreResult]:
    results = {}
    for name in names:
        values = table.column(f"score:{name}").to_numpy()
        labels = [band.label for band in config.bands.get(name, [])]
        results[name] = ScoreResult(
            metrics.roc_auc(values, converted),
            metrics.top_decile_lift(values, converted),
            metrics.band_rates(table.column(f"band_{name}"), converted, labels) if labels else [],
            metrics.roc_curve(values, converted),
        )
    return results


def evaluate(
    workspace: Workspace,
    as_of: date,
    outcome: str,
    horizon_days: int,
    score: str | None = None,
    other: Path | None = None,
    suggest: bool = False,
) -> Evaluation:
    """The metrics of each score (or `score`) as of `as_of` against reaching `outcome` within
    `horizon_days`; with `other` (a configuration file), the same for its rules on the same
    contacts and outcomes; with `suggest`, the logistic regression's points. Writes nothing."""
    other_config = load_config(other) if other is not None else None
    names = score_names(workspace.config, score, "the configuration")
    compare_names = score_names(other_config, score, str(other)) if other_config is not None else []
    until = check_window(workspace, as_of, horizon_days)
    cohort = outcomes(workspace, outcome, as_of, until)
    contacts = read_contacts(workspace)
    configs = [workspace.config] if other_config is None else [workspace.config, other_config]
    properties = load_properties(
        workspace.engine, set().union(*(property_names(config) for config in configs)), None
    )
    with workspace.lake.connection() as connection:
        connection.register("cohort", cohort)
        current = _in_cohort(
            connection,
            scored(
                workspace, workspace.config, connection, as_of, contacts, names, properties, suggest
            ),
        )
        compared = None
        if other_config is not None:
            compared = _in_cohort(
                connection,
                scored(
                    workspace, other_config, connection, as_of, contacts, compare_names, properties
                ),
            )
    converted = current.column("converted").to_numpy().astype(bool)
    if len(converted) == 0:
        raise EvaluationError(
            f"no contact scored as of {as_of} is before stage {outcome}: nothing to evaluate"
        )
    hits = int(converted.sum())
    if hits == 0 or hits == len(converted):
        what = "none" if hits == 0 else "every one"
        raise EvaluationError(
            f"{what} of the {len(converted)} contacts before stage {outcome} on {as_of} "
            f"reached it within {horizon_days} days: nothing to rank; try a longer "
            "--horizon-days or another --outcome"
        )
    suggestions = None
    if suggest:
        from leadflow.evaluation.suggest import suggest_points

        suggestions = {
            name: suggest_points(workspace.config, name, current, converted) for name in names
        }
    return Evaluation(
        as_of,
        outcome,
        horizon_days,
        len(converted),
        hits,
        hits / len(converted),
        score_results(workspace.config, current, names, converted),
        None
        if compared is None
        else score_results(other_config, compared, compare_names, converted),
        other,
        suggestions,
    )


def _in_cohort(connection, table: pa.Table) -> pa.Table:
    """The scored contacts of the cohort, with their outcome, in contact order (the same rows
    for every rule set: the cohort does not depend on the rules)."""
    connection.register("cohort_scored", table)
    try:
        return connection.sql(
            """SELECT s.*, o.converted FROM cohort_scored s JOIN cohort o USING (contact_id)
               ORDER BY contact_id"""
        ).to_arrow_table()
    finally:
        connection.unregister("cohort_scored")
