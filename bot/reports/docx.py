"""The report as a Word document (python-docx): what offices edit and sign. The same content
as the HTML report: masthead, title, period, overall results, a table per criterion with a
chart of the best scores, communes, learners by gender and age, signatures.

Long tables are written as one piece of WordprocessingML each (python-docx's cell by cell API
takes seconds for a province's 940 units); their header rows repeat on every page, numbers are
right-aligned by a paragraph style. Charts
are PNG pictures drawn with Pillow and the shipped Source Sans Pro font (every number on a
chart is in the table above it).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from docx.shared import Cm, Mm, Pt

from bot.i18n import current_language
from bot.reports import common
from bot.reports.html import CHART_TOP, chart_rows

FONT = "Times New Roman"


# A table cell; its look (9 pt, no spacing) comes from the "ReportTable" paragraph style,
# numbers' right alignment from "ReportNumber" (the same, aligned right).
_TEXT_CELL = ('<w:tc><w:p><w:pPr><w:pStyle w:val="ReportTable"/></w:pPr><w:r>'
              '<w:t xml:space="preserve">')  # fmt: skip
_NUMBER_CELL = '<w:tc><w:p><w:pPr><w:pStyle w:val="ReportNumber"/></w:pPr><w:r><w:t>'
_HEAD_CELL = ('<w:tc><w:p><w:pPr><w:pStyle w:val="ReportTable"/></w:pPr><w:r><w:rPr><w:b/>'
              '</w:rPr><w:t xml:space="preserve">')  # fmt: skip
_END_CELL = "</w:t></w:r></w:p></w:tc>"
_BORDERS = "".join(f'<w:{side} w:val="single" w:sz="4" w:space="0" w:color="000000"/>'
                   for side in ("top", "left", "bottom", "right", "insideH", "insideV"))
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _table(doc: Any, header: list[str], rows: Iterable[list[tuple[str, bool]]]) -> None:
    """A bordered table after the last paragraph, as one piece of WordprocessingML; cells are
    (text, is a number). A number's text needs no escaping (digits, separators, signs)."""
    parts = [f"<w:tbl {nsdecls('w')}><w:tblPr><w:tblW w:w=\"5000\" w:type=\"pct\"/>"
             f'<w:tblBorders>{_BORDERS}</w:tblBorders><w:tblLayout w:type="autofit"/>'
             "</w:tblPr><w:tblGrid>" + "<w:gridCol/>" * len(header) + "</w:tblGrid>"
             "<w:tr><w:trPr><w:tblHeader/><w:cantSplit/></w:trPr>"
             + "".join(f"{_HEAD_CELL}{_text(h)}{_END_CELL}" for h in header)
             + "</w:tr>"]  # fmt: skip
    append = parts.append
    for row in rows:
        append("<w:tr><w:trPr><w:cantSplit/></w:trPr>")
        for text, is_number in row:
            append(f"{_NUMBER_CELL}{text}{_END_CELL}" if is_number else
                   f"{_TEXT_CELL}{_text(text)}{_END_CELL}")  # fmt: skip
        append("</w:tr>")
    append("</w:tbl>")
    anchor = doc.add_paragraph()
    anchor._p.addnext(parse_xml("".join(parts)))


def _text(text: str) -> str:
    """Text for WordprocessingML: escaped, without the control characters XML forbids."""
    return escape(_CONTROL.sub("", text))


def _chart(rows: list[Any], title: str) -> io.BytesIO | None:
    """A horizontal bar chart (PNG) of (label, value) rows, values 0-100."""
    if not rows:
        return None
    key = (tuple((label, value) for label, value in rows), title, current_language.get())
    return io.BytesIO(_chart_png(key))


