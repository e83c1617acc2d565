"""The run's charts as self-contained SVG text: data in, SVG out.

matplotlib is imported inside the functions (the CLI must start fast and only the commands
that draw import this module), drawn on a bare `Figure` with the Agg canvas (never pyplot, so
no figure is registered anywhere and none outlives its call), under `rc_context` (no rcParams
change leaks out). Text stays text (`svg.fonttype: none`) and user text (stage, score and band
names) is drawn as given: no mathtext, XML-escaped by matplotlib. Each bar and line carries a
`gid` (its SVG `id`) so that tests and pages can find it.
"""

from __future__ import annotations

import base64
import io
import re
import textwrap
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from leadflow.domain import OTHER_STAGE, STAGES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

STAGE_ORDER = (*STAGES, OTHER_STAGE)
WIDTH_IN = 7.3  # SVG sizes are in points (72 per inch): 7.3 in is 526 pt, 700 CSS px
TIER_WINDOW_DAYS = 90
TIER_LEVELS = ((75, "#b7950b"), (90, "#d35400"), (100, "#c0392b"))  # % of the tier, colour
BAR_COLOUR = "#2e6f9e"
OTHER_COLOUR = "#9aa5b1"  # `other` stands outside the forward order of stages
NO_BAND = "no band"
BAND_COLOURS = {"hot": "#c0392b", "warm": "#e59a1c", "cold": "#2e86c1"}
PALETTE = ("#27ae60", "#8e44ad", "#16a085", "#7f8c8d", "#d35400", "#2c3e50", "#f1c40f")
NO_BAND_COLOUR = "#bdc3c7"
TITLE_CHARS = 66  # a longer title is wrapped
BUCKET_LABELS_UP_TO = 20  # buckets whose counts are written above the bars; more: none

_ALT_PLAIN = str.maketrans(  # plain alt text: both UIs show it alike (V1 escapes &"' twice)
    {"[": "(", "]": ")", "<": "‹", ">": "›", "\\": "/", "&": "and", '"': "”", "'": "’"}
)
_RC = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths
    "svg.hashsalt": "leadflow",  # ids (clip paths, markers) the same from run to run
    "text.parse_math": False,  # a `$` in a name is a dollar sign
    "path.simplify": False,  # every point drawn (a 90-day line is small)
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 10,
    "figure.titlesize": 12,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.labelcolor": "#333333",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "legend.frameon": False,
    "legend.fontsize": 9,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


def funnel_chart(funnel: dict[str, int]) -> str:
    """Contacts per lifecycle stage: one horizontal bar per stage with its count beside it.

    The stages of the forward order come first, in that order, then `other`, then any other
    key in the order given. Bars have the gids `funnel-bar-<i>-<stage>`, counts
    `funnel-count-<i>`."""
    stages = [stage for stage in STAGE_ORDER if stage in funnel]
    stages += [stage for stage in funnel if stage not in STAGE_ORDER]
    title = "Contacts per lifecycle stage"
    if not stages:
        return _render(title, 1.8, _no_data)
    counts = [int(funnel[stage]) for stage in stages]

    def draw(ax: Axes) -> None:
        rows = list(range(len(stages)))
        colours = [OTHER_COLOUR if stage == OTHER_STAGE else BAR_COLOUR for stage in stages]
        bars = ax.barh(rows, counts, height=0.68, color=colours)
        labels = ax.bar_label(bars, labels=[f"{count:,}" for count in counts], padding=4)
        for i, (bar, label, stage) in enumerate(zip(bars, labels, stages, strict=True)):
            bar.set_gid(f"funnel-bar-{i}-{_slug(stage)}")
            label.set_gid(f"funnel-count-{i}")
        ax.set_yticks(rows, labels=stages)
        ax.tick_params(axis="y", length=0)
        ax.invert_yaxis()  # the first stage on top
        ax.set_xlim(0, max(max(counts), 1) * 1.16)  # room for the count labels
        _count_axis(ax.xaxis)
        ax.set_xlabel("contacts")
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)

    return _render(f"{title} ({sum(counts):,} in all)", 0.4 * len(stages) + 1.2, draw)


