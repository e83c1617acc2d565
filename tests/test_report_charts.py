"""The run's charts and the HTML report page, rendered for real (matplotlib, xml.etree)."""

import base64
import gc
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest

from leadflow.report.charts import (
    BAND_COLOURS,
    NO_BAND_COLOUR,
    chart_markdown,
    funnel_chart,
    score_distribution_chart,
    tier_use_chart,
)
from leadflow.report.page import Section, Table, inline_svg, render_page
from leadflow.settings import PROJECT_ROOT

SVG = "{http://www.w3.org/2000/svg}"
MAX_BYTES = 60_000
HOSTILE = '<script>alert("x")</script>@x.com & co'

FUNNEL = {  # as lifecycle reports it, but in another order: the chart keeps the stage order
    "other": 5_400,
    "customer": 377,
    "subscriber": 412_345,
    "lead": 98_120,
    "marketingqualifiedlead": 12_004,
    "salesqualifiedlead": 2_310,
    "opportunity": 801,
    "evangelist": 12,
}
STAGE_ORDER = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]


def engagement_buckets() -> list[dict]:
    """14 buckets of 10 points from -20 to 120, bands as configured (hot >= 60, warm >= 20)."""
    return [
        {
            "low": float(low),
            "high": float(low + 10),
            "band": "hot" if low >= 60 else "warm" if low >= 20 else "cold",
            "contacts": int(90_000 * 0.6 ** ((low + 20) / 10)) + 3,
        }
        for low in range(-20, 120, 10)
    ]


def tier_points(days: int, start: date = date(2026, 3, 1)) -> list[tuple[date, int]]:
    return [(start + timedelta(days=i), 7_000 + 17 * i) for i in range(days)]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def with_id(root: ET.Element, prefix: str) -> list[ET.Element]:
    return [element for element in root.iter() if element.get("id", "").startswith(prefix)]


def texts(element: ET.Element) -> list[str]:
    return ["".join(text.itertext()) for text in element.iter(f"{SVG}text")]


def text_of(root: ET.Element, element_id: str) -> str:
    (element,) = [element for element in root.iter() if element.get("id") == element_id]
    return " ".join(texts(element))


def assert_self_contained(svg: str) -> None:
    assert len(svg.encode()) < MAX_BYTES
    root = parse(svg)
    for element in root.iter():
        assert element.tag.rsplit("}", 1)[-1] not in {"script", "image", "foreignObject"}
        for name, value in element.attrib.items():
            if name.endswith("href"):
                assert value.startswith("#"), value
            for target in re.findall(r"url\(([^)]*)\)", value):
                assert target.startswith("#"), value
    assert texts(root), "text is kept as <text> elements (svg.fonttype none)"


@pytest.fixture(scope="module")
def funnel_svg() -> str:
    return funnel_chart(FUNNEL)


@pytest.fixture(scope="module")
def scores_svg() -> str:
    return score_distribution_chart("engagement", engagement_buckets())


@pytest.fixture(scope="module")
def tier_svg() -> str:
    return tier_use_chart(tier_points(120), 10_000)


def test_funnel_has_one_bar_per_stage_in_stage_order_with_its_count(funnel_svg):
    assert_self_contained(funnel_svg)
    root = parse(funnel_svg)
    bars = with_id(root, "funnel-bar-")
    assert [bar.get("id") for bar in bars] == [
        f"funnel-bar-{i}-{stage}" for i, stage in enumerate(STAGE_ORDER)
    ]
    all_text = texts(root)
    for i, stage in enumerate(STAGE_ORDER):
        assert stage in all_text
        assert text_of(root, f"funnel-count-{i}") == f"{FUNNEL[stage]:,}"
    assert f"({sum(FUNNEL.values()):,} in all)" in " ".join(all_text)


def test_funnel_bars_run_top_down_and_grow_with_the_count(funnel_svg):
    def box(bar: ET.Element) -> tuple[float, float]:
        (path,) = bar.iter(f"{SVG}path")
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.get("d"))]
        xs, ys = numbers[0::2], numbers[1::2]
        return max(xs) - min(xs), min(ys)

    boxes = [box(bar) for bar in with_id(parse(funnel_svg), "funnel-bar-")]
    tops = [top for _, top in boxes]
    assert tops == sorted(tops), "subscriber on top, other at the bottom"
    widths = dict(zip(STAGE_ORDER, (width for width, _ in boxes), strict=True))
    assert widths["subscriber"] > widths["lead"] > widths["marketingqualifiedlead"]
    assert widths["subscriber"] / widths["lead"] == pytest.approx(412_345 / 98_120, rel=0.01)


def test_funnel_keeps_an_unknown_stage_and_zero_counts():
    root = parse(funnel_chart({"lead": 0, "customer": 3, "partner": 1}))
    ids = [bar.get("id") for bar in with_id(root, "funnel-bar-")]
    assert ids == ["funnel-bar-0-lead", "funnel-bar-1-customer", "funnel-bar-2-partner"]
    assert [text_of(root, f"funnel-count-{i}") for i in range(3)] == ["0", "3", "1"]


