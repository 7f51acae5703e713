"""The report as an Excel workbook (XlsxWriter): a summary sheet (each unit's indicators,
criterion scores, total score and rank among its peers), one sheet per criterion (result,
target and achievement of each indicator), a sheet by commune, and a sheet about the report.

Figures are stored as numbers (so other tools can compute with them) with number formats; the
texts around them (period, dates) are formatted for vi_VN with Babel. Header rows are frozen,
column widths fit their contents. The workbook's creation date is the report's own date, so
the same report gives the same file.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from typing import Any

import xlsxwriter

from bot.reports import common
from bot.reports.common import PERCENT

MAX_WIDTH = 60
NUMBER_WIDTH = 11  # up to 9,999,999 with separators, or 100.0%


class _Sheet:
    """A worksheet that remembers the widest text of each column."""

    def __init__(self, book: Any, name: str, fmt: dict[str, Any]) -> None:
        self.ws = book.add_worksheet(_sheet_name(name))
        self.fmt = fmt
        self.widths: dict[int, float] = {}

    def put(self, row: int, col: int, value: Any, style: str | None = None) -> None:
        self.row(row, [(value, style)], first=col)

    def row(self, row: int, cells: list[tuple[Any, str | None]], first: int = 0) -> None:
        """Write a row; text widens its column to fit, numbers get the numbers' width."""
        fmt, widths = self.fmt, self.widths
        write_number, write_string = self.ws.write_number, self.ws.write_string
        for col, (value, style) in enumerate(cells, first):
            if value is None:
                self.ws.write_blank(row, col, None, fmt.get(style) if style else None)
            elif isinstance(value, str):
                write_string(row, col, value, fmt.get(style) if style else None)
                width = len(value) * 1.1 + 2
                if width > widths.get(col, 0):
                    widths[col] = min(MAX_WIDTH, width)
            else:
                write_number(row, col, value, fmt[style] if style else None)
                if col not in widths:
                    widths[col] = NUMBER_WIDTH

    def header(self, row: int, labels: list[str]) -> None:
        for col, label in enumerate(labels):
            self.ws.write_string(row, col, label, self.fmt["head"])
            longest = max((len(w) for w in label.split()), default=4)
            self.widths[col] = max(self.widths.get(col, 0), min(24, max(longest + 2, 8)))
        self.ws.set_row(row, 48)

    def finish(self, header_row: int, freeze_cols: int) -> None:
        for col, width in self.widths.items():
            self.ws.set_column(col, col, width)
        self.ws.freeze_panes(header_row + 1, freeze_cols)
        self.ws.set_landscape()
        self.ws.set_paper(9)  # A4
        self.ws.fit_to_pages(1, 0)
        self.ws.repeat_rows(header_row)


def _sheet_name(name: str) -> str:
    return re.sub(r"[\[\]:*?/\\]", " ", name)[:31]


def _intro(sheet: _Sheet, data: dict[str, Any], t: dict[str, str], title: str) -> int:
    """Title lines above a table; returns the next free row."""
    ws, fmt = sheet.ws, sheet.fmt
    ws.write_string(0, 0, f"{t['title']} {t['movement']}", fmt["title"])
    ws.write_string(1, 0, title, fmt["bold"])
    ws.write_string(2, 0, f"{t['scope']}: {data['scope']['name']} · {t['period']}: "
                          f"{common.period_text(data)}")  # fmt: skip
    row = 3
    frozen = common.frozen_line(data)
    if frozen:
        ws.write_string(row, 0, frozen, fmt["note"])
        row += 1
    return row + 1


def _value_style(metric: str) -> str:
    return "pct" if metric in PERCENT else "int"


