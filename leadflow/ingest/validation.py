"""Great Expectations validation of one batch, row by row.

The suites are plain GX JSON files in `expectations/` (one per kind of file). Each expectation
carries in its `meta` the input column it guards and a human reason; a row that fails any
expectation is quarantined with those reasons. Columns the suites check that are not in the
input (`occurred_at_ts`, `bounce_type`, ...) are derived from it during normalisation.
"""

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network calls from a data pipeline

import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.execution_engine import pandas_execution_engine  # noqa: E402

ROW_COLUMN = "_row"

# GX fingerprints every pandas batch by hashing all of it (twice per validation) unless it is
# over this size; leadflow never uses the fingerprint, and it was a third of ingest time.
pandas_execution_engine.HASH_THRESHOLD = 0


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

    def merge(self, other: "ValidationResult") -> "ValidationResult":
        """The result of validating this chunk and `other` together (same suite)."""
        outcomes = [
            ExpectationOutcome(a.expectation, a.column, a.reason, a.failed_rows + b.failed_rows)
            for a, b in zip(self.outcomes, other.outcomes, strict=True)
        ]
        return ValidationResult(
            self.suite,
            self.rows + other.rows,
            outcomes,
            {**self.reasons_by_row, **other.reasons_by_row},
        )


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


def validate_batches(
    batches: pa.RecordBatchReader,
    suite: gx.ExpectationSuite,
    parameters: dict[str, object],
    categorical: tuple[str, ...] = (),
    chunk_rows: int = 500_000,
) -> ValidationResult:
    """Validate a large input chunk by chunk (bounded memory) and merge the results.

    Whole-file facts (copies of a key) must already be columns: each chunk is checked alone.
    Low-cardinality text columns become pandas categoricals, which GX hashes and compares
    far faster than strings.
    """
    merged: ValidationResult | None = None
    for table in _chunks(batches, chunk_rows):
        for name in categorical:
            if name in table.column_names:
                index = table.column_names.index(name)
                table = table.set_column(index, name, pc.dictionary_encode(table.column(name)))
        # Arrow-backed strings: GX's regex runs in Arrow instead of a Python loop.
        frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
        result = validate_frame(frame, suite, parameters)
        merged = result if merged is None else merged.merge(result)
    if merged is None:
        raise ValueError("nothing to validate")
    return merged


def _chunks(batches: pa.RecordBatchReader, chunk_rows: int) -> Iterator[pa.Table]:
    """Regroup a reader's (small) record batches into tables of about `chunk_rows` rows: each
    GX validation has a fixed cost of a few hundred milliseconds."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= chunk_rows:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


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
