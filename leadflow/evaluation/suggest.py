"""`evaluate --suggest`: the points a logistic regression would give each rule of a score.

The features are the rules' contributions as of D (what each rule adds to the score, from
the same compiled query as the score), the target the outcome. Half the cohort (stratified by
outcome, a fixed seed) fits the model; the other half measures it, beside the current score on
the same half. The configuration is never written.
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from leadflow.config import LeadflowConfig
from leadflow.evaluation import metrics
from leadflow.evaluation.outcomes import EvaluationError
from leadflow.scoring.query import rule_column

SEED = 15
HELD_OUT = 0.5


@dataclass(frozen=True)
class RuleSuggestion:
    rule: str
    points: float  # as configured
    suggested: float | None  # None: the rule contributed nothing to anyone in the cohort


@dataclass(frozen=True)
class Suggestion:
    score: str
    rules: list[RuleSuggestion]
    held_out_contacts: int
    held_out_auc_current: float
    held_out_auc_suggested: float

    def as_json(self) -> dict:
        return {
            "rules": [
                {"id": rule.rule, "points": rule.points, "suggested": rule.suggested}
                for rule in self.rules
            ],
            "held_out_contacts": self.held_out_contacts,
            "held_out_auc_current": self.held_out_auc_current,
            "held_out_auc_suggested": self.held_out_auc_suggested,
        }


def suggest_points(
    config: LeadflowConfig, score: str, table: pa.Table, converted: np.ndarray
) -> Suggestion:
    """Fit on one half, measure on the other; the points on the current scale (README).

    A rule's weight is per point of contribution, on the log-odds scale; the rule's
    suggested points are its points times that weight, times one factor for the whole score
    chosen so that the suggested points' absolute values sum to the current ones'. The
    ranking (so the AUC) does not depend on the factor: it only keeps the score on the scale
    its limit and bands are written in."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    if min(int(converted.sum()), int((~converted).sum())) < 2:
        raise EvaluationError(
            "--suggest needs at least 2 contacts that converted and 2 that did not, to split "
            "them in halves"
        )
    rules = config.scores[score].rules
    features = np.column_stack(
        [
            table.column(rule_column(score, index).strip('"')).to_numpy(zero_copy_only=False)
            for index in range(len(rules))
        ]
    ).astype(float)
    current = table.column(f"score:{score}").to_numpy()
    rows = np.arange(len(converted))
    fit_rows, held_rows = train_test_split(
        rows, test_size=HELD_OUT, stratify=converted, random_state=SEED
    )
    # Standardised features (a rule of a few points weighs like one of a hundred), rules that
    # never contribute left out; the weights are brought back to one point of contribution.
    spread = features[fit_rows].std(axis=0)
    used = spread > 0
    centre = features[fit_rows].mean(axis=0)
    weights = np.zeros(len(rules))
    if used.any():
        scaled = (features[:, used] - centre[used]) / spread[used]
        model = LogisticRegression(max_iter=1000)
        model.fit(scaled[fit_rows], converted[fit_rows])
        weights[used] = model.coef_[0] / spread[used]
    points = np.array([rule.points for rule in rules], float)
    raw = points * weights
    factor = np.abs(points).sum() / np.abs(raw).sum() if np.abs(raw).sum() > 0 else 0.0
    suggested = raw * factor
    return Suggestion(
        score,
        [
            RuleSuggestion(rule.id, rule.points, round(float(value), 2) if fired else None)
            for rule, value, fired in zip(rules, suggested, used, strict=True)
        ],
        len(held_rows),
        metrics.roc_auc(current[held_rows], converted[held_rows]),
        metrics.roc_auc(features[held_rows] @ weights, converted[held_rows]),
    )
