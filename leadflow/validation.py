"""Great Expectations validation of one batch, row by row.

The suites are plain GX JSON files in `expectations/` (one per kind of file). Each expectation
carries in its `meta` the input column it guards and a human reason; a row that fails any
expectation is quarantined with those reasons. Columns the suites check that are not in the
input (`occurred_at_ts`, `bounce_type`, ...) are derived from it during normalisation.
"""

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network calls from a data pipeline

import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

ROW_COLUMN = "_row"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result over the batch, for the data-quality report."""

    expectation: str
    column: str
    reason: str
    failed_rows: int


@dataclass
class ValidationResult:
    suite: str
    rows: int
    outcomes: list[ExpectationOutcome]
    reasons_by_row: dict[int, list[str]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return not self.reasons_by_row


def load_suite(expectations_dir: Path, name: str) -> gx.ExpectationSuite:
    path = expectations_dir / f"{name}.json"
    try:
        return gx.ExpectationSuite(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: expectation suite not found") from None


@cache
def _batch_definition(suite_name: str):
    """One ephemeral GX context per process (each new one leaves a temporary docs folder)."""
    context = _context()
    return (
        context.data_sources.get("leadflow")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("batch")
    )


@cache
def _context():
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("leadflow")
    return context


def validate_frame(
    frame: pd.DataFrame, suite: gx.ExpectationSuite, parameters: dict[str, object]
) -> ValidationResult:
    """Run `suite` on `frame` (which has a `_row` column) and collect each failing row's reasons."""
    batch = _batch_definition(suite.name).get_batch(batch_parameters={"dataframe": frame})
    report = batch.validate(
        suite,
        expectation_parameters=parameters,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_COLUMN]},
    )
    reasons_by_row: dict[int, list[str]] = defaultdict(list)
    outcomes = []
    for result in report.results:
        config = result.expectation_config
        if result.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"expectation {config.type} of suite {suite.name} failed to run: "
                f"{result.exception_info.get('exception_message')}"
            )
        column = config.meta.get("column") or config.kwargs.get("column", "")
        reason = f"{column}: {config.meta.get('reason', config.type)} [{config.type}]"
        failed = [int(item[ROW_COLUMN]) for item in result.result.get("unexpected_index_list", [])]
        for row in failed:
            reasons_by_row[row].append(reason)
        outcomes.append(ExpectationOutcome(config.type, column, reason, len(set(failed))))
    return ValidationResult(suite.name, len(frame), outcomes, dict(reasons_by_row))