@lru_cache(maxsize=32)
def _chart_png(key: tuple[Any, str, str]) -> bytes:
    """The chart's picture, drawn once for the same figures, title and language."""
    from PIL import Image, ImageDraw

    from bot.services.certificates import _font

    rows, title, _lang = key
    width, bar, gap, left = 1200, 26, 10, 470
    height = 70 + len(rows) * (bar + gap) + 30
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    title_font, font = _font("Semibold", 26), _font("Regular", 20)
    draw.text((20, 20), title, font=title_font, fill="black")
    top = max((v for _l, v in rows), default=0) or 1
    scale = max(100.0, top)
    for i, (label, value) in enumerate(rows):
        y = 60 + i * (bar + gap)
        text = label if len(label) <= 42 else label[:41] + "…"
        draw.text((left - 14, y + bar // 2), text, font=font, fill="black", anchor="rm")
        length = int((width - left - 140) * value / scale)
        draw.rectangle((left, y, left + max(length, 2), y + bar), fill="#1f5fa8")
        draw.text((left + length + 10, y + bar // 2), common.fmt_score(value), font=font,
                  fill="black", anchor="lm")  # fmt: skip
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _paragraph(doc: Any, text: str, *, bold: bool = False, italic: bool = False,
               center: bool = False, size: float = 13) -> Any:  # fmt: skip
    p = doc.add_paragraph()
    run = p.add_run(text)
    run.bold, run.italic, run.font.size = bold, italic, Pt(size)
    if center:
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    return p


def _criterion_rows(units: list[dict[str, Any]],
                    criterion: dict[str, Any]) -> Iterator[list[tuple[str, bool]]]:  # fmt: skip
    """A criterion's table: each unit's result / target per indicator, score and rank."""
    for i, u in enumerate(units, 1):
        row = [(str(i), True), (u["name"], False)]
        for spec in criterion["indicators"]:
            m = spec["metric"]
            target = u.get("details", {}).get(m, {}).get("target")
            if target is not None and m in common.PERCENT:
                target = target / 100
            row.append((f"{common.fmt_value(m, u['values'].get(m))} / "
                        f"{common.fmt_value(m, target)}", True))  # fmt: skip
        row += [(common.fmt_score(u["scores"].get(criterion["id"], 0.0)), True),
                (f"{u['rank']}/{u['peers']}", True)]  # fmt: skip
        yield row


def render(data: dict[str, Any]) -> bytes:
    t = common.text()
    metrics = common.columns(data)
    units = common.ordered_units(data)
    criteria = data["criteria"]["criteria"]
    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    style = doc.styles["Normal"]
    style.font.name, style.font.size = FONT, Pt(13)
    table_style = doc.styles.add_style("ReportTable", WD_STYLE_TYPE.PARAGRAPH)
    table_style.base_style = style
    table_style.font.size = Pt(9)
    table_style.paragraph_format.space_before = table_style.paragraph_format.space_after = Pt(0)
    number_style = doc.styles.add_style("ReportNumber", WD_STYLE_TYPE.PARAGRAPH)
    number_style.base_style = table_style
    number_style.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    moment = datetime.fromisoformat((data.get("frozen") or {}).get("at") or data["generated_at"])
    props = doc.core_properties
    props.title = f"{t['title']} {t['movement']}"
    props.author = "hocvuso"
    props.created = props.modified = moment.replace(tzinfo=None)
    props.comments = f"{data['criteria']['id']} {data['criteria']['version']}"

    masthead = doc.add_table(rows=1, cols=2)
    left, right = masthead.rows[0].cells
    left.text = ""
    left.paragraphs[0].add_run(t["system"] + "\n")
    left.paragraphs[0].add_run(data["scope"]["name"].upper()).bold = True
    right.text = ""
    right.paragraphs[0].add_run(t["nation"] + "\n").bold = True
    motto = right.paragraphs[0].add_run(t["motto"])
    motto.bold = motto.underline = True
    right.add_paragraph().add_run(common.place_date(data)).italic = True
    for cell in (left, right):
        for p in cell.paragraphs:
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER

    _paragraph(doc, t["title"], bold=True, center=True, size=14)
    _paragraph(doc, t["movement"], bold=True, center=True, size=14)
    _paragraph(doc, f"{t['scope']}: {data['scope']['name']}", center=True)
    _paragraph(doc, f"{t['period']}: {common.period_text(data)}", center=True)
    cset = data["criteria"]
    _paragraph(doc, f"{t['criteria_set']}: {cset['title']} ({cset['id']} {cset['version']}). "
                    f"{t['source']}: {cset['source']}. {t['generated']}: "
                    f"{common.fmt_moment(data['generated_at'])}.", italic=True, size=11)
    frozen = common.frozen_line(data)
    if frozen:
        _paragraph(doc, frozen, bold=True, size=11)

    doc.add_heading(t["section_totals"], level=2)
    header = [t["no"], t["indicator"]] + [t["result"] for _ in data["totals"]]
    rows = [[(str(i), True), (common.indicator_label(m), False)]
            + [(common.fmt_value(m, total["values"].get(m)), True) for total in data["totals"]]
            for i, m in enumerate(metrics, 1)]  # fmt: skip
    _table(doc, header, rows)

    doc.add_heading(t["section_criteria"], level=2)
    if not units:
        _paragraph(doc, t["none"])
    for n, c in enumerate(criteria, 1):
        doc.add_heading(f"{t['criterion']} {n}: {c['title']} ({t['weight']} {c['weight']:g})",
                        level=3)  # fmt: skip
        if not units:
            continue
        header = [t["no"], t["unit"]]
        header += [f"{spec['title']} ({t['result']} / {t['target']})" for spec in c["indicators"]]
        header += [t["score"], t["rank"]]
        _table(doc, header, _criterion_rows(units, c))
        picture = _chart(chart_rows(units, lambda u, c=c: u["scores"].get(c["id"], 0.0)),
                         f"{t['chart_criterion']}: {c['short']}")  # fmt: skip
        if picture is not None:
            doc.add_picture(picture, width=Cm(16))
            _paragraph(doc, f"{t['top_units'].format(n=CHART_TOP)}. {t['charts_note']}",
                       italic=True, center=True, size=10)  # fmt: skip
    if units:
        doc.add_heading(t["total_score"], level=3)
        header = [t["no"], t["unit"], t["organisation"]]
        header += [f"{t['score']}: {c['short']}" for c in criteria] + [t["total_score"], t["rank"]]
        rows = ([(str(i), True), (u["name"], False), (common.org_label(u["type"]), False)]
                + [(common.fmt_score(u["scores"].get(c["id"], 0.0)), True) for c in criteria]
                + [(common.fmt_score(u["total"]), True), (f"{u['rank']}/{u['peers']}", True)]
                for i, u in enumerate(units, 1))  # fmt: skip
        _table(doc, header, rows)
        picture = _chart(chart_rows(units, lambda u: u["total"]), t["chart_scores"])
        if picture is not None:
            doc.add_picture(picture, width=Cm(16))
            _paragraph(doc, f"{t['top_units'].format(n=CHART_TOP)}. {t['charts_note']}",
                       italic=True, center=True, size=10)  # fmt: skip
    _paragraph(doc, t["disclaimer"], italic=True, size=11)

    doc.add_heading(t["section_communes"], level=2)
    key = ("registered", "active_learners", "members_trained", "certificates",
           "people_reached", "communes_covered")  # fmt: skip
    if data["communes"]:
        header = [t["no"], t["commune"]] + [common.indicator_label(m) for m in key]
        rows = ([(str(i), True), (c["name"], False)]
                + [(common.fmt_value(m, c["values"].get(m)), True) for m in key]
                for i, c in enumerate(data["communes"], 1))  # fmt: skip
        _table(doc, header, rows)
    else:
        _paragraph(doc, t["none"])

    if data.get("breakdown"):
        doc.add_heading(t["section_people"], level=2)
        for dim, found in data["breakdown"].items():
            header = [t[dim]] + [common.indicator_label(m) for m in
                                 ("registered", "active_learners", "members_trained")]
            rows = [[(common.dimension_label(dim, value), False)]
                    + [(common.fmt_value(m, f.get(m)), True)
                       for m in ("registered", "active_learners", "members_trained")]
                    for value, f in sorted(found.items())]  # fmt: skip
            _table(doc, header, rows)
    _paragraph(doc, t["definitions"], italic=True, size=11)
    signatures = doc.add_table(rows=1, cols=2)
    for cell, who in zip(signatures.rows[0].cells, (t["prepared_by"], t["head"]), strict=True):
        cell.text = ""
        cell.paragraphs[0].add_run(who).bold = True
        cell.add_paragraph().add_run(t["sign"]).italic = True
        for p in cell.paragraphs:
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