def test_score_distribution_has_one_bar_per_bucket_coloured_by_band(scores_svg):
    assert_self_contained(scores_svg)
    root = parse(scores_svg)
    buckets = engagement_buckets()
    bars = with_id(root, "score-bar-engagement-")
    assert [bar.get("id") for bar in bars] == [
        f"score-bar-engagement-{i}" for i in range(len(buckets))
    ]
    for bar, bucket in zip(bars, buckets, strict=True):
        (path,) = bar.iter(f"{SVG}path")
        assert f"fill: {BAND_COLOURS[bucket['band']]}" in path.get("style")
    for i, bucket in enumerate(buckets):
        assert text_of(root, f"score-count-engagement-{i}") == f"{bucket['contacts']:,}"
    totals = {
        band: sum(b["contacts"] for b in buckets if b["band"] == band) for band in BAND_COLOURS
    }
    legend = texts(with_id(root, "score-legend-engagement")[0])
    assert legend == ["band", *(f"{band} ({totals[band]:,})" for band in ("hot", "warm", "cold"))]
    assert "engagement score" in texts(root)


def test_score_distribution_takes_any_band_names_none_and_many_buckets():
    buckets = [
        {"low": low, "high": low + 5, "band": None if low < 0 else HOSTILE, "contacts": low + 60}
        for low in range(-50, 150, 5)
    ]
    svg = score_distribution_chart("fit $x$", buckets)
    assert_self_contained(svg)
    root = parse(svg)
    assert len(with_id(root, "score-bar-fit-x-")) == 40
    assert not with_id(root, "score-count-"), "no count labels over 20 buckets"
    legend = texts(with_id(root, "score-legend-fit-x")[0])
    assert legend == ["band", f"{HOSTILE} (3,975)", "no band (325)"]
    assert "<script" not in svg
    first = next(with_id(root, "score-bar-fit-x-0")[0].iter(f"{SVG}path"))
    assert f"fill: {NO_BAND_COLOUR}" in first.get("style")
    assert any("fit $x$" in text for text in texts(root)), "a dollar sign stays a dollar sign"


def test_tier_use_shows_the_last_90_days_and_the_three_levels(tier_svg):
    assert_self_contained(tier_svg)
    root = parse(tier_svg)
    (line,) = with_id(root, "tier-use-line")
    (path,) = line.iter(f"{SVG}path")
    assert len(re.findall(r"[ML] ", path.get("d"))) == 90, "one vertex a day, the last 90 days"
    for pct, level in ((75, "7,500"), (90, "9,000"), (100, "10,000")):
        assert len(with_id(root, f"tier-level-{pct}")) == 1
        assert text_of(root, f"tier-label-{pct}") == f"{pct}% of tier: {level}"
    last = tier_points(120)[-1][1]
    assert text_of(root, "tier-use-last") == f"{last:,}"
    assert f"{last:,} of 10,000 ({last / 10_000:.1%}) on 2026-06-28" in " ".join(texts(root))


def test_tier_use_without_a_tier_draws_no_levels_and_one_point_is_a_marker():
    root = parse(tier_use_chart(tier_points(30), 0))
    assert len(with_id(root, "tier-use-line")) == 1
    assert not with_id(root, "tier-level-") and not with_id(root, "tier-label-")
    assert "(tier is 0)" in " ".join(texts(root))

    svg = tier_use_chart([(date(2026, 5, 29), 9_500)], 10_000)
    assert_self_contained(svg)
    root = parse(svg)
    (line,) = with_id(root, "tier-use-line")
    assert list(line.iter(f"{SVG}use")), "a single day is drawn as a marker"
    assert text_of(root, "tier-use-last") == "9,500"
    assert len(with_id(root, "tier-level-")) == 3

    root = parse(tier_use_chart([(date(2026, 5, 29), 3)], 5))
    assert [text_of(root, f"tier-label-{pct}") for pct in (75, 90, 100)] == [
        "75% of tier: 3.75",
        "90% of tier: 4.5",
        "100% of tier: 5",
    ]


@pytest.mark.parametrize(
    "svg",
    [
        pytest.param(lambda: funnel_chart({}), id="funnel"),
        pytest.param(lambda: score_distribution_chart("engagement", []), id="scores"),
        pytest.param(lambda: tier_use_chart([], 10_000), id="tier"),
    ],
)
def test_empty_input_says_no_data(svg):
    text = svg()
    assert_self_contained(text)
    root = parse(text)
    assert text_of(root, "no-data") == "no data"
    assert not with_id(root, "funnel-bar-") and not with_id(root, "score-bar-")
    assert not with_id(root, "tier-use-line")