def render(data: dict[str, Any]) -> bytes:
    t = common.text()
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True,
                                     "strings_to_numbers": False,
                                     "strings_to_formulas": False, "strings_to_urls": False})
    moment = datetime.fromisoformat((data.get("frozen") or {}).get("at") or data["generated_at"])
    book.set_properties({"title": f"{t['title']} {t['movement']}", "author": "hocvuso",
                         "created": moment.replace(tzinfo=None),
                         "comments": data["criteria"]["id"] + " " + data["criteria"]["version"]})
    base = {"font_name": "Times New Roman", "font_size": 11, "valign": "top"}
    fmt = {
        "title": book.add_format({**base, "bold": True, "font_size": 13}),
        "bold": book.add_format({**base, "bold": True}),
        "note": book.add_format({**base, "italic": True}),
        "head": book.add_format({**base, "bold": True, "text_wrap": True, "align": "center",
                                 "valign": "vcenter", "border": 1, "bg_color": "#DDEBF7"}),
        "text": book.add_format({**base, "border": 1}),
        "int": book.add_format({**base, "border": 1, "num_format": "#,##0"}),
        "dec": book.add_format({**base, "border": 1, "num_format": "#,##0.0"}),
        "pct": book.add_format({**base, "border": 1, "num_format": "0.0%"}),
        "date": book.add_format({**base, "num_format": "dd/mm/yyyy"}),
    }
    # The summary lists the criteria's indicators and the two most asked-for figures; every
    # other figure is in the CSV and on the communes sheet.
    metrics = common.columns(data)
    summary_metrics = [m for m in metrics if m not in ("members", "lessons_completed",
                                                       "quizzes_passed")]  # fmt: skip
    units = common.ordered_units(data)
    cset = data["criteria"]
    criteria = cset["criteria"]

    # Summary: one row per unit.
    sheet = _Sheet(book, t["summary_sheet"], fmt)
    row = _intro(sheet, data, t, t["summary_sheet"])
    heads = [t["no"], t["unit_code"], t["unit"], t["organisation"], t["level"]]
    heads += [common.indicator_label(m) for m in summary_metrics]
    heads += [f"{t['score']}: {c['short']}" for c in criteria]
    heads += [t["total_score"], t["rank"], t["peers"]]
    sheet.header(row, heads)
    header_row = row
    for i, u in enumerate(units, 1):
        row += 1
        cells: list[tuple[Any, str]] = [(i, "int"), (u["code"], "text"), (u["name"], "text"),
                                        (common.org_label(u["type"]), "text"),
                                        (common.level_label(u["level"]), "text")]  # fmt: skip
        cells += [(u["values"].get(m), _value_style(m)) for m in summary_metrics]
        cells += [(u["scores"].get(c["id"], 0.0), "dec") for c in criteria]
        cells += [(u["total"], "dec"), (u["rank"], "int"), (u["peers"], "int")]
        sheet.row(row, cells)
    if not units:
        sheet.put(row + 1, 0, t["none"])
    sheet.ws.write_string(row + 2, 0, t["disclaimer"], fmt["note"])
    sheet.finish(header_row, 3)

    # One sheet per criterion: each indicator's result and how much of its target it reached
    # (the targets of each level are listed above the table; a unit's own target for members
    # trained, where officers entered one, is in the CSV and the HTML / DOCX reports).
    for n, criterion in enumerate(criteria, 1):
        sheet = _Sheet(book, f"{t['criterion']} {n} - {criterion['short']}", fmt)
        row = _intro(sheet, data, t, f"{t['criterion']} {n}: {criterion['title']}")
        factor = float(data["period"].get("years", 1.0))
        for spec in criterion["indicators"]:
            sheet.ws.write_string(row, 0, f"{t['target']}: {spec['title']}", fmt["note"])
            targets = [
                f"{common.level_label(level)} "
                f"{common.fmt_value(spec['metric'], _target(spec, level, factor))}"
                for level in ("province", "commune", "branch")
            ]
            sheet.ws.write_string(row, 2, " · ".join(targets), fmt["note"])
            row += 1
        row += 1
        heads = [t["unit_code"], t["unit"]]
        for spec in criterion["indicators"]:
            heads += [f"{spec['title']} – {t['result']}", t["achieved"]]
        heads += [t["score"], t["rank"]]
        sheet.header(row, heads)
        header_row = row
        ranks = _criterion_ranks(units, criterion["id"])
        metric_styles = [(spec["metric"], _value_style(spec["metric"]))
                         for spec in criterion["indicators"]]  # fmt: skip
        for u in units:
            row += 1
            values, details = u["values"], u.get("details", {})
            cells: list[tuple[Any, str | None]] = [(u["code"], "text"), (u["name"], "text")]
            for m, style in metric_styles:
                cells += [(values.get(m), style), (details.get(m, {}).get("achieved"), "pct")]
            cells += [(u["scores"].get(criterion["id"], 0.0), "dec"), (ranks[u["code"]], "int")]
            sheet.row(row, cells)
        sheet.ws.write_string(row + 2, 0, t["disclaimer"], fmt["note"])
        sheet.finish(header_row, 2)

    # By commune.
    sheet = _Sheet(book, t["communes_sheet"], fmt)
    row = _intro(sheet, data, t, t["section_communes"])
    sheet.header(row, [t["no"], t["commune_code"], t["commune"],
                       *(common.indicator_label(m) for m in metrics)])  # fmt: skip
    header_row = row
    for i, c in enumerate(data["communes"], 1):
        row += 1
        cells = [(i, "int"), (f"{c['code']:05d}", "text"), (c["name"], "text")]
        cells += [(c["values"].get(m), _value_style(m)) for m in metrics]
        sheet.row(row, cells)
    if not data["communes"]:
        sheet.put(row + 1, 0, t["none"])
    sheet.finish(header_row, 3)

    # About: the criteria set, the dates, the definitions.
    ws = book.add_worksheet(_sheet_name(t["about_sheet"]))
    ws.set_column(0, 0, 28)
    ws.set_column(1, 1, 90)
    lines: list[tuple[str, Any]] = [
        (t["scope"], data["scope"]["name"]),
        (t["period"], common.period_text(data)),
        (t["criteria_set"], f"{cset['title']} ({cset['id']} {cset['version']})"),
        (t["source"], cset["source"]),
        (t["generated"], common.fmt_moment(data["generated_at"])),
    ]
    frozen = common.frozen_line(data)
    if frozen:
        lines.append(("", frozen))
    lines += [("", t["disclaimer"]), ("", t["definitions"])]
    for r, (label, value) in enumerate(lines):
        ws.write_string(r, 0, label, fmt["bold"])
        ws.write_string(r, 1, value, fmt["note"] if not label else None)
    r = len(lines) + 1
    ws.write_string(r, 0, t["period"], fmt["bold"])
    ws.write_datetime(r, 1, datetime.combine(date.fromisoformat(data["period"]["first"]),
                                             datetime.min.time()), fmt["date"])  # fmt: skip
    ws.write_datetime(r + 1, 1, datetime.combine(date.fromisoformat(data["period"]["last"]),
                                                 datetime.min.time()), fmt["date"])  # fmt: skip
    r += 3
    for criterion in criteria:
        ws.write_string(r, 0, f"{criterion['short']} ({t['weight']} {criterion['weight']:g})",
                        fmt["bold"])  # fmt: skip
        ws.write_string(r, 1, criterion["title"])
        r += 1
        for spec in criterion["indicators"]:
            ws.write_string(r, 0, f"  {t['weight']} {spec['weight']:g}")
            ws.write_string(r, 1, f"{spec['title']} ({common.indicator_label(spec['metric'])})")
            r += 1
    book.close()
    return buf.getvalue()


def _target(spec: dict[str, Any], level: str, factor: float) -> float:
    """The target of a level over the report's period, as `reports.score` applies it."""
    from content.criteria import NOT_SCALED

    target = float(spec["targets"].get(level, 0.0))
    if spec["metric"] in PERCENT:
        return target / 100
    return target if spec["metric"] in NOT_SCALED else target * factor


def _criterion_ranks(units: list[dict[str, Any]], criterion_id: str) -> dict[str, int]:
    """Rank by this criterion's score among the same peers as the total rank."""
    out: dict[str, int] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for u in units:
        groups.setdefault(u["peer_group"], []).append(u)
    for members in groups.values():
        members = sorted(members, key=lambda u: -u["scores"].get(criterion_id, 0.0))
        previous: tuple[float, int] | None = None
        for i, u in enumerate(members, 1):
            s = u["scores"].get(criterion_id, 0.0)
            rank = previous[1] if previous is not None and previous[0] == s else i
            out[u["code"]] = rank
            previous = (s, rank)
    return out
