"""Company scores as of a day (README: Company scores): each company's aggregate of one contact
score over its contacts that day, set-based in DuckDB.

They are layers of the scoring query (`leadflow.scoring.query.compile_model`), after the
contact scores and before the lifecycle and marketing conditions that may read them: window
functions over the rows of every contact (one partition per day and company), so that the day
run, over the aggregate ledger, and a full recompute give the same values. A contact counts for
its company on a day when it exists that day (created by its end, or seen through an event), as
the day's steps count it. Aggregates read the contact scores rounded as they are stored (4
decimals) and add them as decimals: exact, whatever the order of the rows.
"""

from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa

from leadflow.companies.membership import (
    COMPANY_DOMAIN_PROPERTY,
    EMAIL_DOMAIN,
    company_sql,
    email_domain_sql,
    normalised_domain_sql,
)
from leadflow.config import Band, CompanyScore, LeadflowConfig, MeanOfTop
from leadflow.errors import UserError
from leadflow.scoring.conditions import Features, company_score_column, quote, score_column
from leadflow.sql import identifier
from leadflow.workspace import Workspace

DECIMALS = 4
MEMBER = '"company:member"'
TOP_CONTRIBUTORS = 10  # contacts listed by `explain --company` (more for a larger mean_of_top)


class UnknownCompany(UserError, LookupError):
    """No contact belongs to this company on the day."""


def company_band_column(name: str) -> str:
    return identifier(f"company_band:{name}")


def _stored_value(score: str) -> str:
    """A contact score as stored (rounded to 4 decimals), as an exact decimal."""
    return f"CAST(round({score_column(score)}, {DECIMALS}) AS DECIMAL(18, {DECIMALS}))"


def _aggregate_sql(company_score: CompanyScore) -> str:
    """The window aggregate over the company's member rows (NULL without members). The N
    highest are `max(value, N)`, a list kept by a heap: no sort of the rows by score (a
    `row_number()` rank cost four times as much on a million wide rows)."""
    window = "OVER (PARTITION BY day, company)"
    value = f"CASE WHEN {MEMBER} THEN {_stored_value(company_score.from_)} END"
    match company_score.aggregate:
        case MeanOfTop(mean_of_top=top):
            highest = f"max({value}, {int(top)}) {window}"
            return f"list_sum({highest}) / len({highest})"
        case aggregate:
            return f"{aggregate}({value}) {window}"


def bands_case_sql(bands: list[Band] | None, column: str) -> str:
    """The first band whose `gte` the value meets (as contact bands are read), else NULL; NULL
    for no value (a contact without a company)."""
    if not bands:
        return "NULL::VARCHAR"
    cases = [f"WHEN {column} IS NULL THEN NULL"] + [
        f"WHEN {column} >= {quote(band.gte)} THEN {quote(band.label)}"
        if band.gte is not None
        else f"ELSE {quote(band.label)}"
        for band in bands
    ]
    return "CASE " + " ".join(cases) + " END"


def company_layers(config: LeadflowConfig, features: Features) -> list[str]:
    """The select lists of the company layers of the scoring query: the email's domain; the
    row's company and membership; the company scores; their bands. The rows need `email`,
    `day`, `events_seen`, `as_of_end`, `created_at` and the contact scores."""
    features.properties.add(COMPANY_DOMAIN_PROPERTY)
    companies = config.companies
    scores = ", ".join(
        f"CASE WHEN company IS NOT NULL THEN CAST(round({_aggregate_sql(item)}, {DECIMALS}) "
        f"AS DOUBLE) END AS {company_score_column(name)}"
        for name, item in companies.scores.items()
    )
    bands = ", ".join(
        f"{bands_case_sql(companies.bands.get(name), company_score_column(name))} "
        f"AS {company_band_column(name)}"
        for name in companies.scores
    )
    return [
        f"{email_domain_sql()} AS {EMAIL_DOMAIN}",
        f"{company_sql()} AS company, (COALESCE(created_at < as_of_end, false) "
        f"OR COALESCE(events_seen, 0) > 0) AS {MEMBER}",
        scores,
        bands,
    ]


def day_columns(config: LeadflowConfig) -> list[str]:
    """The company columns `prepare_day` keeps in `day_scored`."""
    names = config.companies.scores if config.companies else {}
    return ["company"] + [
        column
        for name in names
        for column in (company_score_column(name), company_band_column(name))
    ]


