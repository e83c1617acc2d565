"""One self-contained HTML page: inline CSS, charts inlined as SVG, no script, no file, no network.

Every piece of text is HTML-escaped. A chart must be an SVG document (what `charts` makes): it is
checked (well-formed, no script, no event handler, no foreign object, no reference outside
itself) and inlined without its XML prolog, so the page stays one file that prints as vectors.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_FORBIDDEN_TAGS = {"script", "foreignObject", "iframe", "object", "embed"}
_URL = re.compile(r"url\(([^)]*)\)", re.IGNORECASE)
_PROLOG = re.compile(r"\A(?:\s|<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->)*", re.DOTALL)


@dataclass(frozen=True)
class Table:
    """A table given as a header and rows of cells (a list of dicts is taken as well: see
    Section.tables)."""

    header: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A heading, then its paragraphs, tables and charts (SVG text), in that order. A table is a
    `Table` or a list of dict rows (the columns: every key, in the order first met)."""

    heading: str
    paragraphs: Sequence[str] = ()
    tables: Sequence[Table | Sequence[Mapping[str, object]]] = ()
    charts: Sequence[str] = ()


def render_page(title: str, sections: list[Section]) -> str:
    """The whole page as HTML text."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_text(title)}</h1>",
    ]
    if len(sections) > 2:
        parts.append('<nav aria-label="Contents"><ol>')
        parts += [
            f'<li><a href="#section-{i}">{_text(section.heading)}</a></li>'
            for i, section in enumerate(sections, 1)
        ]
        parts.append("</ol></nav>")
    for i, section in enumerate(sections, 1):
        parts.append(f'<section id="section-{i}">')
        parts.append(f"<h2>{_text(section.heading)}</h2>")
        parts += [f"<p>{_text(paragraph)}</p>" for paragraph in section.paragraphs]
        parts += [_table(table) for table in section.tables]
        parts += [f'<figure class="chart">{inline_svg(svg)}</figure>' for svg in section.charts]
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def inline_svg(svg: str) -> str:
    """The SVG document as an element to put in HTML: its prolog dropped, after checking that it
    is well-formed SVG that runs nothing and fetches nothing; ValueError if not."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as error:
        raise ValueError(f"a chart is not well-formed SVG: {error}") from error
    if root.tag != f"{SVG_NS}svg":
        raise ValueError(f"a chart's root element is {root.tag!r}, not an SVG <svg>")
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in _FORBIDDEN_TAGS:
            raise ValueError(f"a chart holds a <{tag}> element")
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1]
            if local.lower().startswith("on"):
                raise ValueError(f"a chart holds an event handler ({local})")
            if name in (XLINK_HREF, "href") and not value.startswith(("#", "data:image/")):
                raise ValueError(f"a chart refers outside itself ({value[:40]!r})")
            _check_urls(value)
        if tag == "style":
            _check_urls(element.text or "")
    return _PROLOG.sub("", svg, count=1).strip()


def _check_urls(value: str) -> None:
    for target in _URL.findall(value):
        if not target.strip("'\" ").startswith("#"):
            raise ValueError(f"a chart refers outside itself (url({target[:40]}))")
    if "@import" in value:
        raise ValueError("a chart's style imports a sheet")


def _table(table: Table | Sequence[Mapping[str, object]]) -> str:
    if isinstance(table, Table):
        header, rows, caption = list(table.header), [list(row) for row in table.rows], table.caption
    else:
        header = list(dict.fromkeys(key for row in table for key in row))
        rows = [[row.get(key) for key in header] for row in table]
        caption = ""
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{_text(caption)}</caption>")
    if header:
        parts.append(
            "<thead><tr>"
            + "".join(f'<th scope="col">{_text(name)}</th>' for name in header)
            + "</tr></thead>"
        )
    parts.append("<tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(_cell(value) for value in row) + "</tr>")
    if not rows:
        parts.append(f'<tr><td class="empty" colspan="{max(len(header), 1)}">no rows</td></tr>')
    parts.append("</tbody></table>")
    return "".join(parts)


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{'' if value is None else _text(value)}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="num">{_text(value)}</td>'
    return f"<td>{_text(value)}</td>"


def _text(value: object) -> str:
    return escape(str(value), quote=True)


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1d2330; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 2rem 3rem; background: #fff;
  min-height: 100vh; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; padding-bottom: .25rem;
  border-bottom: 1px solid #d8dce3; }
p { margin: .4rem 0 .8rem; max-width: 48rem; overflow-wrap: anywhere; }
nav ol { margin: 0 0 1rem; padding-left: 1.4rem; columns: 2; }
nav a { color: #1f5f99; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .9rem;
  font-variant-numeric: tabular-nums; max-width: 100%; }
caption { text-align: left; font-weight: 600; padding: .2rem 0 .4rem; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #e3e6eb; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
th { background: #eef1f5; font-weight: 600; }
tbody tr:nth-child(even) td { background: #f8f9fb; }
td.num { text-align: right; white-space: nowrap; }
td.empty { color: #6b7280; font-style: italic; }
figure.chart { margin: .8rem 0 1.4rem; }
figure.chart svg { display: block; width: 100%; max-width: 700px; height: auto; }
@media print {
  body { background: #fff; font-size: 11pt; }
  main { max-width: none; padding: 0; min-height: 0; }
  nav { display: none; }
  h2 { break-after: avoid; }
  figure.chart, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  tbody tr:nth-child(even) td { background: none; }
}
"""
