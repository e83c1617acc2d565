"""`evaluate`: how well each score predicts a lifecycle stage, and what a rule change would do."""

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from leadflow.cli import app
from leadflow.cli.common import console, handled, workspace


def _share(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.1%}"


def _decimal(value: float | None, digits: int = 3) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


@app.command()
@handled
def evaluate(
    as_of: Annotated[
        datetime,
        typer.Option(formats=["%Y-%m-%d"], help="The day scored, YYYY-MM-DD (a day run)."),
    ],
    outcome: Annotated[
        str, typer.Option(help="The lifecycle stage to predict, e.g. salesqualifiedlead.")
    ],
    horizon_days: Annotated[
        int, typer.Option(help="A conversion counts if the stage is reached within N days.")
    ],
    score: Annotated[str | None, typer.Option(help="Only this score (default: all).")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Another leadflow.yaml: its scores side by side, on the same contacts."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Also write an HTML page with the ROC curves and bands.")
    ] = None,
    suggest: Annotated[
        bool,
        typer.Option(
            "--suggest",
            help="Fit a logistic regression on the rules' contributions: the points it would "
            "give each rule, and its AUC on a held-out half (changes no configuration).",
        ),
    ] = False,
) -> None:
    """Does a score predict anything? The contacts scored as of --as-of that had not reached
    --outcome, and whether each reached it within --horizon-days: per score the ROC AUC, the
    lift of the top decile and the conversion rate per band, beside the base rate. Writes
    nothing to the state store."""
    from leadflow.evaluation.evaluate import evaluate as run_evaluation

    result = run_evaluation(
        workspace(), as_of.date(), outcome, horizon_days, score, config, suggest
    )
    if out is not None:
        from leadflow.evaluation.report import evaluation_page

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(evaluation_page(result), encoding="utf-8")
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
        return
    _print(result)
    if out is not None:
        console.print(f"report written to {out}")


def _print(result) -> None:
    console.print(
        f"{result.contacts:,} contacts scored as of {result.as_of} before stage "
        f"{result.outcome}; {result.converted:,} reached it within {result.horizon_days} "
        f"days (base rate {_share(result.base_rate)})",
        markup=False,
        highlight=False,
    )
    table = Table(title="how well each score ranks the conversions")
    for column in ("score", "rules", "AUC", "top-decile lift"):
        table.add_column(column, justify="left" if column in ("score", "rules") else "right")
    sets = [("current", result.scores)]
    if result.compare is not None:
        sets.append((str(result.compare_config), result.compare))
    for label, scores in sets:
        for name, item in scores.items():
            table.add_row(name, label, _decimal(item.auc), _decimal(item.top_decile_lift, 2))
    console.print(table)
    for label, scores in sets:
        for name, item in scores.items():
            if not item.bands:
                continue
            bands = Table(title=f"{name} ({label}): conversion rate per band")
            for column in ("band", "contacts", "converted", "rate"):
                bands.add_column(column, justify="left" if column == "band" else "right")
            for row in item.bands:
                bands.add_row(
                    row["label"] or "(no band)",
                    f"{row['contacts']:,}",
                    f"{row['converted']:,}",
                    _share(row["rate"]),
                )
            console.print(bands)
    for suggestion in (result.suggestions or {}).values():
        rules = Table(title=f"{suggestion.score}: points suggested by a logistic regression")
        for column in ("rule", "points", "suggested"):
            rules.add_column(column, justify="left" if column == "rule" else "right")
        for rule in suggestion.rules:
            rules.add_row(
                rule.rule,
                f"{rule.points:g}",
                "(never contributed)" if rule.suggested is None else f"{rule.suggested:g}",
            )
        console.print(rules)
        console.print(
            f"held-out half ({suggestion.held_out_contacts:,} contacts): AUC "
            f"{_decimal(suggestion.held_out_auc_suggested)} suggested, "
            f"{_decimal(suggestion.held_out_auc_current)} current; leadflow.yaml is unchanged",
            markup=False,
            highlight=False,
        )