def _require_companies(workspace: Workspace) -> LeadflowConfig:
    if workspace.config.companies is None:
        raise UserError(
            "the configuration has no companies section: add companies.scores to score "
            "companies (README: Company scores)"
        )
    return workspace.config


def _prepare(workspace: Workspace, connection: duckdb.DuckDBPyConnection, day: date) -> None:
    from leadflow.scoring.scores import prepare_day, read_contacts

    prepare_day(workspace, connection, day, read_contacts(workspace), companies=True)


def companies_as_of(workspace: Workspace, day: date) -> pa.Table:
    """`export companies`: one row per company with contacts on `day`: `domain`, `contacts`,
    each company score and `band_<score>` per banded one."""
    config = _require_companies(workspace)
    columns = []
    for name in config.companies.scores:
        columns.append(f"any_value({company_score_column(name)}) AS {identifier(name)}")
        if name in config.companies.bands:
            columns.append(
                f"any_value({company_band_column(name)}) AS {identifier('band_' + name)}"
            )
    with workspace.lake.connection() as connection:
        _prepare(workspace, connection, day)
        return connection.sql(
            f"""SELECT company AS domain, count(*) AS contacts, {", ".join(columns)}
                FROM day_scored WHERE company IS NOT NULL
                GROUP BY company ORDER BY company"""
        ).to_arrow_table()


@dataclass(frozen=True)
class Contributor:
    email: str
    score: float  # the contact score the company score reads, as stored
    counted: bool  # whether it enters the aggregate (max: the highest; mean_of_top: the top N)


@dataclass(frozen=True)
class CompanyExplanation:
    domain: str
    day: date
    score: str
    value: float
    band: str | None
    source: str  # the contact score it is built from
    aggregate: str  # sum | max | mean_of_top: N
    contacts: int
    contributors: list[Contributor]  # the highest contact scores first
    others: int  # contacts not listed
    others_total: float  # the sum of their scores


def _describe(aggregate: str | MeanOfTop) -> str:
    return (
        f"mean_of_top: {aggregate.mean_of_top}" if isinstance(aggregate, MeanOfTop) else aggregate
    )


def explain_company(workspace: Workspace, domain: str, day: date) -> list[CompanyExplanation]:
    """Each company score of one company as of `day`: its value and band, how it aggregates,
    and its contacts with the highest scores (which of them the aggregate counts)."""
    config = _require_companies(workspace)
    with workspace.lake.connection() as connection:
        [(company,)] = connection.execute(
            f"SELECT {normalised_domain_sql('?')}", [domain]
        ).fetchall()
        _prepare(workspace, connection, day)
        sources = sorted({item.from_ for item in config.companies.scores.values()})
        values = ", ".join(
            f"round({score_column(source)}, {DECIMALS}) AS {identifier(source)}"
            for source in sources
        )
        companies = ", ".join(
            f"{column} AS {identifier(column.strip(chr(34)))}" for column in day_columns(config)[1:]
        )
        members = connection.sql(
            f"SELECT email, {values}, {companies} FROM day_scored WHERE company = $company",
            params={"company": company},
        ).to_arrow_table()
    if members.num_rows == 0:
        raise UnknownCompany(f"no contact belongs to the company {domain!r} on {day}")
    rows = members.to_pylist()
    explanations = []
    for name, item in config.companies.scores.items():
        ordered = sorted(rows, key=lambda row: (-row[item.from_], row["email"]))
        top = item.aggregate.mean_of_top if isinstance(item.aggregate, MeanOfTop) else None
        highest = ordered[0][item.from_]
        listed = ordered[: max(TOP_CONTRIBUTORS, top or 0)]
        contributors = [
            Contributor(
                row["email"],
                row[item.from_],
                item.aggregate == "sum"
                or (item.aggregate == "max" and row[item.from_] == highest)
                or (top is not None and rank < top),
            )
            for rank, row in enumerate(listed)
        ]
        first = rows[0]
        explanations.append(
            CompanyExplanation(
                company,
                day,
                name,
                first[f"company_score:{name}"],
                first[f"company_band:{name}"],
                item.from_,
                _describe(item.aggregate),
                len(rows),
                contributors,
                len(ordered) - len(listed),
                round(sum(row[item.from_] for row in ordered[len(listed) :]), DECIMALS),
            )
        )
    return explanations
