"""Reading scores and the tier: `explain`, `history`, `tier`, and the rescore impact."""

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from leadflow.cli import app
from leadflow.cli.common import Day, console, errors, fail, handled, workspace
from leadflow.cli.output import print_tier

AsJson = Annotated[bool, typer.Option("--json", help="JSON instead of tables.")]


@app.command()
@handled
def explain(
    email: Annotated[str | None, typer.Argument(help="The contact's email.")] = None,
    company: Annotated[
        str | None, typer.Option(help="A company's domain, instead of a contact.")
    ] = None,
    as_of: Day = None,
    as_json: AsJson = False,
) -> None:
    """Why a contact has its scores as of --as-of (default yesterday): each rule's
    contribution (with the count, newest and oldest of its events), each group's subtotal and
    its limit, summing to the total before the score's limit, then the score and its band; and
    the contact's cell of each grid. With --company DOMAIN: each company score, its aggregate,
    and the company's contacts with the highest scores."""
    from leadflow.scoring.scores import explain_contact, yesterday

    if (email is None) == (company is None):
        fail("give a contact's EMAIL or --company DOMAIN (one of them)")
    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    if company is not None:
        print_company_explanation(space, company, day, as_json)
        return
    explained = explain_contact(space, email, day)
    if as_json:
        items = [asdict(item) for item in explained.scores + explained.grids]
        print(json.dumps(items, default=str, indent=2))
        return
    for item in explained.scores:
        table = Table(
            title=f"{item.score} of {item.email} as of {item.day}: {item.value:g}"
            + (f" ({item.band})" if item.band else "")
        )
        grouped = bool(item.groups)
        columns = ("rule", "kind", "points", "contrib.", "events", "newest", "oldest")
        for column in (*columns[:2], *(("group",) if grouped else ()), *columns[2:]):
            table.add_column(column, overflow="fold")
        left_out = 0
        for rule in item.rules:
            events = "" if rule.events is None else str(rule.events)
            if rule.machine_left_out:
                events += f" (+{rule.machine_left_out} machine)"
                left_out += rule.machine_left_out
            points = f"{rule.points:g}" if rule.points is not None else rule.detail or ""
            table.add_row(
                rule.rule,
                rule.kind,
                *((rule.group or "",) if grouped else ()),
                points,
                f"{rule.contribution:.4f}",
                events,
                str(rule.newest or "")[:16],
                str(rule.oldest or "")[:16],
            )
        for group in item.groups:
            bounds = f"{'' if group.min is None else f'{group.min:g}'}.."
            bounds += "" if group.max is None else f"{group.max:g}"
            capped = f"limit {bounds} -> {group.capped:.4f}" if group.limited else f"limit {bounds}"
            table.add_row(
                f"group {group.group}", "", group.group, capped, f"{group.subtotal:.4f}",
                "", "", "",
            )  # fmt: skip
        table.add_row(
            "total",
            "",
            *(("",) if grouped else ()),
            "",
            f"{item.total_before_limit:.4f}",
            "",
            "",
            "",
        )
        captions = []
        if item.reset_at is not None:
            captions.append(
                f"reset by the event of {str(item.reset_at)[:16]}: event rules count "
                "the events from then on"
            )
        if left_out:
            captions.append(
                f"{left_out} opens or clicks made by machines left out (a rule counts them "
                "with `machine: include`)"
            )
        table.caption = "; ".join(captions) or None
        console.print(table)
        console.print(f"limit {item.limit[0]:g}..{item.limit[1]:g} -> {item.value:g}")
    for grid in explained.grids:
        (row_score, row_value, row_band), (column_score, column_value, column_band) = (
            grid.rows,
            grid.columns,
        )
        console.print(
            f"grid {grid.grid}: {grid.label or '-'} (rows {row_score} {row_value:g} -> "
            f"{row_band or '-'}, columns {column_score} {column_value:g} -> {column_band or '-'})",
            markup=False,
        )