def score_distribution_chart(score: str, buckets: list[dict]) -> str:
    """A histogram of one score: one bar per bucket `{low, high, band, contacts}` (low to high),
    coloured by band, with a legend of the bands (as given; `None` is "no band") and their
    contacts. Bars have the gids `score-bar-<score>-<i>`; counts, written above the bars when
    there are at most BUCKET_LABELS_UP_TO buckets, `score-count-<score>-<i>`."""
    rows = sorted(buckets, key=lambda bucket: (float(bucket["low"]), float(bucket["high"])))
    name = _slug(score)
    if not rows:
        return _render(f"Score distribution: {score}", 1.8, _no_data)
    lows = [float(row["low"]) for row in rows]
    widths = [max(float(row["high"]) - float(row["low"]), 1e-9) for row in rows]
    counts = [int(row["contacts"]) for row in rows]
    labels = [NO_BAND if row.get("band") is None else str(row["band"]) for row in rows]
    bands: list[str] = []  # highest bucket's band first, as bands are configured
    for label in reversed(labels):
        if label not in bands:
            bands.append(label)
    colours = _band_colours(bands)

    def draw(ax: Axes) -> None:
        from matplotlib.patches import Patch

        bars = ax.bar(
            lows,
            counts,
            width=widths,
            align="edge",
            color=[colours[label] for label in labels],
            edgecolor="white",
            linewidth=0.8,
        )
        for i, bar in enumerate(bars):
            bar.set_gid(f"score-bar-{name}-{i}")
        if len(rows) <= BUCKET_LABELS_UP_TO:
            small = len(rows) > 10
            for i, (low, width, count) in enumerate(zip(lows, widths, counts, strict=True)):
                text = ax.annotate(
                    f"{count:,}",
                    (low + width / 2, count),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7.5 if small else 9,
                    rotation=90 if small else 0,
                )
                text.set_gid(f"score-count-{name}-{i}")
        totals = {band: 0 for band in bands}
        for label, count in zip(labels, counts, strict=True):
            totals[label] += count
        handles = [Patch(color=colours[band], label=f"{band} ({totals[band]:,})") for band in bands]
        legend = ax.legend(handles=handles, title="band", loc="best")
        legend.set_gid(f"score-legend-{name}")
        ax.set_xlim(lows[0], lows[-1] + widths[-1])
        ax.set_ylim(0, max(max(counts), 1) * (1.3 if len(rows) > 10 else 1.15))
        if len(rows) <= 12:
            edges = [*lows, lows[-1] + widths[-1]]
            ax.set_xticks(edges, labels=[_number(edge) for edge in edges])
        _count_axis(ax.yaxis)
        ax.set_xlabel(f"{score} score")
        ax.set_ylabel("contacts")
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)

    return _render(f"Score distribution: {score} ({sum(counts):,} contacts)", 3.6, draw)