def test_charts_leak_no_figure_and_no_rc_setting():
    import matplotlib
    from matplotlib import _pylab_helpers
    from matplotlib.figure import Figure

    def live_figures() -> int:
        gc.collect()
        return sum(isinstance(thing, Figure) for thing in gc.get_objects())

    caller = {"font.size": 7.0, "svg.fonttype": "path", "text.parse_math": True}
    start = live_figures()
    with matplotlib.rc_context(caller):
        for _ in range(5):
            svg = funnel_chart({"lead": 3})
            tier_use_chart(tier_points(3), 100)
            assert {key: matplotlib.rcParams[key] for key in caller} == caller
    assert texts(parse(svg)), "the charts' own settings hold whatever the caller's are"
    assert live_figures() == start
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0
    assert "matplotlib.pyplot" not in sys.modules


def test_same_input_same_svg():
    assert funnel_chart({"lead": 3, "customer": 1}) == funnel_chart({"lead": 3, "customer": 1})


def test_importing_the_charts_module_does_not_import_matplotlib():
    code = "import sys, leadflow.report.charts; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_chart_markdown_is_an_image_of_the_svg_as_a_data_uri(funnel_svg):
    markdown = chart_markdown(funnel_svg, 'Funnel [all] <b> & "q"\nnext')
    match = re.fullmatch(r"!\[([^\]]*)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:80]
    assert match.group(1) == "Funnel (all) ‹b› and ”q” next"
    assert base64.b64decode(match.group(2)).decode() == funnel_svg


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data):
        self.data.append(data)


def read(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


@pytest.fixture(scope="module")
def page(funnel_svg, scores_svg, tier_svg) -> str:
    movers = [
        {"email": HOSTILE, "score": "engagement", "before": 10.5, "after": 80.25},
        *(
            {"email": f"c{i}@example.com", "score": "fit", "before": i, "after": -i}
            for i in range(30)
        ),
    ]
    return render_page(
        f"Daily run {HOSTILE}",
        [
            Section(f"Summary {HOSTILE}", paragraphs=["12,345 rows loaded.", HOSTILE]),
            Section(
                "Lifecycle",
                tables=[[{"stage": stage, "contacts": count} for stage, count in FUNNEL.items()]],
                charts=[funnel_svg],
            ),
            Section("Scores", charts=[scores_svg]),
            Section(
                "Tier",
                tables=[Table([HOSTILE, "score", "before", "after"], [], caption=HOSTILE)],
                charts=[tier_svg],
            ),
            Section("Movers", tables=[movers]),
        ],
    )


def test_page_escapes_hostile_text_everywhere(page):
    parsed = read(page)
    assert "script" not in parsed.tags
    assert "<script" not in page.lower()
    assert sum(HOSTILE in data for data in parsed.data) == 8  # title, h1, 2 nav/h2, p, th, ...
    assert not any(name.startswith("on") for name, _ in parsed.attributes)


def test_page_inlines_every_chart_and_fetches_nothing(page, funnel_svg, scores_svg, tier_svg):
    parsed = read(page)
    assert parsed.tags.count("svg") == 3
    for svg in (funnel_svg, scores_svg, tier_svg):
        assert inline_svg(svg) in page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert not {"img", "link", "iframe", "object", "embed"} & set(parsed.tags)
    assert [n for n, _ in parsed.attributes if n == "src"] == []
    for name, value in parsed.attributes:
        if name.endswith("href"):
            assert value.startswith("#"), value
    assert "@import" not in page and not re.search(r"url\((?!#)", page)
    assert "<style>" in page and "@media print" in page


def test_page_holds_every_table_row(page):
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert len(rows) == 1 + 8 + 1 + 1 + 1 + 31  # header + funnel, header + "no rows", movers
    for stage, count in FUNNEL.items():
        assert f'<tr><td>{stage}</td><td class="num">{count:,}</td></tr>' in page
    for i in range(30):
        assert f"<td>c{i}@example.com</td>" in page
    assert '<td class="empty" colspan="4">no rows</td>' in page
    assert '<th scope="col">email</th><th scope="col">score</th>' in page


def test_page_of_nothing_is_a_page():
    page = render_page("Empty", [])
    parsed = read(page)
    assert parsed.tags[:2] == ["html", "head"] and "h1" in parsed.tags
    assert "section" not in parsed.tags and "nav" not in parsed.tags


@pytest.mark.parametrize(
    "svg",
    [
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<image xlink:href="http://example.com/x.png"/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill: url(http://e.com/#a)"/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><style>@import "http://e.com/x.css";</style></svg>',
        "<html><body>not svg</body></html>",
        "<svg xmlns='http://www.w3.org/2000/svg'><unclosed></svg>",
    ],
)
def test_page_refuses_a_chart_that_runs_or_fetches_something(svg):
    with pytest.raises(ValueError):
        render_page("x", [Section("x", charts=[svg])])