def print_company_explanation(space, domain: str, day, as_json: bool) -> None:
    """`explain --company`: per company score, the aggregate and its top contacts."""
    from leadflow.companies.scores import explain_company

    explanations = explain_company(space, domain, day)
    if as_json:
        print(json.dumps([asdict(item) for item in explanations], default=str, indent=2))
        return
    for item in explanations:
        table = Table(
            title=f"{item.score} of {item.domain} as of {item.day}: {item.value:g}"
            + (f" ({item.band})" if item.band else "")
        )
        for column in ("contact", item.source, "counted"):
            table.add_column(column, overflow="fold")
        for contributor in item.contributors:
            table.add_row(
                contributor.email, f"{contributor.score:g}", "yes" if contributor.counted else ""
            )
        if item.others:
            table.add_row(f"{item.others} more contacts", f"{item.others_total:g} in all", "")
        console.print(table)
        console.print(
            f"{item.aggregate} of {item.source} over {item.contacts} contacts -> {item.value:g}"
        )


@app.command()
@handled
def history(
    email: Annotated[str, typer.Argument(help="The contact's email.")],
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD.")],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day, YYYY-MM-DD.")],
    out: Annotated[Path | None, typer.Option(help="A CSV file instead of a table.")] = None,
) -> None:
    """A contact's score path from --start to --end: one row per day and score, band changes
    marked. Recomputed from the lake for those days (no row per contact per day is stored)."""
    from leadflow.exports import write_csv
    from leadflow.scoring.scores import history as score_history

    table = score_history(workspace(), email, start.date(), end.date())
    if out:
        write_csv(table, out)
        console.print(f"{table.num_rows} rows written to {out}")
        return
    view = Table(title=f"score history of {email}")
    for column in ("day", "score", "value", "band", "band change"):
        view.add_column(column)
    for row in table.to_pylist():
        change = (
            f"{row['previous_band']} -> {row['band']}"
            if row["previous_band"] is not None and row["previous_band"] != row["band"]
            else ""
        )
        view.add_row(
            str(row["day"]), row["score"], f"{row['value']:.4f}", row["band"] or "", change
        )
    console.print(view)


@app.command()
@handled
def tier(as_of: Day = None, as_json: AsJson = False) -> None:
    """Marketing contacts against the paid tier as of --as-of (default yesterday): use in %,
    queued and scheduled demotions, the count projected after the next renewal, the saving."""
    from leadflow.marketing import tier_report
    from leadflow.pipeline.plans import coverage_note
    from leadflow.scoring.scores import yesterday

    space = workspace()
    day = as_of.date() if as_of else yesterday(space)
    report = tier_report(space, day)
    note = coverage_note(space, day)
    if as_json:
        print(json.dumps({**report.as_json(), "covered": note is None, "note": note}, indent=2))
        return
    if note:
        errors.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    print_tier(report)


def print_rescore_impact(as_of: datetime | None) -> None:
    """`rescore --dry-run`: contacts per band now and after, the biggest movers."""
    from leadflow.scoring.scores import last_scored_day, rescore_impact, yesterday

    space = workspace()
    day = as_of.date() if as_of else (last_scored_day(space) or yesterday(space))
    impact = rescore_impact(space, day)
    table = Table(title=f"rescore impact as of {day} (model {space.config.model_version})")
    for column in ("score", "band", "now", "after rescore"):
        table.add_column(column, justify="left" if column in ("score", "band") else "right")
    for row in impact.bands:
        table.add_row(*[str(value) for value in row])
    console.print(table)
    movers = Table(title="biggest movers")
    for column in ("email", "score", "now", "after", "change"):
        movers.add_column(column, justify="left" if column in ("email", "score") else "right")
    for row in impact.movers:
        movers.add_row(row[0], row[1], f"{row[2]:.2f}", f"{row[3]:.2f}", f"{row[4]:+.2f}")
    console.print(movers)
    console.print(f"{impact.band_changes} contacts would change band; nothing was written")


@app.command()
@handled
def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """Write the latest run's report as one self-contained HTML page: the same tables and
    charts as its Prefect artifacts (summary, top movers, score bands and distributions, the
    lifecycle funnel, the tier use over 90 days, the demotion queue)."""
    from leadflow.report import content

    latest = content.latest(workspace())
    if latest is None:
        from leadflow.cli.common import fail

        fail("no run has been reported yet: `leadflow run` (or `leadflow demo`) first")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(content.page(latest), encoding="utf-8")
    console.print(f'the report of "{latest["title"]}" ({latest["created_at"]}) written to {out}')