def tier_use_chart(points: list[tuple[date, int]], tier: int) -> str:
    """Marketing contacts per day over the TIER_WINDOW_DAYS days up to the last point, as a
    line (gid `tier-use-line`), with dashed lines at 75, 90 and 100 % of `tier`, labelled
    (gids `tier-level-<pct>`, `tier-label-<pct>`); none when `tier` is 0."""
    title = f"Marketing contacts, last {TIER_WINDOW_DAYS} days"
    if not points:
        return _render(title, 1.8, _no_data)
    ordered = sorted(points)
    last_day = ordered[-1][0]
    first_day = last_day - timedelta(days=TIER_WINDOW_DAYS - 1)
    shown = [(day, int(count)) for day, count in ordered if day >= first_day]
    days = [day for day, _ in shown]
    values = [count for _, count in shown]
    last = values[-1]

    def draw(ax: Axes) -> None:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        (line,) = ax.plot(
            days,
            values,
            color=BAR_COLOUR,
            linewidth=2,
            marker="o" if len(shown) <= 31 else None,
            markersize=4,
        )
        line.set_gid("tier-use-line")
        ax.annotate(
            f"{last:,}",
            (days[-1], last),
            xytext=(-6, 6),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontweight="bold",
            color=BAR_COLOUR,
        ).set_gid("tier-use-last")
        top = max(values)
        if tier > 0:
            for pct, colour in TIER_LEVELS:
                level = tier * pct / 100
                ax.axhline(level, color=colour, linestyle="--", linewidth=1.2).set_gid(
                    f"tier-level-{pct}"
                )
                label = f"{pct}% of tier: {level:,.2f}".rstrip("0").rstrip(".")
                ax.text(
                    0.01,
                    level,
                    label,
                    transform=ax.get_yaxis_transform(),
                    ha="left",
                    va="bottom",
                    fontsize=8.5,
                    color=colour,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
                ).set_gid(f"tier-label-{pct}")
            top = max(top, tier)
        ax.set_ylim(0, max(top, 1) * 1.12)
        ax.set_xlim(first_day, last_day + timedelta(days=1))
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        _count_axis(ax.yaxis)
        ax.set_ylabel("marketing contacts")
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)

    if tier > 0:
        title += f": {last:,} of {tier:,} ({last / tier:.1%}) on {last_day.isoformat()}"
    else:
        title += f": {last:,} on {last_day.isoformat()} (tier is 0)"
    return _render(title, 3.6, draw)


def chart_markdown(svg: str, alt: str) -> str:
    """Markdown that shows the chart in a Prefect artifact: a markdown image whose source is the
    SVG as a base64 data URI.

    Tried in a real browser on the artifact page of both Prefect 3.8.8 UIs (V1 and the default
    V2): this, a PNG data URI and an `<img>` tag with either render; raw `<svg>` in the markdown
    does not (V1's sanitiser keeps the elements but strips their styles: a black box; V2 drops
    the elements and shows their text). The alt text is kept plain, as both UIs show it alike:
    brackets become parentheses, `<` `>` `\\` `&` `"` `'` become `‹` `›` `/` `and` `”` `’`."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f"![{_markdown_alt(alt)}](data:image/svg+xml;base64,{data})"


def _render(title: str, height_in: float, draw: Callable[[Axes], None]) -> str:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
        FigureCanvasAgg(figure)
        try:
            figure.suptitle(_wrap(title), x=0.01, ha="left")
            draw(figure.add_subplot())
            out = io.StringIO()
            figure.savefig(
                out,
                format="svg",
                metadata={
                    "Title": title,
                    "Date": None,
                    "Creator": None,
                    "Format": None,
                    "Type": None,
                },
            )
            return out.getvalue()
        finally:
            figure.clear()


def _wrap(title: str) -> str:
    """Lines that fit the width in the title's size (12 pt bold: ~7.5 pt a character)."""
    return "\n".join(textwrap.wrap(title, width=TITLE_CHARS)) or " "


def _no_data(ax: Axes) -> None:
    ax.set_axis_off()
    ax.text(
        0.5, 0.4, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=14
    ).set_gid("no-data")


def _band_colours(bands: Sequence[str]) -> dict[str, str]:
    colours: dict[str, str] = {}
    spare = iter(PALETTE * (len(bands) // len(PALETTE) + 1))
    for band in bands:
        if band == NO_BAND:
            colours[band] = NO_BAND_COLOUR
        else:
            colours[band] = BAND_COLOURS.get(band.lower()) or next(spare)
    return colours


def _count_axis(axis) -> None:
    """Whole numbers of contacts, with thousands separators."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))
    axis.set_major_formatter(FuncFormatter(lambda value, _: _number(value)))


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "x"


def _markdown_alt(alt: str) -> str:
    return " ".join(alt.split()).translate(_ALT_PLAIN)
