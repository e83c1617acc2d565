"""`evaluate --out`: one HTML page (leadflow.report.page) with the metrics table, the ROC
curves and the conversion rate per band, drawn as SVG the way leadflow.report.charts draws."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from leadflow.report.charts import BAR_COLOUR, PALETTE, _render, _slug

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from leadflow.evaluation.evaluate import Evaluation

ROC_POINTS = 400  # a curve of 100k thresholds is drawn through this many of its points


def thinned(fpr: np.ndarray, tpr: np.ndarray, points: int = ROC_POINTS) -> tuple:
    """At most `points` of a monotone curve, its ends kept (the shape does not change)."""
    if len(fpr) <= points:
        return fpr, tpr
    keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
    return fpr[keep], tpr[keep]


def roc_chart(curves: list[tuple[str, float, np.ndarray, np.ndarray]]) -> str:
    """ROC curves `(label, auc, fpr, tpr)` over the diagonal of a random ranking; lines have
    the gids `roc-<i>-<label>`."""

    def draw(ax: Axes) -> None:
        (random,) = ax.plot([0, 1], [0, 1], color="#9aa5b1", linestyle="--", linewidth=1)
        random.set_gid("roc-random")
        for i, (label, auc, fpr, tpr) in enumerate(curves):
            x, y = thinned(fpr, tpr)
            colour = BAR_COLOUR if i == 0 else PALETTE[(i - 1) % len(PALETTE)]
            (line,) = ax.plot(x, y, color=colour, linewidth=2, label=f"{label} (AUC {auc:.3f})")
            line.set_gid(f"roc-{i}-{_slug(label)}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("false positive rate (share of non-converting contacts above)")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right")
        ax.grid(color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)

    return _render("ROC curves", 4.6, draw)


def band_rate_chart(title: str, bands: list[dict], base_rate: float) -> str:
    """The conversion rate per band (bars, gids `band-rate-<i>-<band>`) with each band's
    contacts, and the base rate as a dashed line (gid `band-base-rate`)."""
    labels = [row["label"] or "no band" for row in bands]
    rates = [100 * (row["rate"] or 0.0) for row in bands]

    def draw(ax: Axes) -> None:
        bars = ax.bar(range(len(labels)), rates, color=BAR_COLOUR, width=0.6)
        texts = ax.bar_label(
            bars,
            labels=[
                f"{rate:.1f}% of {row['contacts']:,}"
                for rate, row in zip(rates, bands, strict=True)
            ],
            padding=3,
        )
        for i, (bar, text, label) in enumerate(zip(bars, texts, labels, strict=True)):
            bar.set_gid(f"band-rate-{i}-{_slug(label)}")
            text.set_gid(f"band-rate-label-{i}")
        ax.axhline(100 * base_rate, color="#c0392b", linestyle="--", linewidth=1.2).set_gid(
            "band-base-rate"
        )
        ax.set_xticks(range(len(labels)), labels=labels)
        ax.set_ylim(0, max([*rates, 100 * base_rate, 1e-9]) * 1.25)
        ax.set_ylabel("converted (%)")
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)

    return _render(f"{title}; dashed: base rate {base_rate:.1%}", 3.2, draw)


def evaluation_page(result: Evaluation) -> str:
    from leadflow.report.page import Section, Table, render_page

    sets = [("current", result.scores)]
    if result.compare is not None:
        sets.append((str(result.compare_config), result.compare))
    title = f"Evaluation as of {result.as_of}: {result.outcome} within {result.horizon_days} days"
    summary = (
        f"{result.contacts:,} contacts scored as of {result.as_of} had not reached "
        f"{result.outcome}; {result.converted:,} reached it within {result.horizon_days} days "
        f"(base rate {result.base_rate:.2%})."
    )
    rows = [
        [name, label, _text(item.auc, 3), _text(item.top_decile_lift, 2)]
        for label, scores in sets
        for name, item in scores.items()
    ]
    curves = [
        (f"{name} ({label})", item.auc, *item.roc)
        for label, scores in sets
        for name, item in scores.items()
    ]
    sections = [
        Section(
            title,
            paragraphs=[summary],
            tables=[Table(["score", "rules", "AUC", "top-decile lift"], rows)],
            charts=[roc_chart(curves)],
        )
    ]
    for label, scores in sets:
        for name, item in scores.items():
            if not item.bands:
                continue
            heading = f"{name} ({label}): conversion rate per band"
            sections.append(
                Section(
                    heading,
                    tables=[
                        Table(
                            ["band", "contacts", "converted", "rate"],
                            [
                                [
                                    row["label"] or "(no band)",
                                    f"{row['contacts']:,}",
                                    f"{row['converted']:,}",
                                    "" if row["rate"] is None else f"{row['rate']:.2%}",
                                ]
                                for row in item.bands
                            ],
                        )
                    ],
                    charts=[band_rate_chart(heading, item.bands, result.base_rate)],
                )
            )
    for suggestion in (result.suggestions or {}).values():
        sections.append(
            Section(
                f"{suggestion.score}: points suggested by a logistic regression",
                paragraphs=[
                    f"On the held-out half ({suggestion.held_out_contacts:,} contacts): AUC "
                    f"{suggestion.held_out_auc_suggested:.3f} with the suggested points, "
                    f"{suggestion.held_out_auc_current:.3f} with the current score. The "
                    "configuration is unchanged."
                ],
                tables=[
                    Table(
                        ["rule", "points", "suggested"],
                        [
                            [
                                rule.rule,
                                f"{rule.points:g}",
                                "(never contributed)"
                                if rule.suggested is None
                                else f"{rule.suggested:g}",
                            ]
                            for rule in suggestion.rules
                        ],
                    )
                ],
            )
        )
    return render_page(title, sections)


def _text(value: float, digits: int) -> str:
    return "" if value != value else f"{value:.{digits}f}"  # NaN: empty
